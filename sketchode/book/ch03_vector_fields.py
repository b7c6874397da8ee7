"""Random 2-D vector fields and the trajectories they draw (paper section 4.5, figure 4 left; chapter 3).

A neural ODE ``dy/dt = f(y)`` draws whatever its vector field ``f`` lets it
draw (Chen et al., 2018).  Section 4.5 of the paper argues that MLPs with the
usual activations (ReLU, Tanh, Sigmoid) induce fields too simple for
handwriting, and that the periodic activation ``cos(w x)`` of SIREN
(Sitzmann et al., 2020) gives fields whose spatial frequency grows with
``w``.  Figure 4 (left) shows it with MLPs ``R^2 -> R^2`` with random
weights: a streamplot of each field and a few solution trajectories.  This
module rebuilds that figure and measures what it shows.

Contents
--------
* :func:`random_field`: a seeded random MLP ``R^2 -> R^2`` (``R^3`` with time);
* :func:`field_on_grid`: the field sampled on an ``n x n`` grid (for streamplots);
* :func:`default_starts`, :func:`trajectories`: start points and RK4 solutions;
* :func:`jacobian_on_grid`: the field and its exact Jacobian on a grid;
* :func:`field_complexity`: the RMS spatial frequency of a field (cycles per unit length);
* :func:`turning`, :func:`self_intersections`: how much a trajectory turns, and
  how often it crosses itself;
* :func:`rk4_errors`, :func:`adaptive_nfe`: what a piecewise-linear (ReLU) field costs
  fixed-step RK4 (accuracy) and an adaptive solver (evaluations);
* :func:`plot_field`, :func:`plot_trajectories`, :func:`plot_field_grid`: the figures.

Every function takes a *field* ``f``: an :class:`~sketchode.models.dynamics.MLP` (or
any callable) mapping ``(..., 2)`` positions to ``(..., 2)`` velocities, or,
when it has ``in_dim == 3``, ``(..., 3)`` inputs ``(x, y, t)`` (a
time-dependent field; time is the last channel).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from sketchode.models.dynamics import MLP, PERIODIC
from sketchode.book.ch02_neural_odes import self_crossings
from sketchode.numerics.solvers import rk4

__all__ = [
    "INITS",
    "random_field",
    "field_on_grid",
    "default_starts",
    "trajectories",
    "jacobian_on_grid",
    "field_complexity",
    "turning",
    "self_intersections",
    "rk4_errors",
    "adaptive_nfe",
    "plot_field",
    "plot_trajectories",
    "plot_field_grid",
]

#: Weight initialisations :func:`random_field` accepts.
INITS = ("normal", "default", "siren")


# ----------------------------------------------------------------- helpers
def _in_dim(f) -> int:
    d = getattr(f, "in_dim", 2)
    if d not in (2, 3):
        raise ValueError(
            f"a 2-D vector field takes (x, y) or (x, y, t) inputs: in_dim must be 2 or 3; got {d!r}"
        )
    return d


def _dtype(f) -> torch.dtype:
    if isinstance(f, nn.Module):
        for p in f.parameters():
            return p.dtype
    return torch.get_default_dtype()


def _evaluate(f, xy: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """``f`` at positions ``xy (..., 2)`` and time ``t``; checks the output shape."""
    if _in_dim(f) == 3:
        tt = torch.as_tensor(t, dtype=xy.dtype).expand(*xy.shape[:-1], 1)
        out = f(torch.cat([xy, tt], dim=-1))
    else:
        out = f(xy)
    if not isinstance(out, torch.Tensor) or out.shape != xy.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the field must map (..., 2) positions to (..., 2) velocities; got {got}")
    return out


def _check_lim(lim) -> float:
    lim = float(lim)
    if not math.isfinite(lim) or lim <= 0:
        raise ValueError(f"lim must be a positive number; got {lim!r}")
    return lim


def _check_n(n, least: int, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < least:
        raise ValueError(f"{what} must be an int >= {least}; got {n!r}")
    return int(n)


def _grid(n: int, lim: float, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.linspace(-lim, lim, n, dtype=dtype)
    X, Y = torch.meshgrid(x, x, indexing="xy")  # X varies along columns, as streamplot expects
    return X, Y


def _paths(paths) -> np.ndarray:
    """``(G, B, 2)`` float64 array from a tensor/array ``(G, 2)`` or ``(G, B, 2)``."""
    p = paths.detach().cpu().numpy() if isinstance(paths, torch.Tensor) else np.asarray(paths)
    p = p.astype(np.float64)
    if p.ndim == 2:
        p = p[:, None, :]
    if p.ndim != 3 or p.shape[-1] != 2 or p.shape[0] < 2:
        raise ValueError(f"paths must have shape (G, 2) or (G, B, 2) with G >= 2; got {p.shape}")
    return p


# -------------------------------------------------------------- the fields
def random_field(
    activation: str = "cos",
    w: float = 1.0,
    seed: int = 0,
    hidden: Sequence[int] = (32, 32),
    init: str = "normal",
    gain: float = 2.0,
    time: bool = False,
) -> MLP:
    """A random MLP vector field ``R^2 -> R^2`` as in figure 4 (left) of the paper (section 4.5; chapter 3).

    Parameters
    ----------
    activation:
        Hidden activation, any name :func:`sketchode.models.dynamics.make_activation`
        knows (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"cos"``, ...).
    w:
        Frequency of a periodic activation ``cos(w x)``; must stay 1 for the
        others (as in :class:`~sketchode.models.dynamics.MLP`).
    seed:
        The weights depend on ``seed``, ``hidden``, ``init``, ``gain`` and
        ``time`` only, not on ``w`` or ``activation``: one seed gives one
        family of fields whose panels differ only by the non-linearity.  The
        global torch RNG is left untouched.
    hidden:
        Hidden widths (the authors' code uses ``(32, 32)``).
    init:
        ``"normal"``: every weight ``N(0, gain^2 / fan_in)``, every bias
        ``N(0, 1)``.  ``"default"``: PyTorch's ``nn.Linear`` initialisation
        (weights ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, i.e. ``gain`` about
        0.58).  ``"siren"``: the SIREN scheme of
        :class:`~sketchode.models.dynamics.MLP` (periodic activations only).
        What shapes a periodic field is the *product* of ``w`` and the
        weight scale: ``cos(w (a . x + b))`` is a plane wave of ``w |a| / 2 pi``
        cycles per unit length, so under PyTorch's small default weights
        ``w = 2`` still looks almost linear on ``[-1, 1]^2``.
    gain:
        Weight scale of ``init="normal"`` (ignored otherwise).
    time:
        ``True``: a time-dependent field ``f(x, y, t)`` (``in_dim = 3``, time
        the last input channel); ``False``: autonomous ``f(x, y)``.

    Returns an :class:`~sketchode.models.dynamics.MLP` in float32, in eval mode, with
    gradients disabled on its parameters (it is a fixed random field).
    """
    if init not in INITS:
        raise ValueError(f"random_field: init must be one of {INITS}; got {init!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"random_field: seed must be an int; got {seed!r}")
    gain = float(gain)
    if not math.isfinite(gain) or gain <= 0:
        raise ValueError(f"random_field: gain must be a positive number; got {gain!r}")
    in_dim = 3 if time else 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        mlp = MLP(
            in_dim, 2, hidden=tuple(hidden), activation=activation, w=w,
            init="siren" if init == "siren" else "default",
        )
    if init == "normal":
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for lin in mlp.linears:
                lin.weight.normal_(0.0, gain / math.sqrt(lin.in_features), generator=g)
                lin.bias.normal_(0.0, 1.0, generator=g)
    mlp.requires_grad_(False)
    return mlp.eval()


def field_on_grid(f: Callable, n: int = 25, lim: float = 1.0, t: float = 0.0):
    """The field on an ``n x n`` grid over ``[-lim, lim]^2``: ``(X, Y, U, V)`` numpy arrays ``(n, n)`` (chapter 3).

    ``X`` varies along columns and ``Y`` along rows (``indexing="xy"``, what
    :meth:`matplotlib.axes.Axes.streamplot` expects); ``U, V`` are the two
    velocity components.  One batched forward pass.  ``t`` is used only by
    a time-dependent field (``in_dim == 3``), which is shown frozen at ``t``.
    """
    n = _check_n(n, 2)
    lim = _check_lim(lim)
    X, Y = _grid(n, lim, _dtype(f))
    with torch.no_grad():
        F = _evaluate(f, torch.stack([X, Y], dim=-1), t)
    return X.numpy(), Y.numpy(), F[..., 0].cpu().numpy(), F[..., 1].cpu().numpy()


def default_starts(k: int = 6, lim: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``k`` start points ``(k, 2)``, uniform in ``[-0.8 lim, 0.8 lim]^2``, from ``numpy.random.default_rng(seed)``."""
    k = _check_n(k, 1, "k")
    lim = _check_lim(lim)
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.uniform(-0.8 * lim, 0.8 * lim, size=(k, 2)), dtype=torch.get_default_dtype())


def trajectories(f: Callable, starts, T: float = 5.0, G: int = 200) -> torch.Tensor:
    """Solutions of ``dy/dt = f(y)`` (or ``f(y, t)``) from ``starts (B, 2)`` over ``[0, T]`` (chapter 3).

    Solved with :func:`sketchode.numerics.solvers.rk4` on ``G`` uniform times (``T = 5``
    is the paper's time range, section 5.1), all start points in one batch.
    Returns ``(G, B, 2)`` (``(G, 2)`` for a single start ``(2,)``), in the
    field's dtype, without gradient.
    """
    G = _check_n(G, 2, "G")
    T = float(T)
    if not math.isfinite(T) or T <= 0:
        raise ValueError(f"trajectories: T must be a positive number; got {T!r}")
    dtype = _dtype(f)
    y0 = torch.as_tensor(starts, dtype=dtype)
    single = y0.ndim == 1
    if single:
        y0 = y0[None]
    if y0.ndim != 2 or y0.shape[-1] != 2 or y0.shape[0] < 1:
        raise ValueError(f"trajectories: starts must have shape (B, 2) or (2,); got {tuple(y0.shape)}")
    t = torch.linspace(0.0, T, G, dtype=dtype)
    with torch.no_grad():
        ys = rk4(lambda s, y: _evaluate(f, y, s), y0, t)
    return ys[:, 0] if single else ys


_solve = trajectories  # plot_field has an argument of that name


# ---------------------------------------------------------------- measures
def jacobian_on_grid(f: Callable, n: int = 64, lim: float = 1.0, t: float = 0.0):
    """The field and its exact Jacobian on an ``n x n`` grid over ``[-lim, lim]^2`` (chapter 3).

    Returns ``(F, J)`` as float64 numpy arrays ``(n, n, 2)`` and ``(n, n, 2, 2)``
    with ``J[..., i, j] = d f_i / d x_j`` (``x_0 = x``, ``x_1 = y``), grid
    laid out as in :func:`field_on_grid`.  Two backward passes through one
    batched forward pass (the field acts on each point separately, so the
    gradient of ``sum f_i`` is the ``i``-th Jacobian row at every point).
    """
    n = _check_n(n, 2)
    lim = _check_lim(lim)
    X, Y = _grid(n, lim, _dtype(f))
    xy = torch.stack([X, Y], dim=-1).reshape(-1, 2).requires_grad_(True)
    with torch.enable_grad():
        F = _evaluate(f, xy, t)
        if F.requires_grad:
            rows = [torch.autograd.grad(F[:, i].sum(), xy, retain_graph=i == 0, allow_unused=True)[0]
                    for i in range(2)]
        else:  # the output does not depend on the input: a constant field
            rows = [None, None]
    rows = [torch.zeros_like(xy) if r is None else r for r in rows]
    J = torch.stack(rows, dim=1).detach().double().reshape(n, n, 2, 2)
    return F.detach().double().reshape(n, n, 2).cpu().numpy(), J.cpu().numpy()


def field_complexity(f: Callable, n: int = 64, lim: float = 1.0, t: float = 0.0) -> float:
    """RMS spatial frequency of a field on ``[-lim, lim]^2``, in cycles per unit length (section 4.5; chapter 3).

    ::

        k_rms = sqrt( mean ||J_f(x)||_F^2 / mean ||f(x) - mean f||^2 ) / (2 pi)

    over an ``n x n`` grid (means by the trapezoidal rule), with the exact
    Jacobian from :func:`jacobian_on_grid`.  By Parseval's theorem this is the power-weighted RMS wavenumber of
    ``f``'s Fourier spectrum: a plane wave ``sin(2 pi k x)`` gives ``k``
    (to round-off, over whole periods), a linear field ``A x`` gives
    ``sqrt(3) / (2 pi lim)`` (about 0.28 on ``[-1, 1]^2``) whatever ``A``.  It
    ignores the field's magnitude (speed), so it compares the *shape* of
    fields with different activations and ``w``.  A constant field gives 0.
    """
    F, J = jacobian_on_grid(f, n=n, lim=lim, t=t)
    # Box averages by the trapezoidal rule (half weight on the borders): second-order accurate, and
    # exact for trigonometric polynomials over whole periods.
    w1 = np.ones(F.shape[0])
    w1[[0, -1]] = 0.5
    wts = np.outer(w1, w1) / np.outer(w1, w1).sum()
    mean = np.einsum("ij,ijc->c", wts, F)
    var = float(np.einsum("ij,ij->", wts, ((F - mean) ** 2).sum(-1)))
    if var == 0.0:
        return 0.0
    return float(np.sqrt(np.einsum("ij,ij->", wts, (J ** 2).sum((-2, -1))) / var) / (2 * math.pi))


def turning(paths, min_step: float = 1e-4) -> np.ndarray:
    """Total absolute turning of each trajectory, in turns (``2 pi`` radians) (chapter 3).

    The sum of ``|heading change|`` between consecutive segments of the
    polyline, i.e. the integral of ``|curvature|`` over arc length.  A
    straight path gives 0, a circle 1, a curl or loop adds about 1 each.
    Segments shorter than ``min_step`` (a trajectory stalled at a fixed point,
    where the heading is round-off) are skipped: the change is measured
    between the nearest kept segments.  ``paths`` is ``(G, 2)`` or
    ``(G, B, 2)``; returns ``(B,)``.
    """
    p = _paths(paths)
    d = np.diff(p, axis=0)  # (S, B, 2)
    keep = np.hypot(d[..., 0], d[..., 1]) >= min_step
    theta = np.arctan2(d[..., 1], d[..., 0])
    # Carry the last kept heading forward over skipped segments (vectorised forward fill).
    S = theta.shape[0]
    idx = np.where(keep, np.arange(S)[:, None], -1)
    idx = np.maximum.accumulate(idx, axis=0)
    filled = np.take_along_axis(theta, np.maximum(idx, 0), axis=0)
    dth = np.diff(filled, axis=0)
    dth = (dth + np.pi) % (2 * np.pi) - np.pi
    valid = keep[1:] & (idx[:-1] >= 0)  # a kept segment with a kept one before it
    return np.where(valid, np.abs(dth), 0.0).sum(axis=0) / (2 * np.pi)


def self_intersections(paths) -> np.ndarray:
    """How many times each trajectory crosses itself (chapter 3).

    Counts the pairs of non-adjacent segments of the polyline that properly
    cross (:func:`sketchode.book.ch02_neural_odes.self_crossings`: touching or collinear
    segments do not count).  A trajectory of an *autonomous* 2-D field never crosses itself
    (uniqueness of ODE solutions); a time-dependent field's can.  Vectorised
    over all segment pairs of a trajectory; ``paths`` is ``(G, 2)`` or
    ``(G, B, 2)``; returns ``(B,)`` ints.
    """
    p = _paths(paths).transpose(1, 0, 2)  # (B, G, 2)
    return np.array([len(self_crossings(path)) for path in p], dtype=int)


def rk4_errors(f: nn.Module, starts, T: float = 5.0, Gs: Sequence[int] = (51, 101, 201, 401),
               G_ref: int = 3201) -> np.ndarray:
    """RK4's error against the number of grid points ``G`` (chapter 3, trap "avoid ReLU in vector fields").

    Each solve from ``starts (B, 2)`` on ``G`` uniform points over ``[0, T]``
    (step ``T / (G - 1)``) is compared with a reference solve on ``G_ref``
    points at the common grid times (so ``G_ref - 1`` must be a multiple of
    every ``G - 1``); everything runs in float64 on a copy of ``f``.  The
    error is ``max_t |y_G(t) - y_ref(t)| / max(1, |y_ref(t)|)`` (relative where
    a trajectory escapes far from the origin, absolute near it), the largest
    over start points.  Returns ``(len(Gs),)``.

    RK4 is fourth-order only for a smooth field: the slope of ``log error``
    against ``log step`` is about 4 for a tanh or cos field and about 2 for a
    ReLU field, whose Jacobian jumps across the kinks.
    """
    import copy

    Gs = [_check_n(G, 2, "G") for G in Gs]
    G_ref = _check_n(G_ref, 3, "G_ref")
    bad = [G for G in Gs if (G_ref - 1) % (G - 1) or G >= G_ref]
    if bad:
        raise ValueError(f"rk4_errors: G_ref - 1 ({G_ref - 1}) must be a multiple of every G - 1 with G < G_ref; bad G: {bad}")
    f64 = copy.deepcopy(f).double() if isinstance(f, nn.Module) else f
    y0 = torch.as_tensor(starts, dtype=torch.float64)
    ref = trajectories(f64, y0, T, G_ref)
    out = []
    for G in Gs:
        r = ref[:: (G_ref - 1) // (G - 1)]
        e = (trajectories(f64, y0, T, G) - r).norm(dim=-1) / r.norm(dim=-1).clamp_min(1.0)
        out.append(float(e.max()))
    return np.array(out)


def adaptive_nfe(f: nn.Module, starts, T: float = 5.0, tol: float = 1e-7, method: str = "dopri5") -> int:
    """Field evaluations an adaptive solver spends on ``[0, T]`` from ``starts (B, 2)`` (chapter 3, trap "avoid ReLU").

    Runs ``torchdiffeq.odeint(..., rtol=tol, atol=tol, method=method)`` in
    float64 on a copy of ``f`` and counts the calls of the field (the
    batch of start points is one call).  An embedded Runge-Kutta pair such
    as ``dopri5`` estimates its local error assuming the solution is smooth;
    at every kink of a ReLU field the estimate is large, the step is
    rejected and shrunk, so the count grows much faster as ``tol`` tightens
    than for a smooth field (e.g. the softplus field with the same weights).
    """
    import copy

    import torchdiffeq

    tol = float(tol)
    if not math.isfinite(tol) or tol <= 0:
        raise ValueError(f"adaptive_nfe: tol must be a positive number; got {tol!r}")
    T = float(T)
    if not math.isfinite(T) or T <= 0:
        raise ValueError(f"adaptive_nfe: T must be a positive number; got {T!r}")
    f64 = copy.deepcopy(f).double() if isinstance(f, nn.Module) else f
    y0 = torch.as_tensor(starts, dtype=torch.float64)
    if y0.ndim != 2 or y0.shape[-1] != 2:
        raise ValueError(f"adaptive_nfe: starts must have shape (B, 2); got {tuple(y0.shape)}")
    count = [0]

    def rhs(t, y):
        count[0] += 1
        return _evaluate(f64, y, t)

    with torch.no_grad():
        torchdiffeq.odeint(rhs, y0, torch.tensor([0.0, T], dtype=torch.float64), rtol=tol, atol=tol, method=method)
    return count[0]


# ----------------------------------------------------------------- figures
def _style(ax, lim):
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_color("0.85")


def plot_trajectories(paths, ax=None, cmap="viridis", linewidth: float = 2.0, starts: bool = True,
                      lim: float | None = None, title: str | None = None):
    """Draw trajectories ``(G, 2)``/``(G, B, 2)`` like ink, coloured by time (dark = early) (chapter 3).

    ``starts`` marks each start point with a black dot.  ``lim`` fixes the view
    to ``[-lim, lim]^2``; ``None`` fits the trajectories.  Returns the Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    p = _paths(paths)
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    G, B = p.shape[:2]
    segs = np.stack([p[:-1], p[1:]], axis=2).transpose(1, 0, 2, 3).reshape(-1, 2, 2)  # (B (G-1), 2, 2)
    tau = np.tile((np.arange(G - 1) + 0.5) / (G - 1), B)
    lc = LineCollection(segs, cmap=cmap, linewidths=linewidth, capstyle="round", joinstyle="round")
    lc.set_array(tau)
    lc.set_clim(0.0, 1.0)
    ax.add_collection(lc, autolim=False)
    if starts:
        ax.plot(p[0, :, 0], p[0, :, 1], "o", color="black", ms=3, zorder=4)
    if lim is None:
        lo, hi = p.reshape(-1, 2).min(0), p.reshape(-1, 2).max(0)
        c, half = 0.5 * (lo + hi), 0.55 * max(float((hi - lo).max()), 1e-6)
        _style(ax, 1.0)
        ax.set_xlim(c[0] - half, c[0] + half)
        ax.set_ylim(c[1] - half, c[1] + half)
    else:
        _style(ax, _check_lim(lim))
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_field(
    f: Callable,
    ax=None,
    n: int = 41,
    lim: float = 1.0,
    t: float = 0.0,
    trajectories: bool = True,
    starts=None,
    T: float = 5.0,
    G: int = 200,
    cmap="viridis",
    density: float = 1.2,
    title: str | None = None,
    colorbar: bool = False,
):
    """Streamplot of a field over ``[-lim, lim]^2``, streamlines coloured by speed ``||f||`` (figure 4 left; chapter 3).

    With ``trajectories=True`` RK4 solutions over ``[0, T]`` from ``starts``
    (default :func:`default_starts`) are drawn on top in red, start points
    as black dots, so one sees the flow *and* what it would draw.  A
    time-dependent field's streamplot is its snapshot at ``t`` (its
    trajectories still see the changing field).  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    lim = _check_lim(lim)
    X, Y, U, V = field_on_grid(f, n=n, lim=lim, t=t)
    speed = np.hypot(U, V)
    sp = ax.streamplot(X, Y, U, V, color=speed, cmap=cmap, density=density, linewidth=0.8,
                       arrowsize=0.7, broken_streamlines=True)
    if colorbar:
        ax.figure.colorbar(sp.lines, ax=ax, fraction=0.046, pad=0.03, label="speed")
    if trajectories:
        s = default_starts(6, lim) if starts is None else starts
        paths = _paths(_solve(f, s, T=T, G=G))
        ax.plot(paths[:, :, 0], paths[:, :, 1], color="crimson", lw=1.6, zorder=3)
        ax.plot(paths[0, :, 0], paths[0, :, 1], "o", color="black", ms=3, zorder=4)
    _style(ax, lim)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def _panels(activations, ws):
    panels = []
    for act in activations:
        if not isinstance(act, str):
            raise ValueError(f"plot_field_grid: activations must be names; got {act!r}")
        if act.lower() in PERIODIC:
            panels += [(act.lower(), float(w)) for w in ws]
        else:
            panels.append((act.lower(), 1.0))
    return panels


def plot_field_grid(
    activations: Sequence[str] = ("relu", "tanh", "sigmoid", "cos"),
    ws: Sequence[float] = (0.5, 1.0, 2.0),
    seed: int | Sequence[int] = 0,
    size: float = 2.0,
    below: bool = True,
    T: float = 5.0,
    G: int = 200,
    k: int = 6,
    below_lim: float = 1.5,
    n: int = 41,
    density: float = 1.2,
    **field_kw,
):
    """Figure 4 (left) of the paper: random MLP fields by activation and ``w`` (section 4.5; chapter 3).

    One column per panel: each non-periodic activation once, each periodic
    one for every ``w`` in ``ws`` (the default gives the paper's six:
    ReLU, Tanh, Sigmoid, Cos with ``w = 0.5, 1, 2``).  All panels of a row
    use the same ``seed`` (same weights, see :func:`random_field`); a
    sequence of seeds gives one row (pair of rows) per seed.  Top row: the
    streamplot coloured by speed, with the trajectories from ``k`` start
    points over ``[0, T]`` in red (:func:`plot_field`); with ``below=True``
    (as in the paper) a second row shows the trajectories alone, coloured by
    time like ink, over ``[-below_lim, below_lim]^2``.  ``n`` and ``density``
    go to :func:`plot_field`.  Further keywords
    (``hidden``, ``init``, ``gain``, ``time``) go to :func:`random_field`.
    Returns the Figure.
    """
    import matplotlib.pyplot as plt

    panels = _panels(activations, ws)
    if not panels:
        raise ValueError("plot_field_grid: no panels (empty activations or ws)")
    seeds = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    if not seeds:
        raise ValueError("plot_field_grid: no seeds")
    per = 2 if below else 1
    fig, axes = plt.subplots(per * len(seeds), len(panels),
                             figsize=(len(panels) * size, per * len(seeds) * size * 1.12), squeeze=False)
    for r, sd in enumerate(seeds):
        starts = default_starts(k, 1.0, sd)
        for c, (act, w) in enumerate(panels):
            f = random_field(act, w=w, seed=sd, **field_kw)
            name = {"relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}.get(act, act.capitalize())
            title = f"{name}, w = {w:g}" if act in PERIODIC else name
            if len(seeds) > 1:
                title += f" (seed {sd})"
            plot_field(f, ax=axes[per * r, c], n=n, density=density, starts=starts, T=T, G=G, title=title)
            if below:
                plot_trajectories(trajectories(f, starts, T=T, G=G), ax=axes[per * r + 1, c], lim=below_lim)
    fig.tight_layout(pad=0.3, h_pad=0.8)
    return fig
