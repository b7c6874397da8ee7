"""Chapter 2's module :mod:`sketchode.book.ch02_neural_odes`: Euler, convergence orders, one-trajectory fits, crossings, memory."""

import math

import numpy as np
import pytest
import torch
import torchdiffeq

from sketchode.book.ch02_neural_odes import (
    Convergence,
    TrajectoryODE,
    backprop_memory,
    convergence,
    crossing_velocities,
    euler,
    fit_order,
    fit_trajectory,
    ode_gradients,
    plot_convergence,
    plot_fit,
    plot_memory,
    plot_velocities,
    saved_tensor_bytes,
    self_crossings,
)
from sketchode.numerics.solvers import rk4


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _decay(t, y):
    """A pen circling at varying speed: y' = w(t) J y, w = 1 + cos(t) / 2 (the chapter's test problem)."""
    w = 1 + 0.5 * torch.cos(t)
    return torch.stack([-w * y[..., 1], w * y[..., 0]], -1)


def _decay_exact(t):
    th = t + 0.5 * torch.sin(t)
    return 0.5 * torch.stack([torch.cos(th), torch.sin(th)])


Y0 = torch.tensor([0.5, 0.0], dtype=torch.float64)


# ---------------------------------------------------------------- Euler
def test_euler_equals_torchdiffeq_and_hand_steps():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    f = lambda t, y: torch.tanh(y @ A.t()) + torch.sin(t)  # noqa: E731
    t = torch.cumsum(torch.rand(9, generator=g, dtype=torch.float64) + 0.05, 0)
    y0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    ours = euler(f, y0, t)
    assert ours.shape == (9, 2, 3) and torch.equal(ours[0], y0)
    ref = torchdiffeq.odeint(f, y0, t, method="euler")
    assert (ours - ref).abs().max() < 1e-12
    y1 = y0 + (t[1] - t[0]) * f(t[0], y0)
    assert torch.allclose(ours[1], y1)


def test_euler_is_exact_for_constant_fields_and_rejects_bad_input():
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    y = euler(lambda t, y: torch.full_like(y, 3.0), torch.zeros(2, dtype=torch.float64), t)
    assert torch.allclose(y[:, 0], 3 * t)
    with pytest.raises(ValueError, match="strictly increasing"):
        euler(_decay, torch.ones(2), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="y0"):
        euler(_decay, [1.0, 0.0], torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------- convergence
def test_convergence_orders_of_euler_and_rk4():
    steps = [32, 64, 128, 256]
    e = convergence(euler, _decay, Y0, 5.0, _decay_exact, steps)
    r = convergence(rk4, _decay, Y0, 5.0, _decay_exact, steps)
    assert isinstance(e, Convergence) and e.errors.shape == (4,)
    assert np.allclose(e.dt, 5.0 / np.array(steps))
    assert abs(e.order - 1) < 0.1
    assert abs(r.order - 4) < 0.1
    assert (np.diff(e.errors) < 0).all() and (np.diff(r.errors) < 0).all()
    assert r.errors[-1] < 1e-6 < e.errors[-1]


def test_fit_order_is_the_log_log_slope():
    h = np.array([0.1, 0.05, 0.025])
    assert math.isclose(fit_order(h, 7 * h**3), 3.0, rel_tol=1e-9)
    with pytest.raises(ValueError, match="two positive"):
        fit_order(h, np.zeros(3))
    with pytest.raises(ValueError, match="same length"):
        fit_order(h, h[:2])


def test_convergence_rejects_bad_steps():
    y0 = Y0
    with pytest.raises(ValueError, match="at least two"):
        convergence(euler, _decay, y0, 5.0, _decay_exact, [8])
    with pytest.raises(ValueError, match=">= 1"):
        convergence(euler, _decay, y0, 5.0, _decay_exact, [0, 8])
    with pytest.raises(ValueError, match="t_end > t0"):
        convergence(euler, _decay, y0, 0.0, _decay_exact, [4, 8])


# ------------------------------------------------------- TrajectoryODE
def test_trajectory_ode_shapes_time_input_and_augment():
    torch.manual_seed(0)
    t = torch.linspace(0, 5, 11)
    m = TrajectoryODE(hidden=(16,), time_input=True, augment=2)
    y0 = torch.tensor([0.1, -0.2])
    assert m(torch.tensor(0.3), torch.zeros(3, 4)).shape == (3, 4)
    vis = m.trajectory(t, y0)
    full = m.trajectory(t, y0, full_state=True)
    assert vis.shape == (11, 2) and full.shape == (11, 4)
    assert torch.equal(full[0], torch.tensor([0.1, -0.2, 0.0, 0.0]))
    assert torch.equal(vis, full[..., :2])
    # batched starts work too
    assert m.trajectory(t, torch.zeros(5, 2)).shape == (11, 5, 2)
    # the time input matters only when asked for
    auto = TrajectoryODE(hidden=(16,), time_input=False)
    y = torch.randn(4, 2)
    assert torch.equal(auto(torch.tensor(0.0), y), auto(torch.tensor(3.0), y))
    assert not torch.allclose(m(torch.tensor(0.0), torch.zeros(1, 4)), m(torch.tensor(3.0), torch.zeros(1, 4)))


def test_trajectory_ode_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        TrajectoryODE(dim=0)
    with pytest.raises(ValueError, match="augment"):
        TrajectoryODE(augment=-1)
    with pytest.raises(ValueError, match="activation"):
        TrajectoryODE(activation="swish")
    m = TrajectoryODE(hidden=(8,))
    with pytest.raises(ValueError, match="state must end in 2"):
        m(torch.tensor(0.0), torch.zeros(3))
    with pytest.raises(ValueError, match="y0 must end in 2"):
        m.trajectory(torch.linspace(0, 1, 3), torch.zeros(3))


def test_fit_trajectory_learns_a_circle_and_is_seeded():
    t = torch.linspace(0, 5, 11)
    pts = torch.stack([torch.sin(t), 1 - torch.cos(t)], dim=1) * 0.5
    m, losses = fit_trajectory(pts, t, steps=40, lr=2e-2, seed=3, hidden=(16,))
    assert losses.shape == (40,) and np.isfinite(losses).all()
    assert losses[-1] < 0.2 * losses[0]
    with torch.no_grad():
        assert torch.equal(m.trajectory(t, pts[0])[0], pts[0])
    _, a = fit_trajectory(pts, t, steps=3, lr=2e-2, seed=3, hidden=(16,))
    _, b = fit_trajectory(pts, t, steps=3, lr=2e-2, seed=3, hidden=(16,))
    assert np.array_equal(a, b) and a[0] == losses[0]


def test_fit_trajectory_rejects_bad_input():
    t = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match=r"\(G, dim\)"):
        fit_trajectory(torch.zeros(5), t, steps=1)
    with pytest.raises(ValueError, match="4 points but 5 times"):
        fit_trajectory(torch.zeros(4, 2), t, steps=1)
    with pytest.raises(ValueError, match="non-finite"):
        fit_trajectory(torch.full((5, 2), float("nan")), t, steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_trajectory(torch.zeros(5, 2), t, steps=0)
    with pytest.raises(ValueError, match="clip"):
        fit_trajectory(torch.zeros(5, 2), t, steps=1, clip=0.0)


# ----------------------------------------------------------- crossings
def test_self_crossings_of_a_figure_eight_and_a_circle():
    u = np.linspace(0.3, 0.3 + 2 * np.pi, 200)
    eight = np.column_stack([np.sin(u), np.sin(u) * np.cos(u)])  # crosses once, at the origin
    circle = np.column_stack([np.cos(u[:-5]), np.sin(u[:-5])])
    cr = self_crossings(eight)
    assert len(cr) == 1
    i, j = cr[0]
    assert j > i + 1 and np.abs(eight[i]).max() < 0.05
    assert self_crossings(circle).shape == (0, 2)
    assert self_crossings(torch.tensor(eight)).shape == (1, 2)
    assert self_crossings(eight[:3]).shape == (0, 2)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        self_crossings(np.zeros((5, 3)))


def test_crossing_velocities_of_the_lemniscate():
    u = np.linspace(0.3, 0.3 + 2 * np.pi, 60)
    eight = np.column_stack([np.sin(u), np.sin(u) * np.cos(u)])  # passes 0 at u = pi and 2 pi
    cv = crossing_velocities(eight, u)
    assert cv["xy"].shape == (1, 2) and np.abs(cv["xy"]).max() < 1e-3
    assert np.allclose([cv["t1"][0], cv["t2"][0]], [np.pi, 2 * np.pi], atol=1e-2)
    assert np.allclose(cv["v1"][0], [-1, 1], atol=0.01) and np.allclose(cv["v2"][0], [1, 1], atol=0.01)
    assert abs(cv["angle"][0] - 90) < 1
    assert crossing_velocities(np.column_stack([u, u]), u)["angle"].shape == (0,)
    with pytest.raises(ValueError, match=r"\(G, 2\)"):
        crossing_velocities(eight, u[:-1])


def test_autonomous_planar_flows_never_cross():
    """Trajectories of random autonomous fields in the plane have no crossings; with time input they may."""
    t = torch.linspace(0, 5, 400)
    for seed in range(3):
        torch.manual_seed(seed)
        m = TrajectoryODE(hidden=(16, 16), time_input=False)
        with torch.no_grad():
            assert len(self_crossings(m.trajectory(t, torch.zeros(2)))) == 0
    # the lemniscate is the solution of a time-dependent field: f(t) = its velocity
    f = lambda t, y: torch.stack([torch.cos(t), torch.cos(2 * t)])  # noqa: E731
    path = rk4(f, torch.zeros(2, dtype=torch.float64), t.double())
    assert len(self_crossings(path)) >= 1


# ------------------------------------------------------ memory, adjoint
def test_saved_tensor_bytes_counts_live_storages_once():
    w = torch.randn(100, 100, requires_grad=True)
    x = torch.randn(100, requires_grad=True)
    peak, out = saved_tensor_bytes(lambda: (w @ x).sum())
    assert isinstance(out, torch.Tensor)
    assert peak == 100 * 100 * 4 + 100 * 4  # w and x are both saved for the backward pass

    def chain(n):
        y = x
        for _ in range(n):
            y = torch.tanh(w @ y)  # mv saves w and y, tanh saves its output
        y.sum().backward()

    p5, _ = saved_tensor_bytes(lambda: chain(5))
    p50, _ = saved_tensor_bytes(lambda: chain(50))
    # w counted once however often it is saved; a tanh output is also the next step's saved input,
    # one storage: each step adds one vector of 400 bytes
    assert p5 == 100 * 100 * 4 + 400 + 5 * 400
    assert p50 - p5 == 45 * 400
    with pytest.raises(TypeError, match="callable"):
        saved_tensor_bytes(3)


def test_adjoint_memory_is_flat_and_direct_grows_and_gradients_agree():
    torch.manual_seed(0)
    f = TrajectoryODE(hidden=(16,)).double()
    y0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    steps = [4, 16, 64]
    direct = backprop_memory(f, y0, 2.0, steps, adjoint=False)
    adjoint = backprop_memory(f, y0, 2.0, steps, adjoint=True)
    assert direct.shape == (3,) and (np.diff(direct) > 0).all()
    # linear in the number of steps
    per_step = np.diff(direct) / np.diff(steps)
    assert np.allclose(per_step, per_step[0], rtol=0.05)
    assert adjoint.max() == adjoint.min()
    assert direct[-1] > 3 * adjoint[-1]
    g_direct = ode_gradients(f, y0, 2.0, 32, adjoint=False)
    g_adj = ode_gradients(f, y0, 2.0, 32, adjoint=True)
    n_params = sum(p.numel() for p in f.parameters())
    assert g_direct.shape == (2 + n_params,)
    assert ((g_direct - g_adj).norm() / g_direct.norm()) < 1e-6
    assert all(p.grad is None for p in f.parameters())  # backprop_memory leaves no gradients behind
    with pytest.raises(TypeError, match="nn.Module"):
        backprop_memory(lambda t, y: y, y0, 1.0, [2], adjoint=True)
    with pytest.raises(ValueError, match=">= 1"):
        backprop_memory(f, y0, 1.0, [0], adjoint=False)


# -------------------------------------------------------------- figures
def test_plots_return_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = {"Euler": convergence(euler, _decay, Y0, 5.0, _decay_exact, [8, 16]),
           "RK4": convergence(rk4, _decay, Y0, 5.0, _decay_exact, [8, 16])}
    ax = plot_convergence(res)
    assert len(ax.get_lines()) >= 2
    t = torch.linspace(0, 5, 12)
    pts = torch.stack([torch.sin(t), torch.sin(t) * torch.cos(t)], 1)
    torch.manual_seed(0)
    for m in (TrajectoryODE(hidden=(8,)), TrajectoryODE(hidden=(8,), augment=1)):
        assert plot_fit(m, pts, t, title="x").get_title() == "x"
    assert plot_memory([1, 2], [10, 20], [5, 5]).get_xlabel().startswith("number")
    assert plot_velocities(pts, t, title="v").get_title() == "v"
    with pytest.raises(ValueError, match="no results"):
        plot_convergence({})
    plt.close("all")
