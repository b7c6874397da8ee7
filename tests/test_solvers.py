"""Fixed-grid RK4 (3/8 rule) of :mod:`sketchode.numerics.solvers` against torchdiffeq and against exact solutions."""

import math

import pytest
import torch
import torchdiffeq

from sketchode.numerics.solvers import RK4_STAGES, check_grid, rk4, rk4_second_order_positions, stage_times


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _nonuniform_grid(G=23, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.cumsum(torch.rand(G, generator=g, dtype=dtype) * 0.3 + 0.01, 0) - 0.2


def _nonlinear_field(seed=0, D=5):
    """A time-dependent, non-linear, non-autonomous field on a (B, D) state (float64)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64) / math.sqrt(D)
    c = torch.randn(D, generator=g, dtype=torch.float64)

    def f(t, y):
        return torch.tanh(y @ A.t()) + torch.sin(3 * t) * c - 0.1 * y**2

    return f


def test_rk4_equals_torchdiffeq_on_nonuniform_grid():
    t = _nonuniform_grid()
    f = _nonlinear_field()
    y0 = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = rk4(f, y0, t)
    ref = torchdiffeq.odeint(f, y0, t, method="rk4")
    assert ours.shape == (len(t), 4, 5)
    assert torch.equal(ours[0], y0)
    assert torch.allclose(ours, ref, rtol=0, atol=1e-6)
    # in fact they are the same arithmetic: round-off only
    assert (ours - ref).abs().max() < 1e-12
    # and it is not a trivial solve: the state moves by O(1)
    assert (ours[-1] - y0).abs().max() > 0.1


def test_rk4_is_the_three_eighths_rule():
    """One step on y' = t^3 (polynomial of degree 3) is exact, and the stages sit at t0 + (0, 1/3, 2/3, 1) h."""
    t = torch.tensor([0.5, 1.7], dtype=torch.float64)
    y = rk4(lambda s, y: s**3 * torch.ones_like(y), torch.zeros(1, dtype=torch.float64), t)
    assert torch.allclose(y[-1], (t[1] ** 4 - t[0] ** 4) / 4, atol=1e-14)
    assert RK4_STAGES == (0.0, 1 / 3, 2 / 3, 1.0)


@pytest.mark.parametrize("problem", ["decay", "oscillator"])
def test_rk4_fourth_order_convergence(problem):
    T = 2.0
    if problem == "decay":
        f = lambda t, y: -y  # noqa: E731
        y0 = torch.tensor([1.0], dtype=torch.float64)
        exact = torch.tensor([math.exp(-T)], dtype=torch.float64)
    else:  # x'' = -x as [x, v]
        f = lambda t, y: torch.stack([y[1], -y[0]])  # noqa: E731
        y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
        exact = torch.tensor([math.cos(T), -math.sin(T)], dtype=torch.float64)
    errs = []
    for n in (8, 16, 32, 64):
        t = torch.linspace(0, T, n + 1, dtype=torch.float64)
        errs.append(float((rk4(f, y0, t)[-1] - exact).abs().max()))
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    # 4th order: halving h divides the global error by 2^4 = 16 (asymptotically)
    for r in ratios:
        assert 13.0 < r < 19.0, (errs, ratios)
    assert errs[-1] < 1e-7


def test_stage_times_are_the_times_torchdiffeq_evaluates():
    t = _nonuniform_grid(G=11, dtype=torch.float64)
    seen = []

    def f(s, y):
        seen.append(s.clone())
        return -y

    torchdiffeq.odeint(f, torch.ones(2, dtype=torch.float64), t, method="rk4")
    seen = torch.stack(seen)
    ts = stage_times(t)
    assert ts.shape == (len(t) - 1, 4)
    assert seen.shape == (4 * (len(t) - 1),)
    # bit for bit: a control evaluated at stage_times is the one torchcde sees
    assert torch.equal(ts.reshape(-1), seen)
    assert torch.equal(ts[:, 0], t[:-1]) and torch.equal(ts[:, 3], t[1:])
    # and rk4 calls f at exactly those times, in that order
    ours = []
    rk4(lambda s, y: (ours.append(s.clone()), -y)[1], torch.ones(2, dtype=torch.float64), t)
    assert torch.equal(torch.stack(ours), seen)


@pytest.mark.parametrize(
    "t, pattern",
    [
        (torch.tensor([0.0, 1.0, 1.0, 2.0]), r"t\[1\] = 1 >= t\[2\] = 1"),  # repeated point
        (torch.tensor([0.0, 1.0, 2.0, 1.5, 3.0]), r"t\[2\] = 2 >= t\[3\] = 1.5"),  # decreasing
        (torch.tensor([0.0, 1.0, float("nan"), 3.0]), r"non-finite value nan at index 2"),
        (torch.tensor([0.0, float("inf")]), r"non-finite value inf at index 1"),
        (torch.zeros(3, 4), r"1-D, got shape \(3, 4\)"),
        (torch.tensor([0.0]), r"at least 2 points, got 1"),
        (torch.tensor([], dtype=torch.float32), r"at least 2 points, got 0"),
        (torch.arange(5), r"floating point"),
    ],
)
def test_check_grid_names_the_offence(t, pattern):
    with pytest.raises(ValueError, match=pattern) as e:
        check_grid(t, "mysolver")
    assert str(e.value).startswith("mysolver:")
    # the solver validates before calling f
    calls = []
    with pytest.raises(ValueError, match=pattern):
        rk4(lambda s, y: calls.append(s) or y, torch.zeros(1, dtype=t.dtype), t)
    assert calls == []


def test_check_grid_accepts_and_returns():
    t = torch.tensor([0.0, 0.1, 5.0])
    assert check_grid(t) is t
    with pytest.raises(TypeError, match="tensor"):
        check_grid([0.0, 1.0])
    assert check_grid(torch.tensor([2.0]), min_points=1).numel() == 1


def test_second_order_positions_equal_rk4_on_joint_state():
    """p' = v, v' = F(v, t): positions from the velocity's stages == RK4 on [p, v] (non-uniform grid)."""
    t = _nonuniform_grid(G=17, seed=3)
    D = 4
    g = torch.Generator().manual_seed(2)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)

    def F(s, v):
        return torch.cos(v @ A.t() + s) - 0.3 * v

    p0 = torch.randn(3, D, generator=g, dtype=torch.float64)
    v0 = torch.randn(3, D, generator=g, dtype=torch.float64)

    joint = rk4(lambda s, y: torch.cat([y[:, D:], F(s, y[:, D:])], 1), torch.cat([p0, v0], 1), t)

    # the velocity solve with its stages recorded
    ts, h = stage_times(t), t[1:] - t[:-1]
    v, vs, k1s, k2s, k3s = v0, [], [], [], []
    for n in range(len(t) - 1):
        k1 = F(ts[n, 0], v)
        k2 = F(ts[n, 1], v + h[n] * k1 / 3)
        k3 = F(ts[n, 2], v + h[n] * (k2 - k1 / 3))
        k4 = F(ts[n, 3], v + h[n] * (k1 - k2 + k3))
        vs.append(v), k1s.append(k1), k2s.append(k2), k3s.append(k3)
        v = v + h[n] * (k1 + 3 * (k2 + k3) + k4) / 8
    pos = rk4_second_order_positions(p0, torch.stack(vs), torch.stack(k1s), torch.stack(k2s), torch.stack(k3s), h)
    assert pos.shape == (len(t), 3, D)
    assert torch.allclose(pos, joint[..., :D], rtol=0, atol=1e-12)
    assert torch.allclose(v, joint[-1, :, D:], rtol=0, atol=1e-12)
    assert (pos[-1] - p0).abs().max() > 0.1


def test_rk4_loop_is_torchdiffeqs_rk4_to_the_bit_and_keeps_stages():
    import torchdiffeq

    from sketchode.numerics.solvers import rk4_loop, stage_times

    f = lambda t, y: torch.sin(3 * y) + t  # noqa: E731
    y0 = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    ts = stage_times(t)
    ys, (k1, k2, k3) = rk4_loop(lambda n, j, y: f(ts[n, j], y), y0, (t[1:] - t[:-1]).unbind(0), keep_stages=True)
    assert torch.equal(ys, torchdiffeq.odeint(f, y0, t, method="rk4"))
    assert k1.shape == (29, 5) and torch.equal(k1[0], f(t[0], y0))


@pytest.mark.parametrize("activation", ["tanh", "cos"])
def test_model_fallback_loops_use_the_one_rk4_and_match_the_libraries(activation):
    """The encoder's and decoder's non-fused paths (any activation) run solvers.rk4_loop: equal to torchcde/torchdiffeq."""
    from sketchode.models.decoder import ODEDecoder
    from sketchode.models.encoder import CDEEncoder

    torch.manual_seed(0)
    enc = CDEEncoder(channels=4, d=8, latent=4, activation=activation).double()
    path = torch.randn(3, 12, 4, dtype=torch.float64).cumsum(1)
    t = torch.linspace(0, 1, 12, dtype=torch.float64)
    assert torch.allclose(enc.solve(path, t), enc.solve(path, t, solver="torchcde"), atol=1e-12)
    dec = ODEDecoder(latent=4, d=8, activation=activation).double()
    z = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(dec.solve(z, t), dec.solve(z, t, solver="torchdiffeq"), atol=1e-12)


def test_the_rk4_update_is_written_once_outside_the_fused_solver():
    """The 3/8 rule's update appears in solvers.py (the reference) and the fused solver only (issue: one of each)."""
    import re
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[1] / "sketchode"
    update = re.compile(r"k1 \+ 3 \* \(k2 \+ k3\) \+ k4")
    found = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if update.search(p.read_text()))
    assert found == ["numerics/solvers.py"], found


def test_check_solver_names_the_model_and_the_reference():
    from sketchode.numerics.solvers import check_solver

    assert check_solver("fast", False, "M") == ("fast", False)
    with pytest.raises(ValueError, match=r"M: solver must be 'fast' or 'torchcde', got 'rk45'"):
        check_solver("rk45", False, "M", "torchcde")
    with pytest.raises(ValueError, match=r"M: adjoint=True needs solver='reference'"):
        check_solver("fast", True, "M")
