"""benchmarks/learned.py, the writer of the artifacts `nbs/17_what_it_learned` reads: keys and shapes from a tiny
trained checkpoint, the hooked attention and Ã against the per-subset (didactic) block, "initial" = the weights
training starts from, one-line errors, and the committed artifacts (small, no skeleton coordinates)."""
import importlib.util, json
from pathlib import Path

import numpy as np
import pytest
import torch

from mdr_gcn_nb.cvsta import GCB, cvsta_subset, pool_frames, pool_joints
from mdr_gcn_nb.graph import fixed_graph
from mdr_gcn_nb.checkpoint import load_checkpoint
from mdr_gcn_nb.config import load_config
from mdr_gcn_nb.train import build_trainer
from test_cli import main_in_process

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8", "data.max_samples=24",
        "optim.batch_size=8", "optim.epochs=2", "optim.milestones=[1]", "optim.warmup_epochs=0.5", "threads=1"]

spec = importlib.util.spec_from_file_location("learned", ROOT / "benchmarks" / "learned.py")
learned = importlib.util.module_from_spec(spec); spec.loader.exec_module(learned)


def _train(out, name, *extra):
    rc, so, se = main_in_process("train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir", out, "--name", name,
                                 "--no-progress", *TINY, *extra)
    assert rc == 0, se[-2000:]
    return Path(out) / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("learned")
    return {"rdl": _train(out, "rdl"), "softmax": _train(out, "softmax", "loss.name=softmax")}


@pytest.fixture(scope="module")
def art(runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("art") / "l.npz"
    learned.main(["--out", str(path), f"softmax={runs['softmax'] / 'best.pt'}", f"rdl={runs['rdl'] / 'best.pt'}"])
    return dict(np.load(path))


def test_keys_and_shapes(art, runs):
    N, D, L, K, V = 24, 32, 4, 3, 25                               # tiny model: 4 layers, 32 features; openpose25
    assert str(art["layout"]) == "openpose25" and list(art["runs"]) == ["softmax", "rdl"] and str(art["main"]) == "rdl"
    assert str(art["clip_name"]) == art["sample_names"][int(art["clip_index"])]
    for r in ("softmax", "rdl"):
        assert art[f"{r}.features"].shape == (N, D) and art[f"{r}.features"].dtype == np.float16
        assert art[f"{r}.labels"].shape == art[f"{r}.pred"].shape == (N,)
        for k in ("A", "A_init", "Atilde", "Atilde_init"): assert art[f"{r}.{k}"].shape == (L, K, V, V), k
        assert art[f"{r}.alpha"].shape == (L, K)
        assert art[f"{r}.att_l1"].shape == (K, 8, V) and art[f"{r}.att_l4"].shape == (K, 4, V)   # layer 2 halves the 8 frames
        assert np.isfinite(art[f"{r}.att_l1"].astype(np.float32)).all()
        assert art[f"{r}.att_strength"].shape == art[f"{r}.att_strength_init"].shape == (N, 2, V)   # layers 1 and 4
        assert (art[f"{r}.att_strength"] >= 0).all()
        log = art[f"{r}.log"]; cols = list(art[f"{r}.log_columns"])
        assert log.shape == (2, len(cols)) and {"epoch", "train_loss", "test_top1"} <= set(cols)
        # the test pass reproduces the Trainer's evaluation of the checkpoint: same top-1 as log.csv's best
        best = log[:, cols.index("test_top1")].max()
        assert abs(float(art[f"{r}.top1"]) - best) < 1e-3, (r, art[f"{r}.top1"], best)
        assert json.loads(str(art[f"{r}.config"]))["loss"]["name"] == r
    assert art["joint_speed"].shape == (N, V) and (art["joint_speed"] >= 0).all() and art["joint_speed"].max() > 0
    assert "rdl.centres" in art and art["rdl.centres"].shape == (10, D) and "softmax.centres" not in art
    A0 = fixed_graph("openpose25", "partition", "spatial")
    np.testing.assert_allclose(art["rdl.A_init"][2].astype(np.float32), A0, atol=1e-3)   # every layer starts from the graph
    assert np.abs(art["rdl.A"].astype(np.float32) - art["rdl.A_init"].astype(np.float32)).max() > 1e-4   # and training moved it
    assert (art["rdl.alpha"] != 0).any()


def test_initial_is_where_training_started(runs):
    "The rebuilt initial model equals the model of a Trainer built from the run's config, before any step."
    *_, init_model, _ = learned.load_run(runs["rdl"] / "best.pt")
    cfg = load_config(base=load_checkpoint(runs["rdl"] / "best.pt")["config"])
    start = build_trainer(cfg, log=lambda *a, **k: None).model
    p, p0 = dict(start.named_parameters()), dict(init_model.named_parameters())
    assert p.keys() == p0.keys()
    for k in p: torch.testing.assert_close(p[k], p0[k], msg=k)


def test_probe_matches_the_per_subset_block():
    "The hooked σ(f_T ⊙ f_V) and Ã of the fused GCB equal the didactic block's, subset by subset."
    torch.manual_seed(0)
    A = fixed_graph("coco17", "partition", "spatial")
    fused = GCB(16, 32, A).eval()
    with torch.no_grad():
        for p in fused.parameters(): p.normal_(0, 0.3)
    model = torch.nn.Module(); model.layers = torch.nn.ModuleList([torch.nn.Module()]); model.layers[0].gcb = fused
    x = torch.randn(2, 16, 6, 17)
    with torch.no_grad(), learned.GCBProbe(model) as probe:
        fused(x)
        att, at = probe.attention(0), probe.refined(0)                          # (2, K, T, V), (2, K, V, V)
        for k in range(fused.K):
            convs = fused.subset_convs(k)                                       # subset k's slices of the same weights
            f_t, f_v = pool_joints(convs["conv_t"](x)), pool_frames(convs["conv_v"](x))   # Eq 3's inputs
            torch.testing.assert_close(att[:, k], torch.tanh(f_t * f_v).mean(1), atol=1e-5, rtol=1e-4)
            _, A_t = cvsta_subset(x, convs, fused.sigma, fused.combine)
            torch.testing.assert_close(at[:, k], A_t.mean(1), atol=1e-5, rtol=1e-4)
    assert not fused.conv_t._forward_hooks                                      # hooks are removed on exit


def test_errors(runs, tmp_path):
    with pytest.raises(SystemExit, match="checkpoint not found"):
        learned.main(["--out", str(tmp_path / "x.npz"), f"a={tmp_path / 'missing.pt'}"])
    with pytest.raises(SystemExit):
        learned.main(["--out", str(tmp_path / "x.npz"), str(runs["rdl"] / "best.pt")])    # no LABEL=
    with pytest.raises(SystemExit, match="no test clip named"):
        learned.main(["--out", str(tmp_path / "x.npz"), "--clip", "nope", f"a={runs['rdl'] / 'best.pt'}"])
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("name", ["learned_msr3d.npz", "learned_fsd10.npz"])
def test_committed_artifacts(name):
    "The files the notebook reads: present, small, every run's keys, and no skeleton coordinates (licence)."
    path = RESULTS / name
    assert path.is_file(), f"{path} missing: regenerate it with benchmarks/learned.py (see nbs/17_what_it_learned)"
    assert sum(p.stat().st_size for p in RESULTS.glob("learned_*.npz")) < 2e6
    d = np.load(path)
    for r in d["runs"]:
        for k in ("top1", "features", "labels", "pred", "log", "A", "A_init", "alpha", "Atilde", "att_l1", "att_l10", "att_strength"):
            assert f"{r}.{k}" in d.files, (name, r, k)
    maps = ("A", "A_init", "Atilde", "Atilde_init")                       # (layers, K, V, V) graphs
    for k in d.files:   # a clip would be a float array of 3 or more axes: only graphs and attention maps are allowed
        last = k.split(".")[-1]
        if d[k].dtype.kind == "f" and d[k].ndim >= 3: assert last in maps or last.startswith("att"), k
