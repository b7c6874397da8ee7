"""The abstraction effect: decoding with lower activation frequencies (paper 5.5, figure 7; chapter 11).

The decoder's acceleration field ``F`` is an MLP with periodic activations
``sin(w x)`` or ``cos(w x)`` (section 4.5).  Lowering ``w`` at test time,
without retraining, lowers the field's capacity for fast variation:

* ``sin(w x) = w x - (w x)^3 / 6 + ...``: as ``w -> 0`` the network becomes
  linear (and small), the paper's argument for ``sin``;
* ``cos(w x) = 1 - (w x)^2 / 2 + ...``: as ``w -> 0`` every hidden unit tends
  to the constant 1, so ``F`` tends to a constant acceleration ``c`` and
  every drawing to the same straight ray ``s(t) = c t^2 / 2`` (a parabola in
  time); the input's influence fades as ``w^(2L)`` for ``L`` layers.

The paper calls the result "abstraction": detail goes first, the overall
gesture last.  Chapter 11 measures it; on the shipped digits model the
detail does fall, but the digits stop being recognisable while most of it is
still there (a trained unit works at several radians, so scaling ``w`` shifts
its phase, and the ODE integrates the change).  :func:`decode_at` decodes codes with every periodic layer
of the *decoder* scaled (the encoder is untouched: the codes are those of
the trained model) through :func:`sketchode.models.dynamics.override_w`, which
restores the frequencies afterwards; :func:`sweep` does it for a list of
scales and measures each result with :func:`detail`, :func:`ink_length`, the
number of strokes, the :func:`spread` between drawings and (given a
recognizer) the recognition accuracy of section 5.2.

Two controls, so that chapter 11 can test the claim "detail goes first,
semantics last" rather than illustrate it:

* :func:`decode_rnn_at`: the same knob on the LSTM-LSTM baseline, whose
  decoder has no frequency; :func:`scale_lstm` multiplies every pre-activation
  of its LSTM (and of the ``tanh`` initial state) by ``scale``, which is what
  scaling ``w`` does to ``cos(w x)``;
* :func:`decode_smoothed`: the trained decoder's output low-pass filtered in
  time (a Gaussian of standard deviation ``sigma``), the textbook way of
  removing detail.

Figures: :func:`plot_sweep` (figure 7: drawings by scale),
:func:`plot_measures` (the measures against the scale),
:func:`plot_accuracy_vs_detail` (the claim's test) and
:func:`plot_class_accuracy` (which digits survive).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from sketchode.data.augment import roughness
from sketchode.data.sketch import Sketch
from sketchode.models.dynamics import override_w
from sketchode.book.ch10_latent import decode_paths, decode_sketches, paths_to_sketches  # noqa: F401 (re-exported)

__all__ = ["decode_at", "sweep", "detail", "ink_length", "spread", "scale_lstm", "decode_rnn_at",
           "decode_smoothed", "paths_to_sketches", "class_accuracy", "threshold_scale",
           "plot_sweep", "plot_measures", "plot_accuracy_vs_detail", "plot_class_accuracy"]


def _decoder(model):
    dec = getattr(model, "decoder", None)
    if dec is None:
        raise ValueError(f"abstraction: {type(model).__name__} has no `decoder` with periodic activations")
    return dec


def decode_at(model, z, scale: float = 1.0, G: int | None = None, raw: bool = False):
    """Decode codes ``z (n, l)`` with the decoder's frequencies multiplied by ``scale``.

    Returns drawings (:func:`~sketchode.book.ch10_latent.decode_sketches`), or with
    ``raw=True`` the positions and pen probabilities
    (:func:`~sketchode.book.ch10_latent.decode_paths`).  ``scale = 1`` is the trained
    model.  The model is unchanged afterwards (tested).
    """
    if not scale > 0:
        raise ValueError(f"decode_at: scale must be > 0, got {scale!r}")
    with override_w(_decoder(model), scale=float(scale)):
        return decode_paths(model, z, G) if raw else decode_sketches(model, z, G)


def ink_length(sketch: Sketch) -> float:
    """Total length of the ink (pen-down segments inside strokes)."""
    xy, sid = sketch.points[:, :2], sketch.stroke_index
    d = np.linalg.norm(np.diff(xy, axis=0), axis=1)
    return float(d[sid[1:] == sid[:-1]].sum())


def detail(sketch: Sketch) -> float:
    """Amount of fine detail of a decoded drawing: its :func:`~sketchode.data.augment.roughness`.

    At a fixed number of samples, the RMS second difference over the RMS
    first difference is about the pen's turning per sample, so it falls as
    wiggles and sharp corners disappear.  ``nan`` for a drawing with no
    stroke of 3 points.
    """
    try:
        return roughness(sketch)
    except ValueError:
        return float("nan")


def spread(xy) -> float:
    """How different decoded trajectories are from each other, relative to their size (section 5.5; chapter 11).

    ``xy (n, G, 2)``: ``n >= 2`` trajectories on one time grid.  Returns
    ``sqrt(mean ||x_i(t) - mean_j x_j(t)||^2) / sqrt(mean ||x_i(t) - x_i(t_0)||^2)``
    (means over drawings and times): 0 when every code decodes to the same
    trajectory, whatever its size, and about 1 for unrelated drawings.  As
    ``w -> 0`` a ``cos`` decoder's field becomes one constant acceleration, so
    the spread between drawings goes to 0.  ``nan`` if no trajectory moves.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[0] < 2 or xy.shape[2] != 2:
        raise ValueError(f"spread: expected (n >= 2, G, 2) trajectories, got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("spread: trajectories contain NaN or inf")
    between = np.mean(np.sum((xy - xy.mean(0)) ** 2, axis=-1))
    size = np.mean(np.sum((xy - xy[:, :1]) ** 2, axis=-1))
    return float(np.sqrt(between / size)) if size > 0 else float("nan")


@contextlib.contextmanager
def scale_lstm(module: nn.Module, scale: float) -> Iterator[list[nn.Parameter]]:
    """Multiply every pre-activation of an LSTM decoder by ``scale`` inside the block (chapter 11).

    The LSTM-LSTM baseline (:class:`sketchode.models.lstm.LSTMDecoder`) has no
    frequency to lower.  The closest knob: its gates compute ``sigmoid(u)``
    and ``tanh(u)`` of pre-activations ``u = W_ih x + W_hh h + b``, and its
    initial state is ``tanh(init(z))``; multiplying those weights and biases by
    ``scale`` turns every ``act(u)`` into ``act(scale u)``, exactly what
    scaling ``w`` does to ``cos(w u)`` (paper 5.5).  The output layer is
    linear and left alone, as the last Linear of ``F`` is by
    :func:`~sketchode.models.dynamics.override_w`.  As ``scale -> 0`` the gates sit at
    ``1/2``, the cell input at 0, so the output tends to a constant: a dot.

    The parameters are restored bit for bit on exit, also when the block
    raises.  Raises ``ValueError`` if ``module`` holds no ``nn.LSTM``.
    """
    s = float(scale)
    if not (s > 0 and math.isfinite(s)):
        raise ValueError(f"scale_lstm: scale must be a finite number > 0, got {scale!r}")
    lstms = [m for m in module.modules() if isinstance(m, nn.LSTM)]
    if not lstms:
        raise ValueError(f"scale_lstm: {type(module).__name__} contains no nn.LSTM")
    params = [p for m in lstms for p in m.parameters()]
    init = getattr(module, "init", None)
    if isinstance(init, nn.Linear):  # LSTMDecoder: (h0, c0) = tanh(init(z))
        params += list(init.parameters())
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p in params:
                p.mul_(s)
        yield params
    finally:
        with torch.no_grad():
            for p, v in zip(params, saved):
                p.copy_(v)


def decode_rnn_at(model, z, scale: float = 1.0, G: int | None = None, raw: bool = False):
    """Decode codes ``z`` of the LSTM-LSTM baseline with its pre-activations scaled (:func:`scale_lstm`; chapter 11).

    The baseline's counterpart of :func:`decode_at`; ``G`` defaults to the
    training grid, which an LSTM needs (its time is its step count).
    """
    dec = getattr(model, "decoder", None)
    if dec is None:
        raise ValueError(f"decode_rnn_at: {type(model).__name__} has no `decoder`")
    with scale_lstm(dec, scale):
        return decode_paths(model, z, G) if raw else decode_sketches(model, z, G)


def decode_smoothed(model, z, sigma: float = 0.0, G: int | None = None, raw: bool = False):
    """Decode ``z`` unchanged, then low-pass filter the positions in time (a control for chapter 11).

    Each coordinate is convolved with a Gaussian of standard deviation
    ``sigma`` time units (``scipy.ndimage.gaussian_filter1d``, ends
    extended by their last value); the pen is left as decoded.  ``sigma = 0``
    is the plain reconstruction.  Removing detail this way never touches the
    network, so whatever it costs in recognition is the cost of the lost
    detail itself.
    """
    from scipy.ndimage import gaussian_filter1d

    sigma = float(sigma)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"decode_smoothed: sigma must be a finite number >= 0, got {sigma!r}")
    xy, pen = decode_paths(model, z, G)
    T = float(model.config.get("T", 5.0))
    if sigma > 0:
        dt = T / (xy.shape[1] - 1)
        xy = gaussian_filter1d(xy, sigma / dt, axis=1, mode="nearest")
    return (xy, pen) if raw else paths_to_sketches(xy, pen, T)


decode_smoothed.identity = 0.0  # the parameter value that changes nothing (sweep's reference)


def sweep(model, z, scales: Sequence[float] = (1.0, 0.8, 0.6, 0.4, 0.2), G: int | None = 200,
          recognizer=None, labels: Sequence | None = None, decode: Callable = decode_at) -> dict:
    """Decode ``z`` at each frequency scale; returns ``{"scales", "sketches", "detail", "ink", "strokes", "spread"}``.

    ``sketches[i]`` are the drawings at ``scales[i]``; ``detail[i]``,
    ``ink[i]`` and ``strokes[i]`` are per-drawing arrays of :func:`detail`,
    :func:`ink_length` and the number of strokes; ``spread[i]`` is the
    :func:`spread` between the decoded trajectories (``nan`` for one code).

    With a ``recognizer`` (a :class:`~sketchode.evaluation.recognition.RecognitionCNN`)
    and ``labels`` (one per code), also ``"correct"`` (per-drawing booleans)
    and ``"accuracy"`` (their means), the semantic measure of section 5.2.

    ``decode(model, z, value, G, raw=True)`` makes the drawings: the default
    :func:`decode_at` scales the frequencies; :func:`decode_rnn_at` and
    :func:`decode_smoothed` are the controls of chapter 11 (their values are
    then pre-activation scales or smoothing widths).  ``"reference"`` is the
    index of the value that changes nothing (``decode.identity``, default 1),
    or ``None`` when it is not among ``scales``.
    """
    scales = [float(s) for s in scales]
    if not scales:
        raise ValueError("sweep: no scales given")
    if recognizer is not None:
        if labels is None:
            raise ValueError("sweep: a recognizer needs the codes' labels")
        labels = list(labels)
        if len(labels) != len(z):
            raise ValueError(f"sweep: {len(labels)} labels for {len(z)} codes")
        from sketchode.evaluation.recognition import predict
    identity = float(getattr(decode, "identity", 1.0))
    out = {"scales": scales, "sketches": [], "detail": [], "ink": [], "strokes": [], "spread": [],
           "reference": scales.index(identity) if identity in scales else None}
    if recognizer is not None:
        out["correct"], out["accuracy"] = [], []
    T = float(model.config.get("T", 5.0))
    for s in scales:
        xy, pen = decode(model, z, s, G, raw=True)
        sk = paths_to_sketches(xy, pen, T)
        out["sketches"].append(sk)
        out["detail"].append(np.array([detail(x) for x in sk]))
        out["ink"].append(np.array([ink_length(x) for x in sk]))
        out["strokes"].append(np.array([x.n_strokes for x in sk]))
        out["spread"].append(spread(xy) if len(xy) > 1 else float("nan"))
        if recognizer is not None:
            ok = np.array([str(p) == str(q) for p, q in zip(predict(recognizer, sk), labels)])
            out["correct"].append(ok)
            out["accuracy"].append(float(ok.mean()))
    return out


def class_accuracy(result: dict, labels: Sequence) -> tuple[list, np.ndarray]:
    """Recognition accuracy per class and scale of a :func:`sweep` with a recognizer.

    Returns ``(classes, acc)``: the sorted distinct labels and ``acc
    (n_classes, n_scales)``.
    """
    if "correct" not in result:
        raise ValueError("class_accuracy: the sweep was run without a recognizer")
    labels = np.asarray([str(x) for x in labels])
    correct = np.stack(result["correct"])  # (n_scales, n)
    if correct.shape[1] != len(labels):
        raise ValueError(f"class_accuracy: {len(labels)} labels for {correct.shape[1]} drawings")
    classes = sorted(set(labels.tolist()))
    onehot = labels[None, :] == np.asarray(classes)[:, None]  # (C, n)
    acc = (onehot.astype(float) @ correct.T.astype(float)) / onehot.sum(1, keepdims=True)
    return classes, acc


def threshold_scale(scales: Sequence[float], values: Sequence[float], level: float, start: float = 1.0) -> float:
    """Where a measure first falls below ``level`` when the scale is lowered from ``start`` (chapter 11).

    ``scales`` and ``values`` are a curve (any order); only scales
    ``<= start`` are walked, downwards.  Returns the linearly interpolated
    scale of the first crossing, ``start`` if the value there is already
    below, and ``nan`` if it never falls below ``level``.
    """
    x, y = np.asarray(scales, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"threshold_scale: scales and values must be 1-D of one length, got {x.shape} and {y.shape}")
    keep = x <= start
    order = np.argsort(-x[keep])
    x, y = x[keep][order], y[keep][order]
    below = np.flatnonzero(y < level)
    if len(below) == 0:
        return float("nan")
    k = int(below[0])
    if k == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))


# ------------------------------------------------------------------ figures
def _mean_curve(result: dict, measure: str, relative: bool) -> np.ndarray:
    if measure not in result:
        have = sorted(k for k in result if k != "sketches")
        raise ValueError(f"plot: the sweep has no measure {measure!r} (has {have})")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a scale where no drawing has a value: nan
        m = np.array([np.nanmean(v) if np.ndim(v) else float(v) for v in result[measure]], dtype=np.float64)
        if relative:
            ref = result.get("reference")
            if ref is None:
                raise ValueError("plot: relative=True needs the sweep's reference value among its scales")
            m = m / m[ref]
    return m


def plot_sweep(result: dict, rows: Sequence[int] | int | None = None, size: float = 1.1, row_titles=None,
               col_format: str = "w x {:g}", **kw):
    """Figure 7: rows = drawings, columns = the sweep's scales (chapter 11); returns the Figure.

    ``rows``: the indices of the drawings to show (an int ``k``: the first
    ``k``; default all).  ``row_titles`` label the rows (e.g. the digits);
    ``col_format`` formats the column headers.  Other keywords go to
    :func:`sketchode.plot.plot_sketch`.
    """
    import matplotlib.pyplot as plt

    from sketchode.plot import plot_sketch

    scales, sketches = result["scales"], result["sketches"]
    n = len(sketches[0])
    rows = list(range(n)) if rows is None else (list(range(min(int(rows), n))) if np.isscalar(rows) else list(rows))
    if not rows or not scales:
        raise ValueError("plot_sweep: nothing to draw")
    if any(not 0 <= r < n for r in rows):
        raise ValueError(f"plot_sweep: row indices must lie in [0, {n}), got {rows}")
    fig, axes = plt.subplots(len(rows), len(scales), figsize=(len(scales) * size, len(rows) * size * 1.05 + 0.3),
                             squeeze=False)
    for j, s in enumerate(scales):
        for i, r in enumerate(rows):
            plot_sketch(sketches[j][r], ax=axes[i, j], title=col_format.format(s) if i == 0 else None, **kw)
    if row_titles is not None:
        for i, t in enumerate(row_titles):
            axes[i, 0].set_ylabel(str(t), rotation=0, labelpad=12, va="center")
    fig.tight_layout(pad=0.3)
    return fig


def plot_measures(results: dict, measures: Sequence[str] = ("detail", "ink", "strokes", "accuracy"),
                  relative: Sequence[str] = ("detail", "ink"), xlabel: str = "frequency scale s (w -> s w)",
                  axes=None, size: float = 3.0):
    """One panel per measure of :func:`sweep` results against the scale (chapter 11); returns the Figure.

    ``results`` maps a label to a sweep result (several curves per panel);
    measures named in ``relative`` are divided by their value at the
    sweep's reference (scale 1).  Means over drawings, ``nan`` ignored.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_measures: no results")
    names = {"detail": "detail (roughness)", "ink": "ink length", "strokes": "strokes per drawing",
             "accuracy": "recognition accuracy", "spread": "spread between drawings"}
    if axes is None:
        fig, axes = plt.subplots(1, len(measures), figsize=(size * len(measures), size * 0.85), squeeze=False)
        axes = axes[0]
    else:
        axes = np.ravel(axes)
        fig = axes[0].figure
    for ax, m in zip(axes, measures):
        rel = m in relative
        for label, r in results.items():
            ax.plot(r["scales"], _mean_curve(r, m, rel), "o-", ms=3, label=label)
        ax.axvline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_title(names.get(m, m) + (" / at s = 1" if rel else ""), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_detail(results: dict, measure: str = "detail", ax=None, annotate: bool = True):
    """Recognition accuracy against the detail that is left, one curve per way of removing detail (chapter 11).

    ``results`` maps a label to a :func:`sweep` with a recognizer; the x axis
    is the mean ``measure`` relative to the sweep's reference, the y axis the
    accuracy.  "Detail goes first, semantics last" means curves that stay
    high while the detail falls (from right to left).  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 3.4))
    for label, r in results.items():
        if "accuracy" not in r:
            raise ValueError(f"plot_accuracy_vs_detail: {label!r} was swept without a recognizer")
        x = _mean_curve(r, measure, True)
        line, = ax.plot(x, r["accuracy"], "o-", ms=3, label=label)
        if annotate:
            for xi, yi, s in zip(x, r["accuracy"], r["scales"]):
                if s in (r["scales"][0], r["scales"][-1]):
                    ax.annotate(f"{s:g}", (xi, yi), fontsize=7, color=line.get_color(),
                                xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"{measure} left (relative to the reconstruction)")
    ax.set_ylabel("recognition accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_class_accuracy(result: dict, labels: Sequence, ax=None, col_format: str = "{:g}"):
    """Heat map of recognition accuracy per class (rows) and scale (columns) of a :func:`sweep` (chapter 11).

    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    classes, acc = class_accuracy(result, labels)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.5 * len(result["scales"]) + 1.5, 0.3 * len(classes) + 1.2))
    im = ax.imshow(acc, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(result["scales"])), [col_format.format(s) for s in result["scales"]], fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("scale")
    ax.set_ylabel("class")
    ax.figure.colorbar(im, ax=ax, label="accuracy")
    return ax
