"""Integration tests of the models: sizes, naive ≡ fused at full width, tracing, bad input.

Unit-level checks live in nbs/01_gcn … nbs/04_model; these are the whole-network ones.
"""
import copy
import io

import pytest
import torch

from mdr_gcn_nb.model import (MDRGCN, MDRGCNConfig, PRESETS, STGCN, build_model, compare_paths, count_macs,
                              naive_sources, to_fused)



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


def test_naive_path_macs_match_authors():
    x = torch.randn(1, 3, 64, 17, 1)
    naive = count_macs(build_model('mdrgcn', fused=False, **PRESETS['gym']), x)
    fused = count_macs(build_model('mdrgcn', **PRESETS['gym']), x)
    assert abs(naive / 0.85e9 - 1) < 0.01
    assert fused < naive


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
def test_naive_equals_fused_float64_full_width(name, kw):
    naive = build_model(name, fused=False, **kw, **PRESETS['ntu60']).double()
    r = compare_paths(naive, clip('ntu60', dtype=torch.float64))
    assert max(r.values()) < 1e-9, r


SMALL = dict(channels=(16, 16, 32, 32), strides=(1, 2, 1, 1), **PRESETS['gym'])


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('mdrgcn', dict(sigma='sigmoid', c_mid_ratio=4)),
                                     ('mdrgcn', dict(alpha='shared', combine='sub', sigma='hardswish')),
                                     ('ctrgcn', {}), ('ctrgcn', dict(cvsta=True))])
@pytest.mark.parametrize('seed', [0, 1])
def test_naive_equals_fused_float32(name, kw, seed):
    """Outputs and gradients (relative to the largest gradient) within 1e-5 in float32, on a 4-layer model."""
    torch.manual_seed(seed)
    r = compare_paths(build_model(name, fused=False, **kw, **SMALL), torch.randn(2, 3, 12, 17, 1), seed=seed)
    r.pop('grads_per_tensor')      # exact-zero gradients (biases before train-mode BN) are float32 noise
    assert max(r.values()) < 1e-5, r


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('ctrgcn', dict(cvsta=True))])
def test_naive_equals_fused_float32_outputs_full_width(name, kw):
    """Full width in float32: outputs within 1e-5. (Full-width float32 *gradients* of a 10-layer network with
    ReLUs and max-pools on a 2-clip batch are not defined to 1e-5: near-ties flip between any two summation
    orders; even the naive path's float32 gradients differ from float64 by ~1e-3..1e-2 there.)"""
    torch.manual_seed(0)
    r = compare_paths(build_model(name, fused=False, **kw, **PRESETS['gym']), clip('gym'))
    assert max(r['features'], r['logits']) < 1e-5, r


def test_fused_as_accurate_as_naive_float32_stgcn_cvsta():
    """ST-GCN+CVSTA with random weights is badly conditioned in float32 (naive float32 gradients differ from
    float64 by more than 1e-5, e.g. 1.7e-5..7.6e-5 over seeds 0-2); the fused path must be about as close to the
    float64 reference as the naive one."""
    torch.manual_seed(0)
    naive = build_model('stgcn', fused=False, cvsta=True, unit_dropout=0., **SMALL)
    with torch.no_grad():
        for p in naive.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ref = copy.deepcopy(naive).double()
    fused = to_fused(naive)
    x = torch.randn(2, 3, 12, 17, 1)
    for m, xx in ((naive, x), (fused, x), (ref, x.double())):
        f, l = m(xx)
        (f.square().sum() + l.square().sum()).backward()
    src, src64 = naive_sources(fused, naive), naive_sources(fused, ref)
    names = [n for n, _ in fused.named_parameters()]
    g64 = [torch.cat([s.grad for s in src64[n]], 0).float() for n in names]
    gnaive = [torch.cat([s.grad for s in src[n]], 0) for n in names]
    gfused = [p.grad for _, p in fused.named_parameters()]
    scale = max(g.abs().max().item() for g in g64)
    err = lambda gs: max((a - b).abs().max().item() for a, b in zip(gs, g64)) / scale
    assert err(gfused) < 3 * err(gnaive) + 1e-5, (err(gfused), err(gnaive))


def test_to_fused_keeps_function_in_eval_mode():
    naive = build_model('mdrgcn', fused=False, **PRESETS['fsd10'])
    x = clip('fsd10')
    naive(x)                                  # update BN running statistics once
    naive.eval()
    fused = to_fused(naive)
    assert not fused.training
    with torch.no_grad():
        for a, b in zip(naive(x), fused(x)):
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()


@pytest.mark.parametrize('name,kw', [('mdrgcn', {}), ('mdrgcn', dict(alpha='shared', combine='sub')),
                                     ('ctrgcn', {}), ('ctrgcn', dict(cvsta=True)), ('stgcn', dict(cvsta=True))])
@pytest.mark.parametrize('grad_mode', ['no_grad', 'inference_mode'])
def test_naive_equals_fused_frozen_bn_float64(name, kw, grad_mode):
    """Inference folds every frozen BatchNorm into the convolution before it and sums in place: same function.
    Random parameters and running statistics (nothing hides behind γ = 1e-6 or unit variances), float64."""
    torch.manual_seed(0)
    naive = build_model(name, fused=False, **kw, **SMALL).double()
    with torch.no_grad():
        for p in naive.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in naive.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.running_mean.normal_(0, 0.3); m.running_var.uniform_(0.5, 2.)
    naive.eval()
    fused = to_fused(naive)
    x = torch.randn(3, 3, 12, 17, 1, dtype=torch.float64)
    with getattr(torch, grad_mode)():
        for a, b in zip(naive(x), fused(x)):
            assert (a - b).abs().max() <= 1e-10 * b.abs().max(), (a - b).abs().max()
    with torch.enable_grad():                  # eval mode with autograd on takes the unfolded path
        for a, b in zip(naive(x), fused(x)):
            assert (a - b).abs().max() <= 1e-10 * b.abs().max()


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
    assert "['cmid', 'num_class']" in msg and 'num_classes' in msg and 'c_mid_ratio' in msg
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
    import torch.nn.functional as F
    out = 0
    for k, sub in enumerate(blk.subsets):
        f_s = sub.conv_s(x).mean(-2)                                  # (N, C_mid, V)   receiving joint u
        f_v = sub.conv_v(x).mean(-2)                                  # (N, C_mid, V)   sending joint v
        f_t = sub.conv_t(x).mean(-1)                                  # (N, C_mid, T)
        R = sub.conv_tv(x) * sub.w_tv(torch.tanh(f_t[..., :, None] * f_v[..., None, :]))   # (N, C, T, V)
        z = f_s[..., :, None] + f_v[..., None, :] if combine == "add" else f_s[..., :, None] - f_v[..., None, :]
        At = sub.w_s(torch.tanh(z))                                   # (N, C, V(u), V(v))
        M = blk.alpha[k % len(blk.alpha)] * At + blk.A[k].T
        out = out + torch.einsum("ncuv,nctv->nctu", M, R)
    return out


@pytest.mark.parametrize("combine", ["add", "sub"])
@pytest.mark.parametrize("alpha", ["per_subset", "shared"])
def test_gcb_matches_the_authors_aggregation(combine, alpha):
    from mdr_gcn_nb.cvsta import GCB, GCBNaive, load_naive_
    from mdr_gcn_nb.graph import fixed_graph
    torch.manual_seed(0)
    A = fixed_graph("coco17", "authors")
    naive = GCBNaive(6, 8, A, alpha=alpha, combine=combine, block=False).double()
    with torch.no_grad():
        for p in naive.parameters(): p.add_(0.3 * torch.randn_like(p))   # α and the biases away from their zero init
    x = torch.randn(2, 6, 5, 17, dtype=torch.float64)
    ref = _authors_gcb(naive, x, combine)
    torch.testing.assert_close(naive(x), ref, rtol=1e-10, atol=1e-10)
    fused = load_naive_(GCB(6, 8, A, alpha=alpha, combine=combine, block=False).double(), naive)
    torch.testing.assert_close(fused(x), ref, rtol=1e-10, atol=1e-10)


def test_spatial_partition_puts_equidistant_neighbours_in_subset_1_as_st_gcn_does():
    "Only a graph with a cycle has them: edge 1-2 of this square-with-a-tail, both ends 1 hop from the centre."
    from mdr_gcn_nb.graph import Graph
    A = Graph.from_edges(4, [(0, 1), (0, 2), (1, 2), (2, 3)], center=0).A
    assert A[1, 1, 2] > 0 and A[1, 2, 1] > 0 and A[0, 1, 2] == 0 and A[2, 1, 2] == 0


def test_to_fused_keeps_the_device_and_dtype():
    "meta stands in for a GPU: the fused copy is built where the naive model lives."
    from mdr_gcn_nb.model import to_fused
    naive = build_model("mdrgcn", fused=False, num_classes=5, layout="coco17", num_persons=1,
                        channels=(16, 16), strides=(1, 2)).to(device="meta", dtype=torch.float64)
    p = next(to_fused(naive).parameters())
    assert p.device.type == "meta" and p.dtype == torch.float64


@pytest.mark.parametrize('graph', ['partition', 'stgcn', 'ctrgcn', 'authors'])
def test_the_fixed_graph_option_initialises_A(graph):
    from mdr_gcn_nb.graph import fixed_graph
    m = build_model('mdrgcn', graph=graph, **PRESETS['ntu60'])
    for layer in m.layers: assert torch.equal(layer.gcb.A.detach(), torch.as_tensor(fixed_graph('ntu25', graph)))
