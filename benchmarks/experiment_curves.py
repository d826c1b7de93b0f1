"""Collect the learning curves of the grid's runs into one small CSV that is committed beside the results.

    python benchmarks/experiment_curves.py          # benchmarks/results/experiments.csv -> benchmarks/results/experiment_curves.csv

For every row of the results CSV whose run folder (`run_dir`, under the gitignored `runs/`) still has its
`log.csv`, one line per epoch: the run's key (experiment, setting, seed, dataset) and lr, train loss, train
top-1, test loss, test top-1 and top-5. `nbs/16_experiments.ipynb` draws the curves from `runs/` when it is
there and from this file in a clone without it.
"""
import argparse, csv, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = ["experiment", "setting", "seed", "dataset"]
COLS = ["epoch", "lr", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(REPO / "benchmarks" / "results" / "experiments.csv"), help="the grid's results")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "experiment_curves.csv"), help="curves CSV to write")
    a = ap.parse_args(argv)
    src = Path(a.csv)
    if not src.is_file(): print(f"experiment_curves.py: error: {src}: results CSV not found", file=sys.stderr); return 2
    rows, missing = [], 0
    for r in csv.DictReader(src.open(newline="", encoding="utf-8")):
        log = (REPO / r["run_dir"]) / "log.csv"
        if not log.is_file(): missing += 1; continue
        for e in csv.DictReader(log.open(newline="")):
            rows.append({**{k: r[k] for k in KEY}, **{k: e[k] for k in COLS}})
    out = Path(a.out); tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, KEY + COLS); w.writeheader(); w.writerows(rows)
    tmp.replace(out)
    print(f"{out}: {len(rows)} epochs of {len(rows) and len({tuple(x[k] for k in KEY) for x in rows})} runs; {missing} runs without a log.csv here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
