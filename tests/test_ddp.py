"torchrun with 2 CPU processes (gloo): identical parameters on both ranks; the checkpoint resumes in one process."
import os, shutil, signal, subprocess, sys
from pathlib import Path
import torch
from mdr_gcn_nb.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOY = str(Path(__file__).parent / "_toy.py")


def test_ddp_two_processes(tmp_path):
    torchrun = shutil.which("torchrun") or None
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd + ["--standalone", "--nproc_per_node", "2", TOY, str(tmp_path), "--epochs", "2"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try: out, err = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL); out, err = p.communicate()
        raise AssertionError("torchrun timed out:\n" + err[-3000:])
    assert p.returncode == 0, err[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ck = load_checkpoint(tmp_path / "toy" / "last.pt")
    assert ck["world_size"] == 2 and ck["epoch"] == 2
    assert all(torch.equal(ck["model"][k], a[k]) for k in a)      # rank 0 wrote what the ranks hold
    # the 2-process run must have trained: weights moved from the initialisation of a fresh 1-process run
    r1 = subprocess.run([sys.executable, TOY, str(tmp_path), "--resume", "--epochs", "3"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert "resumed from" in r1.stdout and "epoch 3" in r1.stdout
    ck3 = load_checkpoint(tmp_path / "toy" / "last.pt")
    assert ck3["epoch"] == 3 and ck3["world_size"] == 1 and len(ck3["history"]) == 3
    assert not all(torch.equal(ck3["model"][k], a[k]) for k in a)


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
    r = subprocess.run([sys.executable, "-m", "mdr_gcn_nb.cli", "train", "--config", "configs/sample_fsd10_joint.yaml",
                        "--out-dir", str(tmp_path), "--no-progress", "--resume", "optim.epochs=2"] + tiny,
                       cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and "epoch   2/2" in r.stdout
    ck2 = load_checkpoint(tmp_path / "sample_fsd10_joint" / "last.pt")
    assert ck2["epoch"] == 2 and ck2["world_size"] == 1 and len(ck2["history"]) == 2
