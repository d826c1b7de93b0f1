"""benchmarks/experiments.py: the grid lists its runs, appends one row per run to the CSV, skips rows it already
has, and refuses bad input in one line. The real run here is a tiny one on the synthetic samples."""
import csv, os, subprocess, sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "experiments.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
import experiments  # noqa: E402

TINY = ["--set", "optim.epochs=1", "data.max_samples=16", "model.args.channels=[8,8,8,8,16,16,16,16,16,16]"]


def run(*args, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, env=e, timeout=120)


def test_dry_run_lists_every_setting_and_seed_and_trains_nothing(tmp_path):
    r = run("--grid", "table1", "--dry-run", "--csv", str(tmp_path / "x.csv"))
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("table1")]
    assert len(lines) == 6 * 3, r.stdout
    for m in ("stgcn", "ctrgcn", "mdrgcn"):
        for l in ("softmax", "rdl"): assert sum(f" {m}_{l} " in x for x in lines) == 3
    assert "18 runs, 18 to do" in r.stdout
    assert not (tmp_path / "x.csv").exists()


def test_grids_are_the_tables_of_the_issue():
    g = experiments.grids()
    assert list(g) == ["table1", "table5_8", "table4", "synth", "table2"]
    t58 = g["table5_8"][1]
    assert t58["mdrgcn_rdl_in"]["loss_args"] == {"terms": ["in"]}
    assert {s["loss"] for s in t58.values()} == {"rdl", "center", "cosface", "arcface", "sphereface"}
    assert sorted({s["noise_p"] for s in g["table4"][1].values()}) == [0.01, 0.10]
    assert g["synth"][0]["config"] == "configs/sample_fsd10_joint.yaml"


def test_a_real_run_appends_one_row_and_a_rerun_skips_it(tmp_path):
    out = tmp_path / "res.csv"
    args = ["--grid", "synth", "--only", "mdrgcn_rdl", "--seeds", "3", "--csv", str(out), "--runs-dir", str(tmp_path / "runs"), *TINY]
    r = run(*args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and list(rows[0]) == experiments.COLUMNS
    row = rows[0]
    assert (row["experiment"], row["setting"], row["seed"], row["dataset"]) == ("synth", "mdrgcn_rdl", "3", "sample_fsd10")
    assert (row["model"], row["loss"], row["threads"], row["epochs"]) == ("mdrgcn", "rdl", "1", "1")
    assert 0 <= float(row["top1_final"]) <= float(row["top1_best"]) <= 100
    assert float(row["wall_s"]) > 0 and row["code_version"] and row["torch"]
    assert (tmp_path / "runs" / "sample_fsd10" / "synth" / "mdrgcn_rdl" / "seed3" / "log.csv").is_file()
    r2 = run(*args)
    assert r2.returncode == 0 and "0 runs to do (1 already in" in r2.stdout, r2.stdout
    assert len(list(csv.DictReader(out.open()))) == 1


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    r = run("--grid", "table9", "--dry-run")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "unknown table9" in r.stderr, r.stderr
    r = run("--grid", "table1", "--only", "mdrgcn_nope", "--dry-run")
    assert r.returncode == 2 and "mdrgcn_nope not in grid table1" in r.stderr, r.stderr
    r = run("--grid", "table1", "--csv", str(tmp_path / "x.csv"), env={"MDR_REAL_SAMPLES": str(tmp_path / "none")})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "MSR Action3D not found" in r.stderr, r.stderr
    bad = tmp_path / "bad.csv"; bad.write_text("a,b\n1,2\n")
    r = run("--grid", "table1", "--csv", str(bad), "--dry-run")
    assert r.returncode == 2 and "header differs" in r.stderr, r.stderr
