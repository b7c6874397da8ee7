"""Recognition CNN: the semantic reconstruction metric (paper section 5.2).

SketchODE measures reconstruction quality *semantically*: a recognition CNN
trained on the real training drawings (rasterised) classifies rasterised
reconstructions of the test drawings, and its accuracy is reported next to the
reconstruction loss (paper Table 1).  This module provides that classifier:

* :class:`RecognitionCNN` -- a small LeNet/MNIST-style network
  (conv-bn-relu-pool twice, dropout, linear layers) that remembers its class
  labels and the rasterisation settings it was trained with;
* :func:`rasterize_sketches` -- ``(N, 1, size, size)`` images of drawings
  through :func:`sketchode.plot.rasterize` (exact strokes) or
  :func:`sketchode.plot.rasterize_batch` (after uniform re-sampling at ``G``
  points, as the full-sequence decoder outputs look);
* :func:`train_recognizer` -- a plain, seeded training loop (deterministic on
  CPU) with small random affine augmentation;
* :func:`predict` / :func:`accuracy` -- on Sketch lists, full sequences
  ``(B, G, 3)``/``(B, G, 4)`` (decoder outputs) or ready images;
* :func:`save_recognizer` / :func:`load_recognizer` -- one file holding a plain
  dict (state dict, config, classes) readable with
  ``torch.load(path, weights_only=True)``, written atomically.

Images are ink 1 on background 0 in a ``size`` square (MNIST-like at the
default 28 px with :data:`DEFAULT_LINEWIDTH` = 2 px lines).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sketchode.training.checkpoint import atomic_save
from sketchode.data.batching import collate_full
from sketchode.data.sketch import Sketch
from sketchode.plot import rasterize, rasterize_batch

__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_LINEWIDTH",
    "DEFAULT_PADDING",
    "RecognitionCNN",
    "rasterize_sketches",
    "to_images",
    "train_recognizer",
    "predict",
    "accuracy",
    "save_recognizer",
    "load_recognizer",
]

#: Default image side in pixels (MNIST-like).
DEFAULT_SIZE = 28
#: Default line width in pixels: at 28 px, 2 px lines look like MNIST strokes.
DEFAULT_LINEWIDTH = 2.0
#: Default margin as a fraction of the image side (as :func:`sketchode.plot.rasterize`).
DEFAULT_PADDING = 0.1
#: Tag stored in saved files.
FORMAT = "sketchode.evaluation.recognition/1"


# ---------------------------------------------------------------------- model
class RecognitionCNN(nn.Module):
    """LeNet/MNIST-style classifier of ``(N, 1, size, size)`` drawings.

    ``conv3x3(1->w)-bn-relu-maxpool2``, ``conv3x3(w->2w)-bn-relu-maxpool2``,
    dropout, ``linear(-> hidden)-relu``, dropout, ``linear(-> n_classes)``.

    Parameters
    ----------
    n_classes : number of classes (>= 2).
    size : image side in pixels (>= 8).
    classes : the class labels, index ``k`` = output ``k`` (default ``"0"``..).
    width, hidden, dropout : network sizes.
    linewidth, padding : rasterisation settings the model expects; used by
        :func:`predict` / :func:`accuracy` when given drawings or sequences.

    ``classes`` and ``config`` (plain values, enough to rebuild the model) are
    stored on the module.
    """

    def __init__(self, n_classes: int, size: int = DEFAULT_SIZE, classes: Sequence | None = None,
                 width: int = 32, hidden: int = 128, dropout: float = 0.3,
                 linewidth: float = DEFAULT_LINEWIDTH, padding: float = DEFAULT_PADDING):
        super().__init__()
        n_classes, size, width, hidden = int(n_classes), int(size), int(width), int(hidden)
        if n_classes < 2:
            raise ValueError(f"RecognitionCNN: n_classes must be >= 2, got {n_classes}")
        if size < 8:
            raise ValueError(f"RecognitionCNN: size must be >= 8 pixels, got {size}")
        if width < 1 or hidden < 1:
            raise ValueError("RecognitionCNN: width and hidden must be positive")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"RecognitionCNN: dropout must be in [0, 1), got {dropout}")
        if classes is None:
            classes = [str(k) for k in range(n_classes)]
        classes = list(classes)
        if len(classes) != n_classes:
            raise ValueError(f"RecognitionCNN: {len(classes)} classes given for n_classes={n_classes}")
        if len(set(classes)) != n_classes:
            raise ValueError("RecognitionCNN: class labels must be distinct")
        self.classes = classes
        self.config = dict(n_classes=n_classes, size=size, width=width, hidden=hidden, dropout=float(dropout),
                           linewidth=float(linewidth), padding=float(padding))
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        s4 = size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(2 * width * s4 * s4, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    @property
    def size(self) -> int:
        return self.config["size"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)`` of images ``(N, 1, size, size)``."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != self.size or x.shape[3] != self.size:
            raise ValueError(f"RecognitionCNN: expected images (N, 1, {self.size}, {self.size}), got {tuple(x.shape)}")
        return self.head(self.features(x))

    def extra_repr(self) -> str:
        return f"classes={self.classes!r}"


# -------------------------------------------------------------- rasterising
def rasterize_sketches(sketches: Sequence[Sketch], size: int = DEFAULT_SIZE, linewidth: float = DEFAULT_LINEWIDTH,
                       G: int | None = None, padding: float = DEFAULT_PADDING) -> torch.Tensor:
    """Images ``(N, 1, size, size)`` float32 (ink 1 on 0) of a list of sketches.

    ``G=None`` draws each sketch's own strokes (:func:`sketchode.plot.rasterize`);
    an integer ``G`` first re-samples every drawing at ``G`` uniform time
    points (:func:`~sketchode.data.batching.collate_full`, what full-sequence
    reconstructions look like) and draws the sequences with
    :func:`sketchode.plot.rasterize_batch`.
    """
    sketches = list(sketches)
    if not sketches:
        raise ValueError("rasterize_sketches: no sketches")
    for i, s in enumerate(sketches):
        if not isinstance(s, Sketch):
            raise TypeError(f"rasterize_sketches: item {i} is {type(s).__name__}, expected Sketch")
    if G is None:
        imgs = np.stack([rasterize(s, size=size, linewidth=linewidth, padding=padding) for s in sketches])
        return torch.from_numpy(imgs).unsqueeze(1)
    if int(G) < 2:
        raise ValueError(f"rasterize_sketches: G must be >= 2, got {G}")
    out = []
    for k in range(0, len(sketches), 512):  # bound memory of the re-sampled batch
        pts = collate_full(sketches[k:k + 512], G=int(G)).points
        out.append(rasterize_batch(pts, size=size, linewidth=linewidth, padding=padding))
    return torch.cat(out)


def to_images(x, size: int = DEFAULT_SIZE, linewidth: float = DEFAULT_LINEWIDTH,
              padding: float = DEFAULT_PADDING) -> torch.Tensor:
    """Images ``(N, 1, size, size)`` float32 from any accepted input.

    * a list of :class:`Sketch` -- :func:`rasterize_sketches`;
    * a list of full-sequence arrays ``(n_i, 3)``/``(n_i, 4)`` -- :func:`sketchode.plot.rasterize` each;
    * an array/tensor ``(B, G, 3)``/``(B, G, 4)`` of sequences ``x, y, pen`` /
      ``t, x, y, pen`` (decoder outputs) -- :func:`sketchode.plot.rasterize_batch`;
    * images ``(N, 1, size, size)`` or ``(N, size, size)``, used as they are.

    Anything else raises :class:`ValueError`.
    """
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError("no inputs (empty list)")
        if all(isinstance(s, Sketch) for s in x):
            return rasterize_sketches(x, size=size, linewidth=linewidth, padding=padding)
        if any(isinstance(s, Sketch) for s in x):
            raise ValueError("a list must hold only Sketch objects or only sequence arrays")
        imgs = [rasterize(s, size=size, linewidth=linewidth, padding=padding) for s in x]
        return torch.from_numpy(np.stack(imgs)).unsqueeze(1)
    if isinstance(x, Sketch):
        raise ValueError("pass a list of sketches, not a single Sketch")
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if not (t.is_floating_point() or t.dtype in (torch.uint8, torch.int32, torch.int64)):
        raise ValueError(f"expected numeric images or sequences, got dtype {t.dtype}")
    shape = tuple(t.shape)
    if t.ndim == 4:
        if shape[1:] != (1, size, size):
            raise ValueError(f"expected images (N, 1, {size}, {size}), got {shape}")
        return t.detach().float()
    if t.ndim == 3:
        if shape[1:] == (size, size):
            return t.detach().float().unsqueeze(1)
        if shape[-1] in (3, 4):
            if shape[1] < 1:
                raise ValueError(f"empty sequences {shape}")
            return rasterize_batch(t, size=size, linewidth=linewidth, padding=padding)
    raise ValueError(
        f"expected images (N, 1, {size}, {size}) / (N, {size}, {size}), sequences (B, G, 3) / (B, G, 4), "
        f"or a list of sketches; got shape {shape}"
    )


def _model_images(model: RecognitionCNN, x) -> torch.Tensor:
    c = model.config
    return to_images(x, size=c["size"], linewidth=c["linewidth"], padding=c["padding"])


def _label_indices(labels: Sequence, classes: Sequence) -> torch.Tensor:
    index = {c: k for k, c in enumerate(classes)}
    out = []
    for i, lab in enumerate(labels):
        if lab is None:
            raise ValueError(f"label of item {i} is missing (None)")
        k = index.get(lab)
        if k is None and not isinstance(lab, str):
            k = index.get(str(lab))
        if k is None:
            raise ValueError(f"unknown label {lab!r} (item {i}); the model's classes are {list(classes)}")
        out.append(k)
    return torch.tensor(out, dtype=torch.long)


def _labels_of(x, labels, where: str) -> list:
    if labels is None:
        if isinstance(x, (list, tuple)) and x and all(isinstance(s, Sketch) for s in x):
            labels = [s.label for s in x]
        else:
            raise ValueError(f"{where}: labels are required unless the inputs are labelled sketches")
    return list(labels)


# ---------------------------------------------------------------- augmenting
def _augment(x: torch.Tensor, gen: torch.Generator, max_rot: float = 10.0, max_scale: float = 0.1,
             max_shift: float = 2.0, max_shear: float = 0.15) -> torch.Tensor:
    """Small random affine transforms of a batch of images (bilinear, zero fill)."""
    n, _, h, _ = x.shape
    u = torch.rand(n, 5, generator=gen) * 2 - 1
    rot = u[:, 0] * math.radians(max_rot)
    scale = 1.0 + u[:, 1] * max_scale
    shear = u[:, 2] * max_shear
    shift = u[:, 3:5] * (2.0 * max_shift / h)  # pixels -> normalised [-1, 1] coordinates
    cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
    theta = torch.stack([torch.stack([cos, -sin + shear * cos, shift[:, 0]], 1),
                         torch.stack([sin, cos + shear * sin, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ----------------------------------------------------------------- training
def train_recognizer(sketches, labels: Sequence | None = None, epochs: int = 3, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, augment: bool = True, device=None,
                     classes: Sequence | None = None, size: int = DEFAULT_SIZE,
                     linewidth: float = DEFAULT_LINEWIDTH, padding: float = DEFAULT_PADDING,
                     G: int | None = None, weight_decay: float = 1e-4, verbose: bool = False,
                     **model_kw) -> RecognitionCNN:
    """Train a :class:`RecognitionCNN` on labelled drawings; returns it in eval mode.

    ``sketches`` is a list of labelled :class:`Sketch` (rasterised with
    :func:`rasterize_sketches`, ``G`` as there), or images/sequences accepted by
    :func:`to_images` with ``labels``.  ``classes`` defaults to the sorted
    distinct labels.  Adam with a cosine learning-rate decay over all steps,
    cross-entropy; ``augment`` applies small random rotations, scalings, shears
    and shifts (up to 2 px) to every batch.  Shuffling, augmentation, dropout
    and initialisation are seeded by ``seed`` without touching the global RNG
    state, so runs on CPU are repeatable.  ``model_kw`` goes to the model
    (``width``, ``hidden``, ``dropout``).
    """
    if int(epochs) < 1:
        raise ValueError(f"train_recognizer: epochs must be >= 1, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"train_recognizer: batch_size must be >= 1, got {batch_size}")
    labels = _labels_of(sketches, labels, "train_recognizer")
    if isinstance(sketches, (list, tuple)) and sketches and all(isinstance(s, Sketch) for s in sketches):
        images = rasterize_sketches(sketches, size=size, linewidth=linewidth, G=G, padding=padding)
    else:
        images = to_images(sketches, size=size, linewidth=linewidth, padding=padding)
    if len(labels) != len(images):
        raise ValueError(f"train_recognizer: {len(labels)} labels for {len(images)} inputs")
    if classes is None:
        if any(lab is None for lab in labels):
            raise ValueError("train_recognizer: some inputs have no label")
        classes = sorted(set(labels), key=lambda c: (str(type(c)), c))
    classes = list(classes)
    y = _label_indices(labels, classes)
    device = torch.device(device) if device is not None else torch.device("cpu")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecognitionCNN(len(classes), size=size, classes=classes, linewidth=linewidth, padding=padding,
                               **model_kw).to(device)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        n = len(images)
        steps_per_epoch = math.ceil(n / batch_size)
        total = int(epochs) * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total)) * 0.98 + 0.02)
        model.train()
        t0 = time.perf_counter()
        for ep in range(int(epochs)):
            perm = torch.randperm(n, generator=gen)
            loss_sum, correct = 0.0, 0
            for k in range(0, n, batch_size):
                idx = perm[k:k + batch_size]
                if len(idx) < 2 and n >= 2:  # batch norm needs > 1 sample per batch
                    continue
                xb = images[idx]
                if augment:
                    xb = _augment(xb, gen)
                xb, yb = xb.to(device), y[idx].to(device)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == yb).sum())
            if verbose:
                print(f"epoch {ep + 1}/{epochs}: loss {loss_sum / n:.4f}, train acc {correct / n:.4f}, "
                      f"{time.perf_counter() - t0:.1f}s", flush=True)
    model.eval()
    return model


# --------------------------------------------------------------- evaluating
@torch.no_grad()
def predict_logits(model: RecognitionCNN, x, batch_size: int = 1024) -> torch.Tensor:
    """Logits ``(N, n_classes)`` (on CPU) of anything :func:`to_images` accepts."""
    images = _model_images(model, x)
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        out = [model(images[k:k + batch_size].to(dev)).cpu() for k in range(0, len(images), batch_size)]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.empty(0, len(model.classes))


def predict(model: RecognitionCNN, x, batch_size: int = 1024) -> list:
    """Predicted class labels (from ``model.classes``) of sketches, sequences or images."""
    idx = predict_logits(model, x, batch_size=batch_size).argmax(1).tolist()
    return [model.classes[k] for k in idx]


def accuracy(model: RecognitionCNN, x, labels: Sequence | None = None, batch_size: int = 1024) -> float:
    """Fraction of inputs classified as their label (``labels`` default: the sketches' own).

    Inputs are as for :func:`predict`; reconstructions ``(B, G, 3)`` from a
    decoder are rasterised with the model's own settings.  A label outside the
    model's classes raises :class:`ValueError`.
    """
    labels = _labels_of(x, labels, "accuracy")
    y = _label_indices(labels, model.classes)
    logits = predict_logits(model, x, batch_size=batch_size)
    if len(y) != len(logits):
        raise ValueError(f"accuracy: {len(y)} labels for {len(logits)} inputs")
    if len(y) == 0:
        raise ValueError("accuracy: no inputs")
    return float((logits.argmax(1) == y).float().mean())


# ------------------------------------------------------------------ saving
def save_recognizer(model: RecognitionCNN, path) -> Path:
    """Write ``{"format", "state_dict", "config", "classes"}`` to ``path`` atomically.

    The file is written to a temporary file in the same folder and moved into
    place with :func:`os.replace` (:func:`sketchode.training.checkpoint.atomic_save`), so readers never see a partial file; it loads
    with ``torch.load(path, weights_only=True)``.  Returns the path.
    """
    if not isinstance(model, RecognitionCNN):
        raise TypeError(f"save_recognizer: expected a RecognitionCNN, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": dict(model.config),
        "classes": list(model.classes),
    }
    return atomic_save(payload, path)


def load_recognizer(path, map_location="cpu") -> RecognitionCNN:
    """Rebuild a :class:`RecognitionCNN` saved by :func:`save_recognizer` (eval mode)."""
    d = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(d, dict) or not {"state_dict", "config", "classes"} <= set(d):
        raise ValueError(f"load_recognizer: {path} is not a saved recognition model")
    cfg = dict(d["config"])
    model = RecognitionCNN(cfg.pop("n_classes"), classes=d["classes"], **cfg)
    model.load_state_dict(d["state_dict"])
    model.eval()
    return model
