"torchrun with 2 CPU processes (gloo): identical parameters on both ranks; the checkpoint resumes in one process."
import os, re, shutil, signal, subprocess, sys
from pathlib import Path
import torch
from mdr_gcn_nb.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import _toy

ROOT = Path(__file__).resolve().parents[1]
TOY = str(Path(__file__).parent / "_toy.py")


def _torchrun(args, timeout=400):
    torchrun = shutil.which("torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + ["--standalone", "--nproc_per_node", "2"]
    p = subprocess.Popen(cmd + args, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try: out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); out, err = p.communicate()
        raise AssertionError("torchrun timed out:\n" + err[-3000:])
    return p.returncode, out, err


def _equal(a: dict, b: dict) -> bool: return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _resumes_in_one_process(args, last, epochs):
    "Run `python ARGS` (a --resume of the 2-process run); check it trained on to `epochs` and return the checkpoint."
    r = subprocess.run([sys.executable] + args, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and re.search(rf"epoch +{epochs}/{epochs} ", r.stdout), r.stdout
    ck = load_checkpoint(last)
    assert ck["epoch"] == epochs and ck["world_size"] == 1 and len(ck["history"]) == epochs
    return ck


def test_ddp_two_processes(tmp_path):
    "Each rank dumps its model and criterion (RDL-like centres, all-reduced by hand) after 2 epochs: identical."
    rc, out, err = _torchrun([TOY, str(tmp_path), "--epochs", "2"], timeout=240)
    assert rc == 0, err[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == {"model", "criterion"}
    assert _equal(a["model"], b["model"]) and _equal(a["criterion"], b["criterion"])
    torch.manual_seed(1)                                             # the toy's seed: the weights before training
    init = {"model": _toy.ToyModel().state_dict(), "criterion": _toy.ToyCriterion().state_dict()}
    assert not torch.equal(a["model"]["fc.weight"], init["model"]["fc.weight"]), "the weights were not trained"
    assert not torch.equal(a["criterion"]["centres"], init["criterion"]["centres"]), "the centres were not trained"
    ck = load_checkpoint(tmp_path / "toy" / "last.pt")
    assert ck["world_size"] == 2 and ck["epoch"] == 2
    assert _equal(ck["model"], a["model"]) and _equal(ck["criterion"], a["criterion"])   # rank 0 wrote what the ranks hold
    # the 2-process checkpoint resumes in one process and trains on
    ck3 = _resumes_in_one_process([TOY, str(tmp_path), "--resume", "--epochs", "3"], tmp_path / "toy" / "last.pt", 3)
    assert not _equal(ck3["model"], a["model"])


def test_ddp_real_model_via_cli(tmp_path):
    "The tiny MDR-GCN + RDL through `mdr-gcn train` under torchrun; then one process resumes the checkpoint."
    tiny = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8", "data.max_samples=40",
            "optim.batch_size=8", "optim.warmup_epochs=0.5", "optim.milestones=[1]", "threads=1"]
    rc, out, err = _torchrun(["-m", "mdr_gcn_nb.cli", "train", "--config", "configs/sample_fsd10_joint.yaml",
                              "--out-dir", str(tmp_path), "--no-progress", "optim.epochs=1"] + tiny)
    assert rc == 0, err[-3000:]
    assert "batch 4x2" in out and "DDP: parameters identical on all 2 ranks" in out, out
    assert out.count("done in") == 1                                  # only rank 0 reports
    ck = load_checkpoint(tmp_path / "sample_fsd10_joint" / "last.pt")
    assert ck["world_size"] == 2 and ck["epoch"] == 1
    _resumes_in_one_process(["-m", "mdr_gcn_nb.cli", "train", "--config", "configs/sample_fsd10_joint.yaml", "--out-dir",
                             str(tmp_path), "--no-progress", "--resume", "optim.epochs=2"] + tiny,
                            tmp_path / "sample_fsd10_joint" / "last.pt", 2)


def test_rdl_scores_the_global_batch_under_ddp(tmp_path):
    """Two gloo processes, each with half of one batch (or 3 and 5 samples): RDL's loss and every gradient (model,
    centres) equal one process's on the whole batch, so lambda = 1/N uses the global N; with global_batch=False
    (each process scores its slice) they do not."""
    import _rdl_ddp
    rc, out, err = _torchrun([str(Path(__file__).parent / "_rdl_ddp.py"), str(tmp_path)], timeout=240)
    assert rc == 0, err[-3000:]
    ddp = torch.load(tmp_path / "ddp.pt")
    for name, options, with_ce, sizes in _rdl_ddp.CASES:
        one = _rdl_ddp.step(dict(options, global_batch=True), with_ce, sizes)
        diff = {k: (ddp[name][k] - one[k]).abs().max().item() / one[k].abs().max().item() for k in one}
        if name.endswith("per_process"):
            assert diff["grad.centres"] > 1e-3 and diff["rdl"] > 1e-3, diff          # lambda = 1/4, not 1/8
        else:
            assert max(diff.values()) < 1e-12, (name, diff)


def test_ddp_margin_loss_trains_past_its_first_step(tmp_path):
    """ArcFace under torchrun (2 gloo processes): the class weights are the model's cosine head and every parameter of
    the DDP-wrapped model takes part in the loss, so DDP's second step does not stop on unused parameters (with the
    weights in the loss and an unused linear `fc` in the model it did: 'Expected to have finished reduction in the
    prior iteration ... Parameter indices which did not receive grad')."""
    tiny = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8", "data.max_samples=40",
            "optim.batch_size=8", "optim.warmup_epochs=0.5", "optim.milestones=[1]", "threads=1", "loss.name=arcface"]
    rc, out, err = _torchrun(["-m", "mdr_gcn_nb.cli", "train", "--config", "configs/sample_fsd10_joint.yaml",
                              "--out-dir", str(tmp_path), "--no-progress", "optim.epochs=1"] + tiny)
    assert rc == 0, err[-3000:]
    assert "5 steps/epoch" in out and "DDP: parameters identical on all 2 ranks" in out, out
    ck = load_checkpoint(tmp_path / "sample_fsd10_joint" / "last.pt")
    assert ck["world_size"] == 2 and ck["global_step"] == 5
    assert "fc.weight" in ck["model"] and "fc.bias" not in ck["model"]      # the cosine head: W (M, D), no bias
    assert ck["criterion"] == {}                                           # the loss owns no weights
