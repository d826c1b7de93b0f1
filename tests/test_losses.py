"""Integration tests for mdr_gcn_nb.losses: gradients vs autograd and gradcheck over many shapes,
the fused autograd.Function, robustness, the official variant against a scalar re-computation,
the margin losses against hand-computed values, and the build_criterion interface with bad inputs."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mdr_gcn_nb.model import CosineHead
from mdr_gcn_nb.losses import (ArcFaceLoss, CenterLoss, CosFaceLoss, Criterion, RDLFunction, RobustDecoupleLoss, head_for,
                               SphereFaceLoss, angle_out, build_criterion, cosine_matrix, rdl_grads, resolve_lambda, total_loss)

torch.set_num_threads(1)  # tiny tensors: threads only add overhead on the shared CI machine

SHAPES = [(3, 3, 2), (5, 3, 1), (7, 4, 3), (12, 6, 32), (30, 10, 9), (16, 16, 4)]  # (N, M, D), M >= 3


def case(N, M, D, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=dtype) * 3
    c = torch.randn(M, D, generator=g, dtype=dtype)
    y = torch.randint(0, M, (N,), generator=g)
    return x, c, y


def ref_loss(x, c, y, l1, l2, eps=0.0, terms=("in", "out", "l")):
    """Eq 7-11 written independently with explicit per-sample loops (Eq 8 over classes k != y_i)."""
    N, M = x.shape[0], c.shape[0]
    tot_in = tot_out = tot_l = 0.0
    for i in range(N):
        cos = [torch.dot(x[i], c[k]) / (x[i].norm() * c[k].norm()) for k in range(M)]
        tot_in = tot_in + (1 - cos[y[i]]) ** 2
        tot_out = tot_out - (1 - sum(cos[k] for k in range(M) if k != y[i]) / (M - 1))
        tot_l = tot_l + (1 - x[i].norm() / (c[y[i]].norm() + eps)) ** 2
    parts = {"in": tot_in / N, "out": tot_out / N, "l": tot_l / N}
    w = {"in": 1.0, "out": l1, "l": l2}
    return sum(w[k] * parts[k] for k in terms)


@pytest.mark.parametrize("N,M,D", SHAPES)
@pytest.mark.parametrize("lam,eps", [(None, 0.0), (0.25, 0.2)])
def test_module_matches_loop_reference_and_analytic_grads(N, M, D, lam, eps):
    x, c, y = case(N, M, D, seed=N * 100 + M)
    m = RobustDecoupleLoss(M, D, lambda1=lam, lambda2=lam, eps=eps).double()
    with torch.no_grad():
        m.centres.copy_(c)
    xr = x.clone().requires_grad_()
    loss = m(xr, y)
    l1 = l2 = resolve_lambda(lam, N)
    xx, cc = x.clone().requires_grad_(), c.clone().requires_grad_()
    ref = ref_loss(xx, cc, y, l1, l2, eps)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    gx_ref, gc_ref = torch.autograd.grad(ref, (xx, cc))
    gx, gc = torch.autograd.grad(loss, (xr, m.centres))
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gc, gc_ref, rtol=1e-10, atol=1e-12)
    ax, ac = rdl_grads(x, c, y, 1.0, l1, l2, eps)
    torch.testing.assert_close(ax, gx_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ac, gc_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("N,M,D", SHAPES)
@pytest.mark.parametrize("weights", [(1.0, 1 / 7, 1 / 7), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, -0.3, 2.0)])
def test_function_gradcheck(N, M, D, weights):
    x, c, y = case(N, M, D, seed=N + M + D)
    fn = lambda x_, c_: RDLFunction.apply(x_, c_, y, *weights, 0.1, 1e-6)
    assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(), c.clone().requires_grad_()))


def test_function_gradgrad_not_needed_but_backward_twice_is_safe():
    x, c, y = case(6, 3, 4, seed=1)
    xr, cr = x.clone().requires_grad_(), c.clone().requires_grad_()
    loss = RDLFunction.apply(xr, cr, y, 1.0, 0.1, 0.1, 0.0, 1e-6)
    g1 = torch.autograd.grad(loss, (xr, cr), retain_graph=True)
    g2 = torch.autograd.grad(loss * 3, (xr, cr))
    torch.testing.assert_close(g2[0], 3 * g1[0]); torch.testing.assert_close(g2[1], 3 * g1[1])


@pytest.mark.parametrize("terms", [("in",), ("out",), ("l",), ("in", "out"), ("in", "l"), ("out", "l"), ("in", "out", "l")])
def test_terms_switch_function_equals_autograd(terms):
    x, c, y = case(10, 5, 6, seed=3)
    a = RobustDecoupleLoss(5, 6, terms=terms).double()
    f = RobustDecoupleLoss(5, 6, terms=terms, impl="function").double()
    with torch.no_grad():
        a.centres.copy_(c); f.centres.copy_(c)
    xa, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    la, lf = a(xa, y), f(xf, y)
    torch.testing.assert_close(la, lf)
    torch.testing.assert_close(la, ref_loss(x, c, y, 0.1, 0.1, terms=terms))
    ga, gf = torch.autograd.grad(la, (xa, a.centres)), torch.autograd.grad(lf, (xf, f.centres))
    torch.testing.assert_close(ga[0], gf[0]); torch.testing.assert_close(ga[1], gf[1])


def test_printed_eq19_has_the_wrong_sign_for_eq8():
    """Eq 19 (inner sum over the M-1 other classes) is exactly minus autograd of Eq 8."""
    x, c, y = case(8, 4, 5, seed=7)
    N, M = 8, 4
    xr = x.clone().requires_grad_()
    g, = torch.autograd.grad(angle_out(cosine_matrix(xr, c)[0], y), xr)
    for i in range(N):
        n = x[i].norm()
        P = torch.outer(x[i], x[i]) / n ** 3 - torch.eye(5, dtype=x.dtype) / n
        eq19 = sum(P @ (c[k] / c[k].norm()) for k in range(M) if k != y[i]) / (N * (M - 1))
        torch.testing.assert_close(eq19, -g[i])


@pytest.mark.parametrize("impl", ["autograd", "function"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_zero_feature_and_zero_centre_are_finite(impl, dtype):
    torch.manual_seed(0)
    m = RobustDecoupleLoss(3, 5, impl=impl)
    with torch.no_grad():
        m.centres[1].zero_()
    x = torch.randn(4, 5).to(dtype)
    x[2] = 0
    x.requires_grad_()
    loss = m(x, torch.tensor([0, 1, 2, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all() and torch.isfinite(m.centres.grad).all()
    assert x.grad.dtype == dtype


def test_all_zero_batch_with_eps():
    m = RobustDecoupleLoss(3, 4, eps=1e-3)
    x = torch.zeros(5, 4, requires_grad=True)
    loss = m(x, torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    # cos = 0 with every centre: A_in = 1, A_out = -1, beta = 0 so L_l = 1
    torch.testing.assert_close(loss, torch.tensor(1.0 + (-1.0) / 5 + 1.0 / 5))
    assert torch.isfinite(x.grad).all()


def official_scalar(x, c, y):
    """The authors' RobustDecoupleLoss.py (RDL.forward), broadcasting detail included, written with Python floats only."""
    N = len(x)
    cl = lambda t: min(max(t, 1e-12), 1e12)
    norm = lambda v: math.sqrt(sum(t * t for t in v))
    cos = lambda p, q: sum(a * b for a, b in zip(p, q)) / (norm(p) * norm(q))
    d = [[1 - cos(x[i], c[y[k]]) for k in range(N)] for i in range(N)]
    a_in = sum(cl(d[i][i] ** 4) for i in range(N)) / N
    a_out = sum(cl((d[i][k] ** 2 - d[k][k] ** 2) ** 2) for i in range(N) for k in range(N)) / (N * (N - 1))
    l = sum(cl((1 - norm(x[i]) / norm(c[y[i]])) ** 2) for i in range(N)) / N
    return a_in, a_out, l


@pytest.mark.parametrize("N,M,D", SHAPES)
def test_official_variant_matches_scalar_computation(N, M, D):
    x, c, y = case(N, M, D, seed=11 * N)
    m = RobustDecoupleLoss(M, D, variant="official").double()
    with torch.no_grad():
        m.centres.copy_(c)
    a_in, a_out, l = official_scalar(x.tolist(), c.tolist(), y.tolist())
    t = m.terms(x, y)
    assert math.isclose(t["in"].item(), a_in, rel_tol=1e-12)
    assert math.isclose(t["out"].item(), a_out, rel_tol=1e-10, abs_tol=1e-15)
    assert math.isclose(t["l"].item(), l, rel_tol=1e-12)
    assert math.isclose(m(x, y).item(), a_in - 0.01 * a_out + 0.01 * l, rel_tol=1e-12)


def test_official_variant_single_sample_and_function_refused():
    m = RobustDecoupleLoss(3, 4, variant="official")
    assert torch.isfinite(m(torch.randn(1, 4), torch.tensor([2])))
    with pytest.raises(ValueError, match="impl='function'"):
        RobustDecoupleLoss(3, 4, variant="official", impl="function")


def test_lambda_is_one_over_batch_size():
    m = RobustDecoupleLoss(4, 3)
    assert m.weights(64) == {"in": 1.0, "out": 1 / 64, "l": 1 / 64}
    assert m.weights(8)["out"] == 0.125
    assert RobustDecoupleLoss(4, 3, lambda1=0.01, lambda2=0.02).weights(64) == {"in": 1.0, "out": 0.01, "l": 0.02}
    assert RobustDecoupleLoss(4, 3, variant="official").weights(64) == {"in": 1.0, "out": -0.01, "l": 0.01}


def test_total_loss_eq13():
    torch.manual_seed(0)
    m = RobustDecoupleLoss(5, 6)
    x, z, y = torch.randn(9, 6), torch.randn(9, 5), torch.randint(0, 5, (9,))
    L, logs = total_loss(z, x, y, m)
    torch.testing.assert_close(L, F.cross_entropy(z, y) + m(x, y))
    assert set(logs) == {"ce", "in", "out", "l", "rdl"} and not any(v.requires_grad for v in logs.values())
    Ls, _ = total_loss(z, x, y, m, reduction="sum")
    torch.testing.assert_close(Ls, F.cross_entropy(z, y, reduction="sum") + m(x, y))


# ---- competing losses ------------------------------------------------------------------------------

def head(cls, **kw):
    "A cosine head with fixed weights (norms differ: they must be normalised away) and the margin loss `cls` on it."
    h = CosineHead(2, 3)
    with torch.no_grad():
        h.weight.copy_(torch.tensor([[2., 0.], [0., 0.5], [-1., 0.]]))
    loss = cls(3, **kw)
    return h, loss


X, Y = torch.tensor([[3., 4.], [-1., 0.]]), torch.tensor([1, 2])  # cos rows: (.6, .8, -.6), (-1, 0, 1)


def ce_by_hand(rows, ys):
    return sum(-r[t] + math.log(sum(math.exp(v) for v in r)) for r, t in zip(rows, ys)) / len(rows)


def test_cosface_by_hand():
    rows = [[3 * .6, 3 * (.8 - .2), 3 * -.6], [3 * -1, 0, 3 * (1 - .2)]]
    h, loss = head(CosFaceLoss, s=3, m=0.2)
    torch.testing.assert_close(loss.margin_logits(h(X), Y), torch.tensor(rows))
    assert math.isclose(loss(h(X), Y).item(), ce_by_hand(rows, [1, 2]), rel_tol=1e-6)
    torch.testing.assert_close(loss.logits(h(X)), 3 * torch.tensor([[.6, .8, -.6], [-1., 0., 1.]]))


def test_arcface_by_hand_including_fallback():
    m = 0.3
    th = math.acos(.8)
    # second sample: cos_y = 1 (theta 0) -> cos(m)
    rows = [[2 * .6, 2 * math.cos(th + m), 2 * -.6], [2 * -1, 0, 2 * math.cos(m)]]
    h, loss = head(ArcFaceLoss, s=2, m=m)
    torch.testing.assert_close(loss.margin_logits(h(X), Y), torch.tensor(rows), rtol=1e-5, atol=1e-5)
    assert math.isclose(loss(h(X), Y).item(), ce_by_hand(rows, [1, 2]), rel_tol=1e-5)
    # theta_y near pi: theta + m > pi, the fallback cos(theta) - m sin(m) keeps the logit decreasing
    x = torch.tensor([[-1., 0.001]]); y = torch.tensor([0])
    cos_y = F.normalize(x, dim=1)[0, 0].item()
    got = loss.margin_logits(h(x), y)[0, 0].item()
    assert math.isclose(got, 2 * (cos_y - m * math.sin(m)), rel_tol=1e-5)


def test_sphereface_by_hand_and_annealing():
    th = math.acos(.8)                                   # 0.6435 rad: m*th < pi for m <= 4, so k = 0 and psi = cos(m th)
    for mm in (2, 3, 4):
        psi = math.cos(mm * th)
        h, loss = head(SphereFaceLoss, m=mm, anneal=False)
        got = loss.margin_logits(h(X[:1]), Y[:1], X[:1])[0]
        torch.testing.assert_close(got, torch.tensor([5 * .6, 5 * psi, 5 * -.6]), rtol=1e-5, atol=1e-5)
    # theta_y > pi/2 with m = 4: theta = acos(-0.3/sqrt(1.09)) = 1.862 rad, 4 theta = 7.45 rad lies in [2pi, 3pi): k = 2,
    # psi = (-1)^2 cos(4 theta) - 2*2
    h, loss = head(SphereFaceLoss, m=4, anneal=False)
    x = torch.tensor([[-1.0, -0.3]]); y = torch.tensor([1])
    th = math.acos(-0.3 / math.sqrt(1.09))
    assert 2 * math.pi <= 4 * th < 3 * math.pi
    want = math.sqrt(1.09) * (math.cos(4 * th) - 4)
    assert math.isclose(loss.margin_logits(h(x), y, x)[0, 1].item(), want, rel_tol=1e-5)
    # annealed: (lambda * cos + psi) / (1 + lambda)
    h, loss = head(SphereFaceLoss, m=2, base=10.0, gamma=1.0, power=1.0, lambda_min=1.0)
    loss.train()
    lam0 = loss.current_lambda(); assert lam0 == 10.0
    got = loss.margin_logits(h(X[:1]), Y[:1], X[:1])[0, 1].item()
    assert math.isclose(got, 5 * (10 * .8 + math.cos(2 * math.acos(.8))) / 11, rel_tol=1e-5)
    assert loss.current_lambda() == 5.0  # iteration 1: 10 / (1 + 1)


def test_margin_reductions():
    torch.manual_seed(0)
    x, y = torch.randn(6, 4), torch.randint(0, 5, (6,))
    h = CosineHead(4, 5)
    plain = F.normalize(x, dim=1) @ F.normalize(h.weight, dim=1).T
    for loss in (CosFaceLoss(5, s=1, m=0), ArcFaceLoss(5, s=1, m=0)):
        torch.testing.assert_close(loss.margin_logits(h(x), y), plain, rtol=1e-5, atol=1e-5)
    loss = SphereFaceLoss(5, m=1, anneal=False)
    torch.testing.assert_close(loss.margin_logits(h(x), y, x), x @ F.normalize(h.weight, dim=1).T, rtol=1e-5, atol=1e-5)


# The margin losses with their own class weights, as one module (features in, loss out), the layout of checkpoints with
# a criterion `head.weight`: the reference that the cosine head (model) + margin loss (criterion) must equal.
class _OldMarginHead(nn.Module):
    def __init__(self, num_classes, feat_dim, s=1.0):
        super().__init__()
        self.num_classes, self.s = num_classes, s
        self.weight = nn.Parameter(torch.empty(num_classes, feat_dim))
        nn.init.xavier_uniform_(self.weight)

    def cosines(self, features):
        dtype = torch.promote_types(features.dtype, self.weight.dtype)
        x, w = features.to(dtype), self.weight.to(dtype)
        return F.normalize(x, dim=1, eps=1e-6) @ F.normalize(w, dim=1, eps=1e-6).T, x

    def forward(self, features, labels): return F.cross_entropy(self.margin_logits(features, labels), labels)


class _OldCosFace(_OldMarginHead):
    def __init__(self, num_classes, feat_dim, s=64.0, m=0.35): super().__init__(num_classes, feat_dim, s); self.m = m
    def margin_logits(self, features, labels):
        cos = self.cosines(features)[0]
        return self.s * (cos - self.m * F.one_hot(labels, self.num_classes).to(cos.dtype))


class _OldArcFace(_OldMarginHead):
    def __init__(self, num_classes, feat_dim, s=64.0, m=0.5): super().__init__(num_classes, feat_dim, s); self.m = m
    def margin_logits(self, features, labels):
        cos = self.cosines(features)[0]
        cos_y = cos.gather(1, labels[:, None])
        sin_y = (1 - cos_y ** 2).clamp_min(1e-12).sqrt()
        target = cos_y * math.cos(self.m) - sin_y * math.sin(self.m)
        target = torch.where(cos_y > math.cos(math.pi - self.m), target, cos_y - self.m * math.sin(self.m))
        return self.s * cos.scatter(1, labels[:, None], target)


class _OldSphereFace(_OldMarginHead):
    def __init__(self, num_classes, feat_dim, m=4):
        super().__init__(num_classes, feat_dim); self.m, self.iteration = m, 0
    def margin_logits(self, features, labels):
        cos, x = self.cosines(features)
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        cos_y = cos.gather(1, labels[:, None]).clamp(-1, 1)
        with torch.no_grad(): k = torch.floor(self.m * torch.acos(cos_y) / math.pi)
        psi = (-1) ** k * SphereFaceLoss.cos_m_theta(cos_y, self.m) - 2 * k
        lam = max(5.0, 1000.0 * (1 + 0.12 * self.iteration) ** -1.0)
        self.iteration += 1
        return norm * cos.scatter(1, labels[:, None], (lam * cos_y + psi) / (1 + lam))


@pytest.mark.parametrize("name, old_cls, kw", [("cosface", _OldCosFace, dict(s=8.0, m=0.35)),
                                               ("arcface", _OldArcFace, dict(s=8.0, m=0.5)),
                                               ("sphereface", _OldSphereFace, dict(m=4))])
def test_head_plus_loss_equals_the_old_combined_module(name, old_cls, kw):
    "Cosine head (model) + margin loss (criterion) = the old loss that owned W: same value and gradients, float64, 3 steps."
    torch.manual_seed(0)
    old = old_cls(5, 8, **kw).double()
    head, crit = CosineHead(8, 5).double(), build_criterion(name, 5, 8, **kw).double()
    with torch.no_grad(): head.weight.copy_(old.weight)
    crit.train()
    for step in range(3):                                 # SphereFace's annealing λ moves with the steps
        x, y = torch.randn(6, 8, dtype=torch.float64), torch.randint(0, 5, (6,))
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        l_old = old(xa, y)
        l_new, scores, _ = crit(xb, head(xb), y)
        gw_old, gx_old = torch.autograd.grad(l_old, (old.weight, xa))
        gw_new, gx_new = torch.autograd.grad(l_new, (head.weight, xb))
        torch.testing.assert_close(l_new, l_old, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(gw_new, gw_old, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(gx_new, gx_old, rtol=1e-12, atol=1e-13)
    assert list(crit.parameters()) == []                  # the class weights live in the model now


def test_center_loss_value_and_update_rule():
    cl = CenterLoss(3, 2, weight=0.5, alpha=0.5, centre_lr=0.1)
    with torch.no_grad():
        cl.centres.copy_(torch.tensor([[0., 0.], [1., 1.], [5., 5.]]))
    x = torch.tensor([[1., 2.], [3., 1.], [0., 1.]], requires_grad=True)
    y = torch.tensor([1, 1, 0])
    loss = cl(x, y)
    assert math.isclose(loss.item(), 0.5 * (1 + 4 + 1) / 6, rel_tol=1e-6)
    loss.backward()
    # features: weight * (x - c_y) / N
    torch.testing.assert_close(x.grad, 0.5 * (x.detach() - cl.centres.detach()[y]) / 3)
    # centres: one SGD step of lr 0.1 equals c_j - alpha * sum(c_j - x_i) / (1 + n_j); absent class untouched
    new = cl.centres.detach() - 0.1 * cl.centres.grad
    torch.testing.assert_close(new[0], torch.tensor([0., 0.]) - 0.5 * torch.tensor([0., -1.]) / 2)
    torch.testing.assert_close(new[1], torch.tensor([1., 1.]) - 0.5 * torch.tensor([-2., -1.]) / 3)
    torch.testing.assert_close(new[2], torch.tensor([5., 5.]))


# ---- the training interface ------------------------------------------------------------------------

NAMES = ["softmax", "rdl", "center", "sphereface", "cosface", "arcface"]


@pytest.mark.parametrize("name", NAMES)
def test_build_criterion_contract(name):
    torch.manual_seed(0)
    crit = build_criterion(name, num_classes=7, feat_dim=16)
    assert isinstance(crit, Criterion)
    f = torch.randn(5, 16, requires_grad=True)
    margin = head_for(name) == "cosine"
    z = (CosineHead(16, 7)(f).detach() if margin else torch.randn(5, 7)).requires_grad_()   # the head's output
    y = torch.randint(0, 7, (5,))
    loss, out, terms = crit(f, z, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert out.shape == (5, 7)
    assert "ce" in terms and all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in terms.values())
    loss.backward()
    centres = crit.centre_parameters()
    assert len(centres) == (1 if name in ("rdl", "center") else 0)
    cid = {id(p) for p in centres}
    assert [p for p in crit.parameters() if id(p) not in cid] == []     # a margin loss's W is the model's cosine head
    for p in centres:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert z.grad is not None and z.grad.abs().sum() > 0               # every loss reads the head's output
    assert margin == (name in ("sphereface", "cosface", "arcface"))
    if not margin:
        assert out is z


def test_build_criterion_rdl_options_and_eq13():
    torch.manual_seed(0)
    crit = build_criterion("rdl", 7, 16, weight=2.0, lambda1=0.1, lambda2=0.2, terms=("in", "l"))
    f, z, y = torch.randn(5, 16), torch.randn(5, 7), torch.randint(0, 7, (5,))
    loss, _, terms = crit(f, z, y)
    t = crit.embedding.terms(f, y)
    torch.testing.assert_close(loss, F.cross_entropy(z, y) + 2.0 * (t["in"] + 0.2 * t["l"]))
    assert set(terms) == {"ce", "in", "out", "l", "rdl"}


def test_criterion_with_bfloat16_features():
    crit = build_criterion("rdl", 4, 8)
    f = torch.randn(6, 8, dtype=torch.bfloat16, requires_grad=True)
    z = torch.randn(6, 4, dtype=torch.bfloat16, requires_grad=True)
    loss, _, _ = crit(f, z, torch.randint(0, 4, (6,)))
    loss.backward()
    assert torch.isfinite(loss) and f.grad.dtype == torch.bfloat16 and torch.isfinite(f.grad.float()).all()


@pytest.mark.parametrize("call,msg", [
    (lambda: build_criterion("triplet", 5), "unknown name 'triplet'"),
    (lambda: build_criterion("arcface", 5, 8, margin=0.1), "unknown key 'arcface.margin'; valid keys in arcface: s, m"),
    (lambda: build_criterion("rdl", 5, 8, lamda1=0.1), "unknown key 'rdl.lamda1'; valid keys in rdl: lambda1, lambda2"),
    (lambda: build_criterion("softmax", 5, 8, weight=1), "unknown key 'softmax.weight'; valid keys in softmax: (none)"),
    (lambda: RobustDecoupleLoss(5, 8, terms=("in", "norm")), "unknown key 'terms.norm'; valid keys in terms: in, out, l"),
    (lambda: build_criterion("rdl", 5, 8)(torch.randn(4, 9), torch.randn(4, 5), torch.zeros(4, dtype=torch.long)),
     "features: expected a tensor of shape (N, 8), got (4, 9)"),
    (lambda: build_criterion("rdl", 5, 8)(torch.randn(4, 8), torch.randn(4, 5), torch.tensor([0, 1, 2, 5])),
     "labels: values must lie in [0, 4]"),
    (lambda: build_criterion("center", 5, 8)(torch.randn(4, 8), torch.randn(4, 5), torch.zeros(3, dtype=torch.long)),
     "labels: expected shape (4,)"),
    (lambda: build_criterion("softmax", 5, 8)(torch.randn(4, 8), torch.randn(3, 5), torch.zeros(4, dtype=torch.long)),
     "logits: expected shape"),
    (lambda: build_criterion("cosface", 5, 8)(torch.randn(4, 8).long(), None, torch.zeros(4, dtype=torch.long)),
     "features: expected a floating dtype"),
    (lambda: RobustDecoupleLoss(5, 8, variant="code"), "variant: expected 'paper' or 'official'"),
    (lambda: SphereFaceLoss(5, m=5), "m: SphereFace margin must be an integer in 1..4"),
])
def test_bad_inputs_one_line_errors(call, msg):
    with pytest.raises(ValueError) as e:
        call()
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_centres_train_with_plain_sgd_and_reduce_rdl():
    """A few SGD steps on the centres alone (lr 0.1, as the training recipe) lower L_A_in for fixed features."""
    torch.manual_seed(0)
    m = RobustDecoupleLoss(4, 8)
    x, y = torch.randn(32, 8), torch.arange(4).repeat(8)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    before = m.terms(x, y)["in"].item()
    for _ in range(50):
        opt.zero_grad(); m(x, y).backward(); opt.step()
    assert m.terms(x, y)["in"].item() < before - 0.05


def test_descending_eq8_lowers_the_cosine_to_other_centres():
    """With the corrected index (k != y_i), gradient descent on L_Aout pushes features away from the other
    classes' centres; Eq 18/19 as printed would do the opposite."""
    torch.manual_seed(0)
    x, c, y = torch.randn(20, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64), torch.arange(4).repeat(5)

    def mean_other_cos(x):
        S = cosine_matrix(x, c)[0]
        return (S.sum(1) - S.gather(1, y[:, None]).squeeze(1)).mean() / 3

    before = mean_other_cos(x).item()
    x = x.clone().requires_grad_()
    opt = torch.optim.SGD([x], lr=10.0)
    for _ in range(30):
        opt.zero_grad(); angle_out(cosine_matrix(x, c)[0], y).backward(); opt.step()
    assert mean_other_cos(x.detach()).item() < before - 0.1


def test_center_loss_keeps_its_counts_on_the_centres_device(monkeypatch):
    "No CUDA here: the meta device stands in for it; every tensor CenterLoss makes must follow the centres."
    import mdr_gcn_nb.losses as L
    monkeypatch.setattr(L, "_check_inputs", lambda *a, **k: None)     # value checks cannot run on meta tensors
    m = L.CenterLoss(3, 4).to("meta")
    out = m(torch.randn(5, 4, device="meta"), torch.zeros(5, dtype=torch.long, device="meta"))
    assert out.device.type == "meta"
