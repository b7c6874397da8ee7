"""Augmented and second-order Neural ODEs on toy 2-D trajectories (paper 4.1, eq. 2-3, appendix B; chapter 4).

Chapter 4 of the book motivates the design of SketchODE's decoder
(:class:`sketchode.models.decoder.ODEDecoder`) with three small models that each
try to draw one curve ``s(t)`` in the plane, starting at the origin:

* :class:`FirstOrderODE`: the plain Neural ODE of eq. 1 (Chen et al., 2018),
  ``s' = f(s)`` on the 2-D drawing itself.  Its trajectories cannot cross
  themselves (uniqueness of solutions of an autonomous ODE), so it cannot draw
  a figure-eight, an "8" or any other self-overlapping stroke (section 4);
* :class:`AugmentedODE`: the augmented Neural ODE of Dupont et al. (2019),
  ``a' = f(a)`` on ``a = [s, h]`` with ``d`` hidden dimensions and a learned
  hidden start ``h0``; the curve in the higher-dimensional state does not
  cross, its shadow in the plane may (section 4.1, "Augmented ODE");
* :class:`SecondOrderODE`: the second-order augmented ODE of eq. 2
  (Yildiz et al., 2019), acceleration ``a'' = F(a')`` with the position
  dropped from ``F``'s inputs as the paper does; visible start
  ``s0 = s0' = 0`` and a learned hidden start ``[h0, h0']`` (``L_dec(z)``
  in the decoder).

and the pieces around them:

* :func:`figure_eight`: the target, a lemniscate started at the origin that
  crosses itself once;
* :func:`second_order_rk4`: RK4 of ``p' = v, v' = F(v)`` by solving the
  velocity only and recovering positions with
  :func:`sketchode.numerics.solvers.rk4_second_order_positions` (eq. 2);
* :func:`fit`: full-batch Adam on the mean squared error to one target;
* :func:`self_intersections`: how many times a polyline crosses itself;
* :func:`plot_fits`, :func:`plot_phase`, :func:`plot_lifted`,
  :func:`plot_family`: the chapter's figures.

Every model is solved with the package's fixed-grid RK4
(:func:`sketchode.numerics.solvers.rk4`, one step per grid interval) and its vector
field is a :class:`sketchode.models.dynamics.MLP`.  Calling a model on a grid
``t (G,)`` returns the drawn curve ``(G, 2)``; :meth:`state` returns the whole
integrated state.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sketchode.models.dynamics import MLP
from sketchode.book.ch02_neural_odes import self_crossings
from sketchode.numerics.solvers import check_grid, rk4, rk4_second_order_positions

__all__ = [
    "figure_eight",
    "AugmentedODE",
    "FirstOrderODE",
    "SecondOrderODE",
    "second_order_rk4",
    "fit",
    "mse",
    "self_intersections",
    "plot_fits",
    "plot_phase",
    "plot_lifted",
    "plot_family",
]

#: Size of the drawn curve: the toy models draw ``x, y``.
VISIBLE = 2


# ------------------------------------------------------------------ target
def figure_eight(G: int = 100, T: float = 5.0, scale: float = 0.5, phase: float = 0.25, rest: bool = True,
                 dtype: torch.dtype = torch.float32):
    """The figure-eight target: ``t (G,)`` uniform on ``[0, T]`` and ``xy (G, 2)`` (chapter 4).

    One lap of the lemniscate of Gerono ``scale (sin phi, sin phi cos phi)``,
    ``phi = 2 pi (phase + u)``, translated so that it starts at the origin
    like every normalised drawing (section 4.1).  It passes its centre twice,
    in two different directions: a self-overlap, which no trajectory of an
    autonomous first-order ODE in the plane can draw.  With the defaults the
    drawing starts at the tip of the right lobe and spans the unit distance
    from its start, as normalised drawings do.

    ``rest=True``: the pen starts and ends at rest, like a hand, with the
    bell-shaped speed profile ``u = (1 - cos(pi t / T)) / 2``; this matches
    the decoder's fixed visible start ``s'(0) = 0`` (eq. 2).  ``rest=False``:
    constant parameter speed, ``u = t / T``.
    """
    if isinstance(G, bool) or not isinstance(G, int) or G < 3:
        raise ValueError(f"figure_eight: G must be an int >= 3, got {G!r}")
    if not np.isfinite(T) or T <= 0:
        raise ValueError(f"figure_eight: T must be a positive number, got {T!r}")
    t = torch.linspace(0.0, float(T), G, dtype=torch.float64)
    u = t / T
    if rest:
        u = (1 - torch.cos(torch.pi * u)) / 2
    phi = 2 * torch.pi * (phase + u)
    xy = scale * torch.stack([torch.sin(phi), torch.sin(phi) * torch.cos(phi)], dim=1)
    return t.to(dtype), (xy - xy[0]).to(dtype)


# ------------------------------------------------------------------ models
def _check_d(d, where: str) -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 0:
        raise ValueError(f"{where}: d (hidden dimensions) must be an int >= 0, got {d!r}")
    return d


class AugmentedODE(nn.Module):
    """Augmented first-order Neural ODE ``a' = f(a)``, ``a = [s, h]`` (section 4.1; Dupont et al., 2019; chapter 4).

    The state holds the drawn curve ``s (2)`` and ``d`` hidden dimensions
    ``h``.  ``s(0) = 0`` (a normalised drawing starts at the origin) and
    ``h(0) = h0``, a learned vector (initialised at zero, as Dupont et al.
    do) when ``learn_h0``; in the decoder the hidden start comes from the
    latent code instead (``L_dec(z)``).

    Parameters
    ----------
    d : hidden dimensions (``0`` gives the plain Neural ODE, :class:`FirstOrderODE`).
    hidden, activation, w : the field's :class:`~sketchode.models.dynamics.MLP`.
    time : give ``t`` to ``f`` as an extra input (a non-autonomous ODE).
    learn_h0 : learn ``h0`` (else it stays zero).
    zero_last : start ``f`` as the zero field (:class:`~sketchode.models.dynamics.MLP`'s ``zero_last``).
    seed : seed of the weight initialisation.
    """

    def __init__(self, d: int = 4, hidden: Sequence[int] = (32, 32), activation: str = "tanh", w: float = 1.0,
                 time: bool = False, learn_h0: bool = True, zero_last: bool = False, seed: int = 0):
        super().__init__()
        self.d = _check_d(d, type(self).__name__)
        self.n = VISIBLE + self.d
        self.time = bool(time)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.f = MLP(self.n + int(self.time), self.n, tuple(hidden), activation=activation, w=w,
                         zero_last=zero_last)
        h0 = torch.zeros(self.d)
        if learn_h0 and self.d > 0:
            self.h0 = nn.Parameter(h0)
        else:
            self.register_buffer("h0", h0)

    def field(self, t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The vector field ``f(a)`` (or ``f(a, t)`` with ``time=True``) at state ``a (..., n)``."""
        if self.time:
            a = torch.cat([a, t.to(a.dtype).expand(*a.shape[:-1], 1)], dim=-1)
        return self.f(a)

    def initial_state(self) -> torch.Tensor:
        """``a(0) = [0, 0, h0]``, shape ``(n,)``."""
        return torch.cat([self.h0.new_zeros(VISIBLE), self.h0])

    def state(self, t: torch.Tensor) -> torch.Tensor:
        """The whole state ``a(t) = [s, h]`` on the grid ``t``: ``(G, 2 + d)``."""
        check_grid(t, type(self).__name__)
        return rk4(self.field, self.initial_state().to(t.dtype), t)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """The drawn curve ``s(t)``: ``(G, 2)``."""
        return self.state(t)[:, :VISIBLE]


class FirstOrderODE(AugmentedODE):
    """The plain Neural ODE ``s' = f(s)`` on the plane (eq. 1; Chen et al., 2018; chapter 4).

    :class:`AugmentedODE` with ``d = 0``: the state is the drawing itself.
    Without ``time`` its solutions never cross themselves.
    """

    def __init__(self, hidden: Sequence[int] = (32, 32), activation: str = "tanh", w: float = 1.0,
                 time: bool = False, zero_last: bool = False, seed: int = 0):
        super().__init__(d=0, hidden=hidden, activation=activation, w=w, time=time, learn_h0=False,
                         zero_last=zero_last, seed=seed)


def _recording(field):
    """Wrap ``field`` so that every value it returns is also appended to a list (RK4's stages, in order)."""
    calls: list[torch.Tensor] = []

    def f(t, y):
        k = field(t, y)
        calls.append(k)
        return k

    return f, calls


def second_order_rk4(F, p0: torch.Tensor, v0: torch.Tensor, t: torch.Tensor):
    """RK4 of ``p' = v``, ``v' = F(t, v)`` from ``(p0, v0)`` on grid ``t`` (eq. 2; chapter 4).

    Because ``F`` does not read the position (section 4.1), the velocity solves
    a first-order ODE of its own: one :func:`~sketchode.numerics.solvers.rk4` solve
    gives it, the stages ``k1, k2, k3`` of each step are recorded on the way,
    and the positions follow in closed form from
    :func:`~sketchode.numerics.solvers.rk4_second_order_positions` (one cumulative sum).
    The result equals the 3/8-rule RK4 on the joint state ``[p, v]`` to
    round-off (tested).  Returns ``(p, v)``, each ``(G, *p0.shape)``.
    """
    check_grid(t, "second_order_rk4")
    if p0.shape != v0.shape:
        raise ValueError(f"second_order_rk4: p0 and v0 must have the same shape, got {tuple(p0.shape)} "
                         f"and {tuple(v0.shape)}")
    f, calls = _recording(F)
    v = rk4(f, v0, t)
    K = torch.stack(calls).reshape(len(t) - 1, 4, *v0.shape)  # (G - 1, 4 stages, ...)
    p = rk4_second_order_positions(p0, v[:-1], K[:, 0], K[:, 1], K[:, 2], t[1:] - t[:-1])
    return p, v


class SecondOrderODE(nn.Module):
    """Second-order augmented Neural ODE ``a'' = F(a')`` on ``a = [s, h]`` (eq. 2; Yildiz et al., 2019; chapter 4).

    The decoder of SketchODE without its latent code: the acceleration of
    the state ``a = [s (2), h (d)]`` is an MLP of the *velocity* only
    (position dropped from the inputs, section 4.1; ``time=True`` adds ``t``).
    The visible start is fixed, ``s(0) = s'(0) = 0``; the hidden start
    ``[h0, h0']`` is learned (in the decoder: ``L_dec(z)``, eq. 3).  As in the
    decoder, ``h0`` influences nothing that is drawn, because ``F`` never reads
    positions; it is kept so the state matches eq. 2.

    Parameters as in :class:`AugmentedODE` (``F`` for ``f``); both ``h0``
    and ``h0'`` are learned, initialised at zero.  Solved by
    :func:`second_order_rk4`.
    """

    def __init__(self, d: int = 4, hidden: Sequence[int] = (32, 32), activation: str = "tanh", w: float = 1.0,
                 time: bool = False, zero_last: bool = False, seed: int = 0):
        super().__init__()
        self.d = _check_d(d, "SecondOrderODE")
        self.n = VISIBLE + self.d
        self.time = bool(time)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.F = MLP(self.n + int(self.time), self.n, tuple(hidden), activation=activation, w=w,
                         zero_last=zero_last)
        self.h0 = nn.Parameter(torch.zeros(self.d))
        self.dh0 = nn.Parameter(torch.zeros(self.d))

    def acceleration(self, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``F(a')`` (or ``F(a', t)``) at velocity ``v (..., n)``."""
        if self.time:
            v = torch.cat([v, t.to(v.dtype).expand(*v.shape[:-1], 1)], dim=-1)
        return self.F(v)

    def initial_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a(0), a'(0)) = ([0, 0, h0], [0, 0, h0'])``, each ``(n,)``."""
        z = self.h0.new_zeros(VISIBLE)
        return torch.cat([z, self.h0]), torch.cat([z, self.dh0])

    def state(self, t: torch.Tensor) -> torch.Tensor:
        """Position and velocity ``[a, a']`` on the grid ``t``: ``(G, 2 n)``."""
        check_grid(t, "SecondOrderODE")
        p0, v0 = self.initial_state()
        p, v = second_order_rk4(self.acceleration, p0.to(t.dtype), v0.to(t.dtype), t)
        return torch.cat([p, v], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """The drawn curve ``s(t)``: ``(G, 2)``."""
        return self.state(t)[:, :VISIBLE]


# ----------------------------------------------------------------- fitting
def _check_target(target, t, where: str):
    if not isinstance(target, torch.Tensor) or not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: target and t must be tensors")
    check_grid(t, where)
    if target.shape != (t.shape[0], VISIBLE):
        raise ValueError(f"{where}: target must have shape (G, 2) = ({t.shape[0]}, 2), got {tuple(target.shape)}")
    if not bool(torch.isfinite(target).all()):
        raise ValueError(f"{where}: target has NaN or inf values")


def mse(model: nn.Module, target: torch.Tensor, t: torch.Tensor) -> float:
    """Mean squared error of ``model(t)`` against ``target (G, 2)`` (no gradient), as a float (chapter 4)."""
    _check_target(target, t, "mse")
    with torch.no_grad():
        return float(((model(t) - target) ** 2).mean())


def fit(model: nn.Module, target: torch.Tensor, t: torch.Tensor, steps: int = 600, lr: float = 3e-2,
        seed: int = 0) -> np.ndarray:
    """Fit a toy model to one curve by full-batch Adam on the mean squared error (section 4.1; chapter 4).

    ``target (G, 2)`` on the grid ``t (G,)``.  The learning rate decays by a
    cosine from ``lr`` to ``lr / 20`` over ``steps``.  Training runs under
    ``torch.manual_seed(seed)`` in a forked generator (the caller's random
    state is left as it was), so a model with random parts trains
    reproducibly.  Returns ``steps + 1`` losses: before every step, then
    after the last one (:func:`mse` of the fitted model).
    """
    _check_target(target, t, "fit")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"fit: steps must be an int >= 0, got {steps!r}")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"fit: lr must be a positive number, got {lr!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if steps and not params:
        raise ValueError(f"fit: {type(model).__name__} has no trainable parameters")
    losses = np.empty(steps + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if steps:
            opt = torch.optim.Adam(params, lr=lr)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = ((model(t) - target) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
            losses[i] = float(loss.detach())
        losses[steps] = mse(model, target, t)
    return losses


# -------------------------------------------------------- self-overlaps
def self_intersections(xy, tol: float = 1e-9) -> int:
    """How many pairs of non-adjacent segments of the polyline ``xy (G, 2)`` properly cross (chapter 4).

    Counted by :func:`sketchode.book.ch02_neural_odes.self_crossings` (vectorised over
    all segment pairs).  Only proper crossings count: touching
    end points, collinear overlaps and a crossing that falls exactly on a
    vertex are not counted.  A solution of an autonomous first-order ODE in
    the plane gives ``0`` up to the solver's error; a figure-eight gives ``1``.
    """
    if isinstance(xy, torch.Tensor):
        xy = xy.detach().cpu().numpy()
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"self_intersections: xy must have shape (G, 2), got {xy.shape}")
    return len(self_crossings(xy, tol=tol))


# ----------------------------------------------------------------- figures
def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _timeline(ax, xy, cmap="viridis", lw=2.0, **kw):
    from matplotlib.collections import LineCollection

    seg = np.stack([xy[:-1], xy[1:]], axis=1)
    lc = LineCollection(seg, cmap=cmap, linewidths=lw, **kw)
    lc.set_array(np.linspace(0, 1, len(seg)))
    ax.add_collection(lc)
    return lc


def _box(arrays, pad: float = 0.1):
    """A square box ``(xlim, ylim)`` around every point of ``arrays`` (each ``(..., 2)``), ``pad`` of its side added."""
    pts = np.concatenate([_np(a).reshape(-1, 2) for a in arrays])
    lo, hi = pts.min(0), pts.max(0)
    c, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * (1 + pad)
    return (c[0] - half, c[0] + half), (c[1] - half, c[1] + half)


def plot_fits(target, fits: Mapping[str, object], losses: Mapping[str, np.ndarray] | None = None,
              size: float = 2.6):
    """Target (dashed grey) and each model's curve (coloured by time), one panel per model, and the
    loss curves in a last panel when ``losses`` is given (chapter 4).  Returns the figure."""
    import matplotlib.pyplot as plt

    if not fits:
        raise ValueError("plot_fits: no fits to plot")
    tgt = _np(target)
    n = len(fits) + (losses is not None)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    axes = axes[0]
    xlim, ylim = _box([tgt, *fits.values()])
    for ax, (name, xy) in zip(axes, fits.items()):
        xy = _np(xy)
        ax.plot(tgt[:, 0], tgt[:, 1], "--", color="0.6", lw=1.2)
        _timeline(ax, xy)
        ax.plot(*xy[0], "o", color="k", ms=3)
        ax.set_xlim(*xlim), ax.set_ylim(*ylim), ax.set_aspect("equal")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(name, fontsize=9)
    if losses is not None:
        ax = axes[-1]
        for name, l in losses.items():
            ax.semilogy(np.arange(len(l)), l, label=name)
        ax.set_xlabel("Adam step", fontsize=8)
        ax.set_ylabel("MSE", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_phase(model: nn.Module, t: torch.Tensor, target=None, ax=None, n: int = 25):
    """The learned vector field of a 2-D first-order model (streamlines), its solution and the target (chapter 4).

    Only for a state that is the drawing itself (:class:`FirstOrderODE`, or
    ``AugmentedODE(d=0)``) and no time input: then the field is a picture in
    the plane, and its streamlines, like its solutions, never cross.  The
    box holds the solution and the target.
    """
    import matplotlib.pyplot as plt

    if not isinstance(model, AugmentedODE) or model.d != 0 or model.time:
        raise ValueError("plot_phase: needs an autonomous 2-D first-order model (FirstOrderODE without time)")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.4, 3.4))
    with torch.no_grad():
        xy = model(t)
    xlim, ylim = _box([xy] + ([] if target is None else [target]), pad=0.25)
    X, Y = torch.meshgrid(torch.linspace(*xlim, n), torch.linspace(*ylim, n), indexing="xy")
    with torch.no_grad():
        V = model.field(t[:1], torch.stack([X, Y], dim=-1))
    ax.streamplot(X.numpy(), Y.numpy(), V[..., 0].numpy(), V[..., 1].numpy(), color="0.75", density=1.0,
                  linewidth=0.7, arrowsize=0.7)
    if target is not None:
        tg = _np(target)
        ax.plot(tg[:, 0], tg[:, 1], "--", color="0.4", lw=1.2)
    _timeline(ax, _np(xy))
    ax.set_xlim(*xlim), ax.set_ylim(*ylim), ax.set_aspect("equal")
    return ax


def plot_lifted(xy, rest, ax=None, title: str | None = None, zlabel: str = "hidden (1st PC)"):
    """A planar curve lifted into 3-D by the first principal component of the rest of its state (chapter 4).

    ``xy (G, 2)`` the drawn curve, ``rest (G, k)`` the other state coordinates
    (hidden dimensions, velocities).  The third axis is ``rest`` projected on
    its direction of largest variance; the shadow on the floor is the drawing.
    Where the drawing crosses itself the lifted curve passes at two heights.
    ``zlabel`` names the third axis.
    """
    import matplotlib.pyplot as plt

    xy, rest = _np(xy), _np(rest)
    if xy.ndim != 2 or xy.shape[1] != 2 or rest.ndim != 2 or rest.shape[0] != xy.shape[0] or rest.shape[1] < 1:
        raise ValueError(f"plot_lifted: need xy (G, 2) and rest (G, k>=1); got {xy.shape} and {rest.shape}")
    c = rest - rest.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    u = c @ vt[0]
    if ax is None:
        fig = plt.figure(figsize=(3.6, 3.4))
        ax = fig.add_subplot(projection="3d")
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    floor = u.min() - 0.3 * (np.ptp(u) + 1e-12)
    ax.plot(xy[:, 0], xy[:, 1], np.full_like(u, floor), color="0.6", lw=1)
    pts = np.column_stack([xy, u])
    lc = Line3DCollection(np.stack([pts[:-1], pts[1:]], axis=1), cmap="viridis", linewidths=2)
    lc.set_array(np.linspace(0, 1, len(u) - 1))
    ax.add_collection3d(lc)
    ax.set_xlim(xy[:, 0].min(), xy[:, 0].max()), ax.set_ylim(xy[:, 1].min(), xy[:, 1].max())
    ax.set_zlim(floor, u.max())
    ax.set_xlabel("x", fontsize=8), ax.set_ylabel("y", fontsize=8), ax.set_zlabel(zlabel, fontsize=8)
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_family(trajs, values=None, ax=None, cmap="coolwarm", label: str = r"$\alpha$"):
    """Overlay trajectories ``(K, G, 2)`` coloured by a parameter ``values (K,)`` (chapter 4, latent interpolation)."""
    import matplotlib.pyplot as plt

    tr = _np(trajs)
    if tr.ndim != 3 or tr.shape[-1] != 2:
        raise ValueError(f"plot_family: trajs must have shape (K, G, 2), got {tr.shape}")
    v = np.linspace(0, 1, len(tr)) if values is None else _np(values)
    if v.shape != (len(tr),):
        raise ValueError(f"plot_family: values must have shape ({len(tr)},), got {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.4, 3.4))
    norm = plt.Normalize(v.min(), v.max() if v.max() > v.min() else v.min() + 1)
    cm = plt.get_cmap(cmap)
    for x, val in zip(tr, v):
        ax.plot(x[:, 0], x[:, 1], color=cm(norm(val)), lw=1.5)
    ax.plot(0, 0, "ko", ms=3)
    ax.set_aspect("equal")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cm)
    ax.figure.colorbar(sm, ax=ax, shrink=0.7, label=label)
    return ax
