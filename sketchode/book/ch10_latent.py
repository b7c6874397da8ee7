"""The latent space of a deterministic autoencoder: interpolation, cyclic walks, conditional sampling (chapter 10).

Paper sections 5.2 and 5.4 (and appendix E) make three claims about the
latent codes ``z`` of a deterministically trained SketchODE:

* **interpolation** (5.4): decoding ``z(a) = (1 - a) z0 + a z1`` for
  ``a`` in ``[0, 1]`` morphs one drawing smoothly into another;
* **cyclic walks** (figure 6, left): the same through several drawings and
  back to the first (``5 -> 8 -> 2 -> 0 -> 5``);
* **conditional sampling** (5.2, figure 5 left): decoding ``z + N(0, sigma^2 I)``
  (``sigma = 0.05``) gives varied drawings that keep the class, although the
  model was never trained to sample.

The functions here work for any full-sequence model with ``encode(batch)``
and ``decode(z, t) -> (xy, pen_logit)`` (:class:`~sketchode.models.full_sequence.SketchODE`
and the LSTM baseline :class:`~sketchode.models.lstm.RNNAutoencoder`), so every
figure of chapter 10 is made the same way for both.  Two measurements turn
the pictures into numbers:

* :func:`path_smoothness`: along a latent path, the RMS distance between
  consecutive decoded trajectories; a smooth morph has small, even steps
  (``jump`` = largest step / median step near 1) and a total length close
  to the direct distance (``detour`` near 1);
* :func:`latent_spread`: the per-dimension spread of a model's codes, since
  ``sigma = 0.05`` means little for codes of spread 5 and much for codes of
  spread 0.05, and the two models need not agree.

Chapter 10 runs them at scale with :func:`interpolation_smoothness` (many
pairs of drawings, optionally counting the recognizer's class changes along
each path) and :func:`conditional_stats` (class kept and distance moved by
conditional samples), and shows them with :func:`plot_rows` (strips of
decoded drawings) and :func:`animate_morph` (a latent walk as an animation).
:func:`slerp` is the spherical alternative to :func:`lerp` (an exercise).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from sketchode.data.sketch import Sketch, prepare, uniform_grid

__all__ = ["encode_sketches", "decode_sketches", "decode_paths", "paths_to_sketches", "lerp", "cyclic_walk", "conditional",
           "latent_spread", "path_smoothness", "slerp", "rms_distance", "different_class_pairs",
           "interpolation_smoothness", "conditional_stats", "plot_rows", "animate_morph"]


def _eval_device(model):
    return next(model.parameters()).device


@torch.no_grad()
def encode_sketches(model, sketches: Sequence[Sketch], batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
    """Latent codes ``(n, l)`` of ``sketches`` (normalised first unless ``normalize=False``), in eval mode."""
    sk = prepare(list(sketches)) if normalize else list(sketches)
    if not sk:
        raise ValueError("encode_sketches: no drawings given")
    was = model.training
    model.eval()
    dev = _eval_device(model)
    try:
        zs = [model.encode(model.collate(sk[i:i + batch_size]).to(dev)) for i in range(0, len(sk), batch_size)]
    finally:
        model.train(was)
    return torch.cat(zs).cpu()


def _check_codes(z, model, where: str) -> torch.Tensor:
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.ndim == 1:
        z = z.unsqueeze(0)
    l = model.config.get("l")  # noqa: E741
    if z.ndim != 2 or (l is not None and z.shape[1] != l):
        raise ValueError(f"{where}: codes must have shape (n, {l}), got {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        bad = torch.nonzero(~torch.isfinite(z).all(1)).flatten().tolist()
        raise ValueError(f"{where}: codes {bad[:5]} are not finite")
    return z


@torch.no_grad()
def decode_paths(model, z, G: int | None = None, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Raw decoded outputs of codes ``z (n, l)``: positions ``(n, G, 2)`` and pen probabilities ``(n, G)``.

    Decoded on ``G`` uniform points of ``[0, T]`` (default: the training
    ``G``), in eval mode; nothing is thresholded, so these are the continuous
    functions of ``z`` that :func:`path_smoothness` measures.
    """
    z = _check_codes(z, model, "decode_paths")
    c = model.config
    G = int(c.get("G", 75) if G is None else G)
    dev = _eval_device(model)
    t = torch.as_tensor(uniform_grid(G, c.get("T", 5.0)), dtype=torch.float32, device=dev)
    was = model.training
    model.eval()
    xs, ps = [], []
    try:
        for i in range(0, len(z), batch_size):
            xy, pen = model.decode(z[i:i + batch_size].to(dev), t)
            xs.append(xy.cpu().numpy()), ps.append(torch.sigmoid(pen).cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(xs).astype(np.float64), np.concatenate(ps).astype(np.float64)


def paths_to_sketches(xy, pen, T: float = 5.0, pen_threshold: float = 0.5, labels=None) -> list[Sketch]:
    """Drawings from decoded positions ``xy (n, G, 2)`` and pen probabilities ``pen (n, G)`` on ``[0, T]``.

    Ink where the pen probability is below ``pen_threshold``
    (:meth:`~sketchode.data.sketch.Sketch.from_full_sequence`); ``labels``
    (one per drawing) are attached when given.
    """
    xy, pen = np.asarray(xy, dtype=np.float64), np.asarray(pen, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[2] != 2 or pen.shape != xy.shape[:2]:
        raise ValueError(f"paths_to_sketches: expected xy (n, G, 2) and pen (n, G), got {xy.shape} and {pen.shape}")
    t = uniform_grid(xy.shape[1], T)
    labels = [None] * len(xy) if labels is None else list(labels)
    return [Sketch.from_full_sequence(np.column_stack([t, a, p]), label=lab, pen_threshold=pen_threshold)
            for a, p, lab in zip(xy, pen, labels)]


def decode_sketches(model, z, G: int | None = None, pen_threshold: float = 0.5, labels=None) -> list[Sketch]:
    """Codes ``z (n, l)`` decoded into drawings (strokes split where the pen probability < ``pen_threshold``)."""
    xy, pen = decode_paths(model, z, G)
    return paths_to_sketches(xy, pen, model.config.get("T", 5.0), pen_threshold, labels)


def lerp(z0, z1, n: int = 8) -> torch.Tensor:
    """``n`` codes on the segment from ``z0`` to ``z1``, both included: ``(1 - a) z0 + a z1``, ``a = 0 .. 1``.

    (Section 5.4 writes ``z0 a + z1 (1 - a)``: the same segment walked the other way.)
    """
    if int(n) != n or n < 2:
        raise ValueError(f"lerp: n must be an integer >= 2, got {n!r}")
    z0, z1 = torch.as_tensor(z0, dtype=torch.float32), torch.as_tensor(z1, dtype=torch.float32)
    if z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError(f"lerp: z0 and z1 must be vectors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    a = torch.linspace(0.0, 1.0, int(n)).unsqueeze(1)
    return (1.0 - a) * z0 + a * z1


def cyclic_walk(zs, steps: int = 8) -> torch.Tensor:
    """A closed walk through the codes ``zs (k, l)``: ``steps`` codes per leg, ``k * steps`` in all.

    Leg ``i`` goes from ``zs[i]`` towards ``zs[i + 1]`` (the last one back to
    ``zs[0]``) and excludes its end point, so the walk loops seamlessly
    (figure 6, left; an animation can repeat it forever).
    """
    zs = torch.as_tensor(zs, dtype=torch.float32)
    if zs.ndim != 2 or zs.shape[0] < 2:
        raise ValueError(f"cyclic_walk: need at least two codes (k, l), got shape {tuple(zs.shape)}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"cyclic_walk: steps must be an integer >= 1, got {steps!r}")
    a = (torch.arange(int(steps), dtype=torch.float32) / steps).view(1, -1, 1)
    nxt = torch.roll(zs, -1, 0)
    return ((1.0 - a) * zs.unsqueeze(1) + a * nxt.unsqueeze(1)).reshape(-1, zs.shape[1])


def conditional(z, n: int = 8, sigma: float = 0.05, seed: int = 0) -> torch.Tensor:
    """``n`` codes ``z + sigma * N(0, I)`` around the code ``z (l,)`` (section 5.2), from a seeded generator."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.ndim != 1:
        raise ValueError(f"conditional: z must be one code (l,), got shape {tuple(z.shape)}")
    if not sigma >= 0:
        raise ValueError(f"conditional: sigma must be >= 0, got {sigma!r}")
    g = torch.Generator().manual_seed(int(seed))
    return z + float(sigma) * torch.randn(int(n), z.shape[0], generator=g)


def latent_spread(z) -> dict:
    """How spread out a model's codes are: per-dimension std (mean, min, max) and the mean norm."""
    z = torch.as_tensor(z, dtype=torch.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"latent_spread: need codes of at least two drawings (n, l), got {tuple(z.shape)}")
    sd = z.std(0)
    return {"std_mean": float(sd.mean()), "std_min": float(sd.min()), "std_max": float(sd.max()),
            "norm_mean": float(z.norm(dim=1).mean()), "n": int(z.shape[0]), "l": int(z.shape[1])}


def path_smoothness(xy: np.ndarray) -> dict:
    """How evenly a sequence of decoded trajectories ``xy (k, G, 2)`` changes from one to the next.

    ``steps[i]`` is the RMS distance (over the ``G`` points) between
    trajectories ``i`` and ``i + 1``.  Returns ``steps``, ``jump`` (largest
    step / median step: 1 for a perfectly even morph, large when the output
    leaps somewhere along the path) and ``detour`` (sum of the steps / RMS
    distance between the first and last trajectory: 1 for a straight morph).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[0] < 3 or xy.shape[2] != 2:
        raise ValueError(f"path_smoothness: expected (k >= 3, G, 2) trajectories, got {xy.shape}")
    steps = np.sqrt(np.mean(np.sum(np.diff(xy, axis=0) ** 2, axis=-1), axis=-1))
    direct = float(np.sqrt(np.mean(np.sum((xy[-1] - xy[0]) ** 2, axis=-1))))
    med = float(np.median(steps))
    return {"steps": steps, "jump": float(steps.max() / med) if med > 0 else float("inf"),
            "detour": float(steps.sum() / direct) if direct > 0 else float("inf")}


# ------------------------------------------------------- chapter 10 additions
def slerp(z0, z1, n: int = 8) -> torch.Tensor:
    """``n`` codes on the great circle from ``z0`` to ``z1`` (both included), norm interpolated linearly.

    ``z(a) = r(a) * (sin((1 - a) w) u0 + sin(a w) u1) / sin(w)`` with ``u0, u1``
    the unit directions, ``w`` the angle between them and
    ``r(a) = (1 - a) |z0| + a |z1|``: the path turns at constant angular speed
    and never passes near the origin, where :func:`lerp`'s midpoint of two
    codes at a wide angle falls (chapter 10, exercise; the paper uses only
    linear interpolation, section 5.4).  Parallel codes reduce to :func:`lerp`.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"slerp: n must be an integer >= 2, got {n!r}")
    z0, z1 = torch.as_tensor(z0, dtype=torch.float32), torch.as_tensor(z1, dtype=torch.float32)
    if z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError(f"slerp: z0 and z1 must be vectors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    r0, r1 = z0.norm(), z1.norm()
    if r0 == 0 or r1 == 0:
        raise ValueError("slerp: a zero code has no direction")
    u0, u1 = z0 / r0, z1 / r1
    w = torch.arccos(torch.clamp(u0 @ u1, -1.0, 1.0))
    a = torch.linspace(0.0, 1.0, int(n)).unsqueeze(1)
    r = (1.0 - a) * r0 + a * r1
    if float(torch.sin(w)) < 1e-6:
        return lerp(z0, z1, n)
    return r * (torch.sin((1.0 - a) * w) * u0 + torch.sin(a * w) * u1) / torch.sin(w)


def rms_distance(a, b) -> np.ndarray:
    """RMS over points of the Euclidean distance between trajectories ``a (..., G, 2)`` and ``b (..., G, 2)``.

    Broadcasts over the leading axes; the unit of every output distance in
    chapter 10 (drawings are normalised to the unit disc, chapter 1).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != 2 or b.shape[-1] != 2 or a.shape[-2] != b.shape[-2]:
        raise ValueError(f"rms_distance: expected trajectories (..., G, 2) of one G, got {a.shape} and {b.shape}")
    return np.sqrt(np.mean(np.sum((a - b) ** 2, axis=-1), axis=-1))


def different_class_pairs(labels: Sequence, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random index pairs ``(n, 2)`` of drawings with different labels (seeded; chapter 10).

    Pairs are drawn uniformly among ordered pairs ``i != j`` with
    ``labels[i] != labels[j]``; repeats are possible.
    """
    labels = np.asarray(list(labels), dtype=object)
    if int(n) != n or n < 1:
        raise ValueError(f"different_class_pairs: n must be an integer >= 1, got {n!r}")
    if len(set(labels.tolist())) < 2:
        raise ValueError("different_class_pairs: need drawings of at least two labels")
    rng = np.random.default_rng(seed)
    out = np.empty((0, 2), dtype=np.int64)
    while len(out) < n:  # rejection in vectorised rounds; at least half the pairs differ for >= 2 balanced labels
        ij = rng.integers(0, len(labels), size=(2 * int(n), 2))
        ij = ij[labels[ij[:, 0]] != labels[ij[:, 1]]]
        out = np.concatenate([out, ij])
    return out[: int(n)]


def _predict_paths(recognizer, xy: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """Recognizer class indices of decoded paths ``xy (N, G, 2)``, ``pen (N, G)`` (rasterised as section 5.2)."""
    from sketchode.evaluation.recognition import predict_logits

    seq = torch.as_tensor(np.concatenate([xy, pen[..., None]], -1), dtype=torch.float32)
    return predict_logits(recognizer, seq).argmax(1).numpy()


def interpolation_smoothness(model, z, pairs, n: int = 17, G: int | None = None, recognizer=None) -> dict:
    """:func:`path_smoothness` of the linear interpolations between many pairs of codes, in one batch.

    ``z (N, l)`` are codes, ``pairs (P, 2)`` index pairs into them; each
    segment is decoded at ``n`` evenly spaced codes (section 5.4).  Returns
    arrays of length ``P``: ``jump`` and ``detour`` (as
    :func:`path_smoothness`), ``where`` (the ``a`` in ``[0, 1]`` at the middle
    of the largest step) and ``direct`` (RMS distance between the two ends).
    With a ``recognizer``, also ``classes (P, n)`` (its class index of every
    decoded drawing) and ``switches`` (how often the class changes along a
    path: 1 for a clean hand-over, more when the reading flickers).  Chapter 10
    uses it for the table of smoothness of SketchODE against the LSTM.
    """
    z = _check_codes(z, model, "interpolation_smoothness")
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) == 0 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"interpolation_smoothness: pairs must be integer indices (P, 2), got {pairs.shape} {pairs.dtype}")
    if pairs.min() < 0 or pairs.max() >= len(z):
        raise ValueError(f"interpolation_smoothness: pair indices must lie in [0, {len(z)})")
    if int(n) != n or n < 3:
        raise ValueError(f"interpolation_smoothness: n must be an integer >= 3, got {n!r}")
    n, P = int(n), len(pairs)
    a = torch.linspace(0.0, 1.0, n).view(1, n, 1)
    ends = torch.as_tensor(pairs, dtype=torch.long)
    codes = (1.0 - a) * z[ends[:, 0]].unsqueeze(1) + a * z[ends[:, 1]].unsqueeze(1)  # (P, n, l)
    xy, pen = decode_paths(model, codes.reshape(P * n, -1), G)
    xy = xy.reshape(P, n, -1, 2)
    steps = rms_distance(xy[:, 1:], xy[:, :-1])                  # (P, n - 1)
    direct = rms_distance(xy[:, -1], xy[:, 0])                   # (P,)
    med = np.median(steps, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.where(med > 0, steps.max(1) / med, np.inf)
        detour = np.where(direct > 0, steps.sum(1) / direct, np.inf)
    out = {"jump": jump, "detour": detour, "where": (steps.argmax(1) + 0.5) / (n - 1), "direct": direct,
           "n": n, "P": P}
    if recognizer is not None:
        cls = _predict_paths(recognizer, xy.reshape(P * n, -1, 2), pen).reshape(P, n)
        out["classes"] = cls
        out["switches"] = (cls[:, 1:] != cls[:, :-1]).sum(1)
    return out


def conditional_stats(model, z, labels: Sequence, recognizer, sigma: float, n_samples: int = 8, seed: int = 0,
                      G: int | None = None) -> dict:
    """How conditional samples ``z + sigma * N(0, I)`` (section 5.2) keep their drawing's class and shape.

    For every code ``z[i]`` (of a drawing labelled ``labels[i]``) draws
    ``n_samples`` perturbed codes from a seeded generator (the same noise for
    the same ``seed`` and shapes, so a sweep over ``sigma`` uses common random
    numbers), decodes them and the unperturbed codes, and returns

    * ``kept``: fraction of samples the recognizer assigns to ``labels[i]``;
    * ``kept_decode``: the same for the unperturbed decodes (the ceiling:
      the reconstruction accuracy of section 5.2);
    * ``agree``: fraction of samples read as the unperturbed decode is read;
    * ``rms``: mean RMS distance (:func:`rms_distance`) of the sample
      trajectories from the unperturbed decode, and ``rms_all (N, n_samples)``.

    Chapter 10 compares SketchODE and the LSTM with it, at the paper's
    ``sigma = 0.05`` and at ``sigma`` scaled to each model's :func:`latent_spread`.
    """
    z = _check_codes(z, model, "conditional_stats")
    labels = list(labels)
    if len(labels) != len(z):
        raise ValueError(f"conditional_stats: {len(labels)} labels for {len(z)} codes")
    if not sigma >= 0:
        raise ValueError(f"conditional_stats: sigma must be >= 0, got {sigma!r}")
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"conditional_stats: n_samples must be an integer >= 1, got {n_samples!r}")
    classes = list(recognizer.classes)
    unknown = sorted({str(y) for y in labels if y not in classes})
    if unknown:
        raise ValueError(f"conditional_stats: labels {unknown[:5]} are not classes of the recognizer {classes}")
    y = np.array([classes.index(v) for v in labels])
    N, S, l = len(z), int(n_samples), z.shape[1]  # noqa: E741
    g = torch.Generator().manual_seed(int(seed))
    zs = (z.unsqueeze(1) + float(sigma) * torch.randn(N, S, l, generator=g)).reshape(N * S, l)
    x0, p0 = decode_paths(model, z, G)
    xs, ps = decode_paths(model, zs, G)
    c0 = _predict_paths(recognizer, x0, p0)
    cs = _predict_paths(recognizer, xs, ps).reshape(N, S)
    rms = rms_distance(xs.reshape(N, S, -1, 2), x0[:, None])
    return {"sigma": float(sigma), "kept": float((cs == y[:, None]).mean()), "kept_decode": float((c0 == y).mean()),
            "agree": float((cs == c0[:, None]).mean()), "rms": float(rms.mean()), "rms_all": rms,
            "n": N, "n_samples": S}


def plot_rows(rows, row_labels=None, titles=None, size: float = 1.0, **kw):
    """Rows of drawings (a strip per row, e.g. one latent path per model), with labels on the left.

    ``rows`` is a list of lists of Sketches or full-sequence arrays (rows may
    differ in length; short rows are padded with empty cells).  ``row_labels``:
    one string per row.  ``titles``: ``None``, one string per column (shown
    above the top row) or a list of lists (one per drawing).  Other keywords
    go to :func:`sketchode.plot.plot_sketch`.  Returns the Figure (chapter 10).
    """
    import matplotlib.pyplot as plt

    from sketchode.plot import plot_sketch

    rows = [list(r) for r in rows]
    if not rows or max(len(r) for r in rows) == 0:
        raise ValueError("plot_rows: no drawings")
    nr, nc = len(rows), max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != nr:
        raise ValueError(f"plot_rows: {len(row_labels)} row labels for {nr} rows")
    per_cell = titles is not None and len(titles) > 0 and not isinstance(titles[0], str)
    if titles is not None and not per_cell and len(titles) != nc:
        raise ValueError(f"plot_rows: {len(titles)} column titles for {nc} columns")
    left = 0.9 if row_labels is not None else 0.0
    extra = 0.2 if titles is not None else 0.0
    fig, axes = plt.subplots(nr, nc, figsize=(left + nc * size, nr * size * (1 + extra)), squeeze=False)
    for i, r in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j >= len(r):
                ax.set_axis_off()
                continue
            if per_cell:
                t = titles[i][j] if j < len(titles[i]) else None
            else:
                t = titles[j] if (titles is not None and i == 0) else None
            plot_sketch(r[j], ax=ax, title=t, **kw)
        if row_labels is not None:
            axes[i, 0].set_ylabel(str(row_labels[i]), rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


def animate_morph(panels, titles=None, frame_titles=None, interval: int = 150, size: float = 2.0,
                  dpi: int = 60, **kw):
    """Animate a latent walk: frame ``k`` shows drawing ``k`` of every panel (e.g. one panel per model).

    ``panels`` is a list of equally long lists of Sketches or full-sequence
    arrays (the decoded codes of a walk such as :func:`cyclic_walk`).  Each
    panel keeps one fixed view (the union of its drawings' bounds), so the
    drawing morphs in place instead of being re-zoomed every frame.
    ``titles``: one per panel; ``frame_titles``: one per frame (shown above
    all panels).  Small ``size`` and ``dpi`` keep the embedded frames light.
    Returns a matplotlib ``FuncAnimation``; embed it with
    :func:`sketchode.plot.animation_html` (chapter 10, figure 6 left).
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    from sketchode.plot import _as_sketch, plot_sketch

    panels = [[_as_sketch(s) for s in p] for p in panels]
    if not panels or len(panels[0]) == 0:
        raise ValueError("animate_morph: no drawings")
    n = len(panels[0])
    if any(len(p) != n for p in panels):
        raise ValueError(f"animate_morph: panels must have one length, got {[len(p) for p in panels]}")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"animate_morph: {len(titles)} titles for {len(panels)} panels")
    if frame_titles is not None and len(frame_titles) != n:
        raise ValueError(f"animate_morph: {len(frame_titles)} frame titles for {n} frames")
    views = []
    for p in panels:
        b = np.array([s.bounds for s in p])
        lo, hi = b[:, :2].min(0), b[:, 2:].max(0)
        span = max(float((hi - lo).max()), 1e-6)
        c, half = 0.5 * (lo + hi), 0.5 * span * 1.12
        views.append(((c[0] - half, c[0] + half), (c[1] - half, c[1] + half)))
    top = 0.25 if frame_titles is not None else 0.0  # inches kept free above the panels for the frame title
    height = size * 1.12 + top
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), height), dpi=dpi, squeeze=False)
    axes = axes[0]

    def update(k):
        for i, (ax, p, (xl, yl)) in enumerate(zip(axes, panels, views)):
            ax.cla()
            plot_sketch(p[k], ax=ax, title=None if titles is None else str(titles[i]), **kw)
            ax.set_xlim(*xl)
            ax.set_ylim(*yl)
        if frame_titles is not None:
            fig.suptitle(str(frame_titles[k]), fontsize=9, y=1.0 - 0.04 / height, va="top")
        return list(axes)

    update(0)
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, 1.0 - top / height))
    return FuncAnimation(fig, update, frames=n, interval=interval, blit=False)
