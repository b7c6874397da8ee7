"""Control paths and splines: analysis and plotting helpers for the Neural CDE encoder (4.2, eq. 4; chapter 7).

The encoder of :mod:`sketchode.models.encoder` reads a drawing through its *control
path* ``X(t)``, the natural cubic spline through the observations
``[t, x, y, pen]`` (Kidger et al., 2020).  Chapter 7 takes that apart; this
module holds what it needs beyond the encoder itself:

* **the spline and its derivative**: :func:`spline_derivative` (fitted and
  read on real time, as the package does) and :func:`index_spline_derivative`
  (the reference code's bug: fitted on the sample index, read on real time, so
  ``dX/dt`` comes out divided by ``di/dt``; kept for the demonstration only);
* **re-timing and re-sampling drawings**: :func:`warp_time` (the same path
  drawn at another speed), :func:`subsample` (a random subset of the samples:
  irregular timestamps), :func:`irregular_grid` and :func:`collate_on_grid`
  (a batch on any shared time grid);
* **batching on the union grid**: :func:`gap_ratio` (how non-uniform a time
  grid is), :func:`step_path` (a pen step across one narrow gap) and
  :func:`spline_extremes` (how far the spline overshoots its samples): why a
  natural cubic spline through the pen channel rings on the union of many
  drawings' times, and why ``collate_full(..., resolution=...)`` snaps them;
* **encoders side by side**: :func:`encode` gives ``z`` of a
  :class:`~sketchode.data.batching.FullBatch` for a
  :class:`~sketchode.models.encoder.CDEEncoder`, a
  :class:`~sketchode.models.lstm.BiLSTMEncoder` or a model with ``encode``;
  :func:`resampling_sensitivity` measures how much ``z`` moves when the same
  drawings are re-sampled (:func:`relative_shift`: per drawing, relative to
  the distance between different drawings' codes); :class:`EncoderClassifier`,
  :func:`train_classifier` and :func:`classifier_accuracy` train a linear
  probe on top of an encoder; :func:`median_seconds` times a call;
* **figures**: :func:`plot_spline` (samples, spline and derivative per
  channel) and :func:`plot_hidden_trajectory` (the CDE state ``g(t)``).

Everything is vectorised over samples and time points; inputs are checked and
bad input raises :class:`ValueError` or :class:`TypeError` with a clear message.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch
import torchcde
from torch import nn

from sketchode.data.batching import FullBatch, collate_full
from sketchode.data.sketch import JOIN_POINTS, T_DEFAULT, Sketch, interp_linear, interp_pen
from sketchode.models.encoder import CDEEncoder, check_path, spline

__all__ = [
    "spline_derivative",
    "index_spline_derivative",
    "warp_time",
    "subsample",
    "irregular_grid",
    "collate_on_grid",
    "gap_ratio",
    "step_path",
    "spline_extremes",
    "encode",
    "resampling_sensitivity",
    "relative_shift",
    "EncoderClassifier",
    "train_classifier",
    "classifier_accuracy",
    "median_seconds",
    "plot_spline",
    "plot_hidden_trajectory",
]

#: Names of the channels of a full-sequence control path (paper 4.2: time is channel 0).
CHANNELS = ("t", "x", "y", "pen")


# ------------------------------------------------------------ the spline
def _at(t: torch.Tensor, at) -> torch.Tensor:
    if at is None:
        return t
    at = torch.as_tensor(at, dtype=t.dtype, device=t.device).contiguous()
    if at.ndim != 1:
        raise ValueError(f"at must be a 1-D tensor of times, got shape {tuple(at.shape)}")
    if not bool(torch.isfinite(at).all()):
        raise ValueError("at: NaN/inf in the query times")
    return at


def _check(path, t, where: str) -> None:
    if not isinstance(path, torch.Tensor):
        raise TypeError(f"{where}: the path must be a tensor (B, G, C), got {type(path).__name__}")
    if path.ndim != 3:
        raise ValueError(f"{where}: the path must have shape (B, G, C), got {tuple(path.shape)}")
    check_path(path, t, path.shape[-1], where)


def spline_derivative(path: torch.Tensor, t: torch.Tensor, at=None) -> torch.Tensor:
    """``dX/dt (B, len(at), C)`` of the natural cubic spline through ``path (B, G, C)`` on real time ``t``.

    The control the encoder integrates against (section 4.2, eq. 4; chapter 7):
    fitted on the real time grid and read on it, so channel ``c`` of the
    result is the data's velocity ``d path_c / dt``.  ``at`` (default: ``t``)
    are the query times.
    """
    _check(path, t, "spline_derivative")
    return spline(path, t).derivative(_at(t, at))


def index_spline_derivative(path: torch.Tensor, t: torch.Tensor, at=None) -> torch.Tensor:
    """The reference code's bug (for demonstration only; chapter 7): spline fitted on the index, read on time.

    The authors' encoder computed ``natural_cubic_coeffs(path)`` (knots at the
    sample *index* ``0, 1, ..., G - 1``) and built
    ``CubicSpline(coeffs, t)`` with the *real* times ``t``: each piece's
    polynomial, made for a unit step in the index, is read over a step of
    ``t_{i+1} - t_i`` in time.  Its derivative where a piece starts is ``dX/di``, so
    the control the CDE sees is ``dX/dt`` divided by the sampling rate
    ``di/dt`` (``(G - 1) / T`` on a uniform grid: about 20 at ``G = 100``,
    ``T = 5``).  Section 4.2, eq. 4.  Returns ``(B, len(at), C)``.
    """
    _check(path, t, "index_spline_derivative")
    X = torchcde.CubicSpline(torchcde.natural_cubic_coeffs(path), t)
    return X.derivative(_at(t, at))


# ------------------------------------------------- re-timing and re-sampling
def warp_time(sketch: Sketch, warp) -> Sketch:
    """The same drawing (same points) drawn at another speed: its timestamps mapped by ``warp``.

    With ``u = (t - t_0) / (t_N - t_0)`` the normalised time of every point
    (of :meth:`Sketch.ink_time`: real timestamps, or arc length), the new
    timestamps are ``t_0 + (t_N - t_0) warp(u)``.  ``warp`` is a callable on
    arrays in ``[0, 1]`` that must fix 0 and 1 and strictly increase on the
    points, or a positive number ``p`` for ``u ** p`` (``p > 1``: the early
    points come sooner, a fast start and a slow finish; ``p < 1``: the
    opposite).  The result is ``timed`` (its time is now real data).  Used by
    chapter 7 to show why time must be a channel of the control (section 4.2).
    """
    if not isinstance(sketch, Sketch):
        raise TypeError(f"warp_time: expected a Sketch, got {type(sketch).__name__}")
    if isinstance(warp, (int, float)) and not isinstance(warp, bool):
        p = float(warp)
        if not (np.isfinite(p) and p > 0):
            raise ValueError(f"warp_time: a power warp must be a finite number > 0, got {warp!r}")
        fn = lambda u: u**p  # noqa: E731
    elif callable(warp):
        fn = warp
    else:
        raise TypeError(f"warp_time: warp must be a callable or a positive number, got {type(warp).__name__}")
    if sketch.n_points < 2:
        return sketch
    t = sketch.ink_time()
    span = t[-1] - t[0]
    u = (t - t[0]) / span
    w = np.asarray(fn(u), dtype=np.float64)
    if w.shape != u.shape:
        raise ValueError(f"warp_time: warp returned shape {w.shape} for {u.shape} times")
    if not np.isfinite(w).all():
        raise ValueError("warp_time: warp returned NaN/inf")
    if abs(w[0]) > 1e-9 or abs(w[-1] - 1.0) > 1e-9:
        raise ValueError(f"warp_time: warp must map 0 to 0 and 1 to 1, got {w[0]:.3g} and {w[-1]:.3g}")
    if np.any(np.diff(w) <= 0):
        raise ValueError("warp_time: warp must strictly increase on the drawing's times")
    pts = sketch.points.copy()
    pts[:, 2] = t[0] + span * w
    return replace(sketch.with_points(pts), timed=True)


def subsample(sketch: Sketch, keep: float = 0.5, seed=0) -> Sketch:
    """A random subset of the samples, keeping each stroke's first and last (irregular timestamps; chapter 7).

    Every interior sample survives with probability ``keep`` (independently,
    ``numpy.random.default_rng(seed)``); the timestamps of the survivors are
    unchanged, so the gaps between them become irregular.  The drawing is
    re-timed first when it has no real timestamps (arc length), so that
    dropping points does not change the time of the ones kept.  Irregular
    sampling is what a Neural CDE handles natively (section 4.2, appendix D).
    """
    if not isinstance(sketch, Sketch):
        raise TypeError(f"subsample: expected a Sketch, got {type(sketch).__name__}")
    if not (0.0 < float(keep) <= 1.0):
        raise ValueError(f"subsample: keep must be in (0, 1], got {keep!r}")

    src = sketch if sketch.timed else replace(sketch.retime(T_DEFAULT), timed=True)
    pts = src.points
    sid = src.stroke_index
    n = len(pts)
    first = np.r_[True, sid[1:] != sid[:-1]]
    last = np.r_[sid[1:] != sid[:-1], True]
    rng = np.random.default_rng(seed)
    kept = first | last | (rng.random(n) < float(keep))
    counts = np.bincount(sid[kept], minlength=src.n_strokes)
    strokes = np.split(pts[kept], np.cumsum(counts)[:-1])
    return Sketch(strokes, label=src.label, timed=True, key=src.key, meta=dict(src.meta))


def irregular_grid(G: int, T: float = T_DEFAULT, seed=0, min_gap: float = 0.2) -> np.ndarray:
    """``G`` sorted random times on ``[0, T]``, both ends included (an irregular sampling grid; chapter 7).

    The ``G - 1`` gaps are ``min_gap + (1 - min_gap) E_k`` times the uniform
    gap ``T / (G - 1)``, ``E_k`` i.i.d. exponential normalised to mean 1 (so
    gaps vary a lot but none is below ``min_gap`` of the uniform one, and the
    grid stays strictly increasing in float32).  For re-sampling tests of
    the encoders (section 4.2: "non-uniformly sampled data at inference").
    """
    if isinstance(G, bool) or int(G) != G or G < 2:
        raise ValueError(f"irregular_grid: G must be an integer >= 2, got {G!r}")
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"irregular_grid: T must be > 0, got {T!r}")
    if not (0.0 <= min_gap < 1.0):
        raise ValueError(f"irregular_grid: min_gap must be in [0, 1), got {min_gap!r}")
    e = np.random.default_rng(seed).exponential(size=int(G) - 1)
    gaps = min_gap + (1.0 - min_gap) * e / e.mean()
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    return t * (T / t[-1])


def collate_on_grid(sketches: Sequence[Sketch], t, T: float = T_DEFAULT, join_points: int = JOIN_POINTS,
                    dtype: torch.dtype = torch.float32) -> FullBatch:
    """A :class:`FullBatch` of sketches re-sampled on one shared time grid ``t`` (any spacing; chapter 7).

    Like ``collate_full(grid="uniform")`` but on the grid given (e.g.
    :func:`irregular_grid`): positions by linear interpolation along time, the
    pen by :func:`~sketchode.data.sketch.interp_pen`; the mask is all true.
    ``t`` must strictly increase inside ``[0, T]``.  Appendix D (batching).
    """
    if len(sketches) == 0:
        raise ValueError("collate_on_grid: empty batch (no sketches)")
    for i, s in enumerate(sketches):
        if not isinstance(s, Sketch):
            raise TypeError(f"collate_on_grid: item {i} is {type(s).__name__}, expected Sketch")
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"collate_on_grid: t must be a 1-D grid of >= 2 times, got shape {t.shape}")
    if not np.isfinite(t).all() or np.any(np.diff(t) <= 0):
        raise ValueError("collate_on_grid: t must be finite and strictly increasing")
    if t[0] < -1e-9 or t[-1] > T + 1e-9:
        raise ValueError(f"collate_on_grid: t must lie in [0, T] = [0, {T}], got [{t[0]:.4g}, {t[-1]:.4g}]")
    seqs = [s.to_full_sequence(T=T, join_points=join_points) for s in sketches]
    pts = np.stack([np.column_stack([interp_linear(q[:, 0], q[:, 1:3], t), interp_pen(q[:, 0], q[:, 3], t)])
                    for q in seqs])
    return FullBatch(t=torch.as_tensor(t, dtype=dtype), points=torch.as_tensor(pts, dtype=dtype),
                     mask=torch.ones(pts.shape[:2], dtype=torch.bool),
                     labels=[s.label for s in sketches], keys=[s.key for s in sketches])


# ------------------------------------------------------ the union grid
def gap_ratio(t) -> float:
    """The largest ratio between two neighbouring gaps of a time grid: ``max_k max(h_k / h_{k+1}, h_{k+1} / h_k)``.

    ``h_k = t_{k+1} - t_k``; 1 on a uniform grid.  A natural cubic spline through
    a step overshoots roughly in proportion to this ratio at the step
    (:func:`step_path`), which is what went wrong with the pen channel on the
    union grid of a batch before its times were snapped to a resolution
    (``collate_full(..., grid="union", resolution=...)``; appendix D, chapter 7).
    ``t`` (array or tensor, read in float64) must strictly increase and have at
    least 3 points.
    """
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if t.ndim != 1 or t.size < 3:
        raise ValueError(f"gap_ratio: t must be a 1-D grid of >= 3 times, got shape {t.shape}")
    h = np.diff(t)
    if not np.isfinite(t).all() or np.any(h <= 0):
        raise ValueError("gap_ratio: t must be finite and strictly increasing")
    r = h[1:] / h[:-1]
    return float(np.maximum(r, 1.0 / r).max())


def step_path(ratio: float, n: int = 8, T: float = T_DEFAULT) -> torch.Tensor:
    """``(2 n + 2, 4)`` float64 control path ``t, x, y, pen``: a pen step across one gap ``ratio`` times narrower.

    ``n + 1`` samples with ``pen = 0`` and then ``n + 1`` with ``pen = 1``
    (``x = y = 0``), all gaps equal to ``H`` except the one across the jump,
    ``H / ratio``; the times span ``[0, T]``.  ``gap_ratio`` of its grid is
    ``ratio`` (or ``1 / ratio``).  The pen channel of a drawing on the union
    grid of a batch looks like this where another drawing's time falls just
    after a pen lift (appendix D; chapter 7 fits the spline of section 4.2
    through it).
    """
    ratio = float(ratio)
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f"step_path: ratio must be a finite number > 0, got {ratio!r}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"step_path: n must be an integer >= 1, got {n!r}")
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"step_path: T must be > 0, got {T!r}")
    n = int(n)
    gaps = np.full(2 * n + 1, 1.0)
    gaps[n] = 1.0 / ratio
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    t *= T / t[-1]
    pen = (np.arange(2 * n + 2) > n).astype(np.float64)
    zero = np.zeros_like(t)
    return torch.as_tensor(np.column_stack([t, zero, zero, pen]))


def spline_extremes(path: torch.Tensor, t: torch.Tensor, dense: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)``, each ``(B, C)``: min and max of the natural cubic spline through ``path (B, G, C)``.

    The spline is the encoder's control (section 4.2, :func:`sketchode.models.encoder.spline`,
    fitted on real time ``t``), read at ``dense`` uniform times over
    ``[t_0, t_{G-1}]`` plus the knots ``t`` themselves (so ``low <= path <= high``).
    On the pen channel, ``high - 1`` is the overshoot above pen up
    (chapter 7; :func:`step_path`).
    """
    _check(path, t, "spline_extremes")
    if isinstance(dense, bool) or int(dense) != dense or dense < 2:
        raise ValueError(f"spline_extremes: dense must be an integer >= 2, got {dense!r}")
    q = torch.cat([torch.linspace(float(t[0]), float(t[-1]), int(dense), dtype=t.dtype, device=t.device), t])
    v = spline(path, t).evaluate(q.sort().values)
    return v.amin(dim=1), v.amax(dim=1)


# ------------------------------------------------------ encoders side by side
def encode(encoder, batch: FullBatch) -> torch.Tensor:
    """``z (B, l)`` of a :class:`FullBatch` for any of the book's encoders (chapter 7).

    * :class:`~sketchode.models.encoder.CDEEncoder` (section 4.2, eq. 4): the path
      ``[t, x, y, pen]`` on ``batch.t`` when it has 4 channels; with 3 it gets
      ``[x, y, pen]``, i.e. *no time channel* (the trap of chapter 7);
    * :class:`~sketchode.models.lstm.BiLSTMEncoder`: ``batch.path`` (``in_dim=4``)
      or ``batch.points`` (3), reading only the entries of ``batch.mask``;
    * anything with an ``encode(batch)`` method (``SketchODE``,
      ``RNNAutoencoder``).
    """
    from sketchode.models.lstm import BiLSTMEncoder

    if not isinstance(batch, FullBatch):
        raise TypeError(f"encode: expected a FullBatch, got {type(batch).__name__}")
    if isinstance(encoder, CDEEncoder):
        if encoder.channels == 4:
            return encoder(batch.path, batch.t)
        if encoder.channels == 3:
            return encoder(batch.points, batch.t)
        raise ValueError(f"encode: a CDEEncoder for a FullBatch needs 4 (t, x, y, pen) or 3 (x, y, pen) channels, "
                         f"got {encoder.channels}")
    if isinstance(encoder, BiLSTMEncoder):
        x = batch.path if encoder.in_dim == 4 else batch.points
        return encoder(x, batch.mask)
    if hasattr(encoder, "encode"):
        return encoder.encode(batch)
    raise TypeError(f"encode: {type(encoder).__name__} is neither a CDEEncoder, a BiLSTMEncoder "
                    "nor a model with an encode(batch) method")


def _batch_on(sketches, grid, T):
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        return collate_full(sketches, grid="uniform", G=int(grid), T=T)
    if isinstance(grid, (np.ndarray, torch.Tensor, list, tuple)):
        return collate_on_grid(sketches, grid, T=T)
    raise TypeError(f"resampling_sensitivity: a grid is an int G (uniform) or a 1-D array of times, got {grid!r}")


def resampling_sensitivity(encoder, sketches: Sequence[Sketch], G1=50, G2=150, T: float = T_DEFAULT) -> float:
    """How much the code ``z`` of the same drawings moves when they are re-sampled (chapter 7).

    The drawings are batched on grid ``G1`` and on grid ``G2`` (an int: ``G``
    uniform points of ``[0, T]``; an array: that shared grid, e.g.
    :func:`irregular_grid`) and encoded by :func:`encode` (no gradient).  The
    result is scale-free::

        mean_i || z_i(G1) - z_i(G2) ||  /  mean_{i != j} || z_i(G1) - z_j(G1) ||

    the shift of a drawing's code under re-sampling, relative to the typical
    distance between the codes of *different* drawings: 0 for an encoder that
    sees the continuous drawing (a Neural CDE in the limit of fine grids,
    section 4.2), of order 1 when re-sampling moves a code as far as changing
    the drawing.  Needs at least 2 drawings.
    """
    sketches = list(sketches)
    if len(sketches) < 2:
        raise ValueError(f"resampling_sensitivity: need at least 2 drawings, got {len(sketches)}")
    b1, b2 = _batch_on(sketches, G1, T), _batch_on(sketches, G2, T)
    with torch.no_grad():
        z1, z2 = encode(encoder, b1), encode(encoder, b2)
    return float(relative_shift(z1, z2).mean())


def relative_shift(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``|| z_a[i] - z_b[i] ||`` over the mean distance between different drawings' codes in ``z_a``.

    The measure behind :func:`resampling_sensitivity` (section 4.2).  ``z_a``
    and ``z_b`` are ``(B, l)`` codes of the same ``B >= 2`` drawings under two
    conditions (two grids, two speeds, ...).  1 means "moved as far as another
    drawing is"; 0 means "unchanged".  Chapter 7.
    """
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if not isinstance(z, torch.Tensor) or z.ndim != 2:
            raise ValueError(f"relative_shift: {name} must be a (B, l) tensor, got "
                             f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
    if z_a.shape != z_b.shape:
        raise ValueError(f"relative_shift: z_a and z_b must have the same shape, "
                         f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    n = z_a.shape[0]
    if n < 2:
        raise ValueError(f"relative_shift: need codes of at least 2 drawings, got {n}")
    z_a, z_b = z_a.detach(), z_b.detach()
    spread = torch.cdist(z_a, z_a).sum() / (n * (n - 1))
    if float(spread) == 0.0:
        raise ValueError("relative_shift: every drawing has the same code (zero spread)")
    return (z_a - z_b).norm(dim=1) / spread


class EncoderClassifier(nn.Module):
    """An encoder followed by a linear classifier head ``Linear(l, n_classes)`` (a probe of ``z``; chapter 7).

    ``classes`` are the label strings, in the order of the logits.  Used to
    compare the Neural CDE encoder (section 4.2) with the BiLSTM encoder of
    the paper's baseline (section 5.2) at equal budget.
    """

    def __init__(self, encoder: nn.Module, latent: int, classes: Sequence[str]):
        super().__init__()
        classes = [str(c) for c in classes]
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"EncoderClassifier: need >= 2 distinct classes, got {classes!r}")
        self.encoder = encoder
        self.head = nn.Linear(int(latent), len(classes))
        self.classes = classes
        self._index = {c: i for i, c in enumerate(classes)}

    def targets(self, labels: Sequence) -> torch.Tensor:
        """Class indices ``(B,)`` of label strings; unknown labels raise :class:`ValueError`."""
        bad = [lab for lab in labels if str(lab) not in self._index]
        if bad:
            raise ValueError(f"EncoderClassifier: labels {sorted(set(map(str, bad)))} are not among {self.classes}")
        return torch.tensor([self._index[str(lab)] for lab in labels])

    def forward(self, batch: FullBatch) -> torch.Tensor:
        """Logits ``(B, n_classes)``."""
        return self.head(encode(self.encoder, batch))


def train_classifier(model: EncoderClassifier, sketches: Sequence[Sketch], steps: int, G: int = 50,
                     batch_size: int = 64, lr: float = 3e-3, T: float = T_DEFAULT, seed=0) -> list[float]:
    """Train encoder and head together with cross-entropy on labelled drawings; returns the loss per step.

    Adam with learning rate ``lr``; each step draws ``batch_size`` drawings
    without replacement (``numpy.random.default_rng(seed)``) and batches them
    on ``G`` uniform points of ``[0, T]``.  Chapter 7 uses it to compare the
    Neural CDE encoder with a bidirectional LSTM at equal budget.
    """
    if not isinstance(model, EncoderClassifier):
        raise TypeError(f"train_classifier: expected an EncoderClassifier, got {type(model).__name__}")
    sketches = list(sketches)
    if not sketches:
        raise ValueError("train_classifier: no training drawings")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"train_classifier: steps must be an integer >= 0, got {steps!r}")
    if batch_size < 1:
        raise ValueError(f"train_classifier: batch_size must be >= 1, got {batch_size!r}")
    y_all = model.targets([s.label for s in sketches])
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    bs = min(int(batch_size), len(sketches))
    for _ in range(int(steps)):
        idx = rng.choice(len(sketches), bs, replace=False)
        batch = collate_full([sketches[i] for i in idx], G=G, T=T)
        loss = nn.functional.cross_entropy(model(batch), y_all[torch.as_tensor(idx)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def classifier_accuracy(model: EncoderClassifier, sketches: Sequence[Sketch], grid=50,
                        T: float = T_DEFAULT, batch_size: int = 256) -> float:
    """Fraction of ``sketches`` whose label the classifier gets right, batched on ``grid`` (int G or times)."""
    sketches = list(sketches)
    if not sketches:
        raise ValueError("classifier_accuracy: no drawings")
    y = model.targets([s.label for s in sketches])
    right = 0
    with torch.no_grad():
        for i in range(0, len(sketches), batch_size):
            chunk = sketches[i:i + batch_size]
            right += int((model(_batch_on(chunk, grid, T)).argmax(1) == y[i:i + len(chunk)]).sum())
    return right / len(sketches)


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones.

    Chapter 7 times the encoder's two solvers (section 4.2, eq. 4) with it;
    synchronise CUDA inside ``fn`` when timing on a GPU.
    """
    if int(repeats) < 1:
        raise ValueError(f"median_seconds: repeats must be >= 1, got {repeats!r}")
    for _ in range(int(warmup)):
        fn()
    times = []
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------ figures
def _one_path(obj, index: int, T: float):
    """``(t (G,), path (G, 4), own (G,) bool)`` float64 tensors from a Sketch, a FullBatch or a (G, 4) path."""
    if isinstance(obj, Sketch):
        q = torch.as_tensor(obj.to_full_sequence(T=T), dtype=torch.float64)
        return q[:, 0].contiguous(), q, torch.ones(len(q), dtype=torch.bool)
    if isinstance(obj, FullBatch):
        if not (-len(obj) <= index < len(obj)):
            raise IndexError(f"plot_spline: index {index} out of range for a batch of {len(obj)}")
        return obj.t.double(), obj.path[index].double(), obj.mask[index]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        q = torch.as_tensor(obj, dtype=torch.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ValueError(f"plot_spline: a path must be (G, 4) t, x, y, pen, got shape {tuple(q.shape)}")
        return q[:, 0].contiguous(), q, torch.ones(len(q), dtype=torch.bool)
    raise TypeError(f"plot_spline: expected a Sketch, a FullBatch or a (G, 4) path, got {type(obj).__name__}")


def plot_spline(obj, index: int = 0, channels: Sequence[str] = ("x", "y", "pen"), derivative: bool = True,
                index_bug: bool = False, dense: int = 600, T: float = T_DEFAULT, axes=None,
                label: str | None = None, color: str = "C0"):
    """The control path of one drawing: samples, natural cubic spline and its derivative per channel.

    ``obj`` is a :class:`Sketch` (its own samples, full-sequence format), a
    :class:`FullBatch` (drawing ``index``; samples not in its mask are drawn
    hollow) or a ``(G, 4)`` path ``t, x, y, pen``.  Top row: the samples
    (dots) and the spline ``X_c(t)`` through them (:func:`sketchode.models.encoder.spline`,
    on real time).  Bottom row (``derivative``): ``dX_c/dt``, what the CDE
    integrates against (eq. 4); with ``index_bug`` also the derivative of the
    spline fitted on the sample index (:func:`index_spline_derivative`), dashed.
    ``axes`` draws into existing Axes (e.g. two drawings on the same panels);
    ``label`` and ``color`` then tell their splines apart in the legend.
    Returns the ``(rows, len(channels))`` array of Axes.  Chapter 7.
    """
    import matplotlib.pyplot as plt

    chans = list(channels)
    bad = [c for c in chans if c not in CHANNELS]
    if not chans or bad:
        raise ValueError(f"plot_spline: channels must be among {CHANNELS}, got {channels!r}")
    t, path, own = _one_path(obj, index, T)
    check_path(path[None], t, 4, "plot_spline")
    rows = 2 if derivative else 1
    if axes is None:
        _, axes = plt.subplots(rows, len(chans), figsize=(3.2 * len(chans), 2.3 * rows), squeeze=False,
                               sharex=True)
    axes = np.asarray(axes).reshape(rows, len(chans))
    td = torch.linspace(float(t[0]), float(t[-1]), int(dense), dtype=torch.float64)
    X = spline(path[None], t)
    val, der = X.evaluate(td)[0], X.derivative(td)[0]
    bug = index_spline_derivative(path[None], t, td)[0] if index_bug else None
    tn, pn, on = t.numpy(), path.numpy(), own.numpy()
    for j, c in enumerate(chans):
        k = CHANNELS.index(c)
        ax = axes[0, j]
        ax.plot(td, val[:, k], color=color, lw=1.2, label=label or "spline $X(t)$")
        ax.plot(tn[on], pn[on, k], ".", color="k", ms=4, label=None if label else "samples")
        if not on.all():
            ax.plot(tn[~on], pn[~on, k], "o", mfc="none", color="0.5", ms=3, label="not own (interpolated)")
        ax.set_title(c + "(t)", fontsize=9)
        if derivative:
            ax = axes[1, j]
            ax.plot(td, der[:, k], color="C1" if label is None else color, lw=1.2,
                    label=f"{label}: $dX/dt$" if label else "$dX/dt$ (real time)")
            if bug is not None:
                ax.plot(td, bug[:, k], "--", color="C3", lw=1.2, label="fitted on index (bug)")
            ax.axhline(0, color="0.8", lw=0.8, zorder=0)
            ax.set_title(f"d{c}/dt", fontsize=9)
        axes[-1, j].set_xlabel("t")
    axes[0, 0].legend(fontsize=7, loc="best")
    if derivative:
        axes[1, 0].legend(fontsize=7, loc="best")
    return axes


def plot_hidden_trajectory(g, t, pen=None, channels: int = 8, ax=None, title: str | None = None):
    """The CDE's hidden state ``g(t)`` over time: the first ``channels`` components (eq. 4; chapter 7).

    ``g`` is ``(G, d)`` (or ``(1, G, d)``) on grid ``t (G,)``, e.g. one row of
    :meth:`CDEEncoder.solve`; ``pen (G,)`` shades the pen-up intervals grey
    (``pen >= 0.5``), where the control's pen channel jumps.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    g = np.asarray(g.detach().cpu() if isinstance(g, torch.Tensor) else g, dtype=np.float64)
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if g.ndim == 3 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 2:
        raise ValueError(f"plot_hidden_trajectory: g must be (G, d), got shape {g.shape}")
    if t.shape != (g.shape[0],):
        raise ValueError(f"plot_hidden_trajectory: t must be ({g.shape[0]},) to match g, got {t.shape}")
    if channels < 1:
        raise ValueError(f"plot_hidden_trajectory: channels must be >= 1, got {channels!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.6))
    if pen is not None:
        pen = np.asarray(pen.detach().cpu() if isinstance(pen, torch.Tensor) else pen, dtype=np.float64)
        if pen.shape != t.shape:
            raise ValueError(f"plot_hidden_trajectory: pen must be ({len(t)},), got {pen.shape}")
        up = np.r_[False, pen >= 0.5, False].astype(np.int8)
        edges = np.diff(up)
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1):
            ax.axvspan(t[max(a - 1, 0)], t[min(b + 1, len(t) - 1)], color="0.9", zorder=0)
    k = min(int(channels), g.shape[1])
    ax.plot(t, g[:, :k], lw=1.2)
    ax.set_xlabel("t")
    ax.set_ylabel(f"$g_k(t)$, k < {k}")
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax
