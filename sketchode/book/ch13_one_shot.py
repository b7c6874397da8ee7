"""One-shot learning of unseen classes by fine-tuning (paper 5.4, figure 6 middle; chapter 13).

The paper fine-tunes its trained VectorMNIST model "for approx 1k
iterations" on one new handwritten "A", "B" (and "D") and then interpolates
between the new letters, arguing that a continuous-time model brings the
continuity that a discrete one must learn from data.  Here:

* :func:`one_shot_set`: one drawing of each requested class from the
  embedded ``letters`` (capital letters never seen by the digits models),
  chosen deterministically (``index``-th drawing of the class in the
  training split), and a held-out set of the same classes from the test split;
* :func:`finetune`: :func:`sketchode.training.fit.fit` on those few drawings, every
  drawing in every step (batch = the whole set), the schedule stretched over
  the run, no augmentation by default;
* the command line ``python -m sketchode finetune CHECKPOINT --classes ABD
  --steps 1000 --out PATH`` does both and saves the fine-tuned model.

The same call works for the LSTM baseline, so the two are treated the same
way (same drawings, same number of steps; each with its own learning rate,
as in section 5.1).

Chapter 13 measures what the fine-tuned models learned with:

* :func:`interpolate`: the figure 6 (middle) strip between two drawings, with
  :func:`sketchode.book.ch10_latent.path_smoothness`'s numbers;
* :func:`class_probabilities`: what a recognition CNN reads along such a strip;
* :func:`by_variant`: held-out drawings split by whether they share the stroke
  order of their class's shot (a trajectory model learns one way of drawing);
* :func:`score`: loss parts and recognition accuracy of reconstructions of any list;
* :func:`loss_spikes`: how often a fine-tuning run's loss jumped up (an unstable run);
* :func:`plot_strips` and :func:`plot_histories`: the chapter's figures.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from sketchode.data.sketch import Sketch

__all__ = ["one_shot_set", "held_out", "finetune", "interpolate", "class_probabilities", "by_variant", "score",
           "loss_spikes", "plot_strips", "plot_histories"]


def _by_class(sketches: Sequence[Sketch], classes: str | Sequence[str], n: int | None, start: int, where: str):
    classes = list(classes)
    if not classes:
        raise ValueError(f"{where}: no classes given")
    out = []
    for c in classes:
        mine = [s for s in sketches if s.label == c]
        if len(mine) < start + (n or 1):
            raise ValueError(f"{where}: class {c!r} has {len(mine)} drawings, need {start + (n or 1)}")
        out += mine[start:start + n] if n is not None else mine[start:]
    return out


def one_shot_set(classes: str | Sequence[str] = "ABD", per_class: int = 1, index: int = 0, dataset: str = "letters",
                 root=None) -> list[Sketch]:
    """``per_class`` training drawings of each class (from the ``index``-th on), in the order of ``classes``."""
    from sketchode.data import load

    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"one_shot_set: per_class must be an integer >= 1, got {per_class!r}")
    return _by_class(load(dataset, "train", root=root), classes, int(per_class), int(index), "one_shot_set")


def held_out(classes: str | Sequence[str] = "ABD", per_class: int = 50, dataset: str = "letters",
             root=None) -> list[Sketch]:
    """``per_class`` test drawings of each class: new drawings of the one-shot classes, never trained on."""
    from sketchode.data import load

    return _by_class(load(dataset, "test", root=root), classes, int(per_class), 0, "held_out")


def finetune(model, sketches: Sequence[Sketch], steps: int = 1000, lr: float | None = None, seed: int = 0,
             augment_sigma: float = 0.0, threads: int | None = None, progress: bool = False, checkpoint=None,
             meta: dict | None = None):
    """Fine-tune ``model`` in place on the few ``sketches`` for ``steps`` steps; returns the :class:`History`.

    Every step sees all the drawings (batch size ``len(sketches)``); AdamW
    at the model's default learning rate unless ``lr``, with section 5.1's
    weight decay, clipping and schedule (one period over the run).
    """
    from sketchode.training.fit import fit

    sketches = list(sketches)
    if not sketches:
        raise ValueError("finetune: no drawings given")
    # the whole set is one batch, so one step is one epoch and the run is one period of `steps` epochs
    return fit(model, sketches, steps=int(steps), batch_size=len(sketches), lr=lr, seed=seed, period=float(steps),
               augment_sigma=augment_sigma, threads=threads, progress=progress, checkpoint=checkpoint,
               checkpoint_every=int(steps), meta=meta)  # one write at the end, not one per one-batch epoch


# ------------------------------------------------------------ measurements
def interpolate(model, a: Sketch, b: Sketch, n: int = 10, G: int | None = None, pen_threshold: float = 0.5) -> dict:
    """Decode ``n`` codes on the segment from the code of ``a`` to the code of ``b`` (5.4, figure 6 middle; chapter 13).

    ``a`` and ``b`` are normalised and encoded (:func:`sketchode.book.ch10_latent.encode_sketches`),
    the segment ``(1 - alpha) z_a + alpha z_b`` is sampled at ``n`` evenly
    spaced ``alpha`` (:func:`sketchode.book.ch10_latent.lerp`, both ends included) and
    decoded once on ``G`` uniform times.  Returns a dict with ``alpha (n,)``,
    ``z (n, l)``, ``xy (n, G, 2)``, ``pen (n, G)`` (pen-up probabilities),
    ``sketches`` (the decoded drawings, ink where ``pen < pen_threshold``) and
    :func:`~sketchode.book.ch10_latent.path_smoothness`'s ``steps``, ``jump`` and ``detour``.
    Works for SketchODE and the LSTM baseline alike.
    """
    from sketchode.book.ch10_latent import decode_paths, encode_sketches, lerp, path_smoothness, paths_to_sketches

    if not isinstance(a, Sketch) or not isinstance(b, Sketch):
        raise TypeError(f"interpolate: a and b must be Sketches, got {type(a).__name__} and {type(b).__name__}")
    if int(n) != n or n < 3:
        raise ValueError(f"interpolate: n must be an integer >= 3 (path_smoothness needs three), got {n!r}")
    z = encode_sketches(model, [a, b])
    path = lerp(z[0], z[1], int(n))
    xy, pen = decode_paths(model, path, G)
    sketches = paths_to_sketches(xy, pen, model.config.get("T", 5.0), pen_threshold)
    out = {"alpha": np.linspace(0.0, 1.0, int(n)), "z": path, "xy": xy, "pen": pen, "sketches": sketches}
    out.update(path_smoothness(xy))
    return out


def class_probabilities(recognizer, sketches: Sequence[Sketch],
                        classes: str | Sequence[str] | None = None) -> np.ndarray:
    """Softmax probabilities ``(n, len(classes))`` that ``recognizer`` gives each drawing (chapter 13).

    ``classes`` picks columns by label (default: all of the recognizer's, in
    its order); along an interpolation strip from A to B the columns ``"AB"``
    show where the drawing stops reading as an A and starts reading as a B.
    The probabilities are over all the recognizer's classes, so the picked
    columns need not sum to 1.
    """
    from sketchode.evaluation.recognition import predict_logits

    sketches = list(sketches)
    if not sketches:
        raise ValueError("class_probabilities: no drawings given")
    names = list(recognizer.classes)
    classes = names if classes is None else list(classes)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f"class_probabilities: classes {unknown} not among the recognizer's {names}")
    p = torch.softmax(predict_logits(recognizer, sketches), dim=1).numpy().astype(np.float64)
    return p[:, [names.index(c) for c in classes]]


def by_variant(sketches: Sequence[Sketch], shots: Sequence[Sketch]) -> tuple[list[Sketch], list[Sketch]]:
    """Split ``sketches`` into those drawn like the shot of their class and the others (chapter 13).

    The embedded letters are drawn in one of a few stroke orders per class
    (``meta["variant"]``, e.g. ``"A/tent"`` or ``"A/three"``).  A trajectory
    model fine-tuned on one drawing has seen one stroke order; this returns
    ``(same, other)``: the drawings whose variant equals that of a shot with
    the same label, and the rest.  Every drawing needs a label shared by a
    shot and a ``meta["variant"]``.
    """
    shot_variant = {}
    for s in shots:
        v = (s.meta or {}).get("variant")
        if v is None:
            raise ValueError(f"by_variant: shot {s.key!r} has no meta['variant']")
        shot_variant.setdefault(s.label, set()).add(v)
    same, other = [], []
    for s in sketches:
        v = (s.meta or {}).get("variant")
        if v is None or s.label not in shot_variant:
            raise ValueError(f"by_variant: drawing {s.key!r} (label {s.label!r}) has no variant "
                             "or no shot of its class")
        (same if v in shot_variant[s.label] else other).append(s)
    return same, other


def score(model, sketches: Sequence[Sketch], recognizer=None, batch_size: int = 256) -> dict:
    """Loss parts (eq. 5) and, with a ``recognizer``, recognition accuracy of reconstructions of ``sketches``.

    The computation of :func:`sketchode.evaluation.scores.evaluate_checkpoint`
    (section 5.2's two scores) for any list of drawings, e.g. one half of
    :func:`by_variant`'s split (chapter 13).  Returns ``n``, ``loss``,
    ``loss_position``, ``loss_pen`` and ``accuracy`` (None without a recognizer).
    """
    from sketchode.data.sketch import prepare
    from sketchode.evaluation.scores import reconstruct
    from sketchode.evaluation.recognition import accuracy
    from sketchode.training.fit import evaluate

    sk = prepare(list(sketches))
    if not sk:
        raise ValueError("score: no drawings given")
    parts = evaluate(model, sk, batch_size=batch_size, normalize=False)
    out = {"n": len(sk), "loss": parts["total"], "loss_position": parts.get("position"), "loss_pen": parts.get("pen"),
           "accuracy": None}
    if recognizer is not None:
        out["accuracy"] = accuracy(recognizer, reconstruct(model, sk, batch_size=batch_size), [s.label for s in sk])
    return out


def loss_spikes(history, factor: float = 2.0, key: str = "train_loss") -> int:
    """How many times the loss of a run grew by more than ``factor`` from one record to the next (chapter 13).

    With :func:`finetune` every record is one optimiser step on the whole
    set, so the loss has no sampling noise: a spike is the optimiser
    overshooting.  A healthy run has a few early on; an unstable one keeps
    spiking.  ``history`` is a :class:`~sketchode.training.fit.History`, its
    ``to_dict()`` or a list of records.
    """
    if not factor > 1:
        raise ValueError(f"loss_spikes: factor must be > 1, got {factor!r}")
    recs = history.records if hasattr(history, "records") else (
        history["records"] if isinstance(history, dict) else list(history))
    v = np.array([r[key] for r in recs if r.get(key) is not None], dtype=np.float64)
    return int(np.sum(v[1:] > factor * v[:-1])) if len(v) > 1 else 0


# ------------------------------------------------------------------ figures
def plot_strips(rows: Mapping[str, Sequence], size: float = 1.0, col_titles: Sequence[str] | None = None,
                cell_titles: Mapping[str, Sequence[str]] | None = None, label_width: float = 1.1, **kw):
    """One row of drawings per entry of ``rows`` (name -> drawings), the name at the left; returns the Figure.

    Chapter 13's interpolation strips (figure 6 middle) and reconstruction
    rows.  Rows may differ in length (shorter ones leave blank cells);
    ``col_titles`` labels the columns of the first row (e.g. ``alpha``);
    ``cell_titles`` maps a row name to one title per drawing of that row (e.g.
    what a recognizer reads), and wins over ``col_titles`` where both apply.
    Other keywords go to :func:`sketchode.plot.plot_sketch`.
    """
    import matplotlib.pyplot as plt

    from sketchode.plot import plot_sketch

    rows = {str(k): list(v) for k, v in dict(rows).items()}
    if not rows or not any(rows.values()):
        raise ValueError("plot_strips: no drawings given")
    ncols = max(len(v) for v in rows.values())
    if col_titles is not None and len(col_titles) > ncols:
        raise ValueError(f"plot_strips: {len(col_titles)} column titles for {ncols} columns")
    cell_titles = {str(k): list(v) for k, v in dict(cell_titles or {}).items()}
    for name, ts in cell_titles.items():
        if name not in rows or len(ts) != len(rows[name]):
            raise ValueError(f"plot_strips: cell_titles[{name!r}] must name a row and give one title per drawing")
    extra = 0.2 if col_titles is not None else 0.0
    titled = {r for r, name in enumerate(rows) if name in cell_titles}
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                             figsize=(label_width + ncols * size, len(rows) * size + extra + 0.2 * len(titled)))
    for r, (name, sks) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            if c >= len(sks):
                ax.set_axis_off()
                continue
            title = str(col_titles[c]) if (r == 0 and col_titles is not None and c < len(col_titles)) else None
            if name in cell_titles:
                title = str(cell_titles[name][c])
            plot_sketch(sks[c], ax=ax, title=title, **kw)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout(pad=0.3)
    fig.subplots_adjust(left=min(0.5, label_width / (label_width + ncols * size)))
    return fig


def plot_histories(histories: Mapping[str, object], ax=None, key: str = "train_loss"):
    """Loss curves of several :func:`finetune` runs against the step, log scale; returns the Axes.

    ``histories`` maps a name to a :class:`~sketchode.training.fit.History`, its
    ``to_dict()`` or a list of records (chapter 13 compares SketchODE and the
    LSTM fine-tuned on the same shots).  ``key`` is the record field plotted.
    """
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("plot_histories: no histories given")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for name, h in dict(histories).items():
        recs = h.records if hasattr(h, "records") else (h["records"] if isinstance(h, dict) else list(h))
        recs = [r for r in recs if r.get(key) is not None]
        if not recs:
            raise ValueError(f"plot_histories: history {name!r} has no records with {key!r}")
        ax.plot([r["step"] for r in recs], [r[key] for r in recs], label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("eq. 5 loss on the shots" if key == "train_loss" else key)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
