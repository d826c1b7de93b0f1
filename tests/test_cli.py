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
    for c in ("train", "test", "ensemble", "preprocess-ntu", "make-samples", "make-dataset", "summary", "convert-authors",
              "predict", "export"):
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
    m = re.search(r"mdrgcn(?:_authors)?: ([\d,]+) parameters; ([\d.]+) GFLOPs", r.stdout)
    assert m and int(m.group(1).replace(",", "")) > 1000 and float(m.group(2)) > 0, r.stdout
    assert "Total params" in r.stdout


def test_all_configs_load():
    from mdr_gcn_nb.config import load_config
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
    from mdr_gcn_nb.checkpoint import load_checkpoint
    ck = load_checkpoint(tmp_path / "sample_fsd10_joint" / "last.pt")
    assert (ck["epoch"], ck["step"]) == (0, 1)
    assert all(v.isfinite().all() for v in ck["model"].values() if v.is_floating_point())


# ---------------------------------------------------------------- what a finished run and its files are protected from
ONE_EPOCH = [*TINY[:-3], "data.max_samples=16", "optim.epochs=1", "optim.warmup_epochs=0", "optim.milestones=[]"]


def test_a_finished_run_is_not_overwritten_without_force(tmp_path):
    args = ["train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress", *ONE_EPOCH]
    rc, out, err = main_in_process(*args)
    assert rc == 0, err
    run_dir = tmp_path / "sample_fsd10_joint"
    before = {f.name: f.read_bytes() for f in run_dir.iterdir()}
    rc, out, err = main_in_process(*args, "optim.lr=0.05")
    _one_line_error(rc, err, "already holds a run (last.pt); continue it with --resume")
    assert {f.name: f.read_bytes() for f in run_dir.iterdir()} == before          # nothing touched, not even config.yaml
    rc, out, err = main_in_process(*args, "optim.lr=0.05", "--force")
    assert rc == 0, err
    assert "lr: 0.05" in (run_dir / "config.yaml").read_text()


def test_resume_refuses_changed_optimiser_settings(tmp_path):
    args = ["train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress", *ONE_EPOCH]
    assert main_in_process(*args)[0] == 0
    rc, out, err = main_in_process(*args, "optim.lr=0.5", "optim.epochs=2", "--resume")
    _one_line_error(rc, err, "optim.lr is 0.5 here and 0.1 in the checkpoint")
    rc, out, err = main_in_process(*args, "optim.epochs=2", "--resume")     # more epochs: allowed
    assert rc == 0, err


def test_a_checkpoint_of_another_model_is_a_one_line_error(tmp_path):
    args = ["train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress", *ONE_EPOCH]
    assert main_in_process(*args)[0] == 0
    ck = tmp_path / "sample_fsd10_joint" / "last.pt"
    rc, out, err = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress",
                                   *ONE_EPOCH, "model.name=stgcn", "--resume-from", ck, "--name", "other")
    _one_line_error(rc, err, f"{ck}: its model weights do not fit the model this config builds")


@pytest.mark.parametrize("override, msg", [
    ("optim.gamma=-1", "optim.gamma must be a finite number > 0"),
    ("optim.lr=.nan", "optim.lr must be a finite number > 0"),
    ("optim.momentum=-1", "optim.momentum must be in [0, 1)"),
    ("optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
    ("num_workers=-1", "num_workers must be >= 0"),
    ("threads=-1", "threads must be >= 0"),
    ("optim.test_batch_size=-1", "optim.test_batch_size must be >= 0"),
    ("name=", "name must be a plain folder name"),
    ("name=../x", "name must be a plain folder name"),
])
def test_bad_values_are_named(override, msg):
    rc, out, err = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", override)
    _one_line_error(rc, err, msg)


def test_option_values_may_contain_equals(tmp_path):
    rc, out, err = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path,
                                   "--name", "lr=0.1", "--no-progress", *ONE_EPOCH)
    assert rc == 0, err
    assert (tmp_path / "lr=0.1" / "best.pt").is_file()


def test_make_samples_refuses_a_folder_that_is_not_empty(tmp_path):
    mine = tmp_path / "fsd10" / "train_data_25.npy"
    mine.parent.mkdir(parents=True); mine.write_bytes(b"mine")
    rc, out, err = main_in_process("make-samples", "--out", tmp_path)
    _one_line_error(rc, err, "not empty; make-samples would replace")
    assert mine.read_bytes() == b"mine"
    f = tmp_path / "afile"; f.write_text("x")
    _one_line_error(*main_in_process("make-samples", "--out", f)[::2], "is a file, expected a folder")


def test_more_bad_input_is_one_line(tmp_path):
    f = tmp_path / "afile"; f.write_text("x")
    _one_line_error(*main_in_process("preprocess-ntu", SAMPLES / "ntu" / "skeletons", f)[::2], str(f))
    _one_line_error(*main_in_process("summary", "--config", "configs/sample_fsd10_joint.yaml", "--frames", "0")[::2],
                    "--frames must be >= 1")
    (tmp_path / "b.yaml").write_text("_base_: 5\n")
    _one_line_error(*main_in_process("train", "--config", tmp_path / "b.yaml")[::2], "b.yaml: _base_ must be a file name")
    (tmp_path / "u.yaml").write_bytes(b"name: \xff\xfe\n")
    _one_line_error(*main_in_process("train", "--config", tmp_path / "u.yaml")[::2], "u.yaml: not UTF-8 text")
    (tmp_path / "y.yaml").write_text("optim: {epochs: [1, 2}\n")
    _one_line_error(*main_in_process("train", "--config", tmp_path / "y.yaml")[::2], "y.yaml: not valid YAML at line 1")


def test_ensemble_checks_what_it_fuses(tmp_path):
    from mdr_gcn_nb.metrics import save_scores
    y = np.array([0, 1, 2, 1])
    s = np.eye(3)[y].astype(np.float32)
    a = save_scores(tmp_path / "a.npz", s, y, np.arange(4), class_names=["x", "y", "z"])
    b = save_scores(tmp_path / "b.npz", s, y, np.arange(4), class_names=["z", "y", "x"])
    _one_line_error(*main_in_process("ensemble", a, b)[::2], "b.npz: its class names are not those of")
    c = save_scores(tmp_path / "c.npz", np.where(s > 0, np.nan, s), y, np.arange(4))
    _one_line_error(*main_in_process("ensemble", a, c)[::2], "c.npz: scores contain NaN")
    d = save_scores(tmp_path / "d.npz", s, y + 100, np.arange(4))
    _one_line_error(*main_in_process("ensemble", a, d)[::2], "d.npz: labels outside 0..2")
    np.savez(tmp_path / "e.npz", scores=np.zeros(4, np.float32), labels=y)
    _one_line_error(*main_in_process("ensemble", a, tmp_path / "e.npz")[::2], "e.npz: expected scores (N, K)")


def test_outputs_are_readable_by_others(tmp_path):
    from mdr_gcn_nb.data.readers import atomic_write
    p = atomic_write(tmp_path / "x.txt", lambda f: f.write(b"1"))
    umask = os.umask(0); os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


def test_no_checkpoint_with_non_finite_weights_or_statistics(tmp_path):
    "lr 1e8: BatchNorm running statistics overflow before the loss does; no checkpoint may keep them."
    rc, out, err = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", tmp_path, "--no-progress",
                                   *TINY[:-3], "optim.epochs=2", "optim.warmup_epochs=0", "optim.milestones=[]",
                                   "optim.lr=1e8", "checkpoint_every=1")
    assert rc == 3 and len(err.strip().splitlines()) == 1, err
    from mdr_gcn_nb.checkpoint import load_checkpoint
    for name in ("last.pt", "best.pt"):
        p = tmp_path / "sample_fsd10_joint" / name
        if p.exists():
            ck = load_checkpoint(p)
            for part in ("model", "criterion"):
                assert all(v.isfinite().all() for v in ck[part].values() if v.is_floating_point()), (name, part)


# ---------------------------------------------------------------- convert-authors
def _authors_checkpoint(path, seed=0):
    "A state_dict in the authors' format (their keys, their PA orientation), written as their training script does."
    import torch
    from mdr_gcn_nb.model import PRESETS, build_model, to_authors
    torch.manual_seed(seed)
    m = build_model("mdrgcn_authors", **PRESETS["fsd10"])
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.05 * torch.randn_like(p))
    torch.save(to_authors(m), path)
    return m


def test_convert_authors_then_test_gives_the_models_logits(tmp_path):
    import torch
    from mdr_gcn_nb.data.datasets import DataConfig, build_dataset
    m = _authors_checkpoint(tmp_path / "runs-300-1000.pt")
    data = ["data.path=data_samples/fsd10", "data.max_samples=12", "num_workers=0"]
    rc, out, err = main_in_process("convert-authors", tmp_path / "runs-300-1000.pt", "--dataset", "fsd10",
                                   "--out", tmp_path / "converted.pt", *data)
    assert rc == 0, err
    assert "1,962,584 parameters" in out and "fsd10_final_joint.yaml" in out
    rc, out, err = main_in_process("test", "-k", tmp_path / "converted.pt", "--out", tmp_path / "scores.npz", "--no-progress")
    assert rc == 0, err
    assert re.search(r"\(epoch authors\): test top-1 [\d.]+%", out), out
    s = np.load(tmp_path / "scores.npz")
    ds = build_dataset(DataConfig(kind="fsd10", path="data_samples/fsd10", temporal="pad", max_samples=12), "test")
    with torch.no_grad(): logits = m.eval()(torch.stack([ds[int(i)][0] for i in s["indices"]]))[1].numpy()
    assert np.abs(s["scores"] - logits).max() <= 1e-5 * np.abs(logits).max()


def test_convert_authors_bad_input_is_one_line(tmp_path):
    import torch
    _authors_checkpoint(tmp_path / "a.pt")
    sd = torch.load(tmp_path / "a.pt", weights_only=True)
    sd.pop("l4.gcn1.alpha"); sd["l4.gcn1.beta"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad_keys.pt")
    torch.save({"model": sd}, tmp_path / "nested.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    cases = [(("bad_keys.pt", "fsd10"), "1 missing key(s): l4.gcn1.alpha; 1 unknown key(s): l4.gcn1.beta"),
             (("a.pt", "gym"), "does not fit the authors' gym model"),
             (("nested.pt", "fsd10"), "not a state_dict of tensors: model"),
             (("junk.pt", "fsd10"), "junk.pt: not a readable weights-only checkpoint"),
             (("missing.pt", "fsd10"), "missing.pt: checkpoint not found")]
    for (name, ds), msg in cases:
        rc, out, err = main_in_process("convert-authors", tmp_path / name, "--dataset", ds, "--out", tmp_path / "o.pt")
        assert rc == 2 and len(err.strip().splitlines()) == 1 and msg in err, (name, err)
    rc, out, err = main_in_process("convert-authors", tmp_path / "a.pt", "--dataset", "fsd10", "--out", tmp_path / "o.pt",
                                   "--config", "configs/sample_fsd10_joint.yaml")
    assert rc == 2 and "model.name is 'mdrgcn'; the authors' weights need 'mdrgcn_authors'" in err, err
    assert not (tmp_path / "o.pt").exists()


def test_split_overrides_is_parse_args_with_a_warning():
    from mdr_gcn_nb.cli import parse_args, split_overrides
    argv = ["train", "--config", "c.yaml", "optim.lr=0.1", "--name", "a=b", "data.window=8"]
    with pytest.warns(DeprecationWarning, match=r"use cli\.parse_args\(argv\)\.overrides"):
        rest, over = split_overrides(argv)
    assert over == parse_args(argv).overrides == ["optim.lr=0.1", "data.window=8"]
    assert rest == ["train", "--config", "c.yaml", "--name", "a=b"]
