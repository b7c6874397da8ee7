"""Toy augmented and second-order Neural ODEs of chapter 4: the target, the models' initial conditions and
solvers (second-order RK4 == RK4 on [position, velocity]), non-crossing of planar first-order solutions,
fitting, self-intersection counting, plotting helpers and input checks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.book.ch04_augmented import (  # noqa: E402
    AugmentedODE,
    FirstOrderODE,
    SecondOrderODE,
    figure_eight,
    fit,
    mse,
    plot_family,
    plot_fits,
    plot_lifted,
    plot_phase,
    second_order_rk4,
    self_intersections,
)
from sketchode.numerics.solvers import rk4  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ target
@pytest.mark.parametrize("rest", [True, False])
def test_figure_eight(rest):
    t, xy = figure_eight(80, T=5.0, rest=rest)  # no grid point falls on the crossing
    assert t.shape == (80,) and xy.shape == (80, 2) and xy.dtype == torch.float32
    assert float(t[0]) == 0 and np.isclose(float(t[-1]), 5.0)
    assert torch.all(xy[0] == 0)  # starts at the origin, like a normalised drawing
    assert np.isclose(float(xy.norm(dim=1).max()), 1.0, atol=1e-3)  # unit distance from its start
    assert torch.allclose(xy[-1], xy[0], atol=1e-6)  # one closed lap
    assert self_intersections(xy) == 1  # crosses itself once, at its centre
    step0 = float((xy[1] - xy[0]).norm())
    step_mid = float((xy[40] - xy[39]).norm())
    assert (step0 < 0.05 * step_mid) == rest  # the pen starts at rest only with rest=True


def test_figure_eight_checks():
    with pytest.raises(ValueError, match="G must be"):
        figure_eight(2)
    with pytest.raises(ValueError, match="T must be"):
        figure_eight(10, T=0.0)


# ------------------------------------------------------- self-intersection
def test_self_intersections_cases():
    x_shape = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], float)
    assert self_intersections(x_shape) == 1
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float)  # closes, touches, does not cross
    assert self_intersections(square) == 0
    spiral = np.stack([np.linspace(0.1, 1, 200) * np.cos(np.linspace(0, 12, 200)),
                       np.linspace(0.1, 1, 200) * np.sin(np.linspace(0, 12, 200))], 1)
    assert self_intersections(spiral) == 0
    two = np.concatenate([x_shape, x_shape[::-1] + [0, 2]])  # two X's joined
    assert self_intersections(two) >= 2
    assert self_intersections(torch.tensor(x_shape)) == 1
    assert self_intersections(x_shape[:3]) == 0
    with pytest.raises(ValueError, match=r"\(G, 2\)"):
        self_intersections(np.zeros((5, 3)))


# ------------------------------------------------------------------ models
def test_first_order_is_rk4_on_the_plane():
    t, _ = figure_eight(30)
    m = FirstOrderODE(seed=3)
    assert m.d == 0 and m.n == 2 and not any(p is m.h0 for p in m.parameters())
    s = m(t)
    assert s.shape == (30, 2) and torch.all(s[0] == 0)
    assert torch.allclose(s, rk4(lambda tt, y: m.f(y), torch.zeros(2), t))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planar_autonomous_solutions_never_cross(seed):
    """Uniqueness: a solution of s' = f(s) in the plane never crosses itself, whatever f is (untrained)."""
    t = torch.linspace(0, 20, 400)
    m = FirstOrderODE(seed=seed, activation="cos", w=3.0)
    with torch.no_grad():
        m.f.linears[-1].weight.mul_(5)  # a strong, curly field
        s = m(t)
    assert float(s.norm(dim=1).max()) > 0.5  # it moves
    assert self_intersections(s) == 0


def test_augmented_state_and_initial_condition():
    t, _ = figure_eight(25)
    m = AugmentedODE(d=3, seed=0)
    assert isinstance(m.h0, torch.nn.Parameter) and m.h0.shape == (3,)
    with torch.no_grad():
        m.h0.copy_(torch.tensor([0.5, -1.0, 2.0]))
    a = m.state(t)
    assert a.shape == (25, 5)
    assert torch.equal(a[0], torch.tensor([0.0, 0.0, 0.5, -1.0, 2.0]))
    assert torch.equal(m(t), a[:, :2])
    fixed = AugmentedODE(d=3, learn_h0=False)
    assert "h0" not in dict(fixed.named_parameters()) and torch.all(fixed.h0 == 0)


def test_time_input():
    t, _ = figure_eight(20)
    for cls in (FirstOrderODE, AugmentedODE, SecondOrderODE):
        m = cls(time=True)
        first = m.f if hasattr(m, "f") else m.F
        assert first.in_dim == m.n + 1
        assert m(t).shape == (20, 2)


def test_seed_reproducible_and_distinct():
    t, _ = figure_eight(20)
    a, b, c = SecondOrderODE(seed=1), SecondOrderODE(seed=1), SecondOrderODE(seed=2)
    assert torch.equal(a(t), b(t)) and not torch.equal(a(t), c(t))


def _random_second_order(d=3, seed=0):
    m = SecondOrderODE(d=d, seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        m.h0.copy_(torch.randn(d, generator=g, dtype=torch.float64))
        m.dh0.copy_(torch.randn(d, generator=g, dtype=torch.float64))
    return m


def test_second_order_equals_rk4_on_joint_state():
    t, _ = figure_eight(40, dtype=torch.float64)
    m = _random_second_order()
    p0, v0 = m.initial_state()
    n = m.n
    joint = rk4(lambda tt, y: torch.cat([y[n:], m.acceleration(tt, y[n:])]), torch.cat([p0, v0]), t)
    with torch.no_grad():
        state = m.state(t)
    assert state.shape == (40, 2 * n)
    assert (state - joint).abs().max() < 1e-12


def test_second_order_initial_conditions_and_dead_hidden_position():
    t, _ = figure_eight(30, dtype=torch.float64)
    m = _random_second_order()
    with torch.no_grad():
        a = m.state(t)
        n = m.n
        assert torch.all(a[0, :2] == 0) and torch.all(a[0, n:n + 2] == 0)  # s(0) = s'(0) = 0
        assert torch.equal(a[0, 2:n], m.h0) and torch.equal(a[0, n + 2:], m.dh0)
        s = m(t)
        m.h0.add_(10.0)  # F reads only velocities: the hidden position changes nothing drawn
        assert torch.equal(m(t), s)
        m.dh0.add_(1.0)  # the hidden velocity does
        assert not torch.allclose(m(t), s)


def test_second_order_rk4_batched_and_checks():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    A = torch.tensor([[0.0, 1.0], [-4.0, 0.0]], dtype=torch.float64)
    F = lambda tt, v: v @ A.T  # noqa: E731
    p0 = torch.zeros(3, 2, dtype=torch.float64)
    v0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p, v = second_order_rk4(F, p0, v0, t)
    assert p.shape == v.shape == (11, 3, 2)
    y = rk4(lambda tt, y: torch.cat([y[..., 2:], F(tt, y[..., 2:])], -1), torch.cat([p0, v0], -1), t)
    assert torch.allclose(p, y[..., :2], atol=1e-13) and torch.allclose(v, y[..., 2:], atol=1e-13)
    with pytest.raises(ValueError, match="same shape"):
        second_order_rk4(F, p0[:2], v0, t)
    with pytest.raises(ValueError, match="strictly increasing"):
        second_order_rk4(F, p0, v0, t.flip(0))


def test_bad_hidden_size():
    for cls in (AugmentedODE, SecondOrderODE):
        with pytest.raises(ValueError, match="d \\(hidden dimensions\\)"):
            cls(d=-1)
        with pytest.raises(ValueError, match="d \\(hidden dimensions\\)"):
            cls(d=2.5)


# ----------------------------------------------------------------- fitting
def test_fit_reduces_loss_and_keeps_rng_state():
    t, xy = figure_eight(30)
    m = AugmentedODE(d=2, hidden=(16,))
    state = torch.random.get_rng_state()
    losses = fit(m, xy, t, steps=25, lr=3e-2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert losses.shape == (26,) and np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert np.isclose(losses[-1], mse(m, xy, t))
    m2 = AugmentedODE(d=2, hidden=(16,))
    assert np.array_equal(fit(m2, xy, t, steps=25, lr=3e-2), losses)  # deterministic
    assert fit(m2, xy, t, steps=0).shape == (1,)


def test_fit_checks():
    t, xy = figure_eight(20)
    m = FirstOrderODE(hidden=(8,))
    with pytest.raises(ValueError, match=r"shape \(G, 2\)"):
        fit(m, xy[:-1], t, steps=1)
    with pytest.raises(ValueError, match="NaN"):
        fit(m, torch.full_like(xy, float("nan")), t, steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit(m, xy, t, steps=-1)
    with pytest.raises(ValueError, match="lr"):
        fit(m, xy, t, steps=1, lr=0.0)
    with pytest.raises(TypeError, match="tensors"):
        fit(m, xy.numpy(), t, steps=1)
    frozen = FirstOrderODE(hidden=(8,)).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        fit(frozen, xy, t, steps=1)


# ----------------------------------------------------------------- figures
def test_plots():
    t, xy = figure_eight(20)
    first, aug = FirstOrderODE(hidden=(8,)), AugmentedODE(d=2, hidden=(8,))
    with torch.no_grad():
        fig = plot_fits(xy, {"first": first(t), "aug": aug(t)}, {"first": np.ones(3), "aug": np.ones(3)})
        assert len(fig.axes) == 3
        assert len(plot_fits(xy, {"first": first(t)}).axes) == 1
        ax = plot_phase(first, t, target=xy)
        assert ax.get_aspect() == 1.0
        a = aug.state(t)
        ax3 = plot_lifted(a[:, :2], a[:, 2:], title="lifted")
        assert ax3.name == "3d"
        ax = plot_family(torch.stack([xy, 2 * xy, 3 * xy]), np.array([0.0, 0.5, 1.0]))
        assert len(ax.lines) >= 3
    with pytest.raises(ValueError, match="no fits"):
        plot_fits(xy, {})
    with pytest.raises(ValueError, match="autonomous 2-D"):
        plot_phase(aug, t)
    with pytest.raises(ValueError, match="autonomous 2-D"):
        plot_phase(FirstOrderODE(time=True), t)
    with pytest.raises(ValueError, match="rest"):
        plot_lifted(xy, torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"\(K, G, 2\)"):
        plot_family(xy)
    with pytest.raises(ValueError, match="values"):
        plot_family(torch.stack([xy, xy]), np.zeros(3))
