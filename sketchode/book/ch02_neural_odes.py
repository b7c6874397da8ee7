"""Neural ODEs from first principles: solvers, convergence, one trajectory, memory (paper section 3; chapter 2).

A Neural ODE (Chen et al., 2018) is a layer whose output is the solution of
``dy/dt = f_theta(t, y)`` on a time grid (paper eq. 1).  Chapter 2 builds it
up; this module holds the reusable pieces:

* :func:`euler`: the explicit Euler method, the first solver chapter 2 derives
  (the production solver, RK4 with the 3/8 rule, is :func:`sketchode.numerics.solvers.rk4`);
* :func:`convergence`: global error against step size on a problem with a
  known solution, and the fitted order of accuracy (slope on a log-log plot);
* :class:`TrajectoryODE`: a first-order vector-field MLP on the pen position,
  optionally with time as an input and with Dupont et al.'s (2019) extra
  zero-initialised dimensions;
* :func:`fit_trajectory`: fit one pen trajectory directly, as in the paper's
  figure 2 (section 3 and the start of section 4);
* :func:`self_crossings`, :func:`crossing_velocities`: where a path crosses
  itself, and the two velocities there (the trajectories of a first-order
  autonomous ODE in the plane cannot cross);
* :func:`saved_tensor_bytes`, :func:`backprop_memory`, :func:`ode_gradients`:
  measure the memory autograd holds for direct backpropagation through a
  solver against the adjoint method (Pontryagin et al., 1962; Chen et al., 2018);
* :func:`plot_convergence`, :func:`plot_fit`, :func:`plot_velocities`,
  :func:`plot_memory`: the chapter's figures.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sketchode.models.dynamics import MLP
from sketchode.numerics.solvers import check_grid, rk4

__all__ = [
    "euler",
    "Convergence",
    "convergence",
    "fit_order",
    "TrajectoryODE",
    "fit_trajectory",
    "self_crossings",
    "crossing_velocities",
    "saved_tensor_bytes",
    "backprop_memory",
    "ode_gradients",
    "plot_convergence",
    "plot_fit",
    "plot_velocities",
    "plot_memory",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ solvers
def euler(f: Field, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Solve ``dy/dt = f(t, y)``, ``y(t[0]) = y0`` with one explicit Euler step per grid interval (chapter 2).

    ``y_{n+1} = y_n + h_n f(t_n, y_n)``: the first-order Taylor expansion of
    the solution, the simplest solver of paper eq. 1.  Its global error is
    ``O(h)``, against ``O(h^4)`` for :func:`sketchode.numerics.solvers.rk4`.  Returns
    ``(len(t), *y0.shape)``, the solution at every grid point (the first is
    ``y0``); equal to ``torchdiffeq.odeint(f, y0, t, method="euler")``.
    Differentiable by ordinary backpropagation.
    """
    check_grid(t, "euler")
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"euler: y0 must be a tensor, got {type(y0).__name__}")
    h = t[1:] - t[:-1]
    ys = [y0]
    y = y0
    for n in range(len(t) - 1):  # time stepping is sequential; each step is vectorised over the state
        y = y + h[n] * f(t[n], y)
        ys.append(y)
    return torch.stack(ys)


# -------------------------------------------------------------- convergence
@dataclass(frozen=True)
class Convergence:
    """Result of :func:`convergence`: step counts, step sizes, global errors at ``t_end`` and the fitted order."""

    steps: np.ndarray
    dt: np.ndarray
    errors: np.ndarray
    order: float


def fit_order(h, errors) -> float:
    """Least-squares slope of ``log(error)`` against ``log(h)``: the empirical order of accuracy (chapter 2).

    An order-``p`` method has global error ``C h^p``, a straight line of slope
    ``p`` on a log-log plot.  Needs at least two positive errors at two
    different step sizes.
    """
    h = np.asarray(h, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64).ravel()
    if h.shape != e.shape:
        raise ValueError(f"fit_order: h and errors must have the same length, got {h.size} and {e.size}")
    ok = (e > 0) & np.isfinite(e) & (h > 0)
    if ok.sum() < 2 or np.unique(h[ok]).size < 2:
        raise ValueError("fit_order: need at least two positive, finite errors at different step sizes")
    return float(np.polyfit(np.log(h[ok]), np.log(e[ok]), 1)[0])


def convergence(
    solver: Callable[[Field, torch.Tensor, torch.Tensor], torch.Tensor],
    f: Field,
    y0: torch.Tensor,
    t_end: float,
    exact: Callable[[torch.Tensor], torch.Tensor],
    steps: Sequence[int],
    t0: float = 0.0,
) -> Convergence:
    """Global error of ``solver`` at ``t_end`` for each number of uniform steps, and the fitted order (chapter 2).

    ``solver(f, y0, t)`` is any fixed-grid solver with the signature of
    :func:`euler` and :func:`sketchode.numerics.solvers.rk4`; ``exact(t)`` the known
    solution.  The error of ``n`` steps is the largest absolute component of
    ``y_n - exact(t_end)``, with ``h = (t_end - t0) / n``.  Use float64 so
    that round-off stays below the truncation error.  Returns a
    :class:`Convergence`; ``order`` is :func:`fit_order` of the errors (about
    1 for Euler, 4 for RK4: section 3's solvers, Hairer et al., 1993).
    """
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"convergence: y0 must be a tensor, got {type(y0).__name__}")
    steps_arr = np.asarray(list(steps))
    if steps_arr.ndim != 1 or steps_arr.size < 2 or not np.issubdtype(steps_arr.dtype, np.integer):
        raise ValueError(f"convergence: steps must be at least two integers, got {list(steps)!r}")
    if (steps_arr < 1).any():
        raise ValueError(f"convergence: every number of steps must be >= 1, got {steps_arr.tolist()}")
    if not float(t_end) > float(t0):
        raise ValueError(f"convergence: need t_end > t0, got t0={t0}, t_end={t_end}")
    dtype = y0.dtype if y0.is_floating_point() else torch.float64
    target = exact(torch.tensor(float(t_end), dtype=dtype))
    errors = []
    for n in steps_arr.tolist():
        t = torch.linspace(float(t0), float(t_end), int(n) + 1, dtype=dtype)
        with torch.no_grad():
            y = solver(f, y0, t)
        errors.append(float((y[-1] - target).abs().max()))
    errors = np.asarray(errors)
    dt = (float(t_end) - float(t0)) / steps_arr.astype(np.float64)
    return Convergence(steps=steps_arr, dt=dt, errors=errors, order=fit_order(dt, errors))


# ------------------------------------------------------ one trajectory, eq. 1
class TrajectoryODE(nn.Module):
    """A first-order Neural ODE on the pen position: ``dy/dt = f_theta([t,] y)`` (paper eq. 1, figure 2; chapter 2).

    Parameters
    ----------
    dim:
        Visible state size (2 for the pen position ``x, y``).
    hidden:
        Hidden widths of the field MLP (:class:`sketchode.models.dynamics.MLP`).
    time_input:
        Feed ``t`` to the MLP as an extra input channel.  Without it the ODE
        is *autonomous*: one velocity per position, so (with ``augment=0`` in
        the plane) the trajectory can never cross itself (chapter 2).
    augment:
        Extra state dimensions, started at 0 (augmented Neural ODE, Dupont et
        al., 2019; chapter 4 goes further).  The model's output is the visible
        part; the trajectory lives in ``dim + augment`` dimensions.
    activation:
        Hidden activation (smooth by default; see chapter 2's trap on ReLU).

    ``forward(t, y)`` is the vector field on the full state ``(..., dim +
    augment)``; :meth:`trajectory` solves it from a visible start point.
    """

    def __init__(self, dim: int = 2, hidden: Sequence[int] = (64, 64), time_input: bool = True,
                 augment: int = 0, activation: str = "tanh"):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"TrajectoryODE: dim must be a positive int, got {dim!r}")
        if isinstance(augment, bool) or not isinstance(augment, int) or augment < 0:
            raise ValueError(f"TrajectoryODE: augment must be an int >= 0, got {augment!r}")
        self.dim, self.augment, self.time_input = dim, augment, bool(time_input)
        self.state_dim = dim + augment
        self.field = MLP(self.state_dim + int(self.time_input), self.state_dim, hidden=tuple(hidden),
                         activation=activation)

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.state_dim:
            raise ValueError(f"TrajectoryODE: state must end in {self.state_dim}, got shape {tuple(y.shape)}")
        if self.time_input:
            tt = torch.as_tensor(t, dtype=y.dtype, device=y.device).expand(*y.shape[:-1], 1)
            y = torch.cat([y, tt], dim=-1)
        return self.field(y)

    def trajectory(self, t: torch.Tensor, y0: torch.Tensor, solver=rk4, full_state: bool = False) -> torch.Tensor:
        """Solve from the visible start ``y0 (..., dim)`` (augmented part 0) on grid ``t``.

        Returns ``(len(t), ..., dim)``, or the whole state with ``full_state``.
        """
        if y0.shape[-1] != self.dim:
            raise ValueError(f"TrajectoryODE.trajectory: y0 must end in {self.dim}, got shape {tuple(y0.shape)}")
        if self.augment:
            y0 = torch.cat([y0, y0.new_zeros(*y0.shape[:-1], self.augment)], dim=-1)
        ys = solver(self, y0, t)
        return ys if full_state else ys[..., : self.dim]


def fit_trajectory(points, t, steps: int = 600, lr: float = 1e-2, seed: int = 0, time_input: bool = True,
                   augment: int = 0, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                   clip: float | None = 0.1, solver=rk4) -> tuple[TrajectoryODE, np.ndarray]:
    """Fit one pen trajectory with a first-order Neural ODE, as in the paper's figure 2 (section 3; chapter 2).

    ``points (G, dim)`` are the positions at the times ``t (G,)``; the model
    starts at ``points[0]`` and is trained by backpropagation through
    ``solver`` (one step per grid interval) with Adam, the learning rate
    annealed by a cosine from ``lr`` to ``lr / 100`` over ``steps``, on the mean
    squared error over the grid.  The gradient norm is clipped at ``clip``
    (``None``: no clipping): the loss of a long solve has rare, huge gradients,
    and the paper clips too (section 5.1).  Seeded.  Returns the model (in
    eval mode) and the ``(steps,)`` losses.
    """
    pts = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points,
                          dtype=torch.float32)
    tt = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t, dtype=torch.float32)
    if pts.ndim != 2:
        raise ValueError(f"fit_trajectory: points must be (G, dim), got shape {tuple(pts.shape)}")
    check_grid(tt, "fit_trajectory")
    if len(tt) != len(pts):
        raise ValueError(f"fit_trajectory: {len(pts)} points but {len(tt)} times")
    if not bool(torch.isfinite(pts).all()):
        raise ValueError("fit_trajectory: points contain non-finite values")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"fit_trajectory: steps must be a positive int, got {steps!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"fit_trajectory: clip must be positive or None, got {clip!r}")
    torch.manual_seed(seed)
    model = TrajectoryODE(dim=pts.shape[1], hidden=hidden, time_input=time_input, augment=augment,
                          activation=activation)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 100)
    losses = np.empty(steps)
    for k in range(steps):
        opt.zero_grad()
        loss = torch.mean((model.trajectory(tt, pts[0], solver=solver) - pts) ** 2)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        losses[k] = loss.item()
    return model.eval(), losses


def self_crossings(xy, tol: float = 0.0) -> np.ndarray:
    """Pairs ``(i, j)``, ``j > i + 1``, of polyline segments ``[i, i+1]`` and ``[j, j+1]`` that cross (chapter 2).

    A proper crossing: each segment's end points lie strictly on opposite
    sides of the other segment (the products of the two orientation tests
    are below ``-tol``; touching, collinear and vertex crossings do not
    count).  Vectorised over all segment pairs (``O(N^2)`` memory; meant for
    a few hundred points).  Returns an ``(k, 2)`` int array, empty when the
    path is simple.  Chapters 3 and 4 count crossings with it too.
    """
    p = np.asarray(xy.detach().cpu().numpy() if isinstance(xy, torch.Tensor) else xy, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"self_crossings: xy must be (N, 2), got shape {p.shape}")
    if len(p) < 4:
        return np.zeros((0, 2), dtype=int)
    a, b = p[:-1], p[1:]                       # segments (S, 2)

    def orient(o, u, v):                        # cross(u - o, v - o), broadcast (S, S)
        return ((u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1])
                - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0]))

    A, B = a[:, None], b[:, None]
    C, D = a[None, :], b[None, :]
    cross = (orient(A, B, C) * orient(A, B, D) < -tol) & (orient(C, D, A) * orient(C, D, B) < -tol)
    i, j = np.nonzero(np.triu(cross, k=2))
    return np.column_stack([i, j]).astype(int)


def crossing_velocities(points, t) -> dict:
    """At every self-crossing of a sampled path: where, when (twice) and with which two velocities (chapter 2).

    ``points (G, 2)`` at times ``t (G,)``, linear between samples.  For each
    crossing of segments ``i`` and ``j`` (:func:`self_crossings`) returns, as
    arrays with one row per crossing: ``xy`` the crossing point, ``t1``, ``t2``
    the two times the path passes it, ``v1``, ``v2`` the velocities then
    (finite differences of the segments) and ``angle`` between them in
    degrees.  A first-order autonomous ODE has one velocity per point, so it
    cannot pass a point twice with two different velocities.
    """
    p = np.asarray(points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    tt = np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or tt.shape != (len(p),):
        raise ValueError(f"crossing_velocities: need points (G, 2) and t (G,), got {p.shape} and {tt.shape}")
    cr = self_crossings(p)
    i, j = cr[:, 0], cr[:, 1]
    a, da = p[i], p[i + 1] - p[i]
    c, dc = p[j], p[j + 1] - p[j]
    den = da[:, 0] * dc[:, 1] - da[:, 1] * dc[:, 0]
    w = c - a
    u = (w[:, 0] * dc[:, 1] - w[:, 1] * dc[:, 0]) / den       # a + u da = c + v dc
    v = (w[:, 0] * da[:, 1] - w[:, 1] * da[:, 0]) / den
    v1 = da / (tt[i + 1] - tt[i])[:, None]
    v2 = dc / (tt[j + 1] - tt[j])[:, None]
    cos = np.sum(v1 * v2, axis=1) / (np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1))
    return dict(xy=a + u[:, None] * da, t1=tt[i] + u * (tt[i + 1] - tt[i]), t2=tt[j] + v * (tt[j + 1] - tt[j]),
                v1=v1, v2=v2, angle=np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# -------------------------------------------------------- memory and adjoint
def saved_tensor_bytes(fn: Callable[[], object]) -> tuple[int, object]:
    """Peak bytes held by autograd's saved tensors while ``fn()`` runs; returns ``(peak, fn())`` (chapter 2).

    Every tensor that autograd saves for the backward pass goes through
    ``torch.autograd.graph.saved_tensors_hooks``; the pack hook records the
    tensor's storage and a finaliser notices when the graph releases it, so
    the count is the memory *live* at each moment, and each storage is
    counted once however many nodes share it (parameters, views).  Run the
    forward *and* the backward pass inside ``fn`` to see the peak of both.
    This measures what direct backpropagation keeps (``O(steps)``) against the
    adjoint method (``O(1)`` in the number of steps; Chen et al., 2018).
    """
    if not callable(fn):
        raise TypeError(f"saved_tensor_bytes: fn must be callable, got {type(fn).__name__}")
    live: dict[int, list[int]] = {}      # storage key -> [nbytes, references]
    state = {"now": 0, "peak": 0}

    class _Held:
        __slots__ = ("tensor", "__weakref__")

    def release(key):
        entry = live[key]
        entry[1] -= 1
        if entry[1] == 0:
            state["now"] -= entry[0]
            del live[key]

    def pack(x):
        held = _Held()
        # hold a detached alias (same storage): holding ``x`` itself would make a saved *output*
        # reference its own grad_fn through a Python object, a cycle that is never freed
        held.tensor = x.detach()
        try:
            st = x.untyped_storage()
            key, nbytes = st.data_ptr(), st.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without a plain storage
            key, nbytes = id(x), x.numel() * x.element_size()
        if key in live:
            live[key][1] += 1
        else:
            live[key] = [nbytes, 1]
            state["now"] += nbytes
            state["peak"] = max(state["peak"], state["now"])
        weakref.finalize(held, release, key)
        return held

    def unpack(held):
        return held.tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = fn()
    return state["peak"], out


def _final_state_loss(f: nn.Module, y0: torch.Tensor, t_end: float, n: int, adjoint: bool, method: str):
    import torchdiffeq

    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    t = torch.tensor([0.0, float(t_end)], dtype=y0.dtype)
    kw = dict(method=method, options=dict(step_size=float(t_end) / n))
    if adjoint:
        kw.update(adjoint_method=method, adjoint_options=dict(step_size=float(t_end) / n))
    yT = solve(f, y0, t, **kw)[-1]
    return (yT ** 2).sum()


def backprop_memory(f: nn.Module, y0: torch.Tensor, t_end: float, steps: Sequence[int], adjoint: bool,
                    method: str = "rk4") -> np.ndarray:
    """Peak saved-tensor bytes of one forward + backward pass through ``torchdiffeq`` per number of steps (chapter 2).

    The loss is ``|y(t_end)|^2`` of ``dy/dt = f(t, y)`` solved with ``n``
    fixed steps of ``method``; ``adjoint`` picks ``torchdiffeq.odeint_adjoint``
    (backward by solving the adjoint ODE, Pontryagin et al., 1962) instead of
    backpropagating through the solver's operations (``torchdiffeq.odeint``).
    ``f`` must be an ``nn.Module`` (the adjoint finds its parameters).
    Returns ``(len(steps),)`` bytes measured by :func:`saved_tensor_bytes`.
    """
    if not isinstance(f, nn.Module):
        raise TypeError(f"backprop_memory: f must be an nn.Module, got {type(f).__name__}")
    if any(int(n) < 1 for n in steps):
        raise ValueError(f"backprop_memory: every number of steps must be >= 1, got {list(steps)}")
    y0 = y0.detach().requires_grad_(True)
    out = []
    for n in steps:
        f.zero_grad(set_to_none=True)
        peak, _ = saved_tensor_bytes(lambda: _final_state_loss(f, y0, t_end, int(n), adjoint, method).backward())
        out.append(peak)
    f.zero_grad(set_to_none=True)
    return np.asarray(out, dtype=np.int64)


def ode_gradients(f: nn.Module, y0: torch.Tensor, t_end: float, n: int, adjoint: bool,
                  method: str = "rk4") -> torch.Tensor:
    """Gradient of ``|y(t_end)|^2`` with respect to ``y0`` and all of ``f``'s parameters, flattened (chapter 2).

    Same problem as :func:`backprop_memory`; comparing ``adjoint=True`` with
    ``adjoint=False`` shows that both compute the same gradient, up to the
    solver's error on the backward (adjoint) solve.
    """
    if not isinstance(f, nn.Module):
        raise TypeError(f"ode_gradients: f must be an nn.Module, got {type(f).__name__}")
    y0 = y0.detach().requires_grad_(True)
    params = [p for p in f.parameters() if p.requires_grad]
    loss = _final_state_loss(f, y0, t_end, int(n), adjoint, method)
    grads = torch.autograd.grad(loss, [y0, *params])
    return torch.cat([g.reshape(-1) for g in grads]).detach()


# ------------------------------------------------------------------ figures
def plot_convergence(results: dict, ax=None, reference: bool = True):
    """Log-log plot of global error against step size for ``{name: Convergence}`` (chapter 2).

    Each curve's label carries its fitted order; ``reference`` adds dotted
    lines of slope 1 and 4 through the first point of the first and last
    curve.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_convergence: no results")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    for name, r in results.items():
        ax.loglog(r.dt, r.errors, "o-", ms=4, label=f"{name}: slope {r.order:.2f}")
    if reference:
        first, last = list(results.values())[0], list(results.values())[-1]
        for r, p in ((first, 1), (last, 4)):
            ax.loglog(r.dt, r.errors[0] * (r.dt / r.dt[0]) ** p, ":", color="0.5", lw=1)
            ax.annotate(f"$\\Delta t^{p}$", (r.dt[-1], r.errors[0] * (r.dt[-1] / r.dt[0]) ** p), fontsize=8,
                        color="0.4")
    ax.set_xlabel("step size $\\Delta t$")
    ax.set_ylabel("global error at $t_{end}$")
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_fit(model: TrajectoryODE, points, t, ax=None, field_t: float | None = None, title: str | None = None,
             dense: int = 8, n_arrows: int = 15, mark_crossings: bool = True):
    """Figure 2 of the paper: target trajectory (blue), the fitted solution (red) and the vector field (chapter 2).

    The model is solved from ``points[0]`` on a grid ``dense`` times finer
    than ``t`` (the curve of the ODE, not only its values at the grid).  The
    arrows show ``f`` on a grid over the drawing, at time ``field_t`` for a
    model with a time input (default: the middle of ``t``); no arrows for an
    augmented model, whose field does not live in the plane.  Crossings of
    the target are circled when ``mark_crossings``.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    pts = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points,
                          dtype=torch.float32)
    tt = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t, dtype=torch.float32)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    td = torch.linspace(float(tt[0]), float(tt[-1]), (len(tt) - 1) * int(dense) + 1)
    with torch.no_grad():
        fit = model.trajectory(td, pts[0]).numpy()
    p = pts.numpy()
    lo = np.minimum(p.min(0), fit.min(0))
    hi = np.maximum(p.max(0), fit.max(0))
    pad = 0.1 * float((hi - lo).max())
    lo, hi = lo - pad, hi + pad
    if model.augment == 0 and n_arrows > 0:
        ft = float(tt[len(tt) // 2]) if field_t is None else float(field_t)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n_arrows), np.linspace(lo[1], hi[1], n_arrows))
        grid = torch.tensor(np.column_stack([gx.ravel(), gy.ravel()]), dtype=torch.float32)
        with torch.no_grad():
            v = model(torch.tensor(ft), grid).numpy()
        ax.quiver(gx, gy, v[:, 0].reshape(gx.shape), v[:, 1].reshape(gx.shape), color="0.65",
                  angles="xy", width=0.004)
    ax.plot(p[:, 0], p[:, 1], "-", color="tab:blue", lw=2.5, alpha=0.7, label="data")
    ax.plot(fit[:, 0], fit[:, 1], "-", color="tab:red", lw=1.5, label="Neural ODE")
    ax.plot(*p[0], "ko", ms=4)
    if mark_crossings:
        cr = self_crossings(p)
        if len(cr):
            c = 0.5 * (p[cr[:, 0]] + p[cr[:, 0] + 1])
            ax.plot(c[:, 0], c[:, 1], "o", mfc="none", mec="k", ms=12, mew=1.2)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_velocities(points, t, ax=None, every: int = 3, title: str | None = None):
    """A sampled path with the direction of its velocity; at each self-crossing, both directions in colour (chapter 2).

    Grey arrows every ``every`` samples show the direction of motion (fixed
    length).  At a crossing, the velocity of the first passage is drawn in
    orange and that of the second in purple, both from the crossing point
    and longer: the two arrows an autonomous field would have to give at one
    point.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    p = np.asarray(points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    tt = np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    span = float(np.ptp(p, axis=0).max()) or 1.0

    def arrows(xy, v, length, **kw):
        u = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) * length
        ax.quiver(xy[:, 0], xy[:, 1], u[:, 0], u[:, 1], angles="xy", scale_units="xy", scale=1.0, **kw)

    v = np.gradient(p, tt, axis=0)
    k = np.arange(0, len(p), max(1, int(every)))
    ax.plot(p[:, 0], p[:, 1], "-", color="tab:blue", lw=2.5, alpha=0.5)
    arrows(p[k], v[k], 0.09 * span, color="0.4", width=0.007)
    cv = crossing_velocities(p, tt)
    if len(cv["xy"]):
        arrows(cv["xy"], cv["v1"], 0.25 * span, color="tab:orange", width=0.014, label="first passage")
        arrows(cv["xy"], cv["v2"], 0.25 * span, color="tab:purple", width=0.014, label="second passage")
        ax.legend(fontsize=7, loc="lower right")
    ax.plot(*p[0], "ko", ms=4)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_memory(steps, direct, adjoint, ax=None):
    """Saved-tensor memory (KiB) against the number of solver steps: direct backprop vs adjoint (chapter 2)."""
    import matplotlib.pyplot as plt

    steps = np.asarray(steps)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(steps, np.asarray(direct) / 1024, "o-", label="backprop through the solver (odeint)")
    ax.plot(steps, np.asarray(adjoint) / 1024, "s-", label="adjoint method (odeint_adjoint)")
    ax.set_xlabel("number of RK4 steps")
    ax.set_ylabel("peak memory of saved tensors (KiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return ax

