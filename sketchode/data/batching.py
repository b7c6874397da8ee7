"""Mini-batching of drawings for Neural ODE/CDE models (paper appendix D; chapter 1).

Samples of a batch have different numbers of (non-uniform) time points.  The
paper gives two ways to put them on one time axis, both implemented here for
both data formats:

``grid="uniform"``
    re-sample every sample at ``G`` uniform time points over ``[0, T]`` by
    linear interpolation along time; every entry is an observation, so the
    mask is all true;
``grid="union"``
    the sorted union of all samples' own time points; each sample is
    evaluated (interpolated) at every union time so a spline through it is
    well defined, and ``mask`` marks the times that are the sample's own
    observations.  Losses and pooling must use the mask.

In the multi-stroke format, drawings have different numbers of strokes.
Missing strokes are padded (zeros) and ``stroke_mask`` is false on them: every
consumer (encoder pooling, decoder, loss) must mask them, never count them.

Outputs are :mod:`torch` tensors (float32 by default) in small dataclasses
with a ``to(device)`` method, ready for a :class:`torch.utils.data.DataLoader`
through :func:`functools.partial` (``collate_fn=partial(collate_full, G=75)``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal, Sequence

import numpy as np
import torch

from sketchode.data.sketch import (
    JOIN_POINTS,
    T_DEFAULT,
    Sketch,
    interp_linear,
    interp_pen,
    uniform_grid,
)

Grid = Literal["uniform", "union"]


class _Batch:
    def to(self, device=None, dtype=None):
        """Move every tensor field to ``device`` (and floating ones to ``dtype``)."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else None)
            kw[f.name] = v
        return type(self)(**kw)

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass
class FullBatch(_Batch):
    """A batch in the full-sequence format (paper 4.4).

    Attributes
    ----------
    t : ``(M,)`` shared time points in ``[0, T]``.
    points : ``(B, M, 3)`` ``x, y, pen`` of every sample at every time point.
    mask : ``(B, M)`` bool, true where the time point is one of the sample's own
        observations (all true for the uniform grid).
    labels : list of labels (``None`` where absent).
    keys : list of sketch keys.
    """

    t: torch.Tensor
    points: torch.Tensor
    mask: torch.Tensor
    labels: list
    keys: list

    @property
    def path(self) -> torch.Tensor:
        """``(B, M, 4)`` control path ``t, x, y, pen`` with time as a channel (paper 4.2)."""
        B, M = self.points.shape[:2]
        return torch.cat([self.t.expand(B, M).unsqueeze(-1), self.points], dim=-1)


@dataclass
class StrokeBatch(_Batch):
    """A batch in the multi-stroke format (paper 4.4, appendix C).

    Attributes
    ----------
    t : ``(M,)`` shared time points in ``[0, T]`` (every stroke spans ``[0, T]``).
    points : ``(B, K, M, 2)`` stroke positions relative to the stroke's start, so
        every stroke starts at 0 like the decoder (appendix C).
    start : ``(B, K, 2)`` absolute start position of every stroke (regressed by
        the model's start-position head).
    mask : ``(B, K, M)`` bool, true at the stroke's own observations and false
        everywhere on padded strokes.
    stroke_mask : ``(B, K)`` bool, true on real strokes.
    n_strokes : ``(B,)`` number of real strokes.
    labels, keys : as in :class:`FullBatch`.
    """

    t: torch.Tensor
    points: torch.Tensor
    start: torch.Tensor
    mask: torch.Tensor
    stroke_mask: torch.Tensor
    n_strokes: torch.Tensor
    labels: list
    keys: list

    @property
    def end_of_sketch(self) -> torch.Tensor:
        """``(B, K)`` float target of the end-of-sketch flag: 1 on each sample's last stroke."""
        K = self.stroke_mask.shape[1]
        return (torch.arange(K, device=self.n_strokes.device)[None, :] == (self.n_strokes[:, None] - 1)).to(
            self.points.dtype
        )


def _check(sketches: Sequence[Sketch]) -> None:
    if len(sketches) == 0:
        raise ValueError("collate: empty batch (no sketches)")
    for i, s in enumerate(sketches):
        if not isinstance(s, Sketch):
            raise TypeError(f"collate: item {i} is {type(s).__name__}, expected Sketch")


def _snap(t: np.ndarray, resolution: float) -> np.ndarray:
    return np.round(np.round(np.asarray(t) / resolution) * resolution, 9)


def _resolution(resolution: float | None, T: float, n: int) -> float:
    # one drawing keeps its own times exactly; a batch is snapped to T / 1000 by default
    if resolution is not None:
        if not resolution > 0:
            raise ValueError(f"union grid: resolution must be > 0, got {resolution}")
        return float(resolution)
    return 1e-9 if n == 1 else T / 1000


def _union(times: Sequence[np.ndarray], resolution: float) -> np.ndarray:
    # Times are snapped to multiples of `resolution` before the union: the times of
    # different drawings can lie arbitrarily close together (1e-6 apart for 32 digits),
    # which float32 cannot even separate and which makes a natural cubic spline
    # through the pen channel overshoot wildly (pen 8.3 instead of <= 1 at 1e-9;
    # 1.5 at T/1000; tests/test_batching.py).
    return np.unique(_snap(np.concatenate(times), resolution))


def _mask_for(own: np.ndarray, grid: np.ndarray, resolution: float) -> np.ndarray:
    return np.isin(grid, _snap(own, resolution))


def collate_full(
    sketches: Sequence[Sketch],
    grid: Grid = "uniform",
    G: int = 75,
    T: float = T_DEFAULT,
    join_points: int = JOIN_POINTS,
    dtype: torch.dtype = torch.float32,
    resolution: float | None = None,
) -> FullBatch:
    """Batch sketches in the full-sequence format (appendix D).

    Each sketch goes through :meth:`Sketch.to_full_sequence` (normalise it
    first).  ``grid="uniform"`` re-samples at ``G`` uniform points of
    ``[0, T]``; ``grid="union"`` uses the union of all samples' time points
    with a mask.  Positions are interpolated linearly and the pen by
    :func:`~sketchode.data.sketch.interp_pen`.  On the union grid every time is
    first snapped to a multiple of ``resolution`` (default ``T / 1000`` for a
    batch, exact times for a single drawing), so no two grid points are
    closer than that.
    """
    _check(sketches)
    seqs = [s.to_full_sequence(T=T, join_points=join_points) for s in sketches]
    if grid == "uniform":
        t = uniform_grid(G, T)
        mask = np.ones((len(seqs), len(t)), dtype=bool)
    elif grid == "union":
        res = _resolution(resolution, T, len(seqs))
        t = _union([q[:, 0] for q in seqs], res)
        mask = np.stack([_mask_for(q[:, 0], t, res) for q in seqs])
    else:
        raise ValueError(f"collate_full: grid must be 'uniform' or 'union', got {grid!r}")
    pts = np.stack(
        [np.column_stack([interp_linear(q[:, 0], q[:, 1:3], t), interp_pen(q[:, 0], q[:, 3], t)]) for q in seqs]
    )
    return FullBatch(
        t=torch.as_tensor(t, dtype=dtype),
        points=torch.as_tensor(pts, dtype=dtype),
        mask=torch.as_tensor(mask),
        labels=[s.label for s in sketches],
        keys=[s.key for s in sketches],
    )


def collate_strokes(
    sketches: Sequence[Sketch],
    grid: Grid = "uniform",
    G: int = 30,
    T: float = T_DEFAULT,
    max_strokes: int | None = None,
    dtype: torch.dtype = torch.float32,
    resolution: float | None = None,
) -> StrokeBatch:
    """Batch sketches in the multi-stroke format (appendix C-D).

    Every stroke is re-timed to ``[0, T]`` (:meth:`Sketch.to_strokes`) and
    expressed relative to its start point; ``start`` holds the start points.
    Samples with fewer strokes than the longest are padded and masked.
    ``max_strokes`` truncates longer drawings (their first strokes are kept).
    """
    _check(sketches)
    per = [s.to_strokes(T=T) for s in sketches]
    if max_strokes is not None:
        per = [p[:max_strokes] for p in per]
    B = len(per)
    K = max(len(p) for p in per)
    if grid == "uniform":
        t = uniform_grid(G, T)
    elif grid == "union":
        res = _resolution(resolution, T, B)
        t = _union([st[:, 0] for p in per for st in p], res)
    else:
        raise ValueError(f"collate_strokes: grid must be 'uniform' or 'union', got {grid!r}")
    M = len(t)
    pts = np.zeros((B, K, M, 2))
    start = np.zeros((B, K, 2))
    mask = np.zeros((B, K, M), dtype=bool)
    n = np.array([len(p) for p in per])
    for b, p in enumerate(per):
        for k, st in enumerate(p):
            start[b, k] = st[0, 1:3]
            pts[b, k] = interp_linear(st[:, 0], st[:, 1:3] - st[0, 1:3], t)
            mask[b, k] = True if grid == "uniform" else _mask_for(st[:, 0], t, res)
    return StrokeBatch(
        t=torch.as_tensor(t, dtype=dtype),
        points=torch.as_tensor(pts, dtype=dtype),
        start=torch.as_tensor(start, dtype=dtype),
        mask=torch.as_tensor(mask),
        stroke_mask=torch.as_tensor(np.arange(K)[None, :] < n[:, None]),
        n_strokes=torch.as_tensor(n),
        labels=[s.label for s in sketches],
        keys=[s.key for s in sketches],
    )


__all__ = ["FullBatch", "StrokeBatch", "collate_full", "collate_strokes"]
