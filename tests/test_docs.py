"""The docs site: nbdev's notebook processing (the step `nbdev_docs` runs before quarto, which cannot be
installed here) must succeed on every notebook and render every `show_doc`."""
import ast, json, re, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT / "nbs").glob("*.ipynb"))


def _cells(nb):
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def _src(c):
    return "".join(c["source"])


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.name)
def test_cells_the_docs_build_executes_are_imports_only(nb):
    """nbdev's docs build executes every cell that contains an import (plus exports and show_doc), without
    the example cells before it; so a cell that mixes imports with example code fails there, or runs
    heavy code. Keep imports in cells of their own (setup cells with `nbdev.showdoc` excepted)."""
    for c in _cells(nb):
        src = _src(c)
        if re.search(r"^#\|\s*export", src, re.M) or "nbdev.showdoc" in src or "nbdev_export" in src: continue
        body = ast.parse(src).body
        imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert not imports or len(imports) == len(body), f"{nb.name}: a cell mixes imports with other code:\n{src[:300]}"


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Run nbdev.serve.proc_nbs on the repository (writes the gitignored _proc/)."""
    code = "from nbdev.serve import proc_nbs; proc_nbs(n_workers=0, force=True)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    assert r.returncode == 0, (r.stderr or r.stdout)[-3000:]
    return ROOT / "_proc"


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.name)
def test_docs_processing_renders_every_show_doc(processed, nb):
    out = processed / nb.name
    assert out.exists(), f"{nb.name} was not processed"
    for c in _cells(out):
        m = re.search(r"show_doc\((\w+)", _src(c))
        if not m: continue
        md = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in c.get("outputs", []))
        assert re.search(rf"^#+ {m.group(1)}\b", md, re.M), f"{nb.name}: show_doc({m.group(1)}) rendered nothing"
