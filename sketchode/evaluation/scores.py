"""Evaluating a trained model: test loss and semantic accuracy (paper section 5.2, Table 1; chapter 9).

Section 5.2 scores reconstructions two ways: the reconstruction loss on the
test split, and the accuracy with which a recognition CNN, trained on the
real training drawings, classifies the rasterised reconstructions.
:func:`evaluate_checkpoint` does both for any model of the library
(SketchODE, the multi-stroke variant, the LSTM baseline), and adds a third,
format-free measure: the :func:`chamfer` distance between each
reconstruction and its drawing (the models' own losses differ between the
full-sequence and the multi-stroke formats).

Recognition CNNs: ``data/checkpoints/recognizer-<dataset>.pt`` when shipped
(:func:`recognizer_name`); for the embedded datasets (``digits``,
``letters``) trained once by :func:`recognizer_for` and cached in the user
cache (``pooch.os_cache("sketchode")/recognizers``), never in the data root.
A single-class dataset (the sheep) is recognised against doodles of other
categories (:func:`recognition_set`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sketchode.data.sketch import Sketch, prepare
from sketchode.models.protocol import reconstruct_full

__all__ = ["reconstruct", "reconstruct_full", "recognizer_for", "recognition_set", "recognizer_name", "ink_points",
           "chamfer", "chamfer_matrix", "chamfer_random", "retrieval_top1", "evaluate_checkpoint", "EMBEDDED",
           "OTHER", "GALLERY"]

#: Size of the fixed sample of test drawings that :func:`retrieval_top1` retrieves from.
GALLERY = 100

#: Datasets whose recognizer can be trained on demand (embedded, no download).
EMBEDDED = ("digits", "digits-wide", "letters")


def _cache_dir() -> Path:
    import pooch

    return Path(os.environ.get("SKETCHODE_CACHE") or pooch.os_cache("sketchode")) / "recognizers"


def reconstruct(model, sketches: Sequence[Sketch], G: int | None = None, batch_size: int = 256) -> list[Sketch]:
    """Reconstructions of normalised ``sketches`` as Sketches, for any model of the library.

    Multi-stroke models use their own ``reconstruct``; full-sequence models
    (SketchODE, the LSTM baseline) go through :func:`reconstruct_full`.
    """
    if getattr(model, "format", "full") != "full":
        return model.reconstruct(sketches, G=G) if G is not None else model.reconstruct(sketches)
    return reconstruct_full(model, sketches, G=G, batch_size=batch_size)


def ink_points(sketch: Sketch, n: int = 128) -> np.ndarray:
    """``n`` points spread evenly along the ink of ``sketch`` (pen-down arcs only), ``(n, 2)``.

    Pen-up travel between strokes is not ink, so it is skipped; a drawing
    with no ink (single points only) returns its points, cycled to ``n``.
    """
    p = sketch.points[:, :2]
    seg = np.hypot(*np.diff(p, axis=0).T)
    seg[np.diff(sketch.stroke_index) != 0] = 0.0  # the jump between strokes
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if arc[-1] <= 0:
        return p[np.arange(n) % len(p)]
    q = np.linspace(0.0, arc[-1], n)  # arc stands still across pen-up jumps: no sample lands on them
    return np.column_stack([np.interp(q, arc, p[:, 0]), np.interp(q, arc, p[:, 1])])


def chamfer(a: Sequence[Sketch], b: Sequence[Sketch], n: int = 128, chunk: int = 512) -> np.ndarray:
    """Symmetric chamfer distance between drawings ``a[i]`` and ``b[i]``: one value per pair.

    Each drawing is reduced to ``n`` points along its ink (:func:`ink_points`);
    the distance is the mean, over both point sets, of each point's distance
    to the nearest point of the other.  It compares drawings *as drawn*,
    whatever model or format made them, so chapter 9 uses it beside the
    models' own losses (which differ between the full-sequence and the
    multi-stroke formats).  Same units as the drawings (normalised: the unit
    circle).  ``chunk`` pairs are compared at a time.
    """
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"chamfer: {len(a)} drawings against {len(b)}")
    if not len(a):
        raise ValueError("chamfer: no drawings given")
    out = []
    for i in range(0, len(a), chunk):  # (chunk, n, n) distances at a time: bounded memory for any test split
        pa = torch.as_tensor(np.stack([ink_points(s, n) for s in a[i:i + chunk]]))
        pb = torch.as_tensor(np.stack([ink_points(s, n) for s in b[i:i + chunk]]))
        dist = torch.cdist(pa, pb)
        out.append(0.5 * (dist.min(2).values.mean(1) + dist.min(1).values.mean(1)))
    return torch.cat(out).numpy()


def _ink(sketches: Sequence[Sketch], n: int) -> torch.Tensor:
    return torch.as_tensor(np.stack([ink_points(s, n) for s in sketches]))


def chamfer_matrix(a: Sequence[Sketch], b: Sequence[Sketch], n: int = 128, chunk: int = 64) -> np.ndarray:
    """Chamfer distances (:func:`chamfer`) of every ``a[i]`` to every ``b[j]``: an ``(len(a), len(b))`` array.

    ``chunk`` rows of ``a`` at a time (``chunk * len(b) * n * n`` distances in memory).
    """
    a, b = list(a), list(b)
    if not len(a) or not len(b):
        raise ValueError(f"chamfer_matrix: no drawings given ({len(a)} against {len(b)})")
    pb = _ink(b, n).to(torch.float32).reshape(-1, 2)  # all of b's points: (B * n, 2)
    rows = []
    for i in range(0, len(a), chunk):
        pa = _ink(a[i:i + chunk], n).to(torch.float32)
        d = torch.cdist(pa.reshape(-1, 2), pb).view(len(pa), n, len(b), n)  # (A, n, B, n)
        c = 0.5 * (d.min(3).values.mean(1) + d.min(1).values.mean(2))
        rows.append(c)
    return torch.cat(rows).double().numpy()


def chamfer_random(sketches: Sequence[Sketch], n: int = 128, seed: int = 0) -> float:
    """Mean chamfer distance between each drawing and a random *other* drawing of the same set.

    The scale every chamfer figure is read against (chapter 9): a
    reconstruction is only informative when it is much closer to its own
    drawing than this.  The partner of drawing ``i`` is ``perm[(k + 1) % N]``
    where ``i = perm[k]`` for a permutation seeded by ``seed``: every drawing
    is paired once, never with itself.
    """
    s = list(sketches)
    if len(s) < 2:
        raise ValueError(f"chamfer_random: needs at least 2 drawings, got {len(s)}")
    perm = np.random.default_rng(seed).permutation(len(s))
    partner = np.empty(len(s), dtype=np.int64)
    partner[perm] = np.roll(perm, -1)
    return float(chamfer(s, [s[j] for j in partner], n=n).mean())


def retrieval_top1(originals: Sequence[Sketch], recons: Sequence[Sketch], gallery: int = GALLERY,
                   n: int = 64, seed: int = 0) -> float:
    """Share of drawings whose reconstruction is nearer (chamfer) to its own original than to every other
    drawing of a fixed sample of ``gallery`` originals (chapter 9).

    The sample is drawn once (seeded by ``seed``) from ``originals``; drawing
    ``i`` succeeds when ``chamfer(recon_i, original_i)`` is smaller than
    ``chamfer(recon_i, original_j)`` for every ``j`` of the sample other than
    ``i``.  A model that returns one fixed drawing whatever the input scores
    about ``1 / (gallery + 1)``, a perfect one ``1``: unlike a recognizer's
    accuracy, no template can pass it, and it needs no labels (the sheep).
    Drawings are compared on ``n`` ink points each (64: ranking needs less
    detail than :func:`chamfer`'s figures, and the cost grows as ``n**2``).
    """
    o, r = list(originals), list(recons)
    if len(o) != len(r):
        raise ValueError(f"retrieval_top1: {len(o)} originals against {len(r)} reconstructions")
    if len(o) < 2:
        raise ValueError(f"retrieval_top1: needs at least 2 drawings, got {len(o)}")
    k = min(int(gallery), len(o) - 1) if len(o) <= gallery else int(gallery)
    idx = np.sort(np.random.default_rng(seed).choice(len(o), size=k, replace=False))
    own = chamfer(r, o, n=n)  # (N,)
    other = chamfer_matrix(r, [o[j] for j in idx], n=n)  # (N, k)
    other[idx, np.arange(k)] = np.inf  # a drawing of the sample is not its own rival
    return float(np.mean(own < other.min(1)))


#: Label of the negatives that :func:`recognition_set` adds to a single-class dataset.
OTHER = "other"


def recognition_set(dataset: str, split: str = "train", root=None) -> list[Sketch]:
    """The labelled drawings a recognition CNN for ``dataset`` trains (``split="train"``) or is tested on.

    Normally the dataset's own drawings.  A dataset of a single class (the
    sheep) cannot be scored by classifying it among its own labels, so its
    drawings are joined by Quick, Draw! doodles of every other category
    (``quickdraw-raw/<cat>``, the same split), relabelled :data:`OTHER`: the
    recognizer then answers "is this a sheep?", and the accuracy of
    reconstructions is the share still recognised as one (chapter 9).
    """
    from sketchode.data import load
    from sketchode.data.datasets import quickdraw_categories

    own = prepare(load(dataset, split, root=root))
    labels = {s.label for s in own}
    if len(labels) > 1:
        return own
    (label,) = labels
    others = [dataclasses.replace(s, label=OTHER) for c in quickdraw_categories() if c != label
              for s in load(f"quickdraw-raw/{c}", split, root=root)]
    return own + prepare(others)


def recognizer_name(dataset: str) -> str:
    """File stem of the shipped recognizer of ``dataset``: ``recognizer-sheep``,
    ``recognizer-quickdraw-raw-face-fish-flower``."""
    return "recognizer-" + dataset.replace("/", "-").replace(",", "-")


def recognizer_for(dataset: str, root=None, path=None, train_if_missing: bool = True, epochs: int = 3):
    """The recognition CNN for ``dataset``: from ``path``, the shipped ``recognizer-<dataset>.pt``, the user cache,
    or trained and cached (in that order).

    The shipped recognizer is the checkout's ``data/checkpoints/recognizer-<dataset>.pt``;
    an installed wheel, which has no ``data/``, downloads it into the user
    cache (:func:`sketchode.pretrained.shipped_checkpoint`, :mod:`sketchode.pretrained`).
    Training on demand is limited to the embedded datasets (:data:`EMBEDDED`)
    and says so on stderr (why, and where the result is cached); for the
    others pass ``path`` (a file written by
    :func:`sketchode.evaluation.recognition.save_recognizer`) or get ``None``.  A
    recognizer that is shipped but cannot be had (downloads off:
    ``SKETCHODE_DOWNLOAD=0``), with nothing cached and no training allowed,
    raises the :class:`FileNotFoundError` that names its file and URL.
    """
    import sys

    from sketchode.data import load
    from sketchode.evaluation.recognition import load_recognizer, save_recognizer, train_recognizer

    if path is not None:
        return load_recognizer(path)
    from sketchode.pretrained import shipped_checkpoint

    slug = recognizer_name(dataset)
    unavailable = None
    try:
        shipped = shipped_checkpoint(slug)
    except FileNotFoundError as e:  # shipped, but not in this installation and not downloadable now
        shipped, unavailable = None, e
    if shipped is not None:
        return load_recognizer(shipped)
    cached = _cache_dir() / f"{slug.removeprefix('recognizer-')}.pt"
    if cached.exists():
        return load_recognizer(cached)
    if not train_if_missing or dataset not in EMBEDDED:
        if unavailable is not None:
            raise unavailable
        return None
    why = (f"the shipped {slug}.pt is not available ({unavailable})" if unavailable is not None
           else f"no recognizer is shipped or cached for {dataset!r}")
    print(f"sketchode: recognizer_for({dataset!r}): {why}; training one ({epochs} epochs on the embedded "
          f"training split) and caching it at {cached}", file=sys.stderr)
    model = train_recognizer(prepare(load(dataset, "train", root=root)), epochs=epochs, seed=0)
    save_recognizer(model, cached)
    return model


def evaluate_checkpoint(model, dataset: str | None = None, split: str = "test", root=None, recognizer=None,
                        limit: int | None = None, device=None, batch_size: int = 256, classes=None) -> dict:
    """Test loss (mean of the eq. 5 parts over drawings) and recognition accuracy of reconstructions.

    ``dataset`` defaults to ``digits`` (the CLI passes the dataset that
    ``python -m sketchode train`` recorded in the checkpoint).
    ``recognizer`` is a path, a :class:`~sketchode.evaluation.recognition.RecognitionCNN`
    or ``None`` (use :func:`recognizer_for`).  Returns a JSON-able dict with
    ``loss`` (and its parts), ``n``, ``chamfer`` (mean :func:`chamfer` distance
    of reconstructions to their drawings), ``chamfer_random`` (the same between
    a drawing and a random other one: the scale to read ``chamfer`` against),
    ``retrieval_top1`` (:func:`retrieval_top1` over a fixed sample of
    :data:`GALLERY` test drawings), ``accuracy`` (of reconstructions;
    ``None`` without a recognizer) and ``accuracy_data`` (the recognizer on the test
    drawings themselves, the ceiling).  ``classes`` (e.g. ``"ABD"``) keeps
    only drawings with those labels (chapter 13 scores the one-shot letters).
    """
    from sketchode.data import load
    from sketchode.evaluation.recognition import RecognitionCNN, accuracy
    from sketchode.training.fit import evaluate, pick_device

    dev = pick_device(device)
    model.to(dev)
    dataset = dataset or "digits"
    sketches = prepare(load(dataset, split=split, root=root))
    if classes:
        sketches = [s for s in sketches if s.label in set(classes)]
    if limit is not None:
        sketches = sketches[: int(limit)]
    if not sketches:
        raise ValueError(f"evaluate_checkpoint: dataset {dataset!r} split {split!r} is empty")
    parts = evaluate(model, sketches, batch_size=batch_size, device=dev, normalize=False)
    res = {"dataset": dataset, "split": split, "n": len(sketches), "loss": parts["total"]}
    if classes:
        res["classes"] = "".join(sorted(set(classes)))
    res.update({f"loss_{k}": v for k, v in parts.items() if k not in ("total", "n")})
    recon = reconstruct(model, sketches, batch_size=batch_size)
    res["chamfer"] = float(chamfer(sketches, recon).mean())
    res["chamfer_random"] = chamfer_random(sketches)
    res["retrieval_top1"] = retrieval_top1(sketches, recon)
    rec = recognizer if isinstance(recognizer, RecognitionCNN) else recognizer_for(dataset, root=root, path=recognizer)
    if rec is None:
        res.update(accuracy=None, accuracy_data=None, recognizer=None)
        return res
    labels = [s.label for s in sketches]
    res["accuracy"] = accuracy(rec, recon, labels)
    res["accuracy_data"] = accuracy(rec, sketches, labels)
    res["recognizer"] = "given" if isinstance(recognizer, RecognitionCNN) else str(recognizer or "default")
    return res
