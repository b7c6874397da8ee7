"""Drawing sketches: figures, raster images, SVG and animations (chapter 1 onward).

Everything the book shows of a drawing goes through this module:

* :func:`plot_sketch` / :func:`plot_grid` -- matplotlib figures, ink coloured
  by time so the *order* of drawing (what SketchODE models) is visible;
* :func:`rasterize` / :func:`rasterize_batch` -- antialiased ``N x N`` images
  (ink 1 on background 0, MNIST-like).  The paper's semantic reconstruction
  metric (section 5.2) classifies rasterised reconstructions with a CNN, so
  decoder outputs must be rendered at scale: the batch version is vectorised
  over drawings, segments and pixels;
* :func:`to_svg` / :func:`save_svg` -- resolution-independent vector output,
  the natural format of a continuous-time model;
* :func:`animate` / :func:`animation_html` -- the ink appearing in time.

Inputs are a :class:`~sketchode.data.sketch.Sketch` or a full-sequence array,
``(N, 4)`` ``t, x, y, pen`` or ``(N, 3)`` ``x, y, pen`` (numpy or torch), which
is split into strokes with :meth:`Sketch.from_full_sequence` (``pen < 0.5`` is
ink).  Coordinates have y pointing up; images and SVG flip it so drawings are
upright.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sketchode.data.sketch import Sketch

#: Pen values below this are ink (as in :meth:`Sketch.from_full_sequence`).
PEN_THRESHOLD = 0.5
#: Largest number of pixel-segment distances held at once by the rasterisers.
_CHUNK_ELEMS = 1 << 18


# ----------------------------------------------------------------- helpers
def _to_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _as_sketch(obj) -> Sketch:
    """A Sketch unchanged; a full-sequence array (N, 4) or (N, 3) split into strokes."""
    if isinstance(obj, Sketch):
        return obj
    return Sketch.from_full_sequence(_to_numpy(obj), pen_threshold=PEN_THRESHOLD)


def _point_times(sketch: Sketch) -> np.ndarray:
    """Per-point time along the whole drawing, normalised to ``[0, 1]``.

    The stored ``t`` is used when it is non-decreasing over the concatenated
    strokes and not constant (real timestamps, or the time column of a full
    sequence); otherwise arc-length time with pen-up travel counted
    (:meth:`Sketch.retime`).
    """
    t = sketch.points[:, 2]
    if t.size < 2 or np.any(np.diff(t) < 0) or t[-1] <= t[0]:
        if sketch.n_points < 2:
            return np.zeros(sketch.n_points)
        t = sketch.retime(1.0).points[:, 2]
    span = t[-1] - t[0]
    return (t - t[0]) / span if span > 0 else np.zeros_like(t)


def _ink_segments(sketch: Sketch) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive point pairs inside strokes: ``(S, 2, 2)`` segments and ``(S, 2)`` point indices."""
    idx = np.arange(sketch.n_points)
    sid = sketch.stroke_index
    same = sid[:-1] == sid[1:]
    i0 = idx[:-1][same]
    ij = np.column_stack([i0, i0 + 1])
    xy = sketch.points[:, :2]
    return xy[ij], ij


def _dot_index(sketch: Sketch) -> np.ndarray:
    """Indices into :attr:`Sketch.points` of single-point strokes (drawn as dots)."""
    lens = np.array([len(s) for s in sketch.strokes])
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return starts[lens == 1]


def _dots(sketch: Sketch) -> np.ndarray:
    """Positions ``(D, 2)`` of single-point strokes."""
    return sketch.points[_dot_index(sketch), :2]


def _fit(lo: np.ndarray, hi: np.ndarray, size: float, padding: float):
    """Scale and offset mapping the box ``[lo, hi]`` (last axis x, y) into a
    ``size`` square with ``padding * size`` margins, aspect kept, centred, y flipped.

    Image coordinates: ``u = x * s + ox``, ``v = -y * s + oy`` (v points down).
    Works with leading batch axes; a box of zero extent maps to the centre.
    """
    span = np.max(hi - lo, axis=-1)
    inner = size * (1.0 - 2.0 * padding)
    s = np.where(span > 1e-12, inner / np.maximum(span, 1e-12), 0.0)
    c = 0.5 * (lo + hi)
    ox = 0.5 * size - c[..., 0] * s
    oy = 0.5 * size + c[..., 1] * s
    return s, ox, oy


# ------------------------------------------------------------------ figures
def plot_sketch(
    sketch,
    ax=None,
    color_by_time: bool = True,
    cmap="viridis",
    linewidth: float = 2,
    show_penup: bool = False,
    title: str | None = None,
    points: bool = False,
    color="black",
):
    """Draw one sketch on a matplotlib Axes (equal aspect, y up, no ticks).

    Ink is one :class:`~matplotlib.collections.LineCollection` of all segments
    inside strokes, coloured by time along the drawing with ``cmap`` (0 = first
    ink, 1 = last) when ``color_by_time``, else in ``color``.  Single-point
    strokes are drawn as dots.  ``show_penup`` adds dashed grey straight joins
    between strokes, ``points`` marks the samples.  ``sketch`` is a Sketch or a
    full-sequence array ``(N, 4)``/``(N, 3)``.  Returns the Axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    sk = _as_sketch(sketch)
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    tau = _point_times(sk)
    segs, ij = _ink_segments(sk)
    norm = Normalize(0.0, 1.0)
    lc_kw = dict(linewidths=linewidth, capstyle="round", joinstyle="round")
    if color_by_time:
        lc = LineCollection(segs, cmap=cmap, norm=norm, **lc_kw)
        lc.set_array(tau[ij].mean(axis=1))
    else:
        lc = LineCollection(segs, colors=color, **lc_kw)
    lc.set_label("ink")
    ax.add_collection(lc, autolim=False)

    dxy, dc = _dots(sk), tau[_dot_index(sk)]
    if len(dxy):
        ms = (1.5 * linewidth) ** 2
        if color_by_time:
            ax.scatter(dxy[:, 0], dxy[:, 1], c=dc, cmap=cmap, norm=norm, s=ms, zorder=3)
        else:
            ax.scatter(dxy[:, 0], dxy[:, 1], color=color, s=ms, zorder=3)
    if show_penup and sk.n_strokes > 1:
        ends = np.array([s[-1, :2] for s in sk.strokes[:-1]])
        starts = np.array([s[0, :2] for s in sk.strokes[1:]])
        pu = LineCollection(np.stack([ends, starts], axis=1), colors="0.6", linestyles="--",
                            linewidths=max(0.5, 0.5 * linewidth))
        pu.set_label("pen-up")
        ax.add_collection(pu, autolim=False)
    if points:
        p = sk.points
        ax.plot(p[:, 0], p[:, 1], ".", color="0.2", ms=max(2.0, 1.5 * linewidth), zorder=4)

    xmin, ymin, xmax, ymax = sk.bounds
    span = max(xmax - xmin, ymax - ymin, 1e-6)
    m = 0.06 * span
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    ax.set_xlim(cx - 0.5 * span - m, cx + 0.5 * span + m)
    ax.set_ylim(cy - 0.5 * span - m, cy + 0.5 * span + m)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_color("0.85")
    if title is not None:
        ax.set_title(title, fontsize=9)
    return ax


def plot_grid(sketches: Sequence, ncols: int = 10, size: float = 1.2, titles=None, **kw):
    """A grid of drawings, ``size`` inches per cell; returns the Figure.

    ``titles`` is None, ``"label"`` (each sketch's label) or a sequence of
    strings.  Other keywords go to :func:`plot_sketch`.
    """
    import matplotlib.pyplot as plt

    sketches = list(sketches)
    n = len(sketches)
    if n == 0:
        raise ValueError("plot_grid: no sketches")
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    extra = 0.18 if titles is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1 + extra)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.set_axis_off()
            continue
        if titles == "label":
            t = getattr(sketches[k], "label", None)
            t = None if t is None else str(t)
        elif titles is None:
            t = None
        else:
            t = str(titles[k])
        plot_sketch(sketches[k], ax=ax, title=t, **kw)
    fig.tight_layout(pad=0.3)
    return fig


# -------------------------------------------------------------- raster images
def rasterize(sketch_or_seq, size: int = 28, linewidth: float = 1.0, padding: float = 0.1) -> np.ndarray:
    """Antialiased raster image ``(size, size)`` float32, ink 1 on background 0.

    The drawing's bounding box is fitted into the square with ``padding * size``
    margins, aspect kept and centred (y up in the drawing = up in the image).
    A pixel's intensity is ``clip(0.5 + linewidth / 2 - d, 0, 1)`` where ``d`` is
    the distance in pixels from its centre to the nearest ink segment: a cheap
    box-filter coverage, so a ``linewidth``-pixel line through pixel centres is 1
    on its row and 0 beside it.  Pen-up joins are not drawn; single-point strokes
    are dots.  Vectorised over pixels and segments (chunked over segments).
    An array input with no ink at all gives an empty image.
    """
    if not isinstance(sketch_or_seq, Sketch):
        seq = _to_numpy(sketch_or_seq)
        if seq.ndim != 2 or seq.shape[1] not in (3, 4):
            raise ValueError(f"rasterize: expected a Sketch or an (N, 4)/(N, 3) array, got shape {seq.shape}")
        if not (seq[:, -1] < PEN_THRESHOLD).any():
            return np.zeros((size, size), np.float32)
    sk = _as_sketch(sketch_or_seq)
    segs, _ = _ink_segments(sk)
    d = _dots(sk)
    a = np.concatenate([segs[:, 0], d])
    b = np.concatenate([segs[:, 1], d])
    xy = sk.points[:, :2]
    s, ox, oy = _fit(xy.min(0), xy.max(0), size, padding)
    # segment end points in pixel coordinates (u right, v down)
    au, av = a[:, 0] * s + ox, -a[:, 1] * s + oy
    bu, bv = b[:, 0] * s + ox, -b[:, 1] * s + oy
    eu, ev = bu - au, bv - av
    ee = eu * eu + ev * ev
    ee_safe = np.where(ee > 0, ee, 1.0)
    c = np.arange(size) + 0.5
    pu = np.tile(c, size)[:, None]    # (P, 1), row-major: pixel (row, col)
    pv = np.repeat(c, size)[:, None]
    dmin = np.full(size * size, np.inf)
    step = max(1, _CHUNK_ELEMS // (size * size))
    for k in range(0, len(au), step):  # chunks of segments, not points
        sl = slice(k, k + step)
        wu, wv = pu - au[sl], pv - av[sl]
        t = np.clip((wu * eu[sl] + wv * ev[sl]) / ee_safe[sl], 0.0, 1.0)
        du, dv = wu - t * eu[sl], wv - t * ev[sl]
        dmin = np.minimum(dmin, np.sqrt(du * du + dv * dv).min(axis=1))
    img = np.clip(0.5 + 0.5 * linewidth - dmin, 0.0, 1.0)
    return img.reshape(size, size).astype(np.float32)


def rasterize_batch(seqs, size: int = 28, linewidth: float = 1.0, padding: float = 0.1) -> torch.Tensor:
    """Rasterise a batch of sequences ``(B, G, 3)`` ``x, y, pen`` (or ``(B, G, 4)``
    ``t, x, y, pen``) to a ``(B, 1, size, size)`` float32 tensor.

    Same picture as :func:`rasterize` per sample, vectorised over the batch with
    torch (on the input's device; chunked over the batch to bound memory).  The
    segment from sample ``i`` to ``i + 1`` is ink when both ends have
    ``pen < 0.5``; an ink sample whose next sample is not ink is drawn as a dot,
    so isolated ink samples show (a dot at a run's end adds nothing).  Each drawing is fitted to its own
    ink bounding box; a drawing with no ink is an empty image.  Meant for the
    semantic reconstruction metric (paper section 5.2) on decoder outputs.
    """
    x = seqs if isinstance(seqs, torch.Tensor) else torch.as_tensor(np.asarray(seqs))
    x = x.detach().float()
    if x.ndim != 3 or x.shape[-1] not in (3, 4):
        raise ValueError(f"rasterize_batch: expected (B, G, 3) x, y, pen or (B, G, 4); got {tuple(x.shape)}")
    xy, pen = x[..., -3:-1], x[..., -1]
    B, G = pen.shape
    dev = x.device
    ink = pen < PEN_THRESHOLD                                   # (B, G)
    # one segment per sample: i -> i + 1 when both are ink, else the dot i -> i
    seg_ink = torch.cat([ink[:, :-1] & ink[:, 1:], torch.zeros_like(ink[:, :1])], dim=1)
    a = xy                                                      # (B, S, 2), S = G
    b = torch.where(seg_ink[..., None], torch.roll(xy, -1, dims=1), xy)
    m = ink                                                     # (B, S)
    big = torch.tensor(float("inf"), device=dev)
    lo = torch.where(ink[..., None], xy, big).amin(dim=1)       # ink bounding box
    hi = torch.where(ink[..., None], xy, -big).amax(dim=1)
    has = ink.any(dim=1)
    lo = torch.where(has[:, None], lo, torch.zeros_like(lo))
    hi = torch.where(has[:, None], hi, torch.zeros_like(hi))
    span = (hi - lo).amax(dim=1)
    s = torch.where(span > 1e-12, size * (1.0 - 2.0 * padding) / span.clamp_min(1e-12), torch.zeros_like(span))
    c = 0.5 * (lo + hi)
    ox = 0.5 * size - c[:, 0] * s
    oy = 0.5 * size + c[:, 1] * s
    au = a[..., 0] * s[:, None] + ox[:, None]
    av = -a[..., 1] * s[:, None] + oy[:, None]
    eu = b[..., 0] * s[:, None] + ox[:, None] - au
    ev = -b[..., 1] * s[:, None] + oy[:, None] - av
    ee = eu * eu + ev * ev
    ee = torch.where(ee > 0, ee, torch.ones_like(ee))
    cc = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    pu = cc.repeat(size)                                        # (P,)
    pv = cc.repeat_interleave(size)
    S, P = a.shape[1], size * size
    out = torch.empty(B, P, device=dev)
    step = max(1, _CHUNK_ELEMS // (S * P))
    for k in range(0, B, step):  # chunks of drawings
        sl = slice(k, k + step)
        wu = pu[None, None, :] - au[sl, :, None]                # (b, S, P)
        wv = pv[None, None, :] - av[sl, :, None]
        t = ((wu * eu[sl, :, None] + wv * ev[sl, :, None]) / ee[sl, :, None]).clamp_(0.0, 1.0)
        du = wu.sub_(t * eu[sl, :, None])
        dv = wv.sub_(t * ev[sl, :, None])
        d2 = (du * du).add_(dv * dv)
        d2 = torch.where(m[sl, :, None], d2, big)
        out[sl] = d2.amin(dim=1).sqrt_()
    img = (0.5 + 0.5 * linewidth - out).clamp_(0.0, 1.0)
    return img.reshape(B, 1, size, size)


# ------------------------------------------------------------------------ SVG
def to_svg(sketch, size: int = 256, stroke_width: float = 2.0, padding: float = 0.05,
           color: str = "black", background: str | None = None) -> str:
    """A standalone SVG document: one ``<path>`` per stroke in a ``size`` square.

    ``viewBox="0 0 size size"``; the drawing is fitted like :func:`rasterize`
    (aspect kept, centred, ``padding * size`` margins) with y flipped so it is
    upright.  Vector output is resolution independent: the continuous-time
    model's drawings can be printed at any scale.  Round caps make a
    single-point stroke a dot.
    """
    sk = _as_sketch(sketch)
    xy = sk.points[:, :2]
    s, ox, oy = _fit(xy.min(0), xy.max(0), size, padding)
    paths = []
    for st in sk.strokes:
        u = st[:, 0] * s + ox
        v = -st[:, 1] * s + oy
        if len(st) == 1:
            u, v = np.repeat(u, 2), np.repeat(v, 2)
        pts = " L ".join(f"{a:.3f} {b:.3f}" for a, b in zip(u, v))
        paths.append(f'  <path d="M {pts}"/>')
    bg = f'  <rect width="100%" height="100%" fill="{background}"/>\n' if background else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">\n'
        f"{bg}"
        f'  <g fill="none" stroke="{color}" stroke-width="{stroke_width}" '
        'stroke-linecap="round" stroke-linejoin="round">\n'
        + "\n".join("  " + p for p in paths)
        + "\n  </g>\n</svg>\n"
    )


def save_svg(sketch, path, **kw) -> Path:
    """Write :func:`to_svg` of ``sketch`` to ``path``; returns the path."""
    path = Path(path)
    path.write_text(to_svg(sketch, **kw), encoding="utf-8")
    return path


# ------------------------------------------------------------------ animation
def animate(sketch_or_seq, frames: int = 60, interval: int = 40, color_by_time: bool = True,
            cmap="viridis", linewidth: float = 2, size: float = 3.0, show_pen: bool = True):
    """Animate the ink appearing in time: a FuncAnimation of ``frames`` frames.

    Frame ``k`` shows the drawing up to normalised time ``k / (frames - 1)``
    (segments cut at that time, so motion is smooth); ``show_pen`` marks the
    pen position, which also travels along pen-up joins.  The animation's
    very first frame is the finished drawing (what a page shows before
    anyone presses play), then the ink is drawn from the start.  Use
    :func:`animation_html` to embed it in a notebook without ffmpeg.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    frames = max(2, int(frames))
    sk = _as_sketch(sketch_or_seq)
    fig, ax = plt.subplots(figsize=(size, size))
    plot_sketch(sk, ax=ax, color_by_time=color_by_time, cmap=cmap, linewidth=linewidth)
    lc = ax.collections[0]
    tau = _point_times(sk)
    segs, ij = _ink_segments(sk)
    t0, t1 = tau[ij[:, 0]], tau[ij[:, 1]]
    seg_c = 0.5 * (t0 + t1)
    dxy, dot_t = _dots(sk), tau[_dot_index(sk)]
    dots = ax.collections[1] if len(dxy) else None  # scatter of single-point strokes
    pts = sk.points
    (pen,) = ax.plot([], [], "o", color="crimson", ms=4, zorder=5) if show_pen else (None,)

    def update(k):
        now = k / (frames - 1)
        vis = t0 <= now
        f = np.clip((now - t0[vis]) / np.maximum(t1[vis] - t0[vis], 1e-12), 0.0, 1.0)[:, None]
        cur = segs[vis].copy()
        cur[:, 1] = cur[:, 0] + f * (cur[:, 1] - cur[:, 0])
        lc.set_segments(cur)
        if color_by_time:
            lc.set_array(seg_c[vis])
        art = [lc]
        if dots is not None:
            vd = dot_t <= now
            dots.set_offsets(dxy[vd])
            if color_by_time:
                dots.set_array(dot_t[vd])
            art.append(dots)
        if pen is not None:
            pen.set_data([np.interp(now, tau, pts[:, 0])], [np.interp(now, tau, pts[:, 1])])
            art.append(pen)
        return art

    order = [frames - 1] + list(range(frames))  # the finished drawing first, then the drawing in time
    return FuncAnimation(fig, update, frames=order, interval=interval, blit=False)


#: Matplotlib's HTML animation loads Font Awesome from a CDN for its buttons; these glyphs need no network.
_OFFLINE_ICONS = """<style>
.anim-buttons .fa, .anim-buttons i.fa { font-style: normal; font-family: sans-serif; }
.fa-play:before { content: "\\25B6"; } .fa-pause:before { content: "\\23F8"; }
.fa-step-backward:before { content: "\\23EE"; } .fa-step-forward:before { content: "\\23ED"; }
.fa-fast-backward:before { content: "\\23EA"; } .fa-fast-forward:before { content: "\\23E9"; }
.fa-minus:before { content: "\\2212"; } .fa-plus:before { content: "+"; }
.fa-flip-horizontal { display: inline-block; transform: scaleX(-1); }
</style>"""


def animation_html(anim, close: bool = True) -> str:
    """JavaScript HTML of an animation (``anim.to_jshtml()``, no ffmpeg needed), usable offline.

    Matplotlib's template links Font Awesome from a CDN for the play buttons;
    the link is replaced by a few CSS rules drawing the same buttons with
    Unicode glyphs, so the page needs no network.  Closes the animation's
    figure by default so a notebook does not also show the static last frame.
    """
    import re

    import matplotlib.pyplot as plt

    html = re.sub(r"<link[^>]*font-awesome[^>]*>", lambda m: _OFFLINE_ICONS, anim.to_jshtml())
    if close:
        plt.close(anim._fig)
    return html


#: One colour per model in every chapter's figures: SketchODE blue, the LSTM baseline red.
MODEL_COLORS = {"SketchODE": "C0", "LSTM": "C3"}


def model_color(name: str) -> str | None:
    """The colour of a model's curves (:data:`MODEL_COLORS`), from a label such as ``"LSTM-LSTM"`` or
    ``"sketchode-f0.10"``; None for a label that names neither model."""
    low = str(name).lower()
    if "lstm" in low or "rnn" in low:
        return MODEL_COLORS["LSTM"]
    if "sketchode" in low or low == "ode":
        return MODEL_COLORS["SketchODE"]
    return None


__all__ = [
    "MODEL_COLORS",
    "model_color",
    "plot_sketch",
    "plot_grid",
    "rasterize",
    "rasterize_batch",
    "to_svg",
    "save_svg",
    "animate",
    "animation_html",
]
