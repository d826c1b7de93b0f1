#!/usr/bin/env python
"""Build the documentation site into `_docs/` without Quarto.

    python tools/build_docs.py            # README, section "Docs"

1. nbdev's own notebook processing (`nbdev.serve.proc_nbs`, the step `nbdev_docs` runs before Quarto) writes
   `_proc/`: `show_doc` entries rendered, `#| hide` cells dropped, stored outputs kept; nothing is re-executed.
2. `normalise` turns each processed notebook into a valid nbformat 4.5 notebook for myst-nb (front matter ->
   title, Quarto cell options -> myst-nb tags, links to the nbdev site -> links inside this site, and the
   exported source back under its API entry, folded).
3. Sphinx + myst-nb + sphinx-book-theme render the pages, in the reading order and groups of `nbs/sidebar.yml`
   (the same file Quarto reads), plus the benchmarks, the configs' paper targets and one page per module's
   source. MathJax is copied into the site (sphinx-mathjax-offline): nothing is loaded from another host.
"""
import argparse, ast, configparser, copy, json, os, re, shutil, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(__file__).resolve().parent / "docs_conf.py"
SRC_DIR = "src"       # the module source pages: src/<module>.html
NB_DIR = "_nbs"       # the original notebooks, offered for download

# ---------------------------------------------------------------------------------------------------------
# Settings and reading order

def settings(root=ROOT) -> dict:
    cp = configparser.ConfigParser(); cp.read(root / "settings.ini")
    return dict(cp["DEFAULT"])


def sidebar(path=ROOT / "nbs" / "sidebar.yml") -> list:
    "[(group caption or None, [notebook file names])] from Quarto's sidebar file, in reading order."
    import yaml
    contents = yaml.safe_load(path.read_text())["website"]["sidebar"]["contents"]
    groups = []
    for item in contents:
        if isinstance(item, str): groups.append((None, [item]))
        else: groups.append((item["section"], list(item["contents"])))
    return groups


def check_sidebar(groups, nbs_dir=ROOT / "nbs"):
    "Every notebook in nbs/ appears exactly once in the sidebar, and nothing else does."
    listed = [nb for _, nbs in groups for nb in nbs]
    present = sorted(p.name for p in nbs_dir.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    dup = sorted({n for n in listed if listed.count(n) > 1})
    missing, extra = sorted(set(present) - set(listed)), sorted(set(listed) - set(present))
    if dup or missing or extra:
        raise SystemExit("nbs/sidebar.yml: " + "; ".join(
            s for s in (dup and f"listed twice: {dup}", missing and f"not listed: {missing}",
                        extra and f"no such notebook: {extra}") if s))


# ---------------------------------------------------------------------------------------------------------
# Normalising nbdev's processed notebooks

_FRONT = re.compile(r"^---\s*\n(.*?)\n---\s*$", re.S)
_CELL_KEYS = {"code": {"cell_type", "id", "metadata", "execution_count", "source", "outputs"},
              "markdown": {"cell_type", "id", "metadata", "source", "attachments"},
              "raw": {"cell_type", "id", "metadata", "source", "attachments"}}
# Quarto cell options nbdev leaves for Quarto, and the myst-nb tags that do the same.
_OPTION_TAGS = {("echo", "false"): "remove-input", ("include", "false"): "remove-cell",
                ("output", "false"): "remove-output", ("code-fold", "true"): "hide-input",
                ("code-fold", "show"): "hide-input"}
_OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
_ATTRS = re.compile(r"(\]\([^)\s]*\))\{[^{}]*\}")  # Pandoc link attributes: [a](b){target="_blank" ...}
_NOT_ID = re.compile(r"[^a-z0-9]+")


def _text(src) -> str: return "".join(src) if isinstance(src, list) else src


def anchor(name: str) -> str:
    "The HTML id docutils gives a heading or target `name` (nbdev's anchors are its lower-cased names)."
    return _NOT_ID.sub("-", name.lower()).strip("-")


class Links:
    """Rewrites the links nbdev writes for its own site into links inside this one.

    `pages` maps notebook file names to page names (nbdev's `output-file` without `.html`), `modules` nbdev's
    module names to dotted ones, and `documented` page names to the names with a `show_doc` entry there
    (nbdev also links private names, which have no entry: those links go to the page)."""
    def __init__(self, cfg: dict, pages: dict, modules: dict, documented=None):
        host = cfg["doc_host"].rstrip("/") + "/" + cfg.get("doc_baseurl", "").strip("/")
        self.doc = re.compile(re.escape(host.rstrip("/")) + r"/([\w.\-]+)\.html(?:#([^)\s\"']*))?")
        git = cfg["git_url"].rstrip("/") + "/blob/" + cfg.get("branch", "main") + "/"
        self.src = re.compile(re.escape(git) + re.escape(cfg["lib_path"]) + r"/([\w/]+)\.py(?:#L(\d+))?")
        self.git, self.tree = git, cfg["git_url"].rstrip("/") + "/tree/" + cfg.get("branch", "main") + "/"
        self.pages, self.modules, self.documented = pages, modules, documented

    def _doc(self, m):
        page, frag = m.group(1), m.group(2)
        if frag and self.documented is not None:
            names = {n.lower() for n in self.documented.get(page, ())}
            frag = frag if frag.lower() in names else frag.split(".")[0] if frag.split(".")[0].lower() in names else None
        return f"{page}.html" + (f"#{anchor(frag)}" if frag else "")

    def _src(self, m):
        mod = self.modules.get(m.group(1).replace("/", "."), m.group(1).replace("/", "."))
        return f"{SRC_DIR}/{mod}.html" + (f"#L-{m.group(2)}" if m.group(2) else "")

    def _rel(self, m):
        "Links written relative to nbs/ (index.ipynb's links, which also work in Jupyter)."
        text, target = m.group(1), m.group(2)
        path, _, frag = target.partition("#")
        if re.match(r"^[a-z]+:|^#|^/", target) or "." not in path and not path.startswith(".."): return m.group(0)
        name = path.split("/")[-1]
        if path in self.pages: new = f"{self.pages[path]}.html" + (f"#{frag}" if frag else "")
        elif path in ("../benchmarks/README.md", "../benchmarks/", "../benchmarks"): new = "benchmarks.html"
        elif path in ("../configs/", "../configs"): new = "configs.html"
        elif path.startswith("../"):
            rest = path[3:]
            new = (self.tree if rest.endswith("/") or "." not in name else self.git) + rest
        else: return m.group(0)
        return f"[{text}]({new})"

    def __call__(self, md: str) -> str:
        md = _ATTRS.sub(r"\1", md)
        md = self.doc.sub(self._doc, md)
        md = self.src.sub(self._src, md)
        return re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", self._rel, md)


def default_exp(nb: dict):
    "The module a notebook exports to (its `#| default_exp`), or None."
    m = re.search(r"^#\|\s*default_exp\s+(\S+)", "\n".join(_text(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"), re.M)
    return m.group(1) if m else None


def _options(cell) -> tuple:
    "Strip leading `#|` lines from a code cell; return the myst-nb tags they ask for."
    lines, tags = _text(cell["source"]).splitlines(True), []
    while lines and lines[0].startswith("#|"):
        m = _OPTION.match(lines.pop(0))
        if m and (m.group(1), m.group(2).lower()) in _OPTION_TAGS: tags.append(_OPTION_TAGS[m.group(1), m.group(2).lower()])
    return "".join(lines), tags


def _names(src: str) -> set:
    "Top-level names an exported cell defines (functions, classes, assignments)."
    try: tree = ast.parse(src)
    except SyntaxError: return set()
    out = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): out.add(n.name)
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                if isinstance(t, ast.Name): out.add(t.id)
    return out


_EXPORT = re.compile(r"^#\|\s*export[s]?\s*$", re.M)
_SHOW_DOC = re.compile(r"^show_doc\(\s*([\w.]+)", re.M)


def add_exported_source(proc: dict, orig: dict) -> dict:
    """Put each exported cell of the original notebook back into the processed one, folded, right after the
    `show_doc` entry of a name it defines (nbdev hides `#| export` cells in its docs and shows only the entries);
    a cell whose names have no entry goes where it stood, after the cell that preceded it."""
    cells = list(proc["cells"])
    ids = [c.get("id") for c in cells]
    prev_kept = None
    for oc in orig["cells"]:
        src = _text(oc["source"])
        if oc.get("id") in ids: prev_kept = oc["id"]; continue
        if oc["cell_type"] != "code" or not _EXPORT.search(src.split("\n", 1)[0] + "\n"): continue
        body = "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip("\n")
        names = _names(body)
        if not names: continue   # imports only: nothing a reader looks up
        ids = [c.get("id") for c in cells]
        at = None
        for i, c in enumerate(cells):
            m = c["cell_type"] == "code" and _SHOW_DOC.search(_text(c["source"]))
            if m and m.group(1).split(".")[0] in names: at = i + 1
        if at is None:
            front = 1 if cells and cells[0]["cell_type"] == "raw" else 0   # never above the title
            at = ids.index(prev_kept) + 1 if prev_kept in ids else front
        cells.insert(at, {"cell_type": "code", "id": f"src-{oc.get('id') or len(cells)}",
                          "metadata": {"tags": ["hide-input"]}, "execution_count": None,
                          "source": body, "outputs": []})
    return {**proc, "cells": cells}


def normalise(nb: dict, links=None, extra_md: str = "") -> dict:
    """A valid nbformat 4.5 notebook from one that nbdev processed for Quarto.

    - the raw YAML front-matter cell becomes a markdown title (`# title` and the description), plus `extra_md`;
    - cells keep only the keys nbformat allows (nbdev adds `has_sd` and others);
    - Quarto's `#| echo: false` etc. become myst-nb tags; float `execution` metadata is dropped;
    - markdown (cells and `text/markdown` outputs) loses Pandoc link attributes (`{target=...}`), and `links`
      rewrites links to nbdev's site into links inside this one."""
    nb = copy.deepcopy(nb)
    cells, title = [], None
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "raw" and not cells and (m := _FRONT.match(_text(c["source"]).strip() + "\n")):
            import yaml
            fm = yaml.safe_load(m.group(1)) or {}
            title = fm.get("title")
            md = (f"# {title}\n\n" if title else "") + (f"{{.description}}\n{fm['description']}\n" if fm.get("description") else "")
            if extra_md: md += "\n" + extra_md
            if md: cells.append({"cell_type": "markdown", "id": "title", "metadata": {}, "source": md})
            continue
        c = {k: v for k, v in c.items() if k in _CELL_KEYS.get(c["cell_type"], set())}
        c["source"] = _text(c.get("source", ""))
        meta = {k: v for k, v in (c.get("metadata") or {}).items() if k != "execution"}
        if isinstance((c.get("metadata") or {}).get("execution"), dict) and all(
                isinstance(v, str) for v in c["metadata"]["execution"].values()): meta["execution"] = c["metadata"]["execution"]
        c["metadata"] = meta
        c.setdefault("id", f"cell-{i}")
        if c["cell_type"] == "code":
            c["source"], tags = _options(c)
            if tags: meta["tags"] = sorted(set(meta.get("tags", [])) | set(tags))
            if not c["source"].strip() and not c.get("outputs"): continue
            c["execution_count"] = c.get("execution_count") or None
            for o in c.setdefault("outputs", []):
                if o.get("output_type") == "execute_result": o["execution_count"] = o.get("execution_count") or None
                md = (o.get("data") or {}).get("text/markdown")
                if md is not None: md = re.sub(r"\A\s*---[ \t]*\n", "", _text(md))  # show_doc's rule (CSS draws one)
                if md is not None and links: o["data"]["text/markdown"] = links(_text(md))
                elif md is not None: o["data"]["text/markdown"] = _ATTRS.sub(r"\1", _text(md))
        elif c["cell_type"] == "markdown":
            if re.fullmatch(r"\s*<!--.*?-->\s*", c["source"], re.S): continue   # nbdev's "autogenerated" note
            c["source"] = links(c["source"]) if links else _ATTRS.sub(r"\1", c["source"])
        cells.append(c)
    ids = set()
    for c in cells:  # ids unique and well formed (nbformat 4.5)
        cid = re.sub(r"[^A-Za-z0-9_-]", "-", str(c["id"]))[:64] or "cell"
        while cid in ids: cid += "-1"
        ids.add(cid); c["id"] = cid
    nb["cells"], nb["nbformat"], nb["nbformat_minor"] = cells, 4, 5
    nb.setdefault("metadata", {}).setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nb["metadata"].setdefault("language_info", {"name": "python"})
    return nb


# ---------------------------------------------------------------------------------------------------------
# Generated pages

def _comment(text: str) -> str:
    "A YAML file's leading comment, as one paragraph."
    lines = []
    for l in text.splitlines():
        if not l.startswith("#"): break
        lines.append(l.lstrip("#").strip())
    return " ".join(lines)


def configs_page(root=ROOT) -> str:
    "The configs in configs/, grouped by recipe, with the paper numbers each one states (its `paper:` section)."
    import yaml
    sys.path.insert(0, str(root))
    from mdr_gcn_nb.config import load_config
    num = lambda v: "–" if v is None else f"{v:g}"
    groups = {}
    for p in sorted((root / "configs").glob("*.yaml")):
        raw = yaml.safe_load(p.read_text()) or {}
        groups.setdefault(raw.get("_base_"), []).append((p, raw, load_config(p)))
    out = ["# Configs and the paper's targets", "",
           "Every file in `configs/` is one run: `mdr-gcn train --config configs/FILE`. The paper recipes state, in",
           "their `paper:` section, the top-1 accuracy (%) the paper reports for that stream and for the fusion of",
           "streams (`mdr-gcn ensemble`); where the paper gives no number the table says –. The `sample_*` configs",
           "train on the small synthetic `data_samples/` and have no paper number. Each group below is one recipe",
           "(a file in `configs/base/`); its files change only the stream (`data.modality`).", ""]
    for base, items in groups.items():
        cfg0 = items[0][2]
        kind = cfg0.data.get("kind") if isinstance(cfg0.data, dict) else getattr(cfg0.data, "kind", "")
        o = cfg0.optim
        out += [f"## `configs/{base}`" if base else "## Files without a base", ""]
        if base: out += [_comment((root / "configs" / base).read_text()), ""]
        out += [f"Data `{kind}`; {o.epochs} epochs, batch {o.batch_size}, lr {o.lr:g}.", "",
                "| config | stream | paper top-1, this stream | paper top-1, fused streams | where the paper says so |",
                "|---|---|---:|---:|---|"]
        for p, raw, cfg in items:
            d = cfg.data if isinstance(cfg.data, dict) else vars(cfg.data)
            where = (raw.get("paper") or {}).get("source") or (_comment(p.read_text()) if not base else "")
            out.append(f"| `{p.name}` | {d.get('modality') or 'joint'} | {num(cfg.paper.top1)} | {num(cfg.paper.ensemble_top1)} | {where} |")
        if base:
            out += ["", "```yaml", f"# configs/{base}", (root / "configs" / base).read_text().rstrip(), "```"]
        out.append("")
    return "\n".join(out)


def benchmarks_page(root=ROOT) -> str:
    text = (root / "benchmarks" / "README.md").read_text()
    gpu = root / "benchmarks" / "GPU.md"                     # the GPU runs, one level down on this page
    if gpu.exists(): text += "\n\n" + re.sub(r"^(#+) ", r"#\1 ", gpu.read_text(), flags=re.M)   # headings one level down
    return text + "\n\n---\n*This page is `benchmarks/README.md` and `benchmarks/GPU.md`; the scripts they name are in `benchmarks/`.*\n"


def source_page(module: str, path: Path, notebook: str, page: str) -> str:
    "A module's source with one anchor per line (`#L-27`), the target of the API entries' source links."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    html = highlight(path.read_text(), PythonLexer(), HtmlFormatter(linenos="inline", linespans="L", anchorlinenos=True,
                                                                  lineanchors="L", cssclass="highlight srcpage"))
    return "\n".join(["---", "orphan: true", "---", "", f"# `{module}`", "", f"{{.description}}\nThe source of `{path.relative_to(ROOT)}`, exported from "
                      f"[`nbs/{notebook}`](../{page}.html) (edit the notebook, not this file).", "",
                      "```{raw} html", html, "```", ""])


# ---------------------------------------------------------------------------------------------------------

def proc(root=ROOT) -> Path:
    "nbdev's processing of every notebook into root/_proc (show_doc cells run; nothing else)."
    os.environ.setdefault("MPLBACKEND", "Agg")
    cwd = os.getcwd(); os.chdir(root)
    try:
        from nbdev.serve import proc_nbs
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbdev warns about setup cells that mix imports and code
            return Path(proc_nbs(n_workers=0, force=True))
    finally: os.chdir(cwd)


def stage(root=ROOT, src=ROOT / "_proc" / "site_src", proc_dir=None) -> tuple:
    "Write the Sphinx source tree; returns (srcdir, list of page names in reading order)."
    import nbformat, yaml
    cfg, groups = settings(root), sidebar(root / "nbs" / "sidebar.yml")
    check_sidebar(groups, root / "nbs")
    proc_dir = proc_dir or proc(root)
    src = Path(src)
    if src.exists(): shutil.rmtree(src)
    (src / NB_DIR).mkdir(parents=True); (src / SRC_DIR).mkdir()
    nbs = [nb for _, g in groups for nb in g]
    procd = {nb: json.loads((proc_dir / nb).read_text()) for nb in nbs}
    pages = {}
    for nb in nbs:
        fm = _FRONT.match(_text(procd[nb]["cells"][0]["source"]).strip() + "\n")
        out = (yaml.safe_load(fm.group(1)) or {}).get("output-file", Path(nb).stem + ".html") if fm else Path(nb).stem + ".html"
        pages[nb] = out[:-5] if out.endswith(".html") else out
    lib = cfg["lib_path"]
    origs = {nb: json.loads((root / "nbs" / nb).read_text()) for nb in nbs}
    exps = {nb: default_exp(origs[nb]) for nb in nbs}
    modules = {e: f"{lib}.{e}" for e in exps.values() if e}
    documented = {pages[nb]: {m for c in procd[nb]["cells"] if c["cell_type"] == "code"
                              for m in _SHOW_DOC.findall(_text(c["source"]))} for nb in nbs}
    links = Links(cfg, pages, modules, documented)
    for nb in nbs:
        shutil.copy(root / "nbs" / nb, src / NB_DIR / nb)
        extra = f"{{download}}`Download the notebook <{NB_DIR}/{nb}>`"
        if exps[nb]: extra += f" · source: [`{lib}/{exps[nb].replace('.', '/')}.py`]({SRC_DIR}/{modules[exps[nb]]}.html)"
        out = normalise(add_exported_source(procd[nb], origs[nb]), links, extra + "\n")
        nbformat.validate(nbformat.from_dict(out))   # myst-nb reads it as a notebook: it must be a valid one
        (src / f"{pages[nb]}.ipynb").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    for nb, short in exps.items():
        if not short: continue
        mod = modules[short]
        (src / SRC_DIR / f"{mod}.md").write_text(source_page(mod, root / lib / (short.replace(".", "/") + ".py"), nb, pages[nb]))
    (src / "benchmarks.md").write_text(benchmarks_page(root))
    (src / "configs.md").write_text(configs_page(root))
    # The root page's hidden toctrees give the sidebar its groups (index.ipynb is the landing page itself).
    toc = []
    for cap, g in groups:
        entries = [pages[nb] for nb in g if pages[nb] != "index"]
        if entries: toc.append((cap, entries))
    toc.append(("Reference", ["benchmarks", "configs"]))
    index = json.loads((src / "index.ipynb").read_text())
    md = "\n".join(f"```{{toctree}}\n:hidden:\n:maxdepth: 1\n:titlesonly:\n:caption: {cap}\n\n" + "\n".join(e) + "\n```\n" for cap, e in toc)
    index["cells"].append({"cell_type": "markdown", "id": "site-toc", "metadata": {}, "source": md})
    (src / "index.ipynb").write_text(json.dumps(index, indent=1, ensure_ascii=False))
    shutil.copy(CONF, src / "conf.py")
    (src / "_static").mkdir(exist_ok=True)
    here = Path(__file__).resolve().parent
    shutil.copy(here / "docs_custom.css", src / "_static" / "custom.css")
    shutil.copy(here / "docs_search_summaries.js", src / "_static" / "search_summaries.js")
    (src / "site.json").write_text(json.dumps({"title": cfg["title"], "description": cfg["description"],
                                               "author": cfg["author"], "copyright": cfg["copyright"],
                                               "git_url": cfg["git_url"], "branch": cfg.get("branch", "main")}))
    return src, ["index"] + [e for _, es in toc for e in es] + [f"{SRC_DIR}/{m}" for m in modules.values()]


def build(out=ROOT / "_docs", root=ROOT, keep_src=None, quiet=True) -> list:
    "Build the site into `out` (replaced whole); returns the page names (landing page, notebooks, others)."
    t0 = time.time()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything Sphinx and myst-nb write (myst-nb also writes next to the output folder) stays in one
    # scratch folder beside `out`, renamed into place at the end.
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=".docs-build-", suffix=".tmp"))
    try:
        src, pages = stage(root, keep_src or work / "src")
        html = work / "html"
        from sphinx.cmd.build import build_main
        rc = build_main(["-b", "html", "-d", str(work / "doctrees"), "-j", "auto", "--keep-going", str(src), str(html)]
                        + (["-q"] if quiet else []))
        if rc != 0: raise SystemExit(f"sphinx-build failed (exit {rc}); rerun with --verbose --keep-src DIR to see why")
        missing = [p for p in pages if not (html / f"{p}.html").exists()]
        if missing: raise SystemExit(f"pages missing from the build: {missing}")
        if out.exists(): shutil.rmtree(out)
        html.rename(out)
    finally: shutil.rmtree(work, ignore_errors=True)
    n = len(list(out.rglob("*.html"))) - len(list((out / "_static").rglob("*.html")))
    print(f"built {n} HTML pages into {out.relative_to(root) if out.is_relative_to(root) else out}/ in "
          f"{time.time() - t0:.0f} s; open {out / 'index.html'}")
    return pages


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "_docs"), help="output folder (default: _docs/)")
    ap.add_argument("--keep-src", help="also keep the generated Sphinx source tree in this folder")
    ap.add_argument("--verbose", action="store_true", help="show Sphinx's progress output")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # this checkout's package, whatever is installed
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    build(Path(a.out).resolve(), ROOT, Path(a.keep_src).resolve() if a.keep_src else None, quiet=not a.verbose)


if __name__ == "__main__":
    main()
