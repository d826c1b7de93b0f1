#!/usr/bin/env python
"""What a trained MDR-GCN has learned: read trained checkpoints, write one small `.npz` for `nbs/17_what_it_learned`.

    python benchmarks/learned.py --out benchmarks/results/learned_msr3d.npz \\
        softmax=runs/learned/msr3d_softmax/best.pt rdl=runs/learned/msr3d_rdl/best.pt
    python benchmarks/learned.py --out benchmarks/results/learned_fsd10.npz rdl=runs/learned/sample_fsd10_joint/best.pt

Each `LABEL=CHECKPOINT` is a run trained by `mdr-gcn train` (fused MDR-GCN); its `log.csv` is read from the same
folder. Checkpoints are read with the package's safe `load_checkpoint` (tensors only, nothing unpickled runs). The
model is rebuilt from the config stored in the checkpoint; `--set data.path=...` changes that config (e.g. where
the data lies on this machine). The untrained model of the same run is rebuilt exactly as `build_trainer` does it:
`seed_everything(seed)` then `build_model_and_criterion`, so "initial" below means the weights training started from.

Per run `L` the file holds (float16 where it is a picture, not a statistic):
  L.top1 / L.epoch       top-1 (%) of the checkpoint on the test split, recomputed here, and its epoch
  L.log, L.log_columns   log.csv as a float array (epochs, columns) and its column names
  L.features (N, D)      pooled penultimate features of every test clip; L.labels, L.pred (N,)
  L.centres (M, D)       the RDL class centres (runs trained with RDL only)
  L.A, L.A_init          the learnable A_k of every layer (layers, K, V, V), trained and initial
  L.alpha                α_k per layer (layers, K); they start at 0
  L.Atilde, L.Atilde_init  Ã_k = W_S σ(f_V ⊕ f_S) (Eq 5), mean over its C_out channels and over the test clips
  L.att_l{1,5,10}        the CVSTA attention σ(f_T ⊙ f_V) (Eq 3) on the chosen clip: mean over the C_mid channels
                         of each subset, (K, T_layer, V); L.att_init_l{...} the same for the initial model
  L.att_strength(_init)  every test clip's attention strength per joint, mean over subsets and frames of |σ(f_T ⊙ f_V)|,
                         at the layers above (N, 3, V)
  L.config               the run's config as JSON
and, shared: clip_index, clip_name, class_names, sample_names, layout, and joint_speed (N, V): each test clip's mean
frame-to-frame displacement per joint (a summary of the motion; the coordinates themselves are not stored).
The script prints one JSON line per run.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mdr_gcn_nb.cvsta import GCB, get_sigma
from mdr_gcn_nb.checkpoint import load_checkpoint, load_weights
from mdr_gcn_nb.config import load_config
from mdr_gcn_nb.core import ConfigError
from mdr_gcn_nb.runtime import SeededItems, seed_everything
from mdr_gcn_nb.train import build_datasets, build_model_and_criterion, data_facts

LAYERS = (1, 5, 10)          # 1-based layers whose attention is kept (Fig 4 shows three depths)


def load_run(ckpt, overrides=()):
    "(config, trained model, criterion, initial model, test set) of a checkpoint written by `mdr-gcn train`."
    ck = load_checkpoint(ckpt)
    cfg = load_config(base=ck["config"], overrides=list(overrides) + ["progress=false"])
    test_set, = build_datasets(cfg, ("test",))
    facts = data_facts(test_set); facts["num_classes"] = ck.get("num_classes", facts["num_classes"])
    seed_everything(cfg.seed, cfg.deterministic)                   # as build_trainer: the weights training started from
    init_model, _ = build_model_and_criterion(cfg, facts)
    model, criterion = build_model_and_criterion(cfg, facts)
    load_weights(ckpt, ck, model, criterion)
    for m in (model, init_model, criterion): m.eval()
    gcbs = [getattr(layer, "gcb", None) for layer in model.layers]
    if not all(isinstance(g, GCB) for g in gcbs):
        raise ConfigError(f"{ckpt}: not a fused MDR-GCN (model {cfg.model.name!r}); this script reads the GCB of every layer")
    return cfg, ck, model, criterion, init_model, test_set


class GCBProbe:
    "Forward hooks on every layer's GCB: f_T (conv_t), f_V (first K·C_mid channels of conv_vs) and Ã (w_s) as computed."
    def __init__(self, model):
        self.gcbs = [layer.gcb for layer in model.layers]
        self.out, self.handles = {}, []

    def __enter__(self):
        for l, g in enumerate(self.gcbs):
            for name in ("conv_t", "conv_vs", "w_s"):
                if hasattr(g, name):
                    self.handles.append(getattr(g, name).register_forward_hook(
                        lambda mod, inp, out, key=(l, name): self.out.__setitem__(key, out.detach())))
        return self

    def __exit__(self, *exc):
        for h in self.handles: h.remove()

    def attention(self, l):
        "Eq 3's σ(f_T ⊙ f_V) of layer `l` (0-based), mean over each subset's C_mid channels → (N, K, T, V)."
        g = self.gcbs[l]
        K, cm = g.K, g.c_mid
        f_t = self.out[l, "conv_t"]                                  # (N, K·C_mid, T, 1)
        f_v = self.out[l, "conv_vs"][:, :K * cm]                     # (N, K·C_mid, 1, V)
        a = get_sigma(g.sigma_name)(f_t * f_v)                       # (N, K·C_mid, T, V)
        return a.unflatten(1, (K, cm)).mean(2)                       # (N, K, T, V)

    def refined(self, l):
        "Eq 5's Ã of layer `l`, mean over each subset's C_out channels → (N, K, V, V)."
        g = self.gcbs[l]
        return self.out[l, "w_s"].unflatten(1, (g.K, g.c_out)).mean(2)


@torch.no_grad()
def test_pass(model, test_set, seed, layers=LAYERS, batch_size=64):
    """Over the test split, with inputs drawn as the Trainer draws them: features, predictions, labels, Ã averaged
    over the clips, each clip's attention strength per joint mean_{k,t} |σ(f_T ⊙ f_V)| at `layers` (N, len(layers), V)
    and each clip's mean joint speed (N, V), the mean frame-to-frame displacement of its coordinates."""
    layers = sorted({min(l, len(model.layers)) for l in layers})
    coords = test_set.cfg.coords                                     # x, y (, z); FSD-10's third channel is a score
    loader = DataLoader(SeededItems(test_set, seed), batch_size, shuffle=False)
    feats, preds, labels, strength, speed, at_sum, n = [], [], [], [], [], None, 0
    with GCBProbe(model) as probe:
        for x, y, _ in loader:                                       # x (B, C, T, V, M)
            f, logits = model(x)                                     # (B, D), (B, M)
            feats.append(f); preds.append(logits.argmax(1)); labels.append(y)
            at = torch.stack([probe.refined(l).sum(0) for l in range(len(probe.gcbs))])   # (L, K, V, V)
            at_sum, n = (at if at_sum is None else at_sum + at), n + len(y)
            strength.append(torch.stack([probe.attention(l - 1).abs().mean((1, 2)) for l in layers], 1))   # (B, len, V)
            speed.append(x[:, :coords].diff(dim=2).norm(dim=1).mean((1, 3)))                           # (B, V)
    return dict(features=torch.cat(feats), pred=torch.cat(preds), labels=torch.cat(labels), Atilde=at_sum / n,
                att_strength=torch.cat(strength), joint_speed=torch.cat(speed))


@torch.no_grad()
def clip_attention(model, x, layers=LAYERS):
    "CVSTA attention of one clip `x` (C, T, V, M) at the given 1-based layers (past the last: the last) → {layer: (K, T_layer, V)}."
    layers = sorted({min(l, len(model.layers)) for l in layers})
    with GCBProbe(model) as probe:
        model(x[None])
        return {l: probe.attention(l - 1)[0] for l in layers}


def read_log(path):
    "log.csv → (float array (epochs, columns), column names); empty cells become NaN."
    with open(path, newline="") as f: rows = list(csv.DictReader(f))
    if not rows: raise ConfigError(f"{path}: no rows")
    cols = [c for c in rows[0] if all(_isnum(r[c]) for r in rows)]
    return np.array([[float(r[c]) if r[c] != "" else np.nan for c in cols] for r in rows], np.float32), cols


def _isnum(s):
    if s == "": return True
    try: float(s); return True
    except ValueError: return False


def graph_arrays(model):
    "(A_k (L, K, V, V), α (L, K)) of every layer; a shared α is repeated over the K subsets."
    A = torch.stack([l.gcb.A.detach() for l in model.layers])
    alpha = torch.stack([l.gcb.alpha.detach().expand(l.gcb.K) for l in model.layers])
    return A, alpha


def pick_clip(names, pred, labels, want=None):
    "Index of the clip named `want`, else the first test clip the model classifies correctly."
    if want is not None:
        if want not in names: raise ConfigError(f"--clip: no test clip named {want!r} (e.g. {names[0]!r})")
        return names.index(want)
    ok = np.flatnonzero(pred == labels)
    return int(ok[0]) if len(ok) else 0


def collect(runs, overrides=(), clip=None, main=None):
    "The artifact's arrays for `runs` {label: checkpoint}; the clip is chosen by the `main` run (default: the last)."
    out, loaded = {}, {}
    for label, ckpt in runs.items():
        cfg, ck, model, crit, init_model, test_set = loaded[label] = load_run(ckpt, overrides)
        t, t0 = test_pass(model, test_set, cfg.seed), test_pass(init_model, test_set, cfg.seed)
        log, cols = read_log(Path(ckpt).parent / "log.csv")
        A, alpha = graph_arrays(model)
        A0, _ = graph_arrays(init_model)
        p = f"{label}."
        out.update({p + "top1": np.float32(100 * (t["pred"] == t["labels"]).float().mean()),
                    p + "epoch": np.int32(ck.get("epoch", -1)),
                    p + "features": t["features"].half().numpy(), p + "labels": t["labels"].short().numpy(),
                    p + "pred": t["pred"].short().numpy(), p + "log": log, p + "log_columns": np.array(cols),
                    p + "A": A.half().numpy(), p + "A_init": A0.half().numpy(), p + "alpha": alpha.float().numpy(),
                    p + "Atilde": t["Atilde"].half().numpy(), p + "Atilde_init": t0["Atilde"].half().numpy(),
                    p + "att_strength": t["att_strength"].half().numpy(), p + "att_strength_init": t0["att_strength"].half().numpy(),
                    p + "config": np.array(json.dumps(ck["config"]))})
        out["joint_speed"] = t["joint_speed"].half().numpy()
        if hasattr(crit, "centre_parameters") and list(crit.centre_parameters()):
            out[p + "centres"] = crit.centre_parameters()[0].detach().half().numpy()
    main = main or list(runs)[-1]
    cfg, _, _, _, _, test_set = loaded[main]
    i = pick_clip(list(test_set.sample_names), out[f"{main}.pred"], out[f"{main}.labels"], clip)
    x = SeededItems(test_set, cfg.seed)[i][0]                        # (C, T, V, M), as the model saw it
    for label, (_, _, model, _, init_model, _) in loaded.items():
        for tag, m in (("att", model), ("att_init", init_model)):
            for l, a in clip_attention(m, x).items(): out[f"{label}.{tag}_l{l}"] = a.half().numpy()
    out.update(clip_index=np.int32(i), clip_name=np.array(test_set.sample_names[i]), main=np.array(main),
               class_names=np.array(list(test_set.class_names)), sample_names=np.array(list(test_set.sample_names)),
               layout=np.array(str(test_set.layout)), runs=np.array(list(runs)))
    return out


def save_npz(path, arrays):
    "Write `arrays` compressed, atomically (a temporary file renamed into place)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f: np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=CHECKPOINT, e.g. rdl=runs/learned/msr3d_rdl/best.pt")
    ap.add_argument("--out", required=True, help="the .npz to write")
    ap.add_argument("--main", help="the run whose correctly classified clip is shown (default: the last)")
    ap.add_argument("--clip", help="test clip name for the attention maps (default: the main run's first correct one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. data.path=...")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    runs = {}
    for r in a.runs:
        if "=" not in r: ap.error(f"run {r!r}: expected LABEL=CHECKPOINT")
        k, v = r.split("=", 1); runs[k] = v
    if a.main is not None and a.main not in runs: ap.error(f"--main {a.main!r}: not one of the labels {sorted(runs)}")
    torch.set_num_threads(a.threads)
    try: arrays = collect(runs, a.set, a.clip, a.main)
    except ConfigError as e: sys.exit(f"error: {e}")
    path = save_npz(a.out, arrays)
    for k in runs:
        print(json.dumps({"run": k, "checkpoint": runs[k], "top1": round(float(arrays[f"{k}.top1"]), 2),
                          "epoch": int(arrays[f"{k}.epoch"]), "clip": str(arrays["clip_name"]),
                          "out": str(path), "bytes": path.stat().st_size}))


if __name__ == "__main__":
    main()
