"""The paper's ablations in miniature: run a named grid, append one row per (experiment, setting, seed) to a CSV.

    python benchmarks/experiments.py --grid table1                    # Table I: ST-GCN / CTR-GCN / MDR-GCN x softmax / RDL
    python benchmarks/experiments.py --grid table1 --only mdrgcn_rdl --seeds 0,1,2
    python benchmarks/experiments.py --grid all --jobs 2              # every grid, two runs at a time
    python benchmarks/experiments.py --grid table4 --dry-run          # list the runs (and which are already in the CSV)

Grids (MSR Action3D cross-subject unless noted; `--grid all` runs them in this order):

- `table1`: `stgcn`, `ctrgcn`, `mdrgcn` (= CTR-GCN + CVSTA), each with `softmax` and with softmax + `rdl` (Table I).
- `table5_8`: MDR-GCN with subsets of the RDL terms (Table V: L_Ain, L_l, L_Ain + L_Aout, L_Ain + L_l; all three
  is table1's `mdrgcn_rdl`, none is table1's `mdrgcn_softmax`) and with the competing losses centre loss,
  CosFace (LMCL), ArcFace, SphereFace (Table VIII), each with the package's default options.
- `table4`: 1 % and 10 % of the coordinates set to 0 (`data.noise_p`, both splits, the same pattern for every
  model and seed because it follows `data.seed`), CTR-GCN and MDR-GCN x softmax / RDL (Table IV; the 0 % column
  is table1's rows).
- `synth`: CTR-GCN and MDR-GCN x softmax / RDL on the SYNTHETIC FSD-10-format samples in `data_samples/fsd10`
  (`configs/sample_fsd10_joint.yaml` as it is), so a clone without the real data can rerun something.
- `table2`: MDR-GCN + RDL with C_mid = C_in/4, C_in/16 and fixed (= C_out) (Table II; C_in/8 is table1's `mdrgcn_rdl`).

Sizing (chosen once, before any grid run, from one timing run of `configs/msr3d_xsub_joint.yaml` on the shared
2-core machine: about 15 s an epoch with one thread, about 6 s to start): every MSR run is that config as it is
(half the paper's widths, channels 32-64-128; 20 frames spread uniformly over each clip; batch 16; lr 0.1 with a
1-epoch warm-up; weight decay 5e-4; one thread) except `optim.epochs=6` and `optim.milestones=[5]` (the config
has 10 epochs and the step at 8), so that one run takes about 1.5-2 minutes and the grid fits an afternoon. No
setting was tuned on the test split: the numbers in the CSV are the first and only grid run with this sizing.

The test split is the only held-out split of MSR Action3D cross-subject, so `top1_best` (the best epoch's
test top-1) is selected on the test set and flatters every setting alike; `top1_final` (the last epoch) is the
number to compare.

Each run trains through the package's own path, `load_config` + `train` (what `mdr-gcn train` calls), with
`threads=1`, into `runs/experiments/<dataset>/<experiment>/<setting>/seed<k>/` (gitignored; `log.csv` there has
the learning curve). A run is skipped when the CSV already has a row for the same (experiment, setting, seed,
dataset), unless `--force`; so an interrupted grid continues where it stopped. `--jobs 2` runs two runs at a
time in fresh processes; the parent alone appends to the CSV. Order: table1 seed by seed, every other grid setting
by setting in the order listed in `grids()`, so that a grid cut short has whole settings (three seeds) rather than
every setting at one seed. `code_version` is `git describe --always` of the
checkout, with `-dirty` when the package, the configs or this script differ from that commit.
Real data: `$MDR_REAL_SAMPLES/msr_action3d`, else `../shared/real_samples/msr_action3d` beside the checkout.
"""
from __future__ import annotations

import argparse, csv, datetime, json, os, platform, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))          # train the package of this checkout (the one code_version names)
CSV_DEFAULT = REPO / "benchmarks" / "results" / "experiments.csv"
RUNS_DEFAULT = REPO / "runs" / "experiments"

# the sizing above, applied to every MSR Action3D run
MSR = dict(config="configs/msr3d_xsub_joint.yaml", dataset="msr3d_xsub", protocol="MSR Action3D cross-subject, 20 actions",
           data="msr3d", overrides=["optim.epochs=6", "optim.milestones=[5]"])
SYNTH = dict(config="configs/sample_fsd10_joint.yaml", dataset="sample_fsd10", protocol="synthetic FSD-10 samples (data_samples/fsd10)",
             data="synth", overrides=[])

COLUMNS = ["experiment", "setting", "model", "loss", "loss_args", "model_args", "noise_p", "seed", "dataset", "protocol",
           "top1_final", "top1_best", "best_epoch", "top5_final", "chance", "epochs", "wall_s", "threads",
           "config", "overrides", "extra", "run_dir", "code_version", "torch", "python", "date"]
KEY = ("experiment", "setting", "seed", "dataset")


def _setting(model: str, loss: str, loss_args: dict | None = None, model_args: dict | None = None, noise_p: float = 0.0) -> dict:
    "One setting: the model and loss names, their options and the noise level, as config overrides."
    over = [f"model.name={model}", f"loss.name={loss}", f"data.noise_p={noise_p}"]
    for k, v in (loss_args or {}).items(): over.append(f"loss.args.{k}={json.dumps(v)}")
    for k, v in (model_args or {}).items(): over.append(f"model.args.{k}={json.dumps(v)}")
    return dict(model=model, loss=loss, loss_args=loss_args or {}, model_args=model_args or {}, noise_p=noise_p, overrides=over)


def grids() -> dict:
    "{grid name: (dataset dict, {setting name: setting})}, in the order `--grid all` runs them."
    t1 = {f"{m}_{l}": _setting(m, l) for m in ("stgcn", "ctrgcn", "mdrgcn") for l in ("softmax", "rdl")}
    # settings in the order they run (each with all its seeds before the next): the ones the paper's text leans on first
    t58 = {"mdrgcn_rdl_in_l": _setting("mdrgcn", "rdl", {"terms": ["in", "l"]}),
           "mdrgcn_rdl_in_out": _setting("mdrgcn", "rdl", {"terms": ["in", "out"]}),
           "mdrgcn_center": _setting("mdrgcn", "center"), "mdrgcn_arcface": _setting("mdrgcn", "arcface"),
           "mdrgcn_cosface": _setting("mdrgcn", "cosface"), "mdrgcn_rdl_l": _setting("mdrgcn", "rdl", {"terms": ["l"]}),
           "mdrgcn_sphereface": _setting("mdrgcn", "sphereface"), "mdrgcn_rdl_in": _setting("mdrgcn", "rdl", {"terms": ["in"]})}
    t4 = {f"{m}_{l}_noise{int(round(p * 100)):02d}": _setting(m, l, noise_p=p)
          for p in (0.10, 0.01) for m in ("mdrgcn", "ctrgcn") for l in ("rdl", "softmax")}
    synth = {f"{m}_{l}": _setting(m, l) for m in ("ctrgcn", "mdrgcn") for l in ("softmax", "rdl")}
    t2 = {f"mdrgcn_rdl_cmid_{r}": _setting("mdrgcn", "rdl", model_args={"c_mid_ratio": r}) for r in (4, 16, "fixed")}
    return {"table1": (MSR, t1), "table5_8": (MSR, t58), "table4": (MSR, t4), "synth": (SYNTH, synth), "table2": (MSR, t2)}


def code_version() -> str:
    "`git describe --always` of the checkout, '-dirty' if the package, configs or this script have uncommitted changes."
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()
    v = git("describe", "--always", "--abbrev=10") or "unknown"
    dirty = git("status", "--porcelain", "--", "mdr_gcn_nb", "configs", "benchmarks/experiments.py")
    return v + ("-dirty" if dirty else "")


def data_path(kind: str) -> Path:
    "The dataset folder of a grid; a one-line SystemExit when it is missing."
    if kind == "synth":
        p = REPO / "data_samples" / "fsd10"
        if not p.is_dir(): raise SystemExit(f"experiments.py: error: {p}: synthetic samples not found (mdr-gcn make-samples --out data_samples)")
        return p
    env = os.environ.get("MDR_REAL_SAMPLES")
    p = Path(env) / "msr_action3d" if env else (REPO.parent / "shared" / "real_samples" / "msr_action3d")
    if not p.is_dir():
        raise SystemExit(f"experiments.py: error: {p}: MSR Action3D not found (set MDR_REAL_SAMPLES to the folder holding msr_action3d/)")
    return p


def read_done(path: Path) -> set:
    "Keys (experiment, setting, seed, dataset) of the rows already in the CSV; one-line error on a foreign header."
    if not path.is_file() or path.stat().st_size == 0: return set()
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        if r.fieldnames != COLUMNS:
            raise SystemExit(f"experiments.py: error: {path}: header differs from this script's columns ({','.join(COLUMNS[:4])},...)")
        return {(row["experiment"], row["setting"], str(row["seed"]), row["dataset"]) for row in r}


def append_row(path: Path, row: dict):
    "Append one row (header first if the file is new), flushed to disk before returning."
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, COLUMNS)
        if new: w.writeheader()
        w.writerow(row); f.flush(); os.fsync(f.fileno())


def plan(grid_names, only, seeds, runs_dir: Path, extra) -> list:
    "The runs to do: table1 seed by seed, the other grids setting by setting (so a grid cut short has whole settings)."
    all_grids, runs = grids(), []
    for g in grid_names:
        ds, settings = all_grids[g]
        names = list(settings)
        if only:
            bad = sorted(set(only) - set(names))
            if bad and len(grid_names) == 1:
                raise SystemExit(f"experiments.py: error: --only: {', '.join(bad)} not in grid {g} (settings: {', '.join(names)})")
            names = [n for n in names if n in only]
        order = [(n, seed) for seed in seeds for n in names] if g == "table1" else [(n, seed) for n in names for seed in seeds]
        for n, seed in order:
            s = settings[n]
            runs.append(dict(experiment=g, setting=n, seed=seed, dataset=ds["dataset"], protocol=ds["protocol"],
                             config=ds["config"], data=ds["data"], model=s["model"], loss=s["loss"],
                             loss_args=s["loss_args"], model_args=s["model_args"], noise_p=s["noise_p"],
                             overrides=ds["overrides"] + s["overrides"], extra=list(extra),
                             run_dir=str(runs_dir / ds["dataset"] / g / n / f"seed{seed}")))
    return runs


def run_one(r: dict, data: str, version: str) -> dict:
    "Train one run through `load_config` + `train` (as `mdr-gcn train` does); return its CSV row."
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from mdr_gcn_nb.train import load_config, train
    run = Path(r["run_dir"])
    over = r["overrides"] + [f"data.path={data}", "threads=1", "progress=false", f"seed={r['seed']}",
                             f"out_dir={run.parent}", f"name={run.name}"] + r["extra"]
    cfg = load_config(REPO / r["config"], over)
    t0 = time.time()
    s = train(cfg, overwrite=True, log=lambda m: print(f"[{r['experiment']}/{r['setting']}/seed{r['seed']}] {m}", flush=True))
    wall = time.time() - t0
    with open(s["log"], newline="") as f: last = list(csv.DictReader(f))[-1]
    return dict(experiment=r["experiment"], setting=r["setting"], model=r["model"], loss=r["loss"],
                loss_args=json.dumps(r["loss_args"], sort_keys=True), model_args=json.dumps(r["model_args"], sort_keys=True),
                noise_p=r["noise_p"], seed=r["seed"], dataset=r["dataset"], protocol=r["protocol"],
                top1_final=round(float(last["test_top1"]), 2), top1_best=round(s["best_top1"], 2), best_epoch=s["best_epoch"],
                top5_final=round(float(last["test_top5"]), 2), chance=round(s["chance"], 2), epochs=cfg.optim.epochs,
                wall_s=round(wall, 1), threads=cfg.threads, config=r["config"], overrides=" ".join(r["overrides"]),
                extra=" ".join(r["extra"]), run_dir=str(run.relative_to(REPO)) if run.is_relative_to(REPO) else str(run), code_version=version,
                torch=torch.__version__, python=platform.python_version(),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", required=True, help=f"one of {', '.join(grids())}, a comma list, or 'all'")
    ap.add_argument("--only", help="comma list of setting names inside the grid")
    ap.add_argument("--seeds", default="0,1,2", help="comma list of seeds (default 0,1,2)")
    ap.add_argument("--csv", default=str(CSV_DEFAULT), help="results CSV to append to (default benchmarks/results/experiments.csv)")
    ap.add_argument("--runs-dir", default=str(RUNS_DEFAULT), help="where run folders go (default runs/experiments)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at a time, each a fresh single-threaded process (default 1)")
    ap.add_argument("--force", action="store_true", help="rerun and append even when the CSV has the row")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and whether each is already in the CSV; train nothing")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra config overrides for every run (recorded in the 'extra' column; for quick checks, not the grid)")
    return ap


def main(argv=None) -> int:
    a = make_parser().parse_args(argv)
    names = list(grids()) if a.grid == "all" else a.grid.split(",")
    bad = [g for g in names if g not in grids()]
    if bad:
        print(f"experiments.py: error: --grid: unknown {', '.join(bad)}; choose from {', '.join(grids())} or all", file=sys.stderr)
        return 2
    try: seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        print(f"experiments.py: error: --seeds: expected a comma list of integers, got {a.seeds!r}", file=sys.stderr); return 2
    if a.jobs < 1: print(f"experiments.py: error: --jobs must be >= 1, got {a.jobs}", file=sys.stderr); return 2
    bad_set = [s for s in a.set if "=" not in s]
    if bad_set: print(f"experiments.py: error: --set: expected key=value, got {bad_set[0]!r}", file=sys.stderr); return 2
    only = set(a.only.split(",")) if a.only else None
    csv_path = Path(a.csv)
    try:
        runs = plan(names, only, seeds, Path(a.runs_dir).resolve(), a.set)
        done = read_done(csv_path)
    except SystemExit as e:
        print(e, file=sys.stderr); return 2
    todo = [r for r in runs if a.force or (r["experiment"], r["setting"], str(r["seed"]), r["dataset"]) not in done]
    if a.dry_run:
        for r in runs:
            state = "todo" if r in todo else "in CSV, skip"
            print(f"{r['experiment']:<9} {r['setting']:<28} seed {r['seed']}  {r['dataset']:<13} {state}")
        print(f"{len(runs)} runs, {len(todo)} to do, {len(runs) - len(todo)} already in {csv_path}")
        return 0
    try: paths = {k: str(data_path(k)) for k in {r["data"] for r in todo}}
    except SystemExit as e: print(e, file=sys.stderr); return 2
    version = code_version()
    print(f"{len(todo)} runs to do ({len(runs) - len(todo)} already in {csv_path}), {a.jobs} at a time, code {version}", flush=True)
    t0, failed = time.time(), 0

    def record(r, row):
        append_row(csv_path, row)
        print(f"== {r['experiment']}/{r['setting']}/seed{r['seed']}: top-1 final {row['top1_final']:.2f}% best {row['top1_best']:.2f}% "
              f"in {row['wall_s']:.0f}s (grid {time.time() - t0:.0f}s)", flush=True)

    if a.jobs == 1:
        for r in todo:
            try: record(r, run_one(r, paths[r["data"]], version))
            except Exception as e: failed += 1; print(f"== {r['experiment']}/{r['setting']}/seed{r['seed']}: FAILED {type(e).__name__}: {e}", flush=True)
    else:
        import multiprocessing as mp
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as ex:
            futs = {ex.submit(run_one, r, paths[r["data"]], version): r for r in todo}
            for f in as_completed(futs):
                r = futs[f]
                try: record(r, f.result())
                except Exception as e: failed += 1; print(f"== {r['experiment']}/{r['setting']}/seed{r['seed']}: FAILED {type(e).__name__}: {e}", flush=True)
    print(f"done: {len(todo) - failed} runs appended to {csv_path}, {failed} failed, grid wall time {time.time() - t0:.0f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
