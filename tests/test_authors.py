"""The `authors` configuration against the authors' own model, imported from a checkout of their repository
(github.com/dingyn-Reno/MDR-GCN) at $MDR_AUTHORS_DIR: same fixed graph, same weights from the same seed, and the
same logits and gradients after `from_authors`. Nothing of their code is copied here."""
import importlib, os, sys, types
from pathlib import Path

import pytest
import torch
import yaml

from mdr_gcn_nb.graph import fixed_graph
from mdr_gcn_nb.model import PRESETS, build_model, from_authors, authors_keys

AUTHORS_DIR = os.environ.get("MDR_AUTHORS_DIR")
pytestmark = pytest.mark.skipif(not AUTHORS_DIR, reason="MDR_AUTHORS_DIR is not set: no checkout of the authors' "
                                "repository (github.com/dingyn-Reno/MDR-GCN) to compare with")

# their config file for each dataset (the model_args are read from it)
CONFIGS = {"gym": "config/gym/default2.yaml", "fsd10": "config/skat/train_25.yaml",
           "ntu60": "config/nturgbd-cross-subject/default.yaml"}


@pytest.fixture(scope="module")
def authors_model():
    """Their `Model` class. Their packages are called `model` and `graph`; they are imported from the checkout
    and removed from `sys.modules` afterwards. Modules they import at import time but the model does not use
    (einops, pdb) are stubbed if missing."""
    root = Path(AUTHORS_DIR)
    if not (root / "model" / "MDRGCN.py").is_file():
        pytest.fail(f"MDR_AUTHORS_DIR={AUTHORS_DIR}: no model/MDRGCN.py there")
    ours = lambda k: k in ("model", "graph") or k.startswith(("model.", "graph."))
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)}
    stubs = [n for n in ("einops", "pdb") if importlib.util.find_spec(n) is None]
    for n in stubs: sys.modules[n] = types.ModuleType(n)
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("model.MDRGCN").Model
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if ours(k)] + stubs: sys.modules.pop(k, None)
        sys.modules.update(saved)


def model_args(dataset):
    return yaml.safe_load((Path(AUTHORS_DIR) / CONFIGS[dataset]).read_text())["model_args"]


def their_graph(dataset):
    args = model_args(dataset)
    mod, cls = args["graph"].rsplit(".", 1)
    return getattr(importlib.import_module(mod), cls)(**args.get("graph_args", {})).A


@pytest.mark.parametrize("dataset", ["gym", "fsd10", "ntu60"])
def test_fixed_graph_is_theirs_transposed(authors_model, dataset):
    "Their einsum reads PA[k] as [receiving, sending]; the package stores [sending, receiving]."
    A = their_graph(dataset).astype("float32").transpose(0, 2, 1)
    assert (fixed_graph(PRESETS[dataset]["layout"], "authors") == A).all()


@pytest.mark.parametrize("dataset", ["gym", "fsd10", "ntu60"])
def test_same_seed_same_weights(authors_model, dataset):
    "torch.manual_seed(s) then their Model(...) or our `mdrgcn_authors`: the same tensors, the RNG left in the same state."
    from mdr_gcn_nb.model import to_authors
    for seed in (0, 7):
        torch.manual_seed(seed); theirs = authors_model(**model_args(dataset)); after_theirs = torch.rand(4)
        torch.manual_seed(seed); ours = build_model("mdrgcn_authors", **PRESETS[dataset]); after_ours = torch.rand(4)
        sd, mine = theirs.state_dict(), to_authors(ours)
        assert sd.keys() == mine.keys()
        diff = [k for k in sd if not torch.equal(sd[k], mine[k])]
        assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"
        assert torch.equal(after_theirs, after_ours)


def _grad_pairs(ours, theirs):
    "(our gradient, theirs arranged like it) for every parameter of `ours`: their tensors concatenated as ours stacks them."
    tp, keys = dict(theirs.named_parameters()), authors_keys(ours)
    def theirs_for(k):
        g = torch.cat([tp[a].grad for a in keys[k]], 0)
        return g.transpose(-1, -2) if k.endswith("gcb.A") else g
    return {k: (p.grad, theirs_for(k)) for k, p in ours.named_parameters()}


def setup(Model, dataset, dtype, seed=0, N=3, T=16, eps=0.1):
    "Their model with every weight and running statistic moved away from its init, and an input; the same values in either dtype."
    torch.manual_seed(seed)
    theirs = Model(**model_args(dataset))
    with torch.no_grad():                      # α, biases and the GCB's BN γ (1e-6) would hide differences at their init
        for p in theirs.parameters(): p.add_(eps * torch.randn_like(p))
        for n, b in theirs.named_buffers():
            if n.endswith(("running_mean", "running_var")): b.add_(0.5 * torch.rand_like(b))
    p = PRESETS[dataset]
    x = torch.randn(N, 3, T, fixed_graph(p["layout"], "authors").shape[-1], p["num_persons"])
    return theirs.to(dtype), x.to(dtype)


def compare(Model, dataset, dtype, fused, seed=0):
    "Worst relative differences between their model and `from_authors` of its weights; and the gradient pairs."
    theirs, x = setup(Model, dataset, dtype, seed)
    ours = from_authors(theirs.state_dict(), dataset, fused=fused)
    assert next(ours.parameters()).dtype == dtype
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
    out = {}
    for mode in ("eval", "train"):
        theirs.train(mode == "train"); ours.train(mode == "train")
        (ft, lt), (fo, lo) = theirs(x.clone()), ours(x.clone())
        out[f"logits_{mode}"], out[f"features_{mode}"] = rel(lo, lt), rel(fo, ft)
    w = torch.randn(lt.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    (lt * w).sum().backward(); (lo * w).sum().backward()
    pairs = _grad_pairs(ours, theirs)
    G = max(g.abs().max().item() for _, g in pairs.values())
    out["grads"] = max((a - g).abs().max().item() for a, g in pairs.values()) / G      # relative to the largest gradient
    # tensor by tensor, for the tensors whose gradient is not 0 in exact arithmetic: the biases of convolutions
    # that feed a training-mode BatchNorm have gradient 0 (BN removes a constant shift), so both sides hold
    # rounding noise there, which `grads` covers
    real = [(a, g) for a, g in pairs.values() if g.abs().max().item() > 1e-9 * G]
    out["grads_per_tensor"] = max((a - g).abs().max().item() / g.abs().max().item() for a, g in real)
    out["zero_grad_tensors"] = len(pairs) - len(real)
    return out, pairs


def report(tag, r): print(f"\n{tag}:", {k: (f"{v:.1e}" if isinstance(v, float) else v) for k, v in r.items()})


@pytest.mark.parametrize("dataset", ["gym", "fsd10", "ntu60"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"])
def test_per_subset_path_computes_what_theirs_computes(authors_model, dataset, dtype, tol):
    """Logits and features (eval and train mode) and every parameter gradient, relative. Gradients tensor by tensor
    in float64 only: in float32 the rounding noise of the zero-gradient biases is above any useful threshold."""
    r, _ = compare(authors_model, dataset, dtype, fused=False)
    report(f"{dataset} {dtype} per-subset", r)
    r.pop("zero_grad_tensors")
    if dtype == torch.float32: r.pop("grads_per_tensor")
    assert max(r.values()) <= tol, r


@pytest.mark.parametrize("dataset", ["gym", "fsd10", "ntu60"])
def test_fused_path_computes_what_theirs_computes(authors_model, dataset):
    """float64: everything within 1e-10. float32: the fused path pools before its 1x1 convolutions (02_cvsta), so
    it rounds differently from their code. Outputs must agree within 1e-5. Gradients cannot be compared directly:
    through ReLU and max-pool they jump wherever rounding flips a decision, and with these random weights their
    own float32 gradients are up to ~6e-3 (of the largest gradient) away from float64. So the fused float32
    gradients must be about as close to float64 as theirs (within twice their distance, plus 1e-5)."""
    r64, pairs64 = compare(authors_model, dataset, torch.float64, fused=True)
    report(f"{dataset} float64 fused", r64)
    r64.pop("zero_grad_tensors")
    assert max(r64.values()) <= 1e-10, r64
    r32, pairs32 = compare(authors_model, dataset, torch.float32, fused=True)
    report(f"{dataset} float32 fused", r32)
    for k in ("logits_eval", "logits_train", "features_eval", "features_train"): assert r32[k] <= 1e-5, r32
    G = max(g.abs().max().item() for _, g in pairs64.values())
    err = lambda i: max((pairs32[k][i].double() - pairs64[k][1]).abs().max().item() for k in pairs64) / G
    print(f"{dataset} float32 gradients vs their float64, relative to the largest: fused {err(0):.1e}, theirs {err(1):.1e}")
    assert err(0) <= 2 * err(1) + 1e-5
