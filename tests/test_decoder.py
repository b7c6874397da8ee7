"""The second-order augmented ODE decoder: fast path == torchdiffeq, adjoint ~ direct, initial conditions,
the latent code as a fixed input of F, continuous-time decoding, input checks."""

import pytest
import torch

import sketchode.models.decoder as decoder_mod
from sketchode.models.decoder import ODEDecoder, decoding_grid
from sketchode.models.dynamics import frequencies, override_w


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _dec(seed=0, **kw):
    torch.manual_seed(seed)
    return ODEDecoder(**kw)


def _z(B=8, l=48, seed=1, dtype=torch.float32):
    return torch.randn(B, l, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _grid(G=75, T=5.0, dtype=torch.float32, uniform=True):
    u = torch.linspace(0, 1, G, dtype=torch.float64)
    return (T * (u if uniform else 0.6 * u + 0.4 * u**2)).to(dtype)


def _rel(a, b):
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp_min(1e-30))


CONFIGS = {
    "cos": dict(),  # fused path
    "learned-w": dict(learn_w=True, w=3.0),  # fused, frequency folded differentiably
    "sin-1layer": dict(activation="sin", hidden=(50,), w=2.0),
    "relu": dict(activation="relu"),  # un-fused loop
    "stroke": dict(visible=2),  # the multi-stroke format (x, y only)
}


@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_fast_equals_torchdiffeq(name, uniform):
    """Paper sizes (l=48, d=64, B=8, G=75), float32: 1e-5 relative to the trajectory's scale."""
    dec = _dec(latent=48, d=64, **CONFIGS[name])
    z, t = _z(), _grid(uniform=uniform)
    vis = dec(z, t)
    pos, vel = dec.solve(z, t, full=True)
    rpos, rvel = dec.solve(z, t, full=True, solver="torchdiffeq")
    v = dec.visible
    assert vis.shape == (8, 75, v) and pos.shape == vel.shape == rpos.shape == (8, 75, v + 64)
    assert rpos[..., :v].abs().max() > 0.5  # a trajectory that moves
    assert _rel(vis, rpos[..., :v]) < 1e-5
    assert _rel(pos, rpos) < 1e-5 and _rel(vel, rvel) < 1e-5
    assert torch.equal(pos[..., :v], vis)  # full=True and the visible output are the same solve


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["cos", "learned-w", "relu"])
def test_fast_gradients_equal_torchdiffeq(name, dtype):
    """Gradients w.r.t. z and every parameter; float64 to 1e-9 (round-off), float32 rtol 1e-4."""
    dec = _dec(latent=8, d=16, **CONFIGS[name]).to(dtype)
    z = _z(B=4, l=8, dtype=dtype).requires_grad_()
    t = _grid(G=40, dtype=dtype, uniform=False)
    leaves = [z, *dec.parameters()]
    names = ["z"] + [n for n, _ in dec.named_parameters()]
    w = torch.randn(4, 40, 3, generator=torch.Generator().manual_seed(2)).to(dtype)
    gf = torch.autograd.grad((dec(z, t) * w).sum(), leaves)
    gr = torch.autograd.grad((dec.solve(z, t, solver="torchdiffeq") * w).sum(), leaves)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    for n, a, b in zip(names, gf, gr):
        assert float(b.abs().max()) > 0, n
        assert _rel(a, b) < tol, (n, _rel(a, b))
    # the hidden *position* h(t0) feeds nothing observed (F reads velocities): its rows of L_dec get no gradient
    gL = gf[names.index("L_dec.weight")]
    assert torch.all(gL[: dec.d] == 0) and gL[dec.d:].abs().max() > 0


def test_full_state_gradients_equal_torchdiffeq():
    """With full=True the hidden position is an output too, and the gradients still agree."""
    dec = _dec(latent=6, d=8).double()
    z = _z(B=3, l=6, dtype=torch.float64).requires_grad_()
    t = _grid(G=30, dtype=torch.float64, uniform=False)
    leaves = [z, *dec.parameters()]
    loss = lambda s: sum((x.sin() * (i + 1)).sum() for i, x in enumerate(dec.solve(z, t, full=True, solver=s)))  # noqa: E731
    for a, b in zip(torch.autograd.grad(loss("fast"), leaves), torch.autograd.grad(loss("torchdiffeq"), leaves)):
        assert _rel(a, b) < 1e-9


def test_state0_override():
    """The multi-stroke chain passes (a0, a0') itself: both solvers start there and agree, gradients included."""
    dec = _dec(latent=6, d=8, w=2.0).double()
    z = _z(B=3, l=6, dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    a0 = torch.randn(3, 11, generator=g, dtype=torch.float64, requires_grad=True)
    v0 = torch.randn(3, 11, generator=g, dtype=torch.float64, requires_grad=True)
    t = _grid(G=25, dtype=torch.float64, uniform=False)
    pos, vel = dec.solve(z, t, state0=(a0, v0), full=True)
    assert torch.equal(pos[:, 0], a0) and torch.equal(vel[:, 0], v0)
    rpos, rvel = dec.solve(z, t, state0=(a0, v0), full=True, solver="torchdiffeq")
    assert _rel(pos, rpos) < 1e-12 and _rel(vel, rvel) < 1e-12
    gf = torch.autograd.grad(dec.solve(z, t, state0=(a0, v0)).sum(), [a0, v0])
    gr = torch.autograd.grad(dec.solve(z, t, state0=(a0, v0), solver="torchdiffeq").sum(), [a0, v0])
    for a, b in zip(gf, gr):
        assert _rel(a, b) < 1e-9
    assert torch.all(gf[0][:, 3:] == 0)  # hidden positions feed nothing visible (F reads velocities)
    # the visible start translates all 25 points of the trajectory: d(sum)/d s(0) = 25
    assert torch.allclose(gf[0][:, :3], torch.full((3, 3), 25.0, dtype=torch.float64))


def test_adjoint_gradients_match_direct():
    """adjoint=True (torchdiffeq) integrates the adjoint ODE backwards with RK4 on the same grid: its gradient
    differs from the exact gradient of the discrete solve by that solve's O(h^4) truncation error.  float64;
    relative (norm) error < 1e-5 at G=38 (measured ~7e-7) and shrinking > 8x when h halves [~17x]."""
    errs = []
    for G in (38, 75):
        dec = _dec(latent=8, d=16, w=2.0, solver="torchdiffeq").double()
        z = _z(B=4, l=8, dtype=torch.float64).requires_grad_()
        t = _grid(G=G, dtype=torch.float64)
        leaves = [z, *dec.parameters()]
        direct = torch.autograd.grad(dec(z, t).square().sum(), leaves)
        dec.adjoint = True
        adj = torch.autograd.grad(dec(z, t).square().sum(), leaves)
        errs.append(max(float((a - b).norm() / b.norm()) for a, b in zip(adj, direct)))
    assert errs[0] < 1e-5 and errs[0] / errs[1] > 8, errs


def test_adjoint_needs_torchdiffeq():
    with pytest.raises(ValueError, match="adjoint=True needs solver='torchdiffeq'"):
        ODEDecoder(latent=4, d=4, adjoint=True)
    dec = _dec(latent=4, d=4)
    with pytest.raises(ValueError, match="adjoint=True needs solver='torchdiffeq'"):
        dec.solve(_z(2, 4), _grid(5), adjoint=True)
    with pytest.raises(ValueError, match="solver must be"):
        ODEDecoder(latent=4, d=4, solver="euler")


@pytest.mark.parametrize("solver", ["fast", "torchdiffeq"])
def test_visible_start_is_zero(solver):
    """s(0) = 0 and s'(0) = 0 exactly (visible start fixed, eq. 3); the hidden start is L_dec(z)."""
    dec = _dec(latent=8, d=16, w=2.0)
    z = _z(B=5, l=8)
    pos, vel = dec.solve(z, _grid(20), full=True, solver=solver)
    v = dec.visible
    assert torch.all(pos[:, 0, :v] == 0) and torch.all(vel[:, 0, :v] == 0)
    assert torch.all(dec(z, _grid(20))[:, 0] == 0)
    h = dec.L_dec(z)
    assert torch.equal(pos[:, 0, v:], h[:, :16]) and torch.equal(vel[:, 0, v:], h[:, 16:])
    assert pos[:, 1:, :v].abs().min() > 0  # and then it moves


def test_latent_enters_the_acceleration():
    """z is a fixed input of F (appendix B), not only of the initial state: with L_dec zeroed (every start
    identical), different codes give different accelerations at t=0, equal to F([0, 0, z])."""
    dec = _dec(latent=8, d=16, w=2.0).double()
    with torch.no_grad():
        dec.L_dec.weight.zero_()
        dec.L_dec.bias.zero_()
    z = _z(B=2, l=8, dtype=torch.float64)
    h = 1e-6
    _, vel = dec.solve(z, torch.tensor([0.0, h], dtype=torch.float64), full=True)
    acc = (vel[:, 1] - vel[:, 0]) / h  # one RK4 step from v = 0: (v(h) - v(0)) / h = F(0, 0, z) + O(h)
    n = dec.n
    expected = dec.F(torch.cat([torch.zeros(2, n + 1, dtype=torch.float64), z], 1))
    assert torch.allclose(acc, expected, atol=1e-4)
    assert (acc[0] - acc[1]).abs().max() > 1e-2  # same start, different z: different acceleration
    s = dec(z, _grid(20, dtype=torch.float64))
    assert (s[0] - s[1]).abs().max() > 1e-2  # and different drawings


@pytest.mark.parametrize("solver", ["fast", "torchdiffeq"])
def test_grid_starting_after_zero(solver):
    """A grid starting at t > 0 is integrated from 0: it equals the solve on [0, *t] without its first point."""
    dec = _dec(latent=8, d=16, w=2.0).double()
    z = _z(B=3, l=8, dtype=torch.float64)
    t = torch.tensor([0.7, 1.0, 1.1, 2.5, 4.0], dtype=torch.float64)
    union = torch.cat([torch.zeros(1, dtype=torch.float64), t])
    assert torch.equal(decoding_grid(t)[0], union) and decoding_grid(t)[1]
    assert torch.equal(dec.solve(z, t, solver=solver), dec.solve(z, union, solver=solver)[:, 1:])
    pos, vel = dec.solve(z, t, full=True, solver=solver)
    upos, uvel = dec.solve(z, union, full=True, solver=solver)
    assert torch.equal(pos, upos[:, 1:]) and torch.equal(vel, uvel[:, 1:])
    assert pos.shape[1] == 5 and pos[:, 0, :3].abs().min() > 0  # not the zero start
    # a single point after 0 is fine too (it is solved from 0)
    assert torch.equal(dec.solve(z, t[:1], solver=solver), dec.solve(z, union[:2], solver=solver)[:, 1:])


def test_grid_before_zero_or_bad_raises():
    dec = _dec(latent=8, d=16)
    z = _z(B=2, l=8)
    with pytest.raises(ValueError, match="starts at -0.1, before the initial time 0"):
        dec(z, torch.tensor([-0.1, 0.5, 1.0]))
    with pytest.raises(ValueError, match="at least 2 points"):
        dec(z, torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"strictly increasing; t\[1\]"):
        dec(z, torch.tensor([0.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match="non-finite value nan at index 1"):
        dec(z, torch.tensor([0.0, float("nan"), 1.0]))


def test_finer_grid_same_trajectory():
    """Continuous time: decoding at G=297 (4x finer; shares every 4th point with G=75) gives the same
    drawing at the shared times, up to RK4's discretisation error (relative 1e-4 of the scale; measured
    ~1e-6 with w = 3).  A much coarser grid differs by more, so the comparison is not vacuous."""
    dec = _dec(latent=48, d=64, w=3.0)
    z = _z()
    coarse = dec(z, _grid(75))
    fine = dec(z, _grid(297))
    scale = coarse.abs().max()
    assert (fine[:, ::4] - coarse).abs().max() < 1e-4 * scale
    very_coarse = dec(z, _grid(5))
    assert (fine[:, ::74] - very_coarse).abs().max() > 10 * (fine[:, ::4] - coarse).abs().max()


def test_override_w_changes_output_and_restores():
    dec = _dec(latent=8, d=16, w=3.0, learn_w=True)
    z, t = _z(B=3, l=8), _grid(30)
    before = dec(z, t).detach()
    w_before = frequencies(dec)
    with override_w(dec, scale=0.5):
        assert frequencies(dec) == pytest.approx([0.5 * w for w in w_before], rel=1e-6)
        inside = dec(z, t)
        # the fast path folds the overridden w; torchdiffeq reads it through the modules: same thing
        assert _rel(inside, dec.solve(z, t, solver="torchdiffeq")) < 1e-5
    assert (inside - before).abs().max() > 1e-2
    assert frequencies(dec) == w_before
    assert torch.equal(dec(z, t), before)


@pytest.fixture
def no_solve(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a solve started before the inputs were validated")

    monkeypatch.setattr(ODEDecoder, "_solve_fast", boom)
    monkeypatch.setattr(ODEDecoder, "_solve_torchdiffeq", boom)
    monkeypatch.setattr(decoder_mod, "rk4_mlp", boom)


@pytest.mark.parametrize("solver", ["fast", "torchdiffeq"])
def test_bad_latent_raises_before_solving(no_solve, solver):
    dec = _dec(latent=8, d=16, solver=solver)
    t = _grid(10)
    z = _z(B=3, l=8)
    bad = z.clone()
    bad[2, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN/inf in z at sample 2, component 5"):
        dec(bad, t)
    bad = z.clone()
    bad[0, 7] = float("-inf")
    with pytest.raises(ValueError, match="sample 0, component 7"):
        dec(bad, t)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\), got \(3, 7\)"):
        dec(z[:, :7], t)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\), got \(8,\)"):
        dec(z[0], t)
    with pytest.raises(ValueError, match="empty batch"):
        dec(z[:0], t)
    with pytest.raises(ValueError, match="floating point"):
        dec(z.long(), t)
    with pytest.raises(TypeError):
        dec(z.tolist(), t)


def test_batch_independence():
    dec = _dec(latent=8, d=16, w=2.0)
    z, t = _z(B=5, l=8), _grid(25)
    s = dec(z, t)
    for b in (0, 4):
        assert torch.allclose(dec(z[b: b + 1], t), s[b: b + 1], atol=1e-6)


def test_state0_shape_is_checked():
    import torch as _t
    from sketchode.models.decoder import ODEDecoder as _D
    dec = _D(latent=3, d=4, visible=2, hidden=(5,))
    z = _t.zeros(2, 3)
    with pytest.raises(ValueError, match="state0 must be two tensors of shape"):
        dec.solve(z, _t.linspace(0, 1, 5), state0=(_t.zeros(2, 6), _t.zeros(3, 6)))
