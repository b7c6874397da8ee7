"""The Neural CDE encoder: fast path == torchcde, adjoint ~ direct, the spline on real time, input checks."""

import pytest
import torch
import torchcde

import sketchode.models.encoder as encoder_mod
from sketchode.models.encoder import CDEEncoder, spline


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _grid(G=75, T=5.0, dtype=torch.float32, uniform=False):
    """A grid on [0, T]; non-uniform by default (smoothly varying spacing, like a union grid)."""
    u = torch.linspace(0, 1, G, dtype=torch.float64)
    t = T * (u if uniform else 0.6 * u + 0.4 * u**2)
    return t.to(dtype)


def _path(t, B=8, seed=0):
    """A smooth drawing-like control ``[t, x, y, pen]`` (B, G, 4), non-zero at t0 so L(X(t0)) matters."""
    g = torch.Generator().manual_seed(seed)
    t64 = t.double()
    fr = torch.rand(B, 1, 2, generator=g, dtype=torch.float64) * 2 + 0.5
    ph = torch.rand(B, 1, 2, generator=g, dtype=torch.float64) * 6
    xy = torch.sin(fr * t64[None, :, None] + ph)
    pen = torch.sigmoid(5 * torch.sin(2 * t64 + ph[:, :, :1].squeeze(-1)))  # smooth 0..1 pen channel
    return torch.cat([t64.expand(B, -1).unsqueeze(-1), xy, pen.unsqueeze(-1)], -1).to(t.dtype)


def _enc(seed=0, **kw):
    torch.manual_seed(seed)
    return CDEEncoder(**kw)


def _rel(a, b):
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp_min(1e-30))


# Fast path code branches: fused (periodic, linear last layer), regrouped un-fused (relu),
# generic (an activation after the last layer), learned w (folded differentiably).
CONFIGS = {
    "cos": dict(final=None),
    "cos-tanh": dict(final="tanh"),
    "relu": dict(final=None, activation="relu"),  # relu needs w = 1 (the default)
    "relu-tanh": dict(final="tanh", activation="relu"),
    "learned-w": dict(final=None, learn_w=True, w=3.0),
    "sin-1layer": dict(final=None, activation="sin", hidden=(40,), w=2.0),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_equals_torchcde(name):
    """Paper sizes d=64, l=48, B=8, G=75 on a non-uniform grid, float32: hidden states agree to 1e-5 (relative)."""
    enc = _enc(d=64, latent=48, **CONFIGS[name])
    t = _grid()
    path = _path(t)
    gf = enc.solve(path, t, solver="fast")
    gr = enc.solve(path, t, solver="torchcde")
    assert gf.shape == gr.shape == (8, 75, 64)
    assert (gr[:, -1] - gr[:, 0]).abs().max() > 0.1  # the state really moves
    # float32 round-off accumulated over 74 steps, on states of size O(1..10)
    assert _rel(gf, gr) < 1e-5, _rel(gf, gr)
    assert torch.equal(gf[:, 0], enc.initial(path[:, 0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["cos", "cos-tanh", "relu", "learned-w"])
def test_fast_gradients_equal_torchcde(name, dtype):
    """Gradients w.r.t. every parameter and the input path.

    float64: the same discrete solve differentiated two ways, so round-off only (rtol 1e-9).  float32:
    rtol 1e-4, except the learned w = 3 field, which amplifies float32 round-off in *both* paths to ~2e-4
    (they agree to 1e-13 in float64), hence 1e-3 there."""
    enc = _enc(d=32, latent=16, **CONFIGS[name]).to(dtype)
    t = _grid(G=50, dtype=dtype)
    path = _path(t, B=4).requires_grad_()
    leaves = [path, *enc.parameters()]
    names = ["path"] + [n for n, _ in enc.named_parameters()]
    w = torch.randn(4, 16, generator=torch.Generator().manual_seed(3)).to(dtype)
    g_fast = torch.autograd.grad((enc(path, t) * w).sum(), leaves)
    enc.solver = "torchcde"
    g_ref = torch.autograd.grad((enc(path, t) * w).sum(), leaves)
    tol = 1e-9 if dtype == torch.float64 else (1e-3 if name == "learned-w" else 1e-4)
    for n, a, b in zip(names, g_fast, g_ref):
        assert float(b.abs().max()) > 0, n
        assert _rel(a, b) < tol, (n, _rel(a, b))
    if name == "learned-w":
        assert sum("w_raw" in n for n in names) == 2  # one learned frequency per hidden layer


def test_path_gradient_through_the_fused_solve():
    """Regression: the fused solve returned no gradient for the control dX, so a path requiring grad
    got only the part through L(X(t0)) and the bias term: silently wrong (found by this test)."""
    enc = _enc(d=8, latent=4, hidden=(9, 9), final=None).double()
    t = _grid(G=30, dtype=torch.float64)
    path = _path(t, B=2).requires_grad_()
    gf = torch.autograd.grad(enc.solve(path, t, solver="fast")[:, -1].sum(), path)[0]
    gr = torch.autograd.grad(enc.solve(path, t, solver="torchcde")[:, -1].sum(), path)[0]
    assert torch.allclose(gf, gr, rtol=1e-9, atol=1e-12)
    assert gf[:, 1:].abs().max() > 1e-3  # later samples of the path matter, not only X(t0)


def test_adjoint_gradients_match_direct_backprop():
    """adjoint=True solves the adjoint ODE backwards with RK4 on the same grid, so its gradient differs from
    the exact gradient of the discrete forward solve by the backward solve's truncation error, not by
    round-off.  Tolerances (float64, so that round-off cannot mask the convergence; measured in brackets):

    * parameters: relative (norm) error < 1e-4 at G=38 [9e-5] and it must shrink > 8x when h halves
      (G=38 -> 75 on the same interval) [~30x]: the signature of a high-order truncation error, which a
      wrong gradient would not show;
    * the input path (through the spline's coefficients): < 1e-3 at G=38 [2e-4], shrinking > 4x [10x].
    """
    errs = []
    for G in (38, 75):
        t = _grid(G=G, dtype=torch.float64, uniform=True)
        enc = _enc(d=16, latent=8, final=None, solver="torchcde").double()
        path = _path(t, B=4).requires_grad_()
        leaves = [path, *enc.parameters()]
        direct = torch.autograd.grad(enc(path, t).square().sum(), leaves)
        enc.adjoint = True
        adj = torch.autograd.grad(enc(path, t).square().sum(), leaves)
        rel = [float((a - b).norm() / b.norm()) for a, b in zip(adj, direct)]
        # the path is an adjoint parameter too (regression: it got no gradient through the adjoint solve,
        # only through L(X(t0)), because adjoint_params listed the field's parameters alone)
        errs.append((rel[0], max(rel[1:])))
    (path38, par38), (path75, par75) = errs
    assert par38 < 1e-4 and par38 / par75 > 8, errs
    assert path38 < 1e-3 and path38 / path75 > 4, errs


def test_adjoint_needs_torchcde():
    with pytest.raises(ValueError, match="adjoint=True needs solver='torchcde'"):
        CDEEncoder(d=4, latent=2, adjoint=True)
    enc = _enc(d=4, latent=2)
    t = _grid(G=5)
    with pytest.raises(ValueError, match="adjoint=True needs solver='torchcde'"):
        enc.solve(_path(t, B=1), t, adjoint=True)
    with pytest.raises(ValueError, match="solver must be"):
        CDEEncoder(d=4, latent=2, solver="dopri5")


def test_spline_is_fitted_on_real_time():
    """x = t^2 sampled on a non-uniform grid: dX/dt of the x channel is 2t (and of the t channel 1).

    The authors' code fitted on the sample index: then the derivative is d x / d i = 2t dt/di, off by the
    local grid spacing (about 20x at G=100 on [0, 5])."""
    G = 100
    u = torch.linspace(0, 1, G, dtype=torch.float64)
    t = 5 * u**1.5  # spacing grows along the grid
    path = torch.stack([t, t**2], -1).unsqueeze(0)
    X = spline(path, t)
    tm = torch.cat([t, (t[1:] + t[:-1]) / 2])  # knots and midpoints
    d = X.derivative(tm)[0]
    assert torch.allclose(d[:, 0], torch.ones_like(tm), atol=1e-12)
    interior = (tm > t[3]) & (tm < t[-4])  # a natural spline bends near the ends (X'' = 0 there)
    assert torch.allclose(d[interior, 1], 2 * tm[interior], atol=2e-3)
    # the reference code's fit: on the index
    Xi = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(path))
    di = Xi.derivative(torch.arange(G, dtype=torch.float64))[0, 5:-5, 1]
    dt_di = (5 * 1.5 * u**0.5 / (G - 1))[5:-5]
    assert torch.allclose(di, 2 * t[5:-5] * dt_di, rtol=1e-3)  # off by the spacing
    factor = (2 * t[5:-5] / di)
    assert factor.min() > 13 and factor[G // 2 - 5] > 18  # 1/spacing


def test_encoder_control_is_the_data_velocity():
    """The fast path feeds h * X'(stage time) to the field: with a constant field the solve integrates X exactly."""
    enc = _enc(d=3, latent=None, hidden=(5,), final=None, channels=2)
    with torch.no_grad():  # G(g) = fixed matrix M (last layer weight zero, bias M)
        lin = enc.field.mlp.linears[-1]
        lin.weight.zero_()
        M = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -2.0]])
        lin.bias.copy_(M.reshape(-1))
    t = _grid(G=60, dtype=torch.float64)
    enc = enc.double()
    path = torch.stack([t, torch.sin(t)], -1).unsqueeze(0)
    g = enc.solve(path, t)
    # g(t) = g(0) + M (X(t) - X(0)): the path increments, independent of how the grid is spaced
    expected = g[:, :1] + (path - path[:, :1]) @ M.double().t()
    assert torch.allclose(g, expected, atol=1e-6)


def test_readout_final_and_max():
    t = _grid(G=30)
    path = _path(t, B=3)
    fin = _enc(d=8, latent=5, readout="final")
    mx = _enc(d=8, latent=5, readout="max")
    g = fin.solve(path, t)
    assert torch.allclose(fin(path, t), fin.L_enc(g[:, -1]), atol=1e-6)
    assert torch.allclose(mx(path, t), mx.L_enc(g.amax(1)), atol=1e-6)  # same seed, same weights
    assert not torch.allclose(fin(path, t), mx(path, t))
    with pytest.raises(ValueError, match="readout"):
        CDEEncoder(d=4, latent=2, readout="mean")


def test_g0_override():
    enc = _enc(d=8, latent=5)
    t = _grid(G=20)
    path = _path(t, B=3)
    g0 = torch.randn(3, 8, requires_grad=True)
    g = enc.solve(path, t, g0=g0)
    assert torch.equal(g[:, 0], g0)
    assert not torch.allclose(g[:, -1], enc.solve(path, t)[:, -1])
    assert torch.autograd.grad(enc(path, t, g0).sum(), g0)[0].abs().sum() > 0
    # fast and torchcde agree with an override too
    assert torch.allclose(g, enc.solve(path, t, g0=g0, solver="torchcde"), atol=1e-5)
    with pytest.raises(ValueError, match=r"g0 must have shape \(B, d\) = \(3, 8\)"):
        enc.solve(path, t, g0=torch.zeros(2, 8))


def test_batch_independence():
    enc = _enc(d=8, latent=5)
    t = _grid(G=25)
    path = _path(t, B=5)
    z = enc(path, t)
    for b in (0, 3):
        assert torch.allclose(enc(path[b: b + 1], t), z[b: b + 1], atol=1e-6)


@pytest.fixture
def no_solve(monkeypatch):
    """Fail if any solve starts: the checks must run first."""
    def boom(*a, **k):
        raise AssertionError("a solve started before the inputs were validated")

    monkeypatch.setattr(encoder_mod, "_fast_cde", boom)
    monkeypatch.setattr(encoder_mod, "spline", boom)
    monkeypatch.setattr(encoder_mod.torchcde, "cdeint", boom)


@pytest.mark.parametrize("solver", ["fast", "torchcde"])
def test_bad_inputs_raise_before_solving(no_solve, solver):
    enc = _enc(d=8, latent=5, solver=solver)
    t = _grid(G=10)
    good = _path(t, B=3)
    with pytest.raises(ValueError, match=r"\(B, G, 4\), got \(3, 10, 3\)"):
        enc(good[..., :3], t)
    with pytest.raises(ValueError, match=r"\(B, G, 4\), got \(10, 4\)"):
        enc(good[0], t)
    with pytest.raises(ValueError, match="empty batch"):
        enc(good[:0], t)
    bad = good.clone()
    bad[2, 7, 1] = float("nan")
    with pytest.raises(ValueError, match="sample 2, time index 7, channel 1"):
        enc(bad, t)
    bad = good.clone()
    bad[1, 0, 3] = float("inf")
    with pytest.raises(ValueError, match="sample 1, time index 0, channel 3"):
        enc(bad, t)
    with pytest.raises(ValueError, match="10 time points but the grid has 9"):
        enc(good, t[:9])
    t2 = t.clone()
    t2[4] = t2[3]
    with pytest.raises(ValueError, match=r"strictly increasing; t\[3\]"):
        enc(good, t2)
    with pytest.raises(ValueError, match="1-D"):
        enc(good, t.expand(3, -1))
    with pytest.raises(TypeError):
        enc(good.tolist(), t)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(8, 75, 4), (2, 3, 10, 5), (1, 3, 2)])
def test_dense_spline_coefficients_equal_torchcde(dtype, shape):
    """natural_cubic_coeffs (one dense solve) = torchcde's loop over the knots, values and path gradients."""
    from sketchode.models.encoder import natural_cubic_coeffs

    g = torch.Generator().manual_seed(1)
    t = torch.cumsum(0.05 + torch.rand(shape[-2], generator=g, dtype=dtype), 0)
    x = torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)
    ours, ref = natural_cubic_coeffs(x, t), torchcde.natural_cubic_coeffs(x, t)
    assert ours.shape == ref.shape
    rel = 1e-12 if dtype == torch.float64 else 2e-6
    assert float((ours - ref).detach().abs().max()) <= rel * float(ref.detach().abs().max())
    w = torch.randn(ref.shape, generator=g, dtype=dtype)
    (ga,) = torch.autograd.grad((ours * w).sum(), x)
    (gb,) = torch.autograd.grad((ref * w).sum(), x)
    assert float((ga - gb).abs().max()) <= 10 * rel * float(gb.abs().max())


def test_dense_spline_leaves_missing_values_to_torchcde():
    from sketchode.models.encoder import natural_cubic_coeffs, spline

    t = torch.linspace(0, 1, 6)
    x = torch.randn(2, 6, 3)
    x[0, 2, 1] = float("nan")
    assert torch.equal(natural_cubic_coeffs(x, t), torchcde.natural_cubic_coeffs(x, t))
    with pytest.raises(ValueError, match="coeffs must be 'torchcde' or 'dense'"):
        spline(x, t, coeffs="thomas")
