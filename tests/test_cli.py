"The `mdr-gcn` console script end to end on data_samples/ (tiny MDR-GCN), its --help pages and its one-line errors."
import os, re, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
CLI = [shutil.which("mdr-gcn")] if shutil.which("mdr-gcn") else [sys.executable, "-m", "mdr_gcn_nb.cli"]
# a narrow 4-layer MDR-GCN (the full one is the main job) on 8-frame clips of 40 samples per split
TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8",
        "data.max_samples=40", "optim.batch_size=8", "optim.epochs=2", "optim.milestones=[1]",
        "optim.warmup_epochs=0.5", "threads=1"]


def run(*args, check=True):
    r = subprocess.run(CLI + [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    if check: assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def main_in_process(*args):
    "`mdr-gcn ARGS` in this process (as fast as the console script minus the ~1.5 s start-up): (status, stdout, stderr)."
    import contextlib, io
    from mdr_gcn_nb.cli import main
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd(); os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: rc = main([str(a) for a in args])
            except SystemExit as e: rc = e.code
    finally: os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def test_help_pages():
    assert "train" in run("--help").stdout                           # the console script itself
    for c in ("train", "test", "ensemble", "preprocess-ntu", "make-samples", "summary"):
        rc, out, err = main_in_process(c, "--help")
        assert rc == 0 and f"usage: mdr-gcn {c}" in out, (c, out, err)


BAD = [
    (["train", "--config", "configs/nope.yaml"], "configs/nope.yaml: config file not found"),
    (["train", "--config", "configs/sample_fsd10_joint.yaml", "optim.epoch=3"], "unknown key 'optim.epoch'; valid keys in optim: epochs"),
    (["train", "--config", "configs/sample_fsd10_joint.yaml", "data.windw=3"], "unknown key 'data.windw'"),
    (["train", "--config", "configs/sample_fsd10_joint.yaml", "data.path=/no/such/dir"], "/no/such/dir"),
    (["train", "--config", "configs/sample_fsd10_joint.yaml", "model.name=resnet"], "unknown model 'resnet'"),
    (["train", "--config", "configs/sample_fsd10_joint.yaml", "optim.lr=fast"], "optim.lr: expected float"),
    (["test", "--checkpoint", "runs/none/best.pt"], "runs/none/best.pt: checkpoint not found"),
    (["ensemble", "a.npz", "b.npz"], "a.npz: scores file not found"),
    (["preprocess-ntu", "/no/such/skeletons", "/tmp/x"], "/no/such/skeletons: not a folder"),
]


def _one_line_error(rc, err, msg):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert msg in err, err


@pytest.mark.parametrize("args,msg", BAD)
def test_bad_input_is_one_line(args, msg):
    rc, out, err = main_in_process(*args)             # an uncaught exception here would fail the test too
    _one_line_error(rc, err, msg)


@pytest.mark.parametrize("args,msg", [BAD[1], BAD[4]])
def test_bad_input_is_one_line_from_the_console_script(args, msg):
    "The same through a real process: nothing else (warnings, tracebacks) reaches stderr."
    r = run(*args, check=False)
    _one_line_error(r.returncode, r.stderr, msg)


@pytest.mark.skipif(not (SAMPLES / "fsd10").is_dir(), reason="data_samples/fsd10 not generated")
def test_train_test_ensemble_on_samples(tmp_path):
    out = {}
    for stream in ("joint", "bone"):
        r = run("train", "--config", f"configs/sample_fsd10_{stream}.yaml", "--out-dir", tmp_path, "--no-progress", *TINY)
        m = re.search(r"best test top-1 ([\d.]+)%", r.stdout)
        assert m, r.stdout
        out[stream] = float(m.group(1))
        d = tmp_path / f"sample_fsd10_{stream}"
        for f in ("log.csv", "best.pt", "last.pt", "scores_best.npz", "confusion_best.png", "per_class_best.csv", "config.yaml"):
            assert (d / f).is_file(), f
            assert str(d / f) in r.stdout or f in ("config.yaml",), f"{f} path not printed"
        assert len((d / "log.csv").read_text().splitlines()) == 3       # header + 2 epochs
        z = np.load(d / "scores_best.npz")
        assert z["scores"].shape == (40, 10) and np.array_equal(np.sort(z["indices"]), np.arange(40))
    # test reproduces the training's best accuracy from the saved checkpoint
    ck = tmp_path / "sample_fsd10_joint" / "best.pt"
    r = run("test", "--checkpoint", ck, "--out", tmp_path / "joint_test.npz", "--no-progress")
    assert f"test top-1 {out['joint']:.2f}%" in r.stdout, (out, r.stdout)
    a, b = np.load(tmp_path / "joint_test.npz"), np.load(tmp_path / "sample_fsd10_joint" / "scores_best.npz")
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5, atol=1e-5)
    # ensemble of the two streams
    r = run("ensemble", tmp_path / "sample_fsd10_joint/scores_best.npz", tmp_path / "sample_fsd10_bone/scores_best.npz",
            "--weights", "1", "1", "--out", tmp_path / "fused.npz")
    assert re.search(r"ensemble of 2: top-1 [\d.]+%", r.stdout), r.stdout
    assert f"top-1 {out['joint']:6.2f}%" in r.stdout and f"top-1 {out['bone']:6.2f}%" in r.stdout
    assert (tmp_path / "fused.npz").is_file()


def test_summary_prints_params_and_flops():
    r = run("summary", "--config", "configs/fsd10_final_joint.yaml", "--frames", "16",
            "model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]")
    m = re.search(r"mdrgcn: ([\d,]+) parameters; ([\d.]+) GFLOPs", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 1000 and float(m.group(2)) > 0, r.stdout
    assert "Total params" in r.stdout


def test_all_configs_load():
    from mdr_gcn_nb.train import load_config
    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert len(files) >= 20 + 4
    for f in files:
        c = load_config(f)
        assert c.name == f.stem, f
        if not f.stem.startswith("sample_"):
            assert c.paper.top1 is not None or c.paper.ensemble_top1 is not None or "not reported" in c.paper.source, f


@pytest.mark.skipif(not (SAMPLES / "ntu" / "skeletons").is_dir(), reason="no sample skeletons")
def test_preprocess_ntu(tmp_path):
    r = run("preprocess-ntu", SAMPLES / "ntu" / "skeletons", tmp_path, "--benchmark", "xsub")
    assert (tmp_path / "NTU60_CS.npz").is_file(), r.stdout


def test_make_samples_then_train_reads_them(tmp_path):
    r = run("make-samples", "--out", tmp_path / "s")
    assert "synthetic" in r.stdout and (tmp_path / "s" / "fsd10" / "train_data_25.npy").is_file(), r.stdout
    r = run("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress",
            f"data.path={tmp_path / 's' / 'fsd10'}", *TINY[:-3], "optim.epochs=1", "optim.warmup_epochs=0", "optim.milestones=[]")
    assert "done in" in r.stdout


def test_nan_loss_stops_with_status_3_and_keeps_the_checkpoint(tmp_path):
    "lr 1e30 blows the weights up after the first step: the second step's loss is not finite."
    rc, out, err = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress",
                                   *TINY[:2], "data.window=8", "data.max_samples=16", "optim.batch_size=8", "optim.epochs=2",
                                   "optim.warmup_epochs=0", "optim.milestones=[]", "optim.lr=1e30", "checkpoint_every=1")
    assert rc == 3 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"stopped: loss is -?(nan|inf) at epoch 1, step 2; .*last good checkpoint: \S*last\.pt", err), err
    from mdr_gcn_nb.train import load_checkpoint
    ck = load_checkpoint(tmp_path / "sample_fsd10_joint" / "last.pt")
    assert (ck["epoch"], ck["step"]) == (0, 1)
    assert all(v.isfinite().all() for v in ck["model"].values() if v.is_floating_point())
