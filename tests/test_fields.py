"""Tests for sketchode.book.ch03_vector_fields (paper 4.5, figure 4 left; chapter 3)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from sketchode.models.dynamics import MLP
from sketchode.book.ch03_vector_fields import (
    adaptive_nfe,
    default_starts,
    field_complexity,
    field_on_grid,
    jacobian_on_grid,
    plot_field,
    plot_field_grid,
    plot_trajectories,
    random_field,
    rk4_errors,
    self_intersections,
    trajectories,
    turning,
)
from sketchode.numerics.solvers import rk4


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


class Linear(nn.Module):
    """f(x) = x A^T, a linear field."""

    def __init__(self, A):
        super().__init__()
        self.register_buffer("A", torch.as_tensor(A, dtype=torch.float32))

    def forward(self, x):
        return x @ self.A.T.to(x.dtype)


class PlaneWaves(nn.Module):
    """(sin(2 pi k x), cos(2 pi k y)): RMS spatial frequency exactly k."""

    in_dim = 2

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        a = 2 * math.pi * self.k
        return torch.stack([torch.sin(a * x[..., 0]), torch.cos(a * x[..., 1])], dim=-1)


# ------------------------------------------------------------ random_field
def test_random_field_is_seeded_and_shares_weights_across_activations():
    state = torch.random.get_rng_state()
    a = random_field("cos", w=2.0, seed=3)
    b = random_field("cos", w=2.0, seed=3)
    c = random_field("relu", seed=3)
    d = random_field("cos", w=0.5, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert isinstance(a, MLP) and a.in_dim == 2 and a.out_dim == 2 and a.hidden == (32, 32)
    for la, lb, lc, ld in zip(a.linears, b.linears, c.linears, d.linears):
        assert torch.equal(la.weight, lb.weight) and torch.equal(la.bias, lb.bias)
        assert torch.equal(la.weight, lc.weight)  # same seed, same weights, other activation
        assert not torch.equal(la.weight, ld.weight)
    assert not any(p.requires_grad for p in a.parameters()) and not a.training


def test_random_field_init_and_time():
    f = random_field("tanh", seed=0, hidden=(64, 64), gain=3.0)
    w = f.linears[1].weight
    assert abs(float(w.std()) - 3.0 / 8.0) < 0.03  # N(0, gain^2 / fan_in)
    g = random_field("tanh", seed=0, init="default")
    assert float(g.linears[0].weight.abs().max()) <= 1 / math.sqrt(2)
    s = random_field("cos", w=2.0, seed=0, init="siren")
    assert s.init == "siren"
    ft = random_field("cos", seed=0, time=True)
    assert ft.in_dim == 3
    assert ft(torch.zeros(5, 3)).shape == (5, 2)


@pytest.mark.parametrize(
    "kw, err",
    [
        (dict(activation="relu", w=2.0), ValueError),  # w only for periodic activations
        (dict(activation="cos", init="xavier"), ValueError),
        (dict(activation="tanh", init="siren"), ValueError),
        (dict(activation="cos", gain=0.0), ValueError),
        (dict(activation="cos", seed=1.5), TypeError),
        (dict(activation="swish"), ValueError),
    ],
)
def test_random_field_errors(kw, err):
    with pytest.raises(err):
        random_field(**kw)


# ------------------------------------------------------------ grids
def test_field_on_grid_layout_and_values():
    f = random_field("cos", w=1.0, seed=0)
    X, Y, U, V = field_on_grid(f, n=7, lim=2.0)
    assert X.shape == Y.shape == U.shape == V.shape == (7, 7)
    assert np.allclose(X[0], np.linspace(-2, 2, 7), atol=1e-6)
    assert np.allclose(Y[:, 0], np.linspace(-2, 2, 7), atol=1e-6)
    i, j = 2, 5
    fx = f(torch.tensor([[X[i, j], Y[i, j]]], dtype=torch.float32))[0]
    assert np.allclose([U[i, j], V[i, j]], fx.numpy(), atol=1e-6)


def test_field_on_grid_time_dependent():
    f = random_field("cos", w=1.0, seed=0, time=True)
    _, _, U0, _ = field_on_grid(f, n=5, t=0.0)
    X, Y, U1, _ = field_on_grid(f, n=5, t=1.0)
    assert not np.allclose(U0, U1)
    x = torch.tensor([[X[1, 3], Y[1, 3], 1.0]], dtype=torch.float32)
    assert np.isclose(U1[1, 3], float(f(x)[0, 0]), atol=1e-6)


def test_grid_errors():
    f = random_field("cos", seed=0)
    with pytest.raises(ValueError):
        field_on_grid(f, n=1)
    with pytest.raises(ValueError):
        field_on_grid(f, lim=-1.0)
    with pytest.raises(ValueError, match="velocities"):
        field_on_grid(lambda x: x[..., :1], n=4)
    with pytest.raises(ValueError, match="in_dim"):
        field_on_grid(MLP(4, 2, hidden=(8,)), n=4)


def test_jacobian_on_grid_linear():
    A = np.array([[1.0, 2.0], [-3.0, 0.5]])
    F, J = jacobian_on_grid(Linear(A), n=9)
    assert F.shape == (9, 9, 2) and J.shape == (9, 9, 2, 2)
    assert np.allclose(J, A, atol=1e-6)


def test_jacobian_on_grid_matches_finite_differences():
    f = random_field("tanh", seed=1)
    n, lim = 129, 1.0
    F, J = jacobian_on_grid(f, n=n, lim=lim)
    h = 2 * lim / (n - 1)
    dfdx = (F[1:-1, 2:] - F[1:-1, :-2]) / (2 * h)  # x varies along columns
    dfdy = (F[2:, 1:-1] - F[:-2, 1:-1]) / (2 * h)  # y along rows
    tol = 1e-2 * np.abs(J).max()
    assert np.allclose(J[1:-1, 1:-1, :, 0], dfdx, atol=tol)
    assert np.allclose(J[1:-1, 1:-1, :, 1], dfdy, atol=tol)


# ------------------------------------------------------------ trajectories
def test_trajectories_equal_rk4_and_exact_linear_solution():
    A = np.array([[-0.5, 1.0], [-1.0, -0.5]])  # a stable spiral
    f = Linear(A)
    y0 = torch.tensor([[0.5, 0.0], [0.0, -0.8]])
    p = trajectories(f, y0, T=5.0, G=101)
    assert p.shape == (101, 2, 2) and not p.requires_grad
    t = torch.linspace(0, 5.0, 101)
    assert torch.allclose(p, rk4(lambda s, y: f(y), y0, t))
    exact = torch.stack([torch.matrix_exp(torch.tensor(A, dtype=torch.float64) * float(s)) for s in t])
    exact = torch.einsum("gij,bj->gbi", exact, y0.double()).float()
    assert torch.allclose(p, exact, atol=1e-5)
    single = trajectories(f, [0.5, 0.0], T=5.0, G=101)
    assert single.shape == (101, 2) and torch.allclose(single, p[:, 0])


def test_trajectories_errors():
    f = random_field("cos", seed=0)
    with pytest.raises(ValueError):
        trajectories(f, torch.zeros(3, 3))
    with pytest.raises(ValueError):
        trajectories(f, torch.zeros(3, 2), T=0.0)
    with pytest.raises(ValueError):
        trajectories(f, torch.zeros(3, 2), G=1)


def test_default_starts():
    s = default_starts(10, lim=2.0, seed=1)
    assert s.shape == (10, 2) and float(s.abs().max()) <= 1.6
    assert torch.equal(s, default_starts(10, lim=2.0, seed=1))
    with pytest.raises(ValueError):
        default_starts(0)


# ------------------------------------------------------------ measures
def test_field_complexity_known_fields():
    for k in (1, 3):
        assert field_complexity(PlaneWaves(k), n=65) == pytest.approx(k, rel=1e-5)
    lin = field_complexity(Linear([[1.0, 2.0], [-3.0, 0.5]]), n=201)
    assert lin == pytest.approx(math.sqrt(3) / (2 * math.pi), rel=1e-2)
    # independent of the field's magnitude and of lim for a linear field only through 1 / lim
    assert field_complexity(Linear([[5.0, 0.0], [0.0, 5.0]]), n=201, lim=2.0) == pytest.approx(lin / 2, rel=1e-2)
    assert field_complexity(lambda x: torch.ones_like(x) * 0.3, n=8) == 0.0


def test_field_complexity_grows_with_w_for_cos():
    for seed in (0, 1):
        k = [field_complexity(random_field("cos", w=w, seed=seed), n=48) for w in (0.5, 1.0, 2.0, 4.0)]
        assert all(b > a for a, b in zip(k, k[1:])), k
        relu = field_complexity(random_field("relu", seed=seed), n=48)
        assert k[-1] > 3 * relu


def test_turning():
    s = np.linspace(0, 1, 101)
    line = np.stack([s, 2 * s], axis=-1)
    assert turning(line)[0] == pytest.approx(0.0, abs=1e-9)
    a = np.linspace(0, 2 * np.pi, 401)
    circle = np.stack([np.cos(a), np.sin(a)], axis=-1)
    assert turning(circle)[0] == pytest.approx(1.0, rel=1e-2)
    # stalled at the end (repeated points, round-off headings) adds nothing
    stalled = np.concatenate([circle, circle[-1:] + 1e-9 * np.random.default_rng(0).normal(size=(50, 2))])
    assert turning(stalled)[0] == pytest.approx(turning(circle)[0], rel=1e-6)
    both = turning(np.stack([line, circle[::4][:101]], axis=1))
    assert both.shape == (2,)


def test_self_intersections():
    s = np.linspace(0, 1, 50)
    assert self_intersections(np.stack([s, s ** 2], -1))[0] == 0
    a = np.linspace(0.3, 2 * np.pi + 0.3, 400)
    eight = np.stack([np.sin(a), np.sin(a) * np.cos(a)], -1)  # crosses itself at the origin once
    assert self_intersections(eight)[0] == 1
    loops = np.stack([np.cos(a * 2) + 0.3 * a, np.sin(a * 2)], -1)  # a curl per 2 pi/2: two loops
    out = self_intersections(np.stack([np.stack([s, s], -1)[:50], loops[::8][:50]], axis=1))
    assert out.tolist()[0] == 0 and out[1] >= 1
    # an autonomous 2-D field never makes a trajectory cross itself; a time-dependent one can
    f = random_field("cos", w=2.0, seed=0)
    st = default_starts(8, seed=0)
    assert self_intersections(trajectories(f, st, G=150)).sum() == 0
    ft = random_field("cos", w=2.0, seed=0, time=True)
    assert self_intersections(trajectories(ft, st, G=150)).sum() > 0
    with pytest.raises(ValueError):
        self_intersections(np.zeros((5, 3)))


def test_rk4_errors_order():
    st = default_starts(6, seed=0)
    Gs = (51, 101, 201)
    h = 5.0 / (np.array(Gs) - 1)
    e = rk4_errors(random_field("tanh", seed=0), st, Gs=Gs, G_ref=801)
    assert e.shape == (3,) and np.all(np.diff(e) < 0)
    assert np.polyfit(np.log(h), np.log(e), 1)[0] > 3.5
    e = rk4_errors(random_field("relu", seed=0), st, Gs=Gs, G_ref=801)
    assert np.polyfit(np.log(h), np.log(e), 1)[0] < 3.0
    with pytest.raises(ValueError, match="multiple"):
        rk4_errors(random_field("tanh", seed=0), st, Gs=(51, 70), G_ref=801)


def test_adaptive_nfe_relu_costs_more_than_its_smooth_twin():
    st = default_starts(4, seed=0)
    relu = adaptive_nfe(random_field("relu", seed=0), st, tol=1e-7)
    soft = adaptive_nfe(random_field("softplus", seed=0), st, tol=1e-7)  # same weights, smooth
    assert relu > 1.5 * soft > 0
    with pytest.raises(ValueError):
        adaptive_nfe(random_field("relu", seed=0), st, tol=0.0)


# ------------------------------------------------------------ figures
def test_plots():
    f = random_field("cos", w=1.0, seed=0)
    ax = plot_field(f, n=9, density=0.3, title="x", colorbar=True, G=20)
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_title() == "x"
    ax2 = plot_trajectories(trajectories(f, default_starts(3), G=20))
    assert len(ax2.collections) == 1
    fig = plot_field_grid(("relu", "cos"), ws=(1.0, 2.0), seed=[0, 1], G=20, size=1.0, n=9, density=0.3)
    assert len(fig.axes) == 4 * 3  # two panels for cos, one for relu; (field, trajectories) x 2 seeds
    fig2 = plot_field_grid(("cos",), ws=(0.5,), below=False, G=20, time=True, n=9, density=0.3)
    assert len(fig2.axes) == 1
    with pytest.raises(ValueError):
        plot_field_grid((), ws=(1.0,))
    plt.close("all")
