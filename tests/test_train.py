"Trainer mechanics on a tiny stand-in model (tests/_toy.py): exact resume after SIGKILL, NaN guard, atomic files."
import signal, subprocess, sys, time
from pathlib import Path
import pytest, torch

sys.path.insert(0, str(Path(__file__).parent))
import _toy
from mdr_gcn_nb.checkpoint import load_checkpoint
from mdr_gcn_nb.core import NonFiniteLossError
from mdr_gcn_nb.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
TOY = [sys.executable, str(Path(__file__).parent / "_toy.py")]


def _same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def _run(args, **kw):
    return subprocess.run(TOY + args, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def test_resume_after_sigkill_is_exact(tmp_path):
    n, every = 400, 3                              # 50 steps/epoch, a checkpoint every 3 steps
    ref = _run([str(tmp_path / "ref"), "--n", str(n), "--every", str(every)])
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    last = out / "toy" / "last.pt"
    p = subprocess.Popen(TOY + [str(out), "--n", str(n), "--every", str(every)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not last.exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.002)
    time.sleep(0.05)                               # let it run into the next batches
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    ck = load_checkpoint(last)
    assert ck["step"] > 0, "expected a mid-epoch checkpoint"
    killed_at = (ck["epoch"], ck["step"])

    res = _run([str(out), "--n", str(n), "--every", str(every), "--resume"])
    assert res.returncode == 0, res.stderr
    assert "resumed from" in res.stdout and f"step {killed_at[1]}/" in res.stdout

    a, b = load_checkpoint(out / "toy" / "last.pt"), load_checkpoint(tmp_path / "ref" / "toy" / "last.pt")
    assert a["global_step"] == b["global_step"]
    assert _same_state(a["model"], b["model"]), f"weights differ after resuming at {killed_at}"
    assert _same_state(a["criterion"], b["criterion"])
    strip = lambda h: [{k: v for k, v in r.items() if "time" not in k and "per_s" not in k} for r in h]
    assert strip(a["history"]) == strip(b["history"])


def test_resume_mismatch_would_be_detected(tmp_path):
    "Control for the test above: another seed gives other weights, so equality is not vacuous."
    _toy.toy_trainer(tmp_path / "a", epochs=1).fit()
    _toy.toy_trainer(tmp_path / "b", epochs=1, seed=2).fit()
    a, b = (load_checkpoint(tmp_path / x / "toy" / "last.pt") for x in "ab")
    assert not _same_state(a["model"], b["model"])


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    good = _toy.toy_trainer(tmp_path / "good", epochs=1); good.fit()
    tr = _toy.toy_trainer(tmp_path / "bad", epochs=3, nan_at=8)    # 6 steps/epoch: 8th step = epoch 2, step 2
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, step 2.*last good checkpoint: .*last\.pt"):
        tr.fit()
    ck = load_checkpoint(tmp_path / "bad" / "toy" / "last.pt")
    assert (ck["epoch"], ck["step"]) == (1, 0)
    ref = load_checkpoint(tmp_path / "good" / "toy" / "last.pt")
    assert _same_state(ck["model"], ref["model"])


def test_outputs_written(tmp_path):
    s = _toy.toy_trainer(tmp_path, epochs=2).fit()
    for k in ("log", "checkpoint", "last", "scores", "confusion", "per_class"):
        assert Path(s[k]).is_file(), k
    lines = Path(s["log"]).read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,lr,train_loss")
    assert not list(Path(s["log"]).parent.glob(".*tmp*"))


SAMPLES = ROOT / "data_samples" / "fsd10"
TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8", "data.max_samples=48",
        "data.random_move=true", "optim.batch_size=8", "optim.epochs=2", "optim.milestones=[1]",
        "optim.warmup_epochs=0.5", "threads=1", "checkpoint_every=1", "progress=false"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="data_samples/fsd10 not generated")
def test_real_model_resume_after_sigkill_is_exact(tmp_path):
    "MDR-GCN + RDL on the samples (with random-move augmentation): SIGKILL mid-epoch, --resume, same weights."
    cli = [sys.executable, "-m", "mdr_gcn_nb.cli", "train", "--config", "configs/sample_fsd10_joint.yaml"]
    ref = subprocess.run(cli + [f"out_dir={tmp_path / 'ref'}"] + TINY, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert ref.returncode == 0, ref.stderr[-3000:]
    out = tmp_path / "killed"
    last = out / "sample_fsd10_joint" / "last.pt"
    p = subprocess.Popen(cli + [f"out_dir={out}"] + TINY, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 300:               # kill right after a mid-epoch checkpoint
        if last.exists():
            try: ck = load_checkpoint(last)
            except Exception: continue
            if ck["step"] >= 2: break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    ck = load_checkpoint(last)
    assert ck["step"] > 0
    res = subprocess.run(cli + [f"out_dir={out}", "--resume"] + TINY, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resumed from" in res.stdout
    a, b = load_checkpoint(last), load_checkpoint(tmp_path / "ref" / "sample_fsd10_joint" / "last.pt")
    assert a["global_step"] == b["global_step"] == 12
    assert _same_state(a["model"], b["model"]) and _same_state(a["criterion"], b["criterion"]), \
        f"weights differ after resuming at epoch {ck['epoch'] + 1}, step {ck['step']}"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_training_step_mdrgcn_rdl(tmp_path, precision):
    """A training step of a narrow MDR-GCN + RDL under `precision`: finite loss; in bf16 the network runs in bfloat16,
    the loss, the centres, the weights and their gradients stay float32; eval scores are float32 too."""
    from mdr_gcn_nb.model import build_model
    from mdr_gcn_nb.losses import build_criterion
    cfg = _toy.toy_config(tmp_path, epochs=1, precision=precision)
    torch.manual_seed(0)
    model = build_model("mdrgcn", channels=(16, 16, 32, 32), strides=(1, 2, 1, 2), num_classes=4, layout="coco17")
    crit = build_criterion("rdl", num_classes=4, feat_dim=32)
    seen = []
    model.layers[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    data = _toy.ToyData(16)
    data.x = torch.randn(16, 3, 8, 17, 1).numpy()
    tr = Trainer(cfg, model, crit, data, data, log=lambda *a, **k: None)
    out = tr.train_step(torch.randn(8, 3, 8, 17, 1), torch.arange(8) % 4)
    assert torch.isfinite(torch.tensor(out["loss"])), out
    assert seen == [torch.bfloat16 if precision == "bf16" else torch.float32]
    assert any(p.grad is not None for p in model.parameters())
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    assert all(c.dtype == torch.float32 and c.grad.dtype == torch.float32 for c in crit.centre_parameters())
    scores = tr.predict()["scores"]
    assert scores.dtype == "float32" and (abs(scores) < float("inf")).all()


def test_precision_fp16_on_cpu_is_a_one_line_error(tmp_path):
    from mdr_gcn_nb.core import ConfigError
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device.*on CPU use bf16"):
        _toy.toy_trainer(tmp_path, epochs=1, precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match=r"precision must be one of \['auto', 'fp32', 'bf16', 'fp16'\], got 'bf32'"):
        _toy.toy_config(tmp_path, precision="bf32")


def test_deprecated_trainer_names_work_and_name_their_home(tmp_path):
    "Every name of the one-class Trainer that moved to a part (record, evaluator, stepper, test loader) still works and warns."
    from mdr_gcn_nb.runtime import replicas_identical, unwrap
    from mdr_gcn_nb.train import _MOVED
    tr = _toy.toy_trainer(tmp_path, epochs=1); tr.fit()
    p = tr.predict()
    new = {"best": tr.record.best, "history": tr.record.history, "sample_names": tr.evaluator.sample_names,
           "scheduler": tr.stepper.scheduler, "centre_optimizer": tr.stepper.centre_optimizer, "scaler": tr.stepper.scaler,
           "test_set": tr.test_loader.dataset, "test_sampler": tr.test_loader.sampler}
    calls = {"summary": lambda f: f(1.0) == tr.record.summary(1.0), "write_log": lambda f: f() == tr.out / "log.csv",
             "save_scores": lambda f: f(p, tmp_path / "s.npz") == tmp_path / "s.npz",
             "save_predictions": lambda f: f(p, "old")["scores"] == tr.out / "scores_old.npz" and (tr.out / "confusion_old.png").is_file(),
             "check_replicas": lambda f: f() == replicas_identical([unwrap(tr.model), tr.criterion], tr.dist)}
    assert set(new) | set(calls) == set(_MOVED)
    for name in _MOVED:
        with pytest.warns(DeprecationWarning, match=rf"Trainer\.{name} is deprecated: use \S*(tr\.|runtime\.)"):
            v = getattr(tr, name)
        assert v is new[name] if name in new else calls[name](v), name
    with pytest.warns(DeprecationWarning, match=r"use tr\.record\.best"):
        tr.best = {"top1": 99.0, "epoch": 1}
    assert tr.record.best["top1"] == 99.0
    with pytest.raises(AttributeError, match="no attribute 'bestt'"): tr.bestt


def test_non_finite_loss_error_lives_in_core():
    import mdr_gcn_nb.checkpoint as ck, mdr_gcn_nb.cli as cli, mdr_gcn_nb.core as core, mdr_gcn_nb.train as train
    assert ck.NonFiniteLossError is core.NonFiniteLossError is train.NonFiniteLossError is cli.NonFiniteLossError
    assert issubclass(core.NonFiniteLossError, (core.MDRError, RuntimeError))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="data_samples/fsd10 not generated")
def test_the_process_is_shut_down_when_setup_fails_after_it(tmp_path, monkeypatch):
    "train and evaluate_checkpoint leave the process group (shutdown_distributed) when a step after setup_process fails."
    import mdr_gcn_nb.train as T
    from mdr_gcn_nb.config import config_to_dict, load_config
    from mdr_gcn_nb.core import ConfigError
    calls = []
    monkeypatch.setattr(T, "setup_process", lambda cfg, f=T.setup_process: calls.append("setup") or f(cfg))
    monkeypatch.setattr(T, "shutdown_distributed", lambda: calls.append("shutdown"))
    cfg = load_config(ROOT / "configs/sample_fsd10_joint.yaml", TINY + [f"data.path={SAMPLES}", f"out_dir={tmp_path}"])
    monkeypatch.setattr(T, "build_model_and_criterion", lambda *a: (_ for _ in ()).throw(ConfigError("model: broken")))
    with pytest.raises(ConfigError, match="model: broken"): T.train(cfg)
    assert calls == ["setup", "shutdown"]
    monkeypatch.undo(); calls.clear()
    monkeypatch.setattr(T, "setup_process", lambda cfg, f=T.setup_process: calls.append("setup") or f(cfg))
    monkeypatch.setattr(T, "shutdown_distributed", lambda: calls.append("shutdown"))
    monkeypatch.setattr(T, "load_checkpoint", lambda path: {"config": config_to_dict(cfg), "model": {}, "criterion": {}})
    with pytest.raises(ConfigError, match="weights do not fit"): T.evaluate_checkpoint("fake.pt")
    assert calls == ["setup", "shutdown"]


def test_a_head_that_contradicts_the_loss_is_refused_in_one_line():
    "model.args.head is the loss's to choose: a different one is an error naming both, not silently replaced."
    from mdr_gcn_nb.config import ConfigError, load_config
    from mdr_gcn_nb.train import build_model_from_config
    facts = dict(num_classes=10, layout="openpose25", in_channels=3, num_persons=1)
    small = ["model.args.channels=[8,8]", "model.args.strides=[1,2]"]
    cfg = load_config(ROOT / "configs" / "sample_fsd10_joint.yaml", small + ["loss.name=arcface", "model.args.head=linear"])
    with pytest.raises(ConfigError, match="model.args.head='linear' but loss 'arcface' needs the 'cosine' head"):
        build_model_from_config(cfg, facts)
    ok = load_config(ROOT / "configs" / "sample_fsd10_joint.yaml", small + ["loss.name=arcface", "model.args.head=cosine"])
    assert build_model_from_config(ok, facts).cfg.head == "cosine"
