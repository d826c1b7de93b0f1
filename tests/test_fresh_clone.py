"""A fresh clone has nothing beside it: the notebooks must run top to bottom without the real sample files.

The notebooks find the optional real files through the environment variable MDR_REAL_SAMPLES (default
`../shared/real_samples` beside the repository). Here it points at a folder that does not exist, and each notebook
runs as CI runs it (`nbdev_test`, `#| slow` cells skipped). By default that is every notebook whose text mentions
`real_samples` (06, 07, 09, 10 today: about a minute); MDR_FRESH_CLONE_ALL=1 runs every notebook."""
import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "nbs").glob("[0-9]*.ipynb"))
MENTION = [p for p in NOTEBOOKS if "real_samples" in p.read_text(encoding="utf-8")]
RUN = NOTEBOOKS if os.environ.get("MDR_FRESH_CLONE_ALL") else MENTION


def run_notebook(nb: Path, real: Path) -> subprocess.CompletedProcess:
    "`nbdev_test --path nb` with MDR_REAL_SAMPLES=real, importing this checkout's package."
    env = {**os.environ, "MDR_REAL_SAMPLES": str(real), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    cmd = [sys.executable, "-c", "import sys; from nbdev.test import nbdev_test; nbdev_test(path=sys.argv[1])", str(nb)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_notebooks_that_read_real_samples_are_found():
    names = {p.stem[:2] for p in MENTION}
    assert {"06", "07"} <= names, names


@pytest.mark.parametrize("nb", RUN, ids=lambda p: p.stem)
def test_notebook_runs_without_the_real_samples(nb, tmp_path):
    missing = tmp_path / "no_real_samples_here"
    assert not missing.exists()
    r = run_notebook(nb, missing)
    assert r.returncode == 0 and "Success" in r.stdout + r.stderr, f"{nb.name} fails without real samples:\n{(r.stdout + r.stderr)[-3000:]}"


@pytest.mark.parametrize("nb", MENTION, ids=lambda p: p.stem)
def test_real_sample_paths_go_through_the_variable(nb):
    "Every code cell that names the real-samples folder takes its location from MDR_REAL_SAMPLES."
    for c in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and "real_samples" in src:
            assert "MDR_REAL_SAMPLES" in src, f"{nb.name}: a cell reads real_samples without MDR_REAL_SAMPLES:\n{src[:300]}"
