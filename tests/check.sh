#!/usr/bin/env bash
# Every check CI runs, in order (the README's test command calls this after installing).
#  1. notebooks are clean (nbdev_clean changes nothing)
#  2. the package is what the notebooks export (nbdev_export changes nothing under mdr_gcn_nb/), and ruff finds
#     no unused import, undefined name or statement error in it, the tests, benchmarks or tools (rules in ruff.toml)
#  3. every notebook runs top to bottom (nbdev_test, 2 workers; cells flagged `slow` are skipped)
#  4. the integration tests (pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONHASHSEED=0
snapshot() { git status --porcelain -- "$1"; find "$1" -type f \( -name '*.ipynb' -o -name '*.py' \) -print0 | sort -z | xargs -0 md5sum; }

echo "== 1/4 nbdev_clean"
before=$(snapshot nbs)
nbdev_clean
after=$(snapshot nbs)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev_clean changed notebooks (run nbdev_clean and commit):"
  diff <(echo "$before") <(echo "$after") | sed -n 's/^> /  /p' | head -20
  exit 1
fi

echo "== 2/4 nbdev_export"
before=$(snapshot mdr_gcn_nb)
nbdev_export
after=$(snapshot mdr_gcn_nb)
if [ "$before" != "$after" ] || [ -n "$(git status --porcelain -- mdr_gcn_nb)" ]; then
  echo "FAIL: mdr_gcn_nb/ is not what the notebooks export (edit nbs/, run nbdev_export, commit):"
  git status --porcelain -- mdr_gcn_nb | head -20
  exit 1
fi
ruff check mdr_gcn_nb tests benchmarks tools

echo "== 3/4 nbdev_test"
start=$SECONDS
OMP_NUM_THREADS=1 nbdev_test --n_workers 2 --do_print --timing
echo "nbdev_test took $((SECONDS - start)) s"

echo "== 4/4 pytest"
python -m pytest -q -p no:cacheprovider tests
