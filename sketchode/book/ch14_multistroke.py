"""Multi-stroke models on doodles (appendix C; chapter 14).

Chapter 14 trains nothing: it loads the multi-stroke SketchODE
(:class:`~sketchode.models.multistroke.MultiStrokeSketchODE`, section 4.4 and
appendix C of the paper) trained on Quick, Draw! sheep and on the face, fish
and flower samples, and measures what the multi-stroke format adds to the
model: a chain of states from stroke to stroke, a start position per stroke
and an end-of-sketch flag.  This module holds its measurements and figures:

* :func:`first_strokes`: a drawing cut after its first ``k`` strokes (decoding
  stroke by stroke);
* :func:`chain_magnitudes` and :func:`growth_factor`: how large the chained
  states and start predictions are along the strokes (with and without the
  model's ``chain_norm``);
* :func:`end_probabilities`, :func:`stop_rule` and :func:`stroke_count_stats`:
  the end-of-sketch flag ``p(r_k = 1)`` per stroke, the number of strokes the
  stop rule decodes, and how it compares with the truth;
* :func:`compare_stopping`: reconstructions with the model's own stop rule
  against reconstructions given the true number of strokes (chamfer distance
  and recognition accuracy, section 5.2);
* :func:`mixed_reconstructions`: reconstructions with the true start
  positions or the true stroke shapes put in, to see which of the two
  carries the error;
* :func:`own_vs_other`: whether a reconstruction is closer to its own drawing
  than to the others (does the code carry the drawing, or does the decoder
  draw the same average drawing for every code?);
* :func:`wilson_interval`: how uncertain an accuracy measured on a handful of
  drawings is;
* figures: :func:`plot_stroke_batch`, :func:`plot_by_stroke`,
  :func:`plot_stroke_progress`, :func:`plot_count_histogram`,
  :func:`plot_chain_magnitudes`, :func:`plot_end_flag`,
  :func:`plot_stroke_counts`, :func:`plot_train_test`.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Mapping, Sequence

import numpy as np
import torch

from sketchode.data.sketch import Sketch

__all__ = ["first_strokes", "chain_magnitudes", "growth_factor", "end_probabilities", "stop_rule",
           "stroke_count_stats", "compare_stopping", "mixed_reconstructions", "own_vs_other", "wilson_interval",
           "stroke_colors", "plot_stroke_batch", "plot_by_stroke", "plot_stroke_progress", "plot_count_histogram",
           "plot_chain_magnitudes", "plot_end_flag", "plot_stroke_counts", "plot_train_test"]


def _check_multistroke(model, where: str) -> None:
    if getattr(model, "format", None) != "strokes" or not all(hasattr(model, a) for a in ("U", "V", "P", "R")):
        raise TypeError(f"{where}: expected a multi-stroke model (MultiStrokeSketchODE), got {type(model).__name__}")


def _check_sketches(sketches, where: str, name: str = "sketches") -> list[Sketch]:
    from sketchode.training.fit import _check_sketches as check  # one home for "a non-empty list of Sketch"

    return check(sketches, name, where)


# ------------------------------------------------------------------ drawings
def first_strokes(sketch: Sketch, k: int | None) -> Sketch:
    """``sketch`` cut after its first ``k`` strokes (all of them when ``k`` is None or larger).

    Appendix C decodes a drawing one stroke at a time; chapter 14 shows a
    reconstruction after 1, 2, 4, ... strokes with it.
    """
    if not isinstance(sketch, Sketch):
        raise TypeError(f"first_strokes: expected a Sketch, got {type(sketch).__name__}")
    if k is None:
        return sketch
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"first_strokes: k must be None or an integer >= 1, got {k!r}")
    return sketch if k >= sketch.n_strokes else sketch._trusted(sketch.strokes[: int(k)])


# -------------------------------------------------------------- the chain
@torch.no_grad()
def chain_magnitudes(model, batch) -> dict:
    """Sizes of the chained states along the strokes of a :class:`~sketchode.data.batching.StrokeBatch` (appendix C).

    Runs ``model.loss(batch)`` (the teacher-forced forward pass of training)
    with forward hooks on the chain maps, and returns, per stroke index ``k``
    (arrays of length ``K``, the batch's largest number of strokes), the mean
    over the drawings that have a ``k``-th stroke of

    * ``"encoder"``: ``||g_0^k||``, the encoder CDE's initial state (``0`` for
      the first stroke, then ``U``'s output);
    * ``"decoder"``: ``||[h_0^k, h_0^k']||``, the decoder ODE's initial hidden
      state (``L_dec(z)`` for the first stroke, then ``V``'s output);
    * ``"start"``: ``||v_k||``, the predicted start position (head ``P``);

    plus ``"count"`` (drawings with a ``k``-th stroke) and ``"loss"`` (the
    loss parts as floats).  Chapter 14 compares ``chain_norm=False`` (states
    fed on unnormalised, as appendix C writes it) with ``chain_norm=True`` at
    initialisation.
    """
    _check_multistroke(model, "chain_magnitudes")
    rec = {"encoder": [], "decoder": [], "start": []}

    def on_u(_mod, _inp, out):
        rec["encoder"].append(float(out.norm(dim=1).mean()))

    def on_p(_mod, inp, out):
        rec["decoder"].append(float(inp[0].norm(dim=1).mean()))
        rec["start"].append(float(out.norm(dim=1).mean()))

    hooks = [model.U.register_forward_hook(on_u), model.P.register_forward_hook(on_p)]
    was = model.training
    model.eval()
    try:
        parts = model.loss(batch, return_parts=True)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    K = int(batch.stroke_mask.shape[1])
    out = {k: np.asarray(v, dtype=np.float64) for k, v in rec.items()}
    out["encoder"] = np.concatenate([[0.0], out["encoder"]])  # g_0^1 = 0
    for key in ("encoder", "decoder", "start"):
        if len(out[key]) != K:
            raise RuntimeError(f"chain_magnitudes: recorded {len(out[key])} strokes for '{key}', expected {K}")
    out["count"] = batch.stroke_mask.sum(0).cpu().numpy().astype(int)
    out["loss"] = {k: float(v) for k, v in parts.items()}
    return out


def growth_factor(values, first: int = 1) -> float:
    """Factor per stroke of a geometric growth ``values[k] ~ c g^k``: ``g`` fitted by least squares on ``log``.

    ``first`` skips the leading entries (the first stroke's state comes from
    ``L_dec``, not from the chain).  Chapter 14 reads the growth of the
    decoder chain without ``chain_norm`` (appendix C) with it.
    """
    v = np.asarray(values, dtype=np.float64)[int(first):]
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"growth_factor: need at least 2 values after the first {first}, got {len(v)}")
    if not np.all(np.isfinite(v) & (v > 0)):
        raise ValueError("growth_factor: values must be finite and > 0")
    k = np.arange(len(v), dtype=np.float64)
    slope = np.polyfit(k, np.log(v), 1)[0]
    return float(np.exp(slope))


# -------------------------------------------------------- end of sketch
@torch.no_grad()
def end_probabilities(model, sketches: Sequence[Sketch], K: int | None = None, batch_size: int = 256) -> dict:
    """The end-of-sketch flag ``p(r_k = 1) = sigmoid(R(A^k(t1)))`` of every stroke (appendix C).

    Each normalised drawing is encoded and the decoder chain is run for ``K``
    strokes, whatever the flag says (default: the model's ``max_strokes`` or
    :data:`~sketchode.models.multistroke.MAX_STROKES`), so the flag can be read past
    the drawing's true end.  Returns ``p (N, K)``, ``n_true (N,)`` (strokes of
    each drawing, after the model's own ``max_strokes`` truncation) and
    ``n_pred (N,)`` (what the model's stop rule decodes: :func:`stop_rule`).
    The chain does not depend on when it stops, so ``n_pred`` is exactly
    ``model.decode(z, max_strokes=K)["n_strokes"]``.
    """
    from sketchode.models.multistroke import MAX_STROKES

    _check_multistroke(model, "end_probabilities")
    sketches = _check_sketches(sketches, "end_probabilities")
    if K is None:
        K = model.config.get("max_strokes") or MAX_STROKES
    if isinstance(K, bool) or int(K) != K or K < 1:
        raise ValueError(f"end_probabilities: K must be an integer >= 1, got {K!r}")
    was = model.training
    model.eval()
    ps, ns = [], []
    try:
        for i in range(0, len(sketches), int(batch_size)):
            batch = model.collate(sketches[i:i + int(batch_size)])
            dec = model.decode(model.encode(batch), n_strokes=int(K))
            ps.append(torch.sigmoid(dec["end_logit"]).cpu().numpy())
            ns.append(batch.n_strokes.cpu().numpy())
    finally:
        model.train(was)
    p = np.concatenate(ps).astype(np.float64)
    return {"p": p, "n_true": np.concatenate(ns).astype(int), "n_pred": stop_rule(p)}


def stop_rule(p, threshold: float = 0.5) -> np.ndarray:
    """Strokes decoded by appendix C's stop rule: the first stroke ``k`` with ``p[:, k] > threshold``, 1-based.

    ``p (N, K)`` are end-of-sketch probabilities per stroke; a drawing whose
    flag never rises above ``threshold`` gets ``K`` strokes (the bound of the
    decoder).  Vectorised over drawings (chapter 14).
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"stop_rule: p must have shape (N, K) with K >= 1, got {p.shape}")
    ended = p > threshold
    return np.where(ended.any(1), ended.argmax(1) + 1, p.shape[1]).astype(int)


def stroke_count_stats(n_true, n_pred) -> dict:
    """How well a predicted number of strokes matches the truth (chapter 14; appendix C's end flag).

    Returns ``n`` (drawings), ``mae`` (mean absolute error in strokes),
    ``exact`` (fraction exactly right), ``within_one`` (off by at most one),
    ``bias`` (mean of predicted minus true: negative when the model stops
    early), ``mean_true`` and ``mean_pred``.
    """
    t = np.asarray(n_true, dtype=np.float64)
    q = np.asarray(n_pred, dtype=np.float64)
    if t.shape != q.shape or t.ndim != 1 or not len(t):
        raise ValueError(f"stroke_count_stats: need two 1-d arrays of the same non-zero length, "
                         f"got {t.shape} and {q.shape}")
    d = q - t
    return {"n": int(len(t)), "mae": float(np.abs(d).mean()), "exact": float((d == 0).mean()),
            "within_one": float((np.abs(d) <= 1).mean()), "bias": float(d.mean()),
            "mean_true": float(t.mean()), "mean_pred": float(q.mean())}


def compare_stopping(model, sketches: Sequence[Sketch], recognizer=None, max_strokes: int | None = None,
                     n: int = 128) -> dict:
    """Reconstructions decoded with the model's stop rule against ones given the true number of strokes.

    ``sketches`` must be normalised (:func:`~sketchode.data.sketch.prepare`).
    For each mode (``"stop"``: the end-of-sketch flag of appendix C decides;
    ``"true"``: each drawing's own number of strokes, teacher-forced length)
    returns ``recon`` (the drawings), ``n_strokes``, ``chamfer`` (per drawing,
    :func:`sketchode.evaluation.scores.chamfer` with ``n`` points) and ``accuracy``
    (section 5.2's recognition accuracy of the reconstructions with
    ``recognizer``, ``None`` without one).  Chapter 14.
    """
    from sketchode.evaluation.scores import chamfer
    from sketchode.evaluation.recognition import accuracy

    _check_multistroke(model, "compare_stopping")
    sketches = _check_sketches(sketches, "compare_stopping")
    out = {}
    for mode, true in (("stop", False), ("true", True)):
        recon = model.reconstruct(sketches, true_strokes=true, max_strokes=max_strokes)
        out[mode] = {"recon": recon, "n_strokes": np.array([r.n_strokes for r in recon]),
                     "chamfer": chamfer(sketches, recon, n=n),
                     "accuracy": None if recognizer is None else accuracy(recognizer, recon,
                                                                          [s.label for s in sketches])}
    return out


@torch.no_grad()
def mixed_reconstructions(model, sketches: Sequence[Sketch], batch_size: int = 256) -> dict:
    """Reconstructions that mix the model's strokes and starts with the true ones (appendix C; chapter 14).

    A multi-stroke drawing is its strokes' shapes (relative points, drawn by
    the decoder ODE) placed at their start positions (regressed by ``P``).
    For normalised ``sketches``, decoded with their true numbers of strokes on
    the model's grid, returns three lists of drawings:

    * ``"model"``: the model's shapes at the model's starts (the reconstruction);
    * ``"true starts"``: the model's shapes at the true starts;
    * ``"true shapes"``: the true shapes (re-sampled on the grid) at the model's starts.

    Comparing their chamfer distances to the drawings says whether the
    error is in the shapes or in the placement.
    """
    _check_multistroke(model, "mixed_reconstructions")
    sketches = _check_sketches(sketches, "mixed_reconstructions")
    was = model.training
    model.eval()
    out = {"model": [], "true starts": [], "true shapes": []}
    try:
        for i in range(0, len(sketches), int(batch_size)):
            chunk = sketches[i:i + int(batch_size)]
            b = model.collate(chunk)
            dec = model.decode(model.encode(b), n_strokes=b.n_strokes)
            t = b.t.cpu().numpy().astype(np.float64)[:, None]
            for name, pts, start in (("model", dec["points"], dec["start"]), ("true starts", dec["points"], b.start),
                                     ("true shapes", b.points, dec["start"])):
                xy = (pts + start[:, :, None]).cpu().numpy().astype(np.float64)  # (B, K, M, 2) absolute
                for s, q, n in zip(chunk, xy, b.n_strokes.tolist()):
                    out[name].append(Sketch([np.column_stack([q[k], t]) for k in range(n)], label=s.label,
                                            key=s.key, timed=False))
    finally:
        model.train(was)
    return out


def own_vs_other(sketches: Sequence[Sketch], recon: Sequence[Sketch], shifts: Sequence[int] = (1, 2, 3),
                 n: int = 128) -> dict:
    """Is each reconstruction closer to its own drawing than to the other drawings? (chapter 14, section 5.2).

    ``recon[i]`` reconstructs ``sketches[i]``.  Returns arrays over ``i`` of
    chamfer distances (:func:`sketchode.evaluation.scores.chamfer`):

    * ``"own"``: ``recon[i]`` to ``sketches[i]``;
    * ``"other"``: ``recon[i]`` to ``sketches[i + s]``, averaged over ``shifts``
      (cyclic): a reconstruction that ignores its code is as close to
      another drawing as to its own;
    * ``"spread_recon"`` and ``"spread_data"``: ``recon[i]`` to ``recon[i + s]``
      and ``sketches[i]`` to ``sketches[i + s]``: how different the
      reconstructions are from each other, against how different the drawings are.
    """
    sketches = _check_sketches(sketches, "own_vs_other")
    recon = _check_sketches(recon, "own_vs_other", "recon")
    N = len(sketches)
    if len(recon) != N:
        raise ValueError(f"own_vs_other: {N} drawings against {len(recon)} reconstructions")
    shifts = [int(s) for s in shifts]
    if N < 2 or not shifts or any(s % N == 0 for s in shifts):
        raise ValueError(f"own_vs_other: need at least 2 drawings and shifts that are not multiples of {N}, "
                         f"got {N} drawings and shifts {shifts}")
    from sketchode.evaluation.scores import chamfer

    def rolled(x, s):
        return x[s % N:] + x[:s % N]

    return {"own": chamfer(sketches, recon, n=n),
            "other": np.mean([chamfer(rolled(sketches, s), recon, n=n) for s in shifts], axis=0),
            "spread_recon": np.mean([chamfer(rolled(recon, s), recon, n=n) for s in shifts], axis=0),
            "spread_data": np.mean([chamfer(rolled(sketches, s), sketches, n=n) for s in shifts], axis=0)}


def wilson_interval(k, n, level: float = 0.95):
    """Wilson score interval of a binomial proportion ``k / n`` at confidence ``level``; returns ``(lo, hi)``.

    Unlike the normal approximation ``p +- z sqrt(p (1 - p) / n)`` it stays
    inside ``[0, 1]`` and is sensible for small ``n`` and ``k`` near ``0`` or
    ``n``: chapter 14 scores 17 test doodles.  Vectorised over arrays of
    ``k`` and ``n``.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if not 0 < level < 1:
        raise ValueError(f"wilson_interval: level must be in (0, 1), got {level!r}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("wilson_interval: need n >= 1 and 0 <= k <= n")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    den = 1 + z ** 2 / n
    mid = (p + z ** 2 / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / den
    lo = np.where(k == 0, 0.0, np.clip(mid - half, 0.0, 1.0))  # exact ends (no round-off at k = 0 or n)
    hi = np.where(k == n, 1.0, np.clip(mid + half, 0.0, 1.0))
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


# ------------------------------------------------------------------ figures
def stroke_colors(n: int, cmap: str = "tab10") -> np.ndarray:
    """``(n, 4)`` RGBA colours of strokes ``0 .. n-1``: a qualitative colour map, cycled (chapter 14)."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    if int(n) != n or n < 0:
        raise ValueError(f"stroke_colors: n must be an integer >= 0, got {n!r}")
    cm = matplotlib.colormaps[cmap]
    n = int(n)
    if isinstance(cm, ListedColormap) and cm.N <= 32:  # qualitative: colour k, cycled
        return np.asarray(cm(np.arange(n) % cm.N))
    return np.asarray(cm(np.linspace(0.0, 1.0, max(n, 1))))[:n]


def plot_by_stroke(sketch: Sketch, ax=None, upto: int | None = None, cmap: str = "tab10", ghost="0.85",
                   linewidth: float = 2.0, starts: bool = True, title: str | None = None):
    """One drawing with each stroke in its own colour (stroke ``k`` of any drawing gets the same colour).

    Strokes after the first ``upto`` are drawn in ``ghost`` grey (or not at
    all when ``ghost`` is None), so a row of such panels shows a drawing
    being decoded stroke by stroke (appendix C).  ``starts`` marks each
    coloured stroke's start point.  The drawing's frame is
    :func:`sketchode.plot.plot_sketch`'s for the whole drawing.  Returns the Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from sketchode.plot import _ink_segments, plot_sketch

    if not isinstance(sketch, Sketch):
        raise TypeError(f"plot_by_stroke: expected a Sketch, got {type(sketch).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    shown = first_strokes(sketch, upto)
    # the frame (and the ghost) of the whole drawing
    plot_sketch(sketch, ax=ax, color_by_time=False, color=ghost or "none", linewidth=linewidth, title=title)
    cols = stroke_colors(shown.n_strokes, cmap)
    segs, ij = _ink_segments(shown)
    sid = shown.stroke_index
    ax.add_collection(LineCollection(segs, colors=cols[sid[ij[:, 0]]], linewidths=linewidth, capstyle="round",
                                     joinstyle="round"), autolim=False)
    lens = np.array([len(s) for s in shown.strokes])
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    p = shown.points[first, :2]
    single = lens == 1
    if single.any():  # one-point strokes: dots
        ax.scatter(p[single, 0], p[single, 1], color=cols[single], s=(1.5 * linewidth) ** 2, zorder=3)
    if starts:
        ax.scatter(p[:, 0], p[:, 1], facecolors="white", edgecolors=cols, s=(1.6 * linewidth) ** 2,
                   linewidths=0.8, zorder=4)
    return ax


def plot_stroke_progress(rows: Mapping[str, Sketch], steps: Sequence[int | None] = (1, 2, 4, 8, None),
                         size: float = 1.4, label_width: float = 1.5, **kw):
    """Drawings decoded stroke by stroke: one row per named drawing, one column per number of strokes.

    ``steps`` are the numbers of strokes shown (None: all); cells use
    :func:`plot_by_stroke`, so stroke ``k`` has the same colour in every row
    and a drawing and its reconstruction can be compared stroke for stroke
    (appendix C; chapter 14).  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    rows = dict(rows)
    if not rows:
        raise ValueError("plot_stroke_progress: no drawings given")
    steps = list(steps)
    if not steps:
        raise ValueError("plot_stroke_progress: no steps given")
    fig, axes = plt.subplots(len(rows), len(steps), squeeze=False,
                             figsize=(label_width + len(steps) * size, len(rows) * size + 0.3))
    for r, (name, sk) in enumerate(rows.items()):
        for c, k in enumerate(steps):
            n = sk.n_strokes if k is None else min(int(k), sk.n_strokes)
            title = (f"all ({n})" if k is None else f"{k} stroke{'s' * (k > 1)}") if r == 0 else None
            plot_by_stroke(sk, ax=axes[r, c], upto=k, title=title, **kw)
        axes[r, 0].set_ylabel(str(name), rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout(pad=0.3)
    fig.subplots_adjust(left=min(0.5, label_width / (label_width + len(steps) * size)))
    return fig


def plot_stroke_batch(batch, index: int = 0, cmap: str = "tab10"):
    """What one :class:`~sketchode.data.batching.StrokeBatch` holds (appendix C-D; chapter 14); returns the Figure.

    Three panels: (a) drawing ``index`` rebuilt from the batch, ``start_k +
    points_k`` per stroke, its start positions ``v_k`` numbered; (b) the same
    strokes as the models see them, every one relative to its start on the
    shared grid ``t`` (they all begin at the origin); (c) the masks of the
    whole batch: ``stroke_mask`` (real strokes), the end-of-sketch target
    (each drawing's last stroke) and padding.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import ListedColormap

    B = int(batch.points.shape[0])
    if not 0 <= index < B:
        raise ValueError(f"plot_stroke_batch: index must be in [0, {B}), got {index}")
    n = int(batch.n_strokes[index])
    rel = batch.points[index, :n].detach().cpu().numpy().astype(np.float64)  # (n, M, 2)
    start = batch.start[index, :n].detach().cpu().numpy().astype(np.float64)
    absolute = rel + start[:, None]
    cols = stroke_colors(n, cmap)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw=dict(width_ratios=[1, 1, 1.25]))
    for ax, xy, what in ((axes[0], absolute, "(a) start$_k$ + points$_k$"),
                         (axes[1], rel, "(b) points$_k$ (relative to start$_k$)")):
        ax.add_collection(LineCollection(xy, colors=cols, linewidths=1.8))
        ax.plot(xy[:, 0, 0], xy[:, 0, 1], "o", ms=3, color="0.2")
        lo, hi = xy.reshape(-1, 2).min(0), xy.reshape(-1, 2).max(0)
        m = 0.08 * float((hi - lo).max() or 1.0)
        ax.set_xlim(lo[0] - m, hi[0] + m)
        ax.set_ylim(lo[1] - m, hi[1] + m)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(what, fontsize=9)
    for k in range(n):
        axes[0].annotate(str(k + 1), start[k], fontsize=7, color=cols[k], xytext=(3, 3), textcoords="offset points")
    smask = batch.stroke_mask.detach().cpu().numpy()
    img = smask.astype(int) + batch.end_of_sketch.detach().cpu().numpy().astype(int)  # 0 pad, 1 real, 2 last
    axes[2].imshow(img, cmap=ListedColormap(["white", "#9ecae1", "#08519c"]), vmin=0, vmax=2, aspect="auto",
                   interpolation="nearest")
    axes[2].axhline(index, color="crimson", lw=0.8, ls=":")
    axes[2].set_xlabel("stroke k")
    axes[2].set_ylabel("drawing b")
    axes[2].set_title(f"(c) stroke_mask {tuple(smask.shape)}: real strokes (light),\n"
                      "last stroke = end flag 1 (dark), padding (white)", fontsize=8)
    fig.suptitle(f"StrokeBatch: points {tuple(batch.points.shape)}, start {tuple(batch.start.shape)}, "
                 f"mask {tuple(batch.mask.shape)}, t {tuple(batch.t.shape)}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_count_histogram(counts: Mapping[str, Sequence[int]], ax=None, max_count: int | None = None):
    """Histograms of strokes per drawing, one per named dataset, as fractions of its drawings (chapter 14).

    Bars are side by side, one bin per stroke count; counts above
    ``max_count`` are pooled in the last bin.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    counts = {str(k): np.asarray(v, dtype=int) for k, v in dict(counts).items()}
    if not counts or any(v.ndim != 1 or not len(v) for v in counts.values()):
        raise ValueError("plot_count_histogram: give at least one non-empty 1-d array of counts")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    top = int(max_count or max(int(v.max()) for v in counts.values()))
    bins = np.arange(1, top + 1)
    w = 0.85 / len(counts)
    for i, (name, v) in enumerate(counts.items()):
        frac = np.bincount(np.clip(v, 1, top), minlength=top + 1)[1:] / len(v)
        ax.bar(bins + (i - (len(counts) - 1) / 2) * w, frac, width=w, label=f"{name} (n = {len(v)})")
    ax.set_xlabel("strokes per drawing" + (f" (last bin: {top} or more)" if max_count else ""))
    ax.set_ylabel("fraction of drawings")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    return ax


def plot_chain_magnitudes(results: Mapping[str, dict], keys: Sequence[str] = ("decoder", "start", "encoder"),
                          min_count: int = 1):
    """Mean sizes of the chained states per stroke (from :func:`chain_magnitudes`), one panel per key, log scale.

    ``results`` maps a name (e.g. ``"chain_norm=False"``) to a
    :func:`chain_magnitudes` dict; strokes that fewer than ``min_count``
    drawings reach are left out.  Chapter 14.  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    results = dict(results)
    if not results:
        raise ValueError("plot_chain_magnitudes: no results given")
    labels = {"decoder": "decoder $\\|[h_0^k, h_0^{k\\prime}]\\|$", "start": "start $\\|v_k\\|$",
              "encoder": "encoder $\\|g_0^k\\|$"}
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, r in results.items():
            keep = np.asarray(r["count"]) >= min_count
            k = np.arange(1, len(r[key]) + 1)[keep]
            v = np.asarray(r[key])[keep]
            ax.plot(k[v > 0], v[v > 0], "-o", ms=3, label=str(name))
        ax.set_yscale("log")
        ax.set_xlabel("stroke k")
        ax.set_title(labels.get(key, key), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_end_flag(p, n_true, ax=None, names: Sequence[str] | None = None, threshold: float = 0.5):
    """``p(r_k = 1)`` against the stroke index ``k`` for a few drawings (appendix C's end flag; chapter 14).

    ``p (N, K)`` from :func:`end_probabilities`; each drawing's true last
    stroke ``n_true`` is marked by a large dot on its curve, the stop
    threshold by a dashed line.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    p = np.asarray(p, dtype=np.float64)
    n_true = np.asarray(n_true, dtype=int)
    if p.ndim != 2 or n_true.shape != (p.shape[0],):
        raise ValueError(f"plot_end_flag: need p (N, K) and n_true (N,), got {p.shape} and {n_true.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.2))
    k = np.arange(1, p.shape[1] + 1)
    cols = stroke_colors(len(p), "tab10")
    for i in range(len(p)):
        name = names[i] if names is not None else f"drawing {i + 1}"
        ax.plot(k, p[i], "-", color=cols[i], lw=1.3, label=f"{name} ({n_true[i]} strokes)")
        j = min(n_true[i], p.shape[1]) - 1
        ax.plot(k[j], p[i, j], "o", ms=8, color=cols[i], mec="k")
    ax.axhline(threshold, color="0.4", ls="--", lw=0.8)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("stroke k")
    ax.set_ylabel("p(stroke k is the last)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_stroke_counts(n_true, n_pred, ax=None, cap: int | None = None):
    """Predicted against true number of strokes, one bubble per pair with an area proportional to its count.

    ``cap`` (the decoder's bound on strokes) is drawn as a dotted line; the
    diagonal is a perfect end-of-sketch flag (appendix C; chapter 14).
    Returns the Axes.
    """
    import matplotlib.pyplot as plt

    t = np.asarray(n_true, dtype=int)
    q = np.asarray(n_pred, dtype=int)
    if t.shape != q.shape or t.ndim != 1 or not len(t):
        raise ValueError(f"plot_stroke_counts: need two 1-d arrays of the same length, got {t.shape} and {q.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4))
    pairs, cnt = np.unique(np.column_stack([t, q]), axis=0, return_counts=True)
    ax.scatter(pairs[:, 0], pairs[:, 1], s=12 * cnt, alpha=0.6, color="C0", edgecolors="none")
    hi = int(max(t.max(), q.max())) + 1
    ax.plot([0, hi], [0, hi], color="0.4", lw=0.8, label="predicted = true")
    if cap is not None:
        ax.axhline(cap, color="crimson", ls=":", lw=0.9, label=f"decoding bound ({cap})")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("true strokes")
    ax.set_ylabel("strokes decoded (stop rule)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_train_test(histories: Mapping[str, object], scores: Mapping[str, Mapping[str, float]], ax=None,
                    key: str = "train_loss"):
    """Training-loss curves of several runs with each run's final train and test loss marked (chapter 14).

    ``histories`` maps a name to a :class:`~sketchode.training.fit.History` (or its
    ``to_dict()``); ``scores`` maps the same names to ``{"train": loss,
    "test": loss}`` measured after training (without augmentation), drawn at
    the last step as a filled (train) and an open (test) marker: the gap
    between them is the over-fitting.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    histories = dict(histories)
    if not histories:
        raise ValueError("plot_train_test: no histories given")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.4))
    for i, (name, h) in enumerate(histories.items()):
        recs = h.records if hasattr(h, "records") else h["records"]
        recs = [r for r in recs if r.get(key) is not None]
        if not recs:
            raise ValueError(f"plot_train_test: history {name!r} has no records with {key!r}")
        x = np.array([r["step"] for r in recs])
        ax.plot(x, [r[key] for r in recs], color=f"C{i}", lw=1.2, label=f"{name}: training loss (epoch mean)")
        sc = dict(scores).get(name)
        if sc is not None:
            ax.plot([x[-1]], [sc["train"]], "o", color=f"C{i}", ms=7, label=f"{name}: train split, after training")
            ax.plot([x[-1]], [sc["test"]], "o", mfc="white", color=f"C{i}", ms=7, mew=1.5,
                    label=f"{name}: test split, after training")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (points + start + end flag)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax
