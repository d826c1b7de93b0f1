"""A tiny stand-in model, criterion and dataset for testing the trainer's mechanics quickly.

Run as a script: `python tests/_toy.py OUT_DIR [--resume] [--epochs N] [--every K] [--n N]` trains the toy
with a Trainer (used by the resume and DDP tests). The real model is tested in test_cli.py.
"""
import argparse
from pathlib import Path
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import Dataset
from mdr_gcn_nb.config import load_config
from mdr_gcn_nb.runtime import shutdown_distributed
from mdr_gcn_nb.train import Trainer


class ToyData(Dataset):
    "Clips (3, 8, 5, 1): a class-dependent pattern plus augmentation noise drawn from np.random."
    def __init__(self, n=48, num_classes=4, seed=0):
        g = np.random.default_rng(seed)
        self.y = np.arange(n) % num_classes
        self.protos = g.normal(size=(num_classes, 3, 8, 5, 1)).astype(np.float32)
        self.x = (self.protos[self.y] + 0.8 * g.normal(size=(n, 3, 8, 5, 1))).astype(np.float32)
        self.num_classes, self.layout = num_classes, None
        self.class_names = [f"c{k}" for k in range(num_classes)]
        self.sample_names = [f"s{i:03d}" for i in range(n)]
    def __len__(self): return len(self.y)
    def __getitem__(self, i):
        x = self.x[i] + 0.1 * np.random.randn(*self.x[i].shape).astype(np.float32)   # random augmentation
        return torch.from_numpy(x), int(self.y[i]), i


class ToyModel(nn.Module):
    def __init__(self, num_classes=4, feat_dim=16):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, feat_dim, 1), nn.BatchNorm2d(feat_dim)
        self.fc, self.feat_dim, self.num_classes = nn.Linear(feat_dim, num_classes), feat_dim, num_classes
    def forward(self, x):                                    # (N, C, T, V, M)
        N, C, T, V, M = x.shape
        h = x.permute(0, 4, 1, 2, 3).reshape(N * M, C, T, V)
        h = F.relu(self.bn(self.conv(h))).mean((2, 3)).view(N, M, -1).mean(1)
        return h, self.fc(h)


class ToyCriterion(nn.Module):
    "CE + a centre term, centres in centre_parameters() (like RDL)."
    def __init__(self, num_classes=4, feat_dim=16, nan_at=None):
        super().__init__()
        self.centres = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.nan_at, self.calls = nan_at, 0
    def centre_parameters(self): return [self.centres]
    def forward(self, feats, logits, labels):
        ce = F.cross_entropy(logits, labels)
        c = 1 - F.cosine_similarity(feats, self.centres[labels]).mean()
        loss = ce + 0.1 * c
        if self.training:
            self.calls += 1
            if self.nan_at is not None and self.calls == self.nan_at: loss = loss * float("nan")
        return loss, logits, {"ce": ce.detach(), "centre": c.detach()}


def toy_config(out, epochs=3, **kw):
    d = {"name": "toy", "out_dir": str(out), "progress": False, "seed": 1,
         "optim": {"epochs": epochs, "batch_size": 8, "lr": 0.05, "warmup_epochs": 1, "milestones": [2]}}
    d.update(kw)
    return load_config(base=d)


def toy_trainer(out, epochs=3, resume=None, nan_at=None, n=48, **kw):
    cfg = toy_config(out, epochs, **kw)
    torch.manual_seed(cfg.seed)
    return Trainer(cfg, ToyModel(), ToyCriterion(nan_at=nan_at), ToyData(n), ToyData(20, seed=1), resume=resume)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out"); ap.add_argument("--resume", action="store_true")
    ap.add_argument("--epochs", type=int, default=3); ap.add_argument("--every", type=int, default=0)
    ap.add_argument("--n", type=int, default=48)
    a = ap.parse_args()
    out = Path(a.out)
    tr = toy_trainer(out, a.epochs, resume=out / "toy" / "last.pt" if a.resume else None,
                     n=a.n, checkpoint_every=a.every)
    tr.fit()
    if tr.dist.world > 1:   # each rank dumps its parameters for the DDP test
        torch.save({"model": tr.model.module.state_dict(), "criterion": tr.criterion.state_dict()}, out / f"rank{tr.dist.rank}.pt")
        shutdown_distributed()
