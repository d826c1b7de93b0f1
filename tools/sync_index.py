#!/usr/bin/env python
"""README.md is the one hand-kept text of the landing page: nbs/index.ipynb carries its blocks verbatim.

    python tools/sync_index.py            # rewrite index.ipynb's copies of the README (after editing README.md)
    python tools/sync_index.py --check    # exit 1 and say where, if the two disagree (tests/test_site.py)

A block is the README's introduction (under its title) or one `## ` section. In index.ipynb, the first cell is
nbdev's title cell (`# <README title>` and `> <settings.ini description>`), every other markdown cell is one
README block in README order, and code cells (the figure) sit between them. Links are re-rooted for nbs/:
`nbs/x.ipynb` -> `x.ipynb`, any other relative `path` -> `../path`, so they work in Jupyter and on the site.
"""
import argparse, configparser, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README, INDEX = ROOT / "README.md", ROOT / "nbs" / "index.ipynb"


def title_and_blocks(text: str) -> tuple:
    "The README's `# title` and its blocks (introduction, then each `## ` section), stripped."
    lines = text.strip("\n").splitlines()
    if not lines or not lines[0].startswith("# "): raise SystemExit("README.md must start with '# title'")
    blocks, cur, fence = [], [], False
    for l in lines[1:]:
        if l.startswith("```"): fence = not fence
        if l.startswith("## ") and not fence and cur: blocks.append("\n".join(cur).strip("\n")); cur = []
        cur.append(l)
    blocks.append("\n".join(cur).strip("\n"))
    return lines[0][2:].strip(), [b for b in blocks if b]


def for_index(md: str) -> str:
    "Re-root the README's relative links for a notebook in nbs/."
    def fix(m):
        text, target = m.group(1), m.group(2)
        if re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target): return m.group(0)
        target = target[4:] if target.startswith("nbs/") else "../" + target
        return f"[{text}]({target})"
    out, fence = [], False
    for l in md.split("\n"):
        if l.startswith("```"): fence = not fence
        out.append(l if fence else re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", fix, l))
    return "\n".join(out)


def _src(c): return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]


def title_cell(title: str, root=ROOT) -> str:
    cp = configparser.ConfigParser(); cp.read(root / "settings.ini")
    return f"# {title}\n> {cp['DEFAULT']['description']}"


def check(readme_text: str, nb: dict, root=ROOT) -> list:
    "Where index.ipynb and the README disagree (empty when they agree)."
    title, blocks = title_and_blocks(readme_text)
    want = [for_index(b) for b in blocks]
    md = [_src(c) for c in nb["cells"] if c["cell_type"] == "markdown"]
    problems = []
    if not md or md[0] != title_cell(title, root):
        problems.append(f"first cell should be the title cell {title_cell(title, root)!r}")
    have = md[1:]
    for i in range(max(len(want), len(have))):
        w, h = (want[i] if i < len(want) else None), (have[i] if i < len(have) else None)
        if w != h:
            what = (w or h).split("\n", 1)[0][:70]
            problems.append(f"markdown cell {i + 2} ({what!r}): " +
                            ("missing from index.ipynb" if h is None else "not in README.md" if w is None else "differs from README.md"))
    return problems


def sync(readme_text: str, nb: dict, root=ROOT) -> dict:
    "index.ipynb with its title and README cells rewritten; each code cell stays after the same block number."
    title, blocks = title_and_blocks(readme_text)
    after, old_md, k = {}, [], -1  # code cells, keyed by how many markdown cells precede them (title = 0)
    for c in nb["cells"]:
        if c["cell_type"] == "markdown": k += 1; old_md.append(c)
        else: after.setdefault(k, []).append(c)
    def md(i, text):  # as Jupyter writes a cell (source as lines), keeping the id of the cell it replaces
        c = {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(True)}
        if i < len(old_md) and "id" in old_md[i]: c = {"cell_type": "markdown", "id": old_md[i]["id"], **c}
        return c
    cells = after.pop(-1, []) + [md(0, title_cell(title, root))] + after.pop(0, [])
    for i, b in enumerate(blocks, 1): cells += [md(i, for_index(b))] + after.pop(i, [])
    for rest in after.values(): cells += rest     # blocks that went away: their code cells move to the end
    return {**nb, "cells": cells}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only report disagreements (exit 1 if any)")
    a = ap.parse_args(argv)
    nb = json.loads(INDEX.read_text())
    problems = check(README.read_text(), nb)
    if a.check:
        for p in problems: print(f"nbs/index.ipynb vs README.md: {p}")
        sys.exit(1 if problems else 0)
    if problems:
        INDEX.write_text(json.dumps(sync(README.read_text(), nb), indent=1, ensure_ascii=False) + "\n")
        print(f"rewrote nbs/index.ipynb from README.md ({len(problems)} differences); now run nbdev_clean")
    else: print("nbs/index.ipynb already agrees with README.md")


if __name__ == "__main__":
    main()
