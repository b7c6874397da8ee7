"""One drawing as pen trajectories in time (paper section 4.4 and appendix D; chapter 1).

A :class:`Sketch` is a list of strokes, each an ``(n, 3)`` float array of
``x, y, t``.  Coordinates follow the mathematical convention (y points up);
readers of screen-space formats flip y on load.  ``t`` holds real timestamps
when the source has them (``Sketch.timed``), otherwise whatever the source
gave (often nothing meaningful) until :meth:`Sketch.retime` synthesises
arc-length time.

The two model-facing formats of the paper are produced here:

* **full-sequence** (:meth:`Sketch.to_full_sequence`): one ``(N, 4)`` array of
  ``t, x, y, pen`` over ``[0, T]``; strokes are joined by straight pen-up
  segments on which ``pen = 1``; ``pen = 0`` on ink (appendix D, figure 11);
* **multi-stroke** (:meth:`Sketch.to_strokes`): one ``(n_k, 3)`` array of
  ``t, x, y`` per stroke, each stroke's time rescaled to ``[0, T]`` (appendix C).

Documented rules for degenerate input
-------------------------------------
* A stroke with **no points** cannot be constructed; readers drop empty strokes
  inside an otherwise valid drawing, and reject a drawing with no points.
* A **single-point stroke** (a dot) and a **zero-length stroke** (all points at
  one position) are kept.  In the full-sequence format a dot is one ink sample
  between two pen-up joins.  In the multi-stroke format a stroke with one point
  is held at its position over the whole ``[0, T]`` (two samples, at 0 and T),
  so a spline through it is constant instead of undefined.
* **Time must strictly increase** for splines and interpolation.  Repeated or
  decreasing timestamps (common in real data: several samples in one
  millisecond) are lifted: every step gets at least ``MIN_STEP`` of the mean
  step; zero-length steps in arc-length time get the same floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Sequence

import numpy as np

#: Default end of the time range ``[0, T]`` (paper section 5.1: T = 5).
T_DEFAULT = 5.0
#: Default number of interior samples on each straight pen-up join.
JOIN_POINTS = 4
#: Smallest time step, as a fraction of the mean step, in strictly increasing time.
MIN_STEP = 1e-3


def _as_stroke(a, where: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{where}: a stroke must be an (n, 3) array of x, y, t; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{where}: empty stroke (no points)")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{where}: non-finite value at point {bad[0]}, column {'xyt'[bad[1]]}")
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


def strictly_increasing(t: np.ndarray, min_step: float = MIN_STEP) -> np.ndarray:
    """Lift a non-decreasing-ish time vector so it strictly increases.

    A timestamp that goes backwards is first raised to the running maximum (a
    clock glitch must not shift the rest of the drawing); then each step becomes
    ``max(step, min_step * mean_step)``, where ``mean_step`` is the mean of the
    positive steps (1 if there are none).  Vectorised; the first value is kept.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2:
        return t.copy()
    dt = np.diff(np.maximum.accumulate(t))
    pos = dt[dt > 0]
    mean = pos.mean() if pos.size else 1.0
    dt = np.maximum(dt, min_step * mean)
    return np.concatenate([t[:1], t[0] + np.cumsum(dt)])


def rescale_time(t: np.ndarray, T: float) -> np.ndarray:
    """Map strictly increasing ``t`` affinely onto ``[0, T]`` (a single sample maps to 0)."""
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2:
        return np.zeros_like(t)
    return (t - t[0]) * (T / (t[-1] - t[0]))


def arc_length_time(xy: np.ndarray, min_step: float = MIN_STEP) -> np.ndarray:
    """Cumulative arc length along ``xy`` (``(n, 2)``), strictly increasing."""
    if len(xy) < 2:
        return np.zeros(len(xy))
    ds = np.hypot(*np.diff(xy, axis=0).T)
    return strictly_increasing(np.concatenate([[0.0], np.cumsum(ds)]), min_step)


@dataclass(frozen=True, eq=False)
class Sketch:
    """One drawing: strokes of ``(n, 3)`` arrays ``x, y, t`` (paper 4.4).

    Parameters
    ----------
    strokes
        Sequence of array-likes of shape ``(n, 3)``, ``n >= 1``, finite.
    label
        Optional class label (``"3"``, ``"sheep"``, ...).
    timed
        True when ``t`` holds real timestamps from the pen device.
    key
        Stable identifier (``"<source>:<index>"``) used for deterministic
        splits and in error messages.
    meta
        Read-only mapping of source details (file line, country, variant...).
        Sketches are shared (loaders cache them), so nothing about them is
        mutable: derive a new one with :func:`dataclasses.replace`.

    All transforms return new sketches; arrays are read-only.
    """

    strokes: tuple
    label: str | None = None
    timed: bool = False
    key: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        where = self.key or "Sketch"
        strokes = self.strokes
        if isinstance(strokes, np.ndarray) and strokes.ndim == 2:
            strokes = [strokes]
        strokes = tuple(_as_stroke(s, f"{where}, stroke {i}") for i, s in enumerate(strokes))
        if not strokes:
            raise ValueError(f"{where}: empty drawing (no strokes)")
        object.__setattr__(self, "strokes", strokes)
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def _trusted(self, strokes: tuple) -> "Sketch":
        # A copy with new strokes that are already valid (finite float64 (n, 3),
        # n >= 1): skips re-validation, which dominates the cost of transforms.
        new = object.__new__(type(self))
        for f in ("label", "timed", "key", "meta"):
            object.__setattr__(new, f, getattr(self, f))
        for a in strokes:
            a.setflags(write=False)
        object.__setattr__(new, "strokes", tuple(strokes))
        return new

    # ------------------------------------------------------------------ views
    def __repr__(self) -> str:
        lab = f", label={self.label!r}" if self.label is not None else ""
        key = f", key={self.key!r}" if self.key is not None else ""
        return f"Sketch({self.n_strokes} strokes, {self.n_points} points{lab}, timed={self.timed}{key})"

    def __len__(self) -> int:
        return len(self.strokes)

    @property
    def n_strokes(self) -> int:
        return len(self.strokes)

    @property
    def n_points(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    @property
    def points(self) -> np.ndarray:
        """All points, ``(N, 3)``, strokes concatenated in order."""
        return np.concatenate(self.strokes, axis=0)

    @property
    def stroke_index(self) -> np.ndarray:
        """``(N,)`` index of the stroke each point of :attr:`points` belongs to."""
        return np.repeat(np.arange(self.n_strokes), [len(s) for s in self.strokes])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)``."""
        p = self.points
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())

    @property
    def ink_length(self) -> float:
        """Total length of ink (pen-down travel)."""
        return float(sum(np.hypot(*np.diff(s[:, :2], axis=0).T).sum() for s in self.strokes))

    def with_points(self, points: np.ndarray) -> "Sketch":
        """A sketch of the same stroke structure with new ``(N, 3)`` points."""
        points = np.asarray(points, dtype=np.float64)
        if points.shape != (self.n_points, 3):
            raise ValueError(f"{self.key or 'Sketch'}: expected points of shape {(self.n_points, 3)}, got {points.shape}")
        if not np.isfinite(points).all():
            i = int(np.argwhere(~np.isfinite(points))[0, 0])
            raise ValueError(f"{self.key or 'Sketch'}: non-finite value at point {i} of the new points")
        points = np.array(points)  # own copy
        splits = np.cumsum([len(s) for s in self.strokes])[:-1]
        return self._trusted(tuple(np.split(points, splits)))

    # ------------------------------------------------------------- transforms
    def normalize(self) -> "Sketch":
        """Translate the first point to the origin and scale into the unit circle.

        Paper 4.1/appendix D: the decoder starts at ``s0 = 0`` and all samples lie
        in the unit disc, ``||x(t)|| <= 1``.  The largest distance from the first
        point becomes exactly 1 (a drawing that is a single position is only
        translated).  Time is unchanged.
        """
        p = self.points.copy()
        p[:, :2] -= p[0, :2]
        r = np.hypot(p[:, 0], p[:, 1]).max()
        if r > 0:
            p[:, :2] /= r
        return self.with_points(p)

    def simplify(self, epsilon: float = 0.01) -> "Sketch":
        """Ramer-Douglas-Peucker simplification of every stroke (appendix D).

        Uses the ``simplification`` package (a maintained Rust implementation,
        several hundred times faster than pure-Python RDP, and it returns the
        indices kept, so timestamps stay attached to their points).  ``epsilon``
        is in the sketch's units: 0.01 after :meth:`normalize` is the reference
        setting.  First and last points of each stroke are always kept.
        """
        from simplification.cutil import simplify_coords_idx

        out = []
        for s in self.strokes:
            if len(s) <= 2:
                out.append(s)
                continue
            idx = np.asarray(simplify_coords_idx(np.ascontiguousarray(s[:, :2]), float(epsilon)), dtype=np.intp)
            out.append(s[idx])
        return self._trusted(tuple(out))

    def _sequence_times(self, join_points: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points, pen flags and strictly increasing raw time of the joined sequence.

        Returns ``(xy, pen, t)`` for ink points with ``join_points`` pen-up samples
        inserted on the straight segment between consecutive strokes.  Time is the
        real timestamp when :attr:`timed` (pen-up samples evenly spaced within the
        real gap), arc length along the whole path otherwise (pen-up travel counts
        as distance).
        """
        pts, pens = [], []
        J = int(join_points)
        for k, s in enumerate(self.strokes):
            if k > 0 and J > 0:
                a, b = self.strokes[k - 1][-1], s[0]
                f = (np.arange(1, J + 1) / (J + 1))[:, None]
                pts.append(a + f * (b - a))
                pens.append(np.ones(J))
            pts.append(s)
            pens.append(np.zeros(len(s)))
        seq = np.concatenate(pts)
        pen = np.concatenate(pens)
        if self.timed:
            t = strictly_increasing(seq[:, 2])
        else:
            t = arc_length_time(seq[:, :2])
        return seq[:, :2], pen, t

    def ink_time(self) -> np.ndarray:
        """``(N,)`` strictly increasing raw time of every ink point, before rescaling.

        Real timestamps when :attr:`timed`, else arc length along the whole path
        with pen-up travel counted.  The single place that rule lives:
        :meth:`retime` rescales it, Perlin's ``p_CG`` (4.6) integrates over it.
        """
        return self._sequence_times(0)[2]

    def retime(self, T: float = T_DEFAULT) -> "Sketch":
        """Re-parametrise time onto ``[0, T]`` over the whole drawing (paper 5.1).

        Real timestamps are kept (shifted, made strictly increasing, scaled) when
        :attr:`timed`; otherwise arc-length time is synthesised, pen-up travel
        between strokes counting as distance.
        """
        p = self.points
        return self.with_points(np.column_stack([p[:, :2], rescale_time(self.ink_time(), T)]))

    def to_full_sequence(self, T: float = T_DEFAULT, join_points: int = JOIN_POINTS) -> np.ndarray:
        """The full-sequence format: ``(N, 4)`` array of ``t, x, y, pen`` on ``[0, T]``.

        Strokes are joined by straight pen-up segments with ``join_points``
        interior samples on which ``pen = 1``; ink samples have ``pen = 0``
        (paper 4.4, appendix D).  The first row is at ``t = 0``, the last at ``T``.
        """
        xy, pen, t = self._sequence_times(join_points)
        return np.column_stack([rescale_time(t, T), xy, pen])

    def to_strokes(self, T: float = T_DEFAULT) -> list[np.ndarray]:
        """The multi-stroke format: one ``(n_k, 3)`` array ``t, x, y`` per stroke.

        Each stroke's time is rescaled to ``[0, T]`` separately (appendix C), from
        real timestamps when :attr:`timed`, else arc length.  A single-point stroke
        becomes two samples at ``t = 0`` and ``t = T`` at the same position.
        """
        out = []
        for s in self.strokes:
            if len(s) == 1:
                s = np.repeat(s, 2, axis=0)
                t = np.array([0.0, 1.0])
            elif self.timed:
                t = strictly_increasing(s[:, 2])
            else:
                t = arc_length_time(s[:, :2])
            out.append(np.column_stack([rescale_time(t, T), s[:, :2]]))
        return out

    # --------------------------------------------------------- constructors
    @classmethod
    def from_full_sequence(cls, seq, label=None, pen_threshold: float = 0.5, key=None) -> "Sketch":
        """Invert :meth:`to_full_sequence`: split ``(N, 4)`` ``t, x, y, pen`` (or
        ``(N, 3)`` ``x, y, pen`` with implicit index time) into ink strokes.

        Rows with ``pen < pen_threshold`` are ink; each maximal run of ink rows is
        one stroke.  Useful for turning decoder outputs back into drawings.  A
        sequence with no ink at all gives a one-point sketch at its first row.
        """
        seq = np.asarray(seq, dtype=np.float64)
        if seq.ndim != 2 or seq.shape[1] not in (3, 4):
            raise ValueError(f"from_full_sequence: expected (N, 4) t, x, y, pen or (N, 3) x, y, pen; got {seq.shape}")
        if seq.shape[1] == 3:
            seq = np.column_stack([np.arange(len(seq), dtype=np.float64), seq])
        ink = seq[:, 3] < pen_threshold
        if not ink.any():
            return cls([seq[:1, [1, 2, 0]]], label=label, key=key)
        edges = np.diff(np.concatenate([[0], ink.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        strokes = [seq[a:b][:, [1, 2, 0]] for a, b in zip(starts, ends)]
        return cls(strokes, label=label, key=key, timed=False)


# ---------------------------------------------------------------- resampling
def interp_linear(t_src: np.ndarray, values: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` (``(n, c)``) from ``t_src`` to ``t_query``.

    ``t_src`` must strictly increase; queries outside the range are clamped to
    the end values.  Vectorised over queries and channels.
    """
    t_src = np.asarray(t_src, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    t_query = np.asarray(t_query, dtype=np.float64)
    if len(t_src) == 1:
        return np.repeat(values[:1], len(t_query), axis=0)
    i = np.clip(np.searchsorted(t_src, t_query, side="right") - 1, 0, len(t_src) - 2)
    w = np.clip((t_query - t_src[i]) / (t_src[i + 1] - t_src[i]), 0.0, 1.0)[:, None]
    return values[i] * (1.0 - w) + values[i + 1] * w


def interp_pen(t_src: np.ndarray, pen: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Pen state at query times, exact on pen-up intervals (appendix D).

    At a sample time the sample's own state is returned; strictly between two
    samples the pen is up if either neighbour is up.  So a straight pen-up join
    from the last ink point of one stroke to the first ink point of the next is
    pen-up on exactly the open interval between them, however few samples it has.
    """
    t_src = np.asarray(t_src, dtype=np.float64)
    pen = np.asarray(pen, dtype=np.float64)
    t_query = np.asarray(t_query, dtype=np.float64)
    if len(t_src) == 1:
        return np.full(len(t_query), pen[0])
    n = len(t_src)
    i = np.clip(np.searchsorted(t_src, t_query, side="right") - 1, 0, n - 1)
    j = np.minimum(i + 1, n - 1)
    # a query within `atol` of a sample time *is* that sample (grids built by
    # rounding, e.g. a batch's union of times, must not flip the pen state)
    atol = 1e-8 * max(1.0, float(np.abs(t_src).max()))
    near = np.where(np.abs(t_query - t_src[j]) < np.abs(t_query - t_src[i]), j, i)
    exact = np.abs(t_query - t_src[near]) <= atol
    outside = (t_query <= t_src[0]) | (t_query >= t_src[-1])
    return np.where(exact | outside, pen[near], np.maximum(pen[i], pen[j]))


def uniform_grid(G: int, T: float = T_DEFAULT) -> np.ndarray:
    """``G`` uniform time points over ``[0, T]``, both ends included (paper 5.1)."""
    if G < 2:
        raise ValueError(f"uniform_grid: need at least 2 points, got G={G}")
    return np.linspace(0.0, T, int(G))


def resample_full(seq: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Resample a full-sequence array ``(N, 4)`` at ``t_query``: ``(G, 4)`` ``t, x, y, pen``.

    Positions by linear interpolation along time, pen by :func:`interp_pen`.
    """
    t_query = np.asarray(t_query, dtype=np.float64)
    xy = interp_linear(seq[:, 0], seq[:, 1:3], t_query)
    pen = interp_pen(seq[:, 0], seq[:, 3], t_query)
    return np.column_stack([t_query, xy, pen])


def resample_stroke(stroke: np.ndarray, t_query: np.ndarray) -> np.ndarray:
    """Resample a multi-stroke stroke ``(n, 3)`` ``t, x, y`` at ``t_query``: ``(G, 3)``."""
    t_query = np.asarray(t_query, dtype=np.float64)
    return np.column_stack([t_query, interp_linear(stroke[:, 0], stroke[:, 1:3], t_query)])


def prepare(sketches: Iterable[Sketch], simplify: float | None = None) -> list[Sketch]:
    """Normalise (and optionally RDP-simplify with ``simplify`` as epsilon) a list of sketches."""
    out = []
    for s in sketches:
        s = s.normalize()
        if simplify:
            s = s.simplify(simplify)
        out.append(s)
    return out


__all__: Sequence[str] = [
    "Sketch",
    "T_DEFAULT",
    "JOIN_POINTS",
    "strictly_increasing",
    "rescale_time",
    "arc_length_time",
    "interp_linear",
    "interp_pen",
    "uniform_grid",
    "resample_full",
    "resample_stroke",
    "prepare",
]
