"""Integration tests of the models: sizes, the blocks' two forwards (per subset and fused) at full width, tracing, bad input.

Unit-level checks live in nbs/01_gcn … nbs/04_model; these are the whole-network ones.
"""
import copy
import io
import re

import pytest
import torch

from mdr_gcn_nb.model import PRESETS, build_model, compare_paths, count_macs, set_fused



@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    "Small shapes: extra threads only add contention on a shared CPU (restored afterwards)."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


AUTHORS = {'gym': 1_975_329, 'fsd10': 1_962_584, 'ntu60': 1_975_584}
JOINTS = {'coco17': 17, 'openpose25': 25, 'ntu25': 25}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def clip(preset, n=2, t=8, dtype=torch.float32):
    p = PRESETS[preset]
    return torch.randn(n, 3, t, JOINTS[p['layout']], p['num_persons'], dtype=dtype)


@pytest.mark.parametrize('preset', sorted(AUTHORS))
def test_param_counts_match_authors(preset):
    assert n_params(build_model('mdrgcn', alpha='shared', **PRESETS[preset])) == AUTHORS[preset]
    default = n_params(build_model('mdrgcn', **PRESETS[preset]))        # α per subset (paper)
    assert abs(default / AUTHORS[preset] - 1) < 0.005
    assert default - AUTHORS[preset] == 2 * 10                          # 2 extra α per layer


def test_per_subset_path_macs_match_authors():
    x = torch.randn(1, 3, 64, 17, 1)
    per_subset = count_macs(build_model('mdrgcn', fused=False, **PRESETS['gym']), x)
    fused = count_macs(build_model('mdrgcn', **PRESETS['gym']), x)
    assert abs(per_subset / 0.85e9 - 1) < 0.01
    assert fused < per_subset


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('ctrgcn', {}), ('ctrgcn', dict(cvsta=True)),
                                     ('stgcn', dict(unit_dropout=0.)), ('stgcn', dict(cvsta=True, unit_dropout=0.))])
@pytest.mark.parametrize('preset', ['gym', 'ntu60'])
def test_forward_shapes(name, kw, preset):
    m = build_model(name, **kw, **PRESETS[preset])
    f, logits = m(clip(preset))
    assert f.shape == (2, 256) and m.feat_dim == 256
    assert logits.shape == (2, PRESETS[preset]['num_classes'])
    assert torch.isfinite(f).all() and torch.isfinite(logits).all()


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('mdrgcn', dict(alpha='shared', combine='sub')),
                                     ('ctrgcn', dict(cvsta=True)), ('stgcn', dict(cvsta=True, unit_dropout=0.))])
def test_both_forwards_agree_float64_full_width(name, kw):
    m = build_model(name, **kw, **PRESETS['ntu60']).double()
    r = compare_paths(m, clip('ntu60', dtype=torch.float64))
    assert max(r.values()) < 1e-9, r


SMALL = dict(channels=(16, 16, 32, 32), strides=(1, 2, 1, 1), **PRESETS['gym'])


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('mdrgcn', dict(sigma='sigmoid', c_mid_ratio=4)),
                                     ('mdrgcn', dict(alpha='shared', combine='sub', sigma='hardswish')),
                                     ('ctrgcn', {}), ('ctrgcn', dict(cvsta=True))])
@pytest.mark.parametrize('seed', [0, 1])
def test_both_forwards_agree_float32(name, kw, seed):
    """Outputs and gradients (relative to the largest gradient) within 1e-5 in float32, on a 4-layer model."""
    torch.manual_seed(seed)
    r = compare_paths(build_model(name, **kw, **SMALL), torch.randn(2, 3, 12, 17, 1), seed=seed)
    r.pop('grads_per_tensor')      # exact-zero gradients (biases before train-mode BN) are float32 noise
    assert max(r.values()) < 1e-5, r


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('ctrgcn', dict(cvsta=True))])
def test_both_forwards_agree_float32_outputs_full_width(name, kw):
    """Full width in float32: outputs within 1e-5. (Full-width float32 *gradients* of a 10-layer network with
    ReLUs and max-pools on a 2-clip batch are not defined to 1e-5: near-ties flip between any two summation
    orders; even the per-subset path's float32 gradients differ from float64 by ~1e-3..1e-2 there.)"""
    torch.manual_seed(0)
    r = compare_paths(build_model(name, **kw, **PRESETS['gym']), clip('gym'))
    assert max(r['features'], r['logits']) < 1e-5, r


def _run(m, x, fused):
    "Outputs and the gradient of every parameter of `m` with the given forward."
    set_fused(m, fused)
    m.zero_grad(set_to_none=True)
    f, logits = m(x)
    (f.square().sum() + logits.square().sum()).backward()
    return (f.detach(), logits.detach()), [p.grad.clone() for p in m.parameters()]


def test_fused_as_accurate_as_per_subset_float32_stgcn_cvsta():
    """ST-GCN+CVSTA with random weights is badly conditioned in float32 (per-subset float32 gradients differ from
    float64 by more than 1e-5, e.g. 1.7e-5..7.6e-5 over seeds 0-2); the fused forward must be about as close to
    the float64 reference as the per-subset one."""
    torch.manual_seed(0)
    m = build_model('stgcn', cvsta=True, unit_dropout=0., **SMALL)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = copy.deepcopy(m).double()
    x = torch.randn(2, 3, 12, 17, 1)
    g64 = [g.float() for g in _run(ref, x.double(), False)[1]]
    g_eq, g_fused = _run(m, x, False)[1], _run(m, x, True)[1]
    scale = max(g.abs().max().item() for g in g64)
    def err(gs): return max((a - b).abs().max().item() for a, b in zip(gs, g64)) / scale
    assert err(g_fused) < 3 * err(g_eq) + 1e-5, (err(g_fused), err(g_eq))


def test_set_fused_keeps_function_in_eval_mode():
    m = build_model('mdrgcn', fused=False, **PRESETS['fsd10'])
    x = clip('fsd10')
    m(x)                                      # update BN running statistics once
    m.eval()
    with torch.no_grad():
        a = m(x)
        b = set_fused(m, True)(x)
    assert m.cfg.fused and not m.training
    for u, v in zip(a, b):
        assert (u - v).abs().max() <= 1e-5 * v.abs().max()


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('mdrgcn', dict(alpha='shared', combine='sub')),
                                     ('ctrgcn', {}), ('ctrgcn', dict(cvsta=True)), ('stgcn', dict(cvsta=True))])
@pytest.mark.parametrize('grad_mode', ['no_grad', 'inference_mode'])
def test_both_forwards_agree_frozen_bn_float64(name, kw, grad_mode):
    """Inference folds every frozen BatchNorm into the convolution before it and sums in place: same function.
    Random parameters and running statistics (nothing hides behind γ = 1e-6 or unit variances), float64."""
    torch.manual_seed(0)
    m = build_model(name, **kw, **SMALL).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for b in m.modules():
            if isinstance(b, torch.nn.BatchNorm2d):
                b.weight.uniform_(0.5, 1.5); b.running_mean.normal_(0, 0.3); b.running_var.uniform_(0.5, 2.)
    m.eval()
    x = torch.randn(3, 3, 12, 17, 1, dtype=torch.float64)
    for mode in (getattr(torch, grad_mode), torch.enable_grad):   # with autograd on, eval mode takes the unfolded path
        with mode():
            a, b = set_fused(m, False)(x), set_fused(m, True)(x)
        for u, v in zip(a, b):
            assert (u - v).abs().max() <= 1e-10 * v.abs().max(), (mode, (u - v).abs().max())


def test_all_parameters_receive_gradients():
    m = build_model('mdrgcn', **PRESETS['gym'])
    with torch.no_grad():
        for layer in m.layers:
            layer.gcb.alpha.fill_(0.5)        # α = 0 at init cuts the gradient to the Ã branch
    f, logits = m(clip('gym'))
    (logits.logsumexp(1).sum() + f.square().mean()).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_trace_matches_eager():
    m = build_model('mdrgcn', **PRESETS['ntu60']).eval()
    xa, xb = clip('ntu60', t=16), clip('ntu60', t=16)
    with torch.no_grad():
        traced = torch.jit.trace(m, xa)
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
        for a, b in zip(loaded(xb), m(xb)):
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_export_matches_eager_dynamic_batch():
    m = build_model('mdrgcn', **PRESETS['gym']).eval()
    program = torch.export.export(m, (clip('gym', t=16),),
                                  dynamic_shapes=({0: torch.export.Dim('N', min=1, max=256)},))
    xb = clip('gym', n=3, t=16)
    with torch.no_grad():
        for a, b in zip(program.module()(xb), m(xb)):
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_state_dict_round_trip():
    a = build_model('mdrgcn', **PRESETS['fsd10']).eval()
    b = build_model('mdrgcn', **PRESETS['fsd10']).eval()
    b.load_state_dict(a.state_dict())
    x = clip('fsd10')
    with torch.no_grad():
        assert torch.equal(a(x)[1], b(x)[1])


@pytest.mark.parametrize('shape,expect', [
    ((2, 3, 8, 17), 'got (2, 3, 8, 17)'),                 # rank 4
    ((2, 2, 8, 17, 1), 'C=3'),                            # channels
    ((2, 3, 8, 25, 1), 'V=17'),                           # joints
    ((2, 3, 8, 17, 2), 'M=1'),                            # persons
])
def test_bad_input_shape(shape, expect):
    m = build_model('mdrgcn', **PRESETS['gym'])
    with pytest.raises(ValueError, match=r'expected a tensor of shape \(N, C=3, T, V=17, M=1\)') as e:
        m(torch.randn(*shape))
    assert expect in str(e.value)


def test_bad_input_not_a_tensor():
    with pytest.raises(ValueError, match='got ndarray'):
        build_model('mdrgcn')(torch.randn(1, 3, 8, 17, 1).numpy())


def test_unknown_config_keys_listed():
    with pytest.raises(ValueError) as e:
        build_model('mdrgcn', num_class=10, cmid=4)
    msg = str(e.value)
    assert "unknown keys 'mdrgcn.num_class', 'mdrgcn.cmid'; valid keys in mdrgcn:" in msg
    assert 'num_classes' in msg and 'c_mid_ratio' in msg and '\n' not in msg
    with pytest.raises(ValueError, match='valid keys'):
        build_model('stgcn', tcn_kernels=(3,))
    with pytest.raises(ValueError, match="valid names: \\['ctrgcn', 'mdrgcn', 'mdrgcn_authors', 'stgcn'\\]"):
        build_model('agcn')


@pytest.mark.parametrize('kw,expect', [(dict(combine='mul'), "'add' or 'sub'"), (dict(alpha='all'), 'per_subset'),
                                       (dict(sigma='relu'), 'hardswish'), (dict(c_mid_ratio=0), "'fixed'"),
                                       (dict(layout='smpl'), 'coco17'), (dict(tcn_kernels=()), 'odd'),
                                       (dict(tcn_kernels=(3, 4)), 'odd'), (dict(graph='kinect'), 'partition, stgcn'),
                                       (dict(init='xavier'), "'package' or 'authors'"),
                                       (dict(init='authors', cvsta=False), 'cvsta=True and refine=True')])
def test_bad_config_values(kw, expect):
    with pytest.raises(ValueError, match=expect):
        build_model('mdrgcn', **kw)


@pytest.mark.parametrize('ratio,c_mid', [(4, 16), (8, 8), (16, 4), ('fixed', 64)])
def test_c_mid_options(ratio, c_mid):
    m = build_model('mdrgcn', c_mid_ratio=ratio, **PRESETS['gym'])
    assert m.layers[1].gcb.c_mid == c_mid                # layer 2: C_in = C_out = 64
    assert m.layers[0].gcb.c_mid == (8 if ratio != 'fixed' else 64)
    assert m(clip('gym'))[1].shape == (2, 99)


# ---------------------------------------------------------------- the GCB against the authors' aggregation, index by index
def _authors_gcb(blk, x, combine):
    """The aggregation of the authors' block written out with their index names, for whatever A_k the block holds:
    out[n,c,t,u] = sum_v (PA_k + a Ã_k)[n,c,u,v] R_k[n,c,t,v], Ã_k[u,v] = W_S tanh(f_S[u] +/- f_V[v]) with f_V the
    tensor CVSTA shares (it indexes the sending joint v). Their PA_k is [receiving, sending], the package's A_k
    [sending, receiving], so PA_k = A_k.T. (Which A_k they start from is `fixed_graph(layout, 'authors')`;
    tests/test_authors.py compares the whole model with theirs.)"""
    out = 0
    for k in range(blk.K):
        sub = blk.subset_convs(k)                                     # subset k's six 1x1 convolutions
        f_s = sub['conv_s'](x).mean(-2)                                  # (N, C_mid, V)   receiving joint u
        f_v = sub['conv_v'](x).mean(-2)                               # (N, C_mid, V)   sending joint v
        f_t = sub['conv_t'](x).mean(-1)                               # (N, C_mid, T)
        R = sub['conv_tv'](x) * sub['w_tv'](torch.tanh(f_t[..., :, None] * f_v[..., None, :]))   # (N, C, T, V)
        z = f_s[..., :, None] + f_v[..., None, :] if combine == "add" else f_s[..., :, None] - f_v[..., None, :]
        At = sub['w_s'](torch.tanh(z))                                   # (N, C, V(u), V(v))
        M = blk.alpha[k % len(blk.alpha)] * At + blk.A[k].T
        out = out + torch.einsum("ncuv,nctv->nctu", M, R)
    return out


@pytest.mark.parametrize("combine", ["add", "sub"])
@pytest.mark.parametrize("alpha", ["per_subset", "shared"])
def test_gcb_matches_the_authors_aggregation(combine, alpha):
    "Both forwards of one block against the authors' aggregation, float64."
    from mdr_gcn_nb.cvsta import GCB
    from mdr_gcn_nb.graph import fixed_graph
    torch.manual_seed(0)
    A = fixed_graph("coco17", "authors")
    blk = GCB(6, 8, A, alpha=alpha, combine=combine, block=False).double()
    with torch.no_grad():
        for p in blk.parameters(): p.add_(0.3 * torch.randn_like(p))   # α and the biases away from their zero init
    x = torch.randn(2, 6, 5, 17, dtype=torch.float64)
    ref = _authors_gcb(blk, x, combine)
    torch.testing.assert_close(blk.forward_eq(x), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(blk(x), ref, rtol=1e-10, atol=1e-10)


def test_spatial_partition_puts_equidistant_neighbours_in_subset_1_as_st_gcn_does():
    "Only a graph with a cycle has them: edge 1-2 of this square-with-a-tail, both ends 1 hop from the centre."
    from mdr_gcn_nb.graph import Graph
    A = Graph.from_edges(4, [(0, 1), (0, 2), (1, 2), (2, 3)], center=0).A
    assert A[1, 1, 2] > 0 and A[1, 2, 1] > 0 and A[0, 1, 2] == 0 and A[2, 1, 2] == 0


@pytest.mark.parametrize('module,name,replacement', [
    ('mdr_gcn_nb.cvsta', 'GCBNaive', 'GCB(..., fused=False)'), ('mdr_gcn_nb.cvsta', 'load_naive_', 'one set of weights'),
    ('mdr_gcn_nb.tcn', 'TCBNaive', 'TCB(..., fused=False)'), ('mdr_gcn_nb.model', 'to_fused', 'set_fused(model, True)'),
    ('mdr_gcn_nb.model', 'naive_sources', 'compare_paths'), ('mdr_gcn_nb.model', 'authors_key', 'authors_keys(model)')])
def test_removed_names_name_their_replacement(module, name, replacement):
    "Importing a removed name fails in one line that names what to use instead; other unknown names stay AttributeErrors."
    with pytest.raises(ImportError) as e:
        exec(f"from {module} import {name}")
    assert replacement in str(e.value) and "\n" not in str(e.value)
    mod = __import__(module, fromlist=['_'])
    assert not hasattr(mod, 'no_such_name')
    assert not hasattr(mod, name) and getattr(mod, name, None) is None     # an AttributeError for hasattr/getattr
    with pytest.raises(AttributeError, match=re.escape(replacement)):
        getattr(mod, name)


def test_shared_block_helpers_come_from_the_lower_layer():
    "tcn and cvsta both import conv_rows, fold_bn and frozen_bn from gcn; the names stay importable from cvsta."
    import mdr_gcn_nb.cvsta as cvsta, mdr_gcn_nb.gcn as gcn, mdr_gcn_nb.tcn as tcn
    for n in ('conv_rows', 'fold_bn', 'frozen_bn'):
        assert getattr(cvsta, n) is getattr(gcn, n) is getattr(tcn, n)


def test_parameter_names_are_the_same_for_both_forwards():
    "Checkpoints load whichever forward a model was built with: one set of parameters, the same names."
    a, b = build_model('mdrgcn', **PRESETS['gym']), build_model('mdrgcn', fused=False, **PRESETS['gym'])
    assert list(a.state_dict()) == list(b.state_dict())
    b.load_state_dict(a.state_dict())
    assert 'layers.0.gcb.conv_vs.weight' in a.state_dict() and 'layers.0.tcb.reduce_bn.running_var' in a.state_dict()


@pytest.mark.parametrize('graph', ['partition', 'stgcn', 'ctrgcn', 'authors'])
def test_the_fixed_graph_option_initialises_A(graph):
    from mdr_gcn_nb.graph import fixed_graph
    m = build_model('mdrgcn', graph=graph, **PRESETS['ntu60'])
    for layer in m.layers: assert torch.equal(layer.gcb.A.detach(), torch.as_tensor(fixed_graph('ntu25', graph)))


@pytest.mark.parametrize('name', ['mdrgcn', 'mdrgcn_authors', 'ctrgcn', 'stgcn'])
def test_head_is_a_model_setting(name):
    "build_model(name, head='cosine') builds the margin losses' classifier, model.cfg records it, and set_head keeps cfg in step."
    from mdr_gcn_nb.model import CosineHead, set_head
    small = dict(channels=(8, 16), strides=(1, 2), **PRESETS['fsd10'])
    m = build_model(name, head='cosine', **small)
    assert isinstance(m.fc, CosineHead) and m.cfg.head == 'cosine' and 'fc.bias' not in m.state_dict()
    swapped = set_head(build_model(name, **small), 'cosine')
    assert swapped.cfg.head == 'cosine' and list(swapped.state_dict()) == list(m.state_dict())
    assert build_model(name, **small).cfg.head == 'linear'
    with pytest.raises(ValueError, match="head must be one of linear, cosine"):
        build_model(name, head='arc', **small)


def test_a_margin_loss_config_builds_its_head_into_the_model():
    "The training config's model is built with the head its loss needs, and the model's config says so."
    from mdr_gcn_nb.config import load_config
    from mdr_gcn_nb.train import build_model_from_config
    facts = dict(num_classes=10, layout='openpose25', in_channels=3, num_persons=1)
    for loss, head in (('arcface', 'cosine'), ('rdl', 'linear')):
        cfg = load_config(overrides=[f'loss.name={loss}', 'model.args.channels=[8,16]', 'model.args.strides=[1,2]'])
        m = build_model_from_config(cfg, facts)
        assert m.cfg.head == head and build_model(cfg.model.name, **{**cfg.model.args, **facts, 'head': head}).cfg == m.cfg
