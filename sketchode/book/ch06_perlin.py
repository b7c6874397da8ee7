"""Chapter 6's figures of Perlin augmentation: the noise field, a warp of the plane, copies, displacements.

The augmentation itself (section 4.6) is library code, :mod:`sketchode.data.augment`;
this module only draws it for the chapter.
"""

from __future__ import annotations

import numpy as np

from typing import Sequence

from sketchode.data.augment import (  # noqa: F401
    _check_sketch, _rng, center_of_gravity, gaussian_jitter, ink_time, perlin, perlin2d, perlin_displacement,
    perlin_field, time_weights, warp_field,
)
from sketchode.data.sketch import Sketch

__all__ = ["plot_perlin_field", "plot_warp", "plot_augmentations", "plot_displacement"]


def _axes(ax, figsize=(3, 3)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _square_limits(ax, lo, hi, margin: float = 0.06):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    span = max(float(np.max(hi - lo)), 1e-6)
    c = 0.5 * (lo + hi)
    m = margin * span
    ax.set_xlim(c[0] - 0.5 * span - m, c[0] + 0.5 * span + m)
    ax.set_ylim(c[1] - 0.5 * span - m, c[1] + 0.5 * span + m)


def _bounds(sketches) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate([s.points[:, :2] for s in sketches])
    return pts.min(axis=0), pts.max(axis=0)


def plot_perlin_field(
    extent=(0.0, 4.0, 0.0, 4.0),
    resolution: int = 200,
    base: int = 0,
    ax=None,
    lattice: bool = True,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
):
    """Image of the 2-D noise :func:`perlin2d` over ``extent = (x0, x1, y0, y1)`` (paper 4.6; chapter 6).

    ``resolution`` pixels along the longer side; ``lattice`` draws the integer
    lattice lines, on which the noise is zero at every crossing.  The colour
    scale is symmetric, ``[-1, 1]``.  Returns the Axes.
    """
    x0, x1, y0, y1 = (float(v) for v in extent)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"plot_perlin_field: extent must have x1 > x0 and y1 > y0, got {extent}")
    resolution = int(resolution)
    if resolution < 2:
        raise ValueError(f"plot_perlin_field: resolution must be >= 2, got {resolution}")
    ax = _axes(ax, (4, 4))
    span = max(x1 - x0, y1 - y0)
    nx = max(2, int(round(resolution * (x1 - x0) / span)))
    ny = max(2, int(round(resolution * (y1 - y0) / span)))
    X, Y = np.meshgrid(np.linspace(x0, x1, nx), np.linspace(y0, y1, ny))
    Z = perlin2d(X, Y, base=base)
    im = ax.imshow(Z, origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=-1, vmax=1, interpolation="bilinear")
    if lattice:
        for gx in range(int(np.ceil(x0)), int(np.floor(x1)) + 1):
            ax.axvline(gx, color="k", lw=0.5, alpha=0.35)
        for gy in range(int(np.ceil(y0)), int(np.floor(y1)) + 1):
            ax.axhline(gy, color="k", lw=0.5, alpha=0.35)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return ax


def plot_warp(
    sketch: Sketch,
    sigma: float = 0.15,
    seed=0,
    frequency: float = 1.0,
    center: str = "drawing",
    ax=None,
    grid: int = 12,
    show_center: bool = True,
    title: str | None = None,
):
    """One Perlin augmentation drawn as a warp of the plane (paper 4.6; chapter 6).

    The original drawing in light grey, the augmented one coloured by time
    (:func:`sketchode.plot.plot_sketch`), and ``grid`` lines in each direction
    over the drawing's box deformed by the same displacement
    (:func:`warp_field`), so the smoothness of the warp is visible.  With
    ``show_center`` the time-weighted centres of gravity (original ``x``,
    augmented ``+``, both with the original's weights) are marked: they
    coincide when ``center="drawing"``.  ``grid=0`` draws no grid (and is the
    only choice with ``center="stroke"``).  Returns the Axes.
    """
    from sketchode.plot import plot_sketch

    sk = _check_sketch(sketch, "plot_warp")
    grid = int(grid)
    if grid < 0:
        raise ValueError(f"plot_warp: grid must be >= 0, got {grid}")
    ax = _axes(ax)
    aug = perlin(sk, sigma, seed, frequency, center)
    lo, hi = _bounds([sk, aug])
    if grid:
        if center == "stroke":
            raise ValueError("plot_warp: center='stroke' is no single warp of the plane; use grid=0")
        from matplotlib.collections import LineCollection

        span = np.max(hi - lo)
        glo, ghi = lo - 0.1 * span, hi + 0.1 * span
        U, K = np.meshgrid(np.linspace(0.0, 1.0, 100), np.linspace(0.0, 1.0, grid))  # (grid, 100)
        horiz = np.stack([U, K], axis=-1)  # lines of constant y
        lines = np.concatenate([horiz, horiz[..., ::-1]]) * (ghi - glo) + glo  # and of constant x
        lines = lines + warp_field(lines, sk, sigma, seed, frequency, center)
        ax.add_collection(LineCollection(lines, colors="tab:blue", linewidths=0.5, alpha=0.35, zorder=0))
    plot_sketch(sk, ax=ax, color_by_time=False, color="0.75", linewidth=2.5)
    plot_sketch(aug, ax=ax, linewidth=2)
    if show_center:
        c0 = center_of_gravity(sk)
        c1 = center_of_gravity(aug, weights_from=sk)
        ax.plot(*c0, "x", color="k", ms=8, mew=2, zorder=5)
        ax.plot(*c1, "+", color="tab:red", ms=11, mew=2, zorder=6)
    _square_limits(ax, lo, hi, 0.12)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_augmentations(
    sketches,
    sigmas: Sequence[float] = (0.1, 0.15, 0.2),
    seeds: Sequence = (0, 1, 2, 3),
    frequency: float = 1.0,
    overlay: bool = True,
    size: float = 1.8,
):
    """Figure 4 (right) of the paper: drawings and their Perlin augmentations (section 4.6; chapter 6).

    One row per drawing (a :class:`Sketch` or a sequence of them).  The first
    column is the original; then, with ``overlay`` (default), one column per
    strength ``sigma`` in which the copies for every seed in ``seeds`` are
    drawn over the original (light grey), one colour per seed: the "cloud"
    of augmented samples around the real one.  Without ``overlay``, one column
    per ``(sigma, seed)``, each copy coloured by time over the original (light
    grey).  All panels of a row
    share one scale, so the strengths compare.  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sketchode.plot import plot_sketch

    if isinstance(sketches, Sketch):
        sketches = [sketches]
    sketches = [_check_sketch(s, "plot_augmentations") for s in sketches]
    sigmas = [float(s) for s in np.atleast_1d(sigmas)]
    seeds = list(seeds)
    if not sketches or not sigmas or not seeds:
        raise ValueError("plot_augmentations: needs at least one sketch, one sigma and one seed")
    cols = [(s, None) for s in sigmas] if overlay else [(s, e) for s in sigmas for e in seeds]
    ncols = 1 + len(cols)
    fig, axes = plt.subplots(len(sketches), ncols, figsize=(ncols * size, len(sketches) * size * 1.12), squeeze=False)
    colors = plt.get_cmap("tab10")
    for r, sk in enumerate(sketches):
        augs = {(s, e): perlin(sk, s, e, frequency) for s in sigmas for e in seeds}
        lo, hi = _bounds([sk, *augs.values()])
        plot_sketch(sk, ax=axes[r, 0], title="original" if r == 0 else None)
        for c, (s, e) in enumerate(cols, start=1):
            ax = axes[r, c]
            title = None
            if r == 0:
                title = f"σ = {s:g}" if overlay else f"σ = {s:g}, seed {e}"
            if overlay:
                plot_sketch(sk, ax=ax, color_by_time=False, color="0.8", linewidth=2.5)
                for k, e2 in enumerate(seeds):
                    plot_sketch(augs[(s, e2)], ax=ax, color_by_time=False, color=colors(k % 10), linewidth=1.2)
                if title is not None:
                    ax.set_title(title, fontsize=9)
            else:
                plot_sketch(sk, ax=ax, color_by_time=False, color="0.85", linewidth=2.5)
                plot_sketch(augs[(s, e)], ax=ax, title=title)
        for ax in axes[r]:
            _square_limits(ax, lo, hi)
    fig.tight_layout(pad=0.3)
    return fig


def plot_displacement(original: Sketch, augmented: Sketch, ax=None, label: str | None = None, alpha: float = 1.0):
    """The displacement ``augmented - original`` against time (section 4.6; chapter 6).

    ``dx`` and ``dy`` over the original's ink time scaled to ``[0, 1]``,
    broken at pen lifts.  A Perlin warp gives two smooth curves; Gaussian
    jitter gives white noise.  Returns the Axes.
    """
    o = _check_sketch(original, "plot_displacement")
    a = _check_sketch(augmented, "plot_displacement")
    if [len(s) for s in o.strokes] != [len(s) for s in a.strokes]:
        raise ValueError("plot_displacement: the drawings differ in stroke structure")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 2.2))
    t = ink_time(o)
    span = t[-1] - t[0]
    t = (t - t[0]) / span if span > 0 else np.zeros_like(t)
    d = a.points[:, :2] - o.points[:, :2]
    # NaN between strokes breaks the lines at pen lifts
    cut = np.flatnonzero(np.diff(o.stroke_index)) + 1
    t = np.insert(t, cut, np.nan)
    d = np.insert(d, cut, np.nan, axis=0)
    prefix = "" if label is None else f"{label}: "
    ax.plot(t, d[:, 0], color="tab:blue", lw=1.2, alpha=alpha, label=f"{prefix}dx")
    ax.plot(t, d[:, 1], color="tab:orange", lw=1.2, alpha=alpha, label=f"{prefix}dy")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xlabel("t (ink time, scaled)")
    ax.set_ylabel("displacement")
    return ax
