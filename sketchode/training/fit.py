"""Training loop of the paper's section 5.1 (book chapter 8).

Section 5.1 trains every model with AdamW, a learning rate of ``3e-3`` for
SketchODE and ``1e-4`` for the baselines, weight decay ``1e-2`` "on the weight
of the dynamics networks", gradients clipped at magnitude ``0.01``, and the
authors' code multiplies the learning rate by a decaying squared-cosine
schedule (:func:`cosine_decay`).  :func:`fit` puts these together for any
model that follows the small protocol below, with the extras a real run
needs: validation, checkpoints and exact resumption, a wall-clock budget,
Perlin augmentation of the training batches (section 4.6), and a clear stop
when the loss diverges.

Model protocol
--------------
``model.config``
    JSON-able dict of constructor arguments; ``type(model).from_config(config)``
    rebuilds the model (used by :mod:`sketchode.training.checkpoint`).
``model.collate(sketches) -> batch``
    turns a list of normalised :class:`~sketchode.data.sketch.Sketch` into the
    batch the loss takes; ``batch.to(device)`` moves it and ``len(batch)`` is
    its number of samples.
``model.loss(batch, return_parts=False)``
    scalar loss, or with ``return_parts`` a dict of parts with ``"total"``.
``model.default_lr``
    class attribute: the learning rate used when ``fit`` gets no ``lr``.
``model.dynamics_parameters()`` (optional)
    the parameters that get weight decay; all others get none.  Without the
    method every parameter gets weight decay.

Design choices
--------------
* **Clipping by norm.**  "Clips gradients at magnitude 0.01" is read as
  ``clip_grad_norm_(max_norm=0.01)``: the authors trained with
  PyTorch-Lightning, whose default ``gradient_clip_algorithm`` is the norm.
* **Schedule per optimiser step.**  :func:`cosine_decay` is evaluated at the
  fractional epoch ``step / steps_per_epoch`` after every step (a smooth
  curve instead of a staircase); it depends only on the global step, so a
  resumed run follows exactly the same learning rates.
* **Reproducible order without stored RNG.**  Epoch ``e`` visits the samples
  in a permutation drawn from a :class:`torch.Generator` seeded from
  ``(seed, e)``; the Perlin warps of epoch ``e`` are seeded from
  ``(seed, e, sample index)``.  Resuming, even in the middle of an epoch,
  replays the same order and the same warps.  The last, smaller batch of an
  epoch is kept.
* **Validation data is never augmented** (the reference implementation
  augmented it) and is evaluated with ``model.eval()`` under
  :func:`torch.no_grad`.
* **Augmented drawings are normalised again** (first point at the origin,
  inside the unit disc), the invariants of :func:`~sketchode.data.sketch.prepare`
  the decoders rely on (their trajectory starts at ``0``); the warp moves
  the first point too.
* **Divergence stops training.**  A NaN/inf loss or gradient norm raises
  :class:`TrainingDiverged` before the optimiser step, so the model in memory
  keeps the last good weights, and no checkpoint is ever written after it:
  the file on disk is the last good one.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sketchode.training.checkpoint import config_differences, load_checkpoint, save_checkpoint
from sketchode.data.augment import gaussian_jitter, perlin
from sketchode.data.sketch import Sketch, prepare
from sketchode.models.protocol import check_protocol

# words that separate the random streams derived from the user's seed
_PERMUTATION, _AUGMENT = 0x5045524D, 0x41554754


class TrainingDiverged(RuntimeError):
    """The loss (or gradient norm) became NaN/inf during :func:`fit`; the last good checkpoint was kept."""


# ------------------------------------------------------------------ schedule
def cosine_decay(epoch, period: float = 100, decay: float = 4.0, floor: float = 0.02):
    """Learning-rate multiplier of the authors' schedule (paper 5.1, reference code).

    With ``w = pi * epoch / (2 * period)`` and ``g = ln(decay) / pi``::

        (1 - floor) * exp(-g * w) * cos(w)**2 + floor

    It is ``1`` at epoch 0, ``floor`` at ``epoch = period``, and back on the
    envelope at ``2 * period``: ``(1 - floor) / decay + floor`` (the envelope
    ``exp(-g w)`` loses a factor ``decay`` every ``2 * period`` epochs; the
    local maximum comes a little earlier, about ``1.86 * period`` for
    ``decay=4``, as the envelope keeps falling), and so on: warm restarts
    of shrinking height.  ``epoch`` may be fractional
    and a numpy array (the result is then an array of the same shape; a
    Python float for a scalar).
    """
    if not period > 0:
        raise ValueError(f"cosine_decay: period must be > 0 epochs, got {period!r}")
    if not decay > 0:
        raise ValueError(f"cosine_decay: decay must be > 0, got {decay!r}")
    if not 0 <= floor <= 1:
        raise ValueError(f"cosine_decay: floor must lie in [0, 1], got {floor!r}")
    e = np.asarray(epoch, dtype=np.float64)
    w = np.pi * e / (2.0 * period)
    g = math.log(decay) / math.pi
    out = (1.0 - floor) * np.exp(-g * w) * np.cos(w) ** 2 + floor
    return float(out) if out.ndim == 0 else out


def make_optimizer(model: torch.nn.Module, lr: float | None = None, weight_decay: float = 1e-2) -> torch.optim.AdamW:
    """AdamW with weight decay on the dynamics parameters only (paper 5.1).

    Two parameter groups, named by their ``"name"`` key: ``"dynamics"``
    (``model.dynamics_parameters()``, weight decay ``weight_decay``) and
    ``"other"`` (weight decay 0).  A model without ``dynamics_parameters``
    puts every parameter in ``"dynamics"``.  Empty groups are left out; frozen
    parameters (``requires_grad=False``) are not optimised.  ``lr`` defaults
    to ``model.default_lr``.
    """
    if lr is None:
        lr = getattr(model, "default_lr", None)
        if lr is None:
            raise ValueError(f"make_optimizer: no lr given and {type(model).__name__} has no default_lr")
    if not lr > 0:
        raise ValueError(f"make_optimizer: lr must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"make_optimizer: weight_decay must be >= 0, got {weight_decay!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if hasattr(model, "dynamics_parameters"):
        dyn_ids = {id(p) for p in model.dynamics_parameters()}
        all_ids = {id(p) for p in model.parameters()}
        if not dyn_ids <= all_ids:
            raise ValueError(
                f"make_optimizer: {type(model).__name__}.dynamics_parameters() returned "
                f"{len(dyn_ids - all_ids)} tensor(s) that are not parameters of the model"
            )
    else:
        dyn_ids = {id(p) for p in params}
    dyn = [p for p in params if id(p) in dyn_ids]
    other = [p for p in params if id(p) not in dyn_ids]
    groups = [
        {"params": ps, "weight_decay": wd, "name": name}
        for name, ps, wd in (("dynamics", dyn, float(weight_decay)), ("other", other, 0.0))
        if ps
    ]
    if not groups:
        raise ValueError(f"make_optimizer: {type(model).__name__} has no trainable parameters")
    return torch.optim.AdamW(groups, lr=float(lr))


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    period: float = 100,
    decay: float = 4.0,
    floor: float = 0.02,
    warmup: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """:class:`~torch.optim.lr_scheduler.LambdaLR` applying :func:`cosine_decay` per step (paper 5.1).

    Step it after every optimiser step; the multiplier after ``s`` steps is
    ``cosine_decay(s / steps_per_epoch, period, decay, floor)``, times
    ``min(1, (s + 1) / warmup)`` during the first ``warmup`` steps (a linear
    warm-up; 0, the paper's schedule, has none).
    """
    if int(warmup) != warmup or warmup < 0:
        raise ValueError(f"make_scheduler: warmup must be an integer >= 0 steps, got {warmup!r}")
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(f"make_scheduler: steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
    cosine_decay(0.0, period, decay, floor)  # validate the arguments now

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return ramp * cosine_decay(step / steps_per_epoch, period, decay, floor)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------- device, threads
def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``torch.device(device)``, or CUDA when available and ``device`` is None, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"pick_device: {device!r} is not a device (use 'cpu', 'cuda', 'cuda:1', ...)") from e


@lru_cache(maxsize=1)
def _physical_cores() -> int:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(((base / "physical_package_id").read_text().strip(), (base / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def sensible_threads() -> int:
    """Torch threads for CPU training: one per physical core this process may use, at most 4.

    Two threads train faster than one when the cores are free, and much
    slower when another process holds one of them (OpenMP workers spin and
    wait for the busy core); more threads than physical cores only add that
    contention.  The measurements are on the book's "Measurements" page.
    """
    return max(1, min(_physical_cores(), 4))


def seed_everything(seed: int) -> None:
    """Seed Python's :mod:`random`, numpy's global generator and torch (CPU and every CUDA device).

    :func:`fit` itself needs none of this (its randomness comes from
    generators seeded by its ``seed``); call it before building a model to
    make the initial weights reproducible.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _derived(seed: int, *words: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed)] + [int(w) for w in words])


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which :func:`fit` visits ``n`` training samples in epoch ``epoch`` (0-based).

    Drawn by :func:`torch.randperm` from a :class:`torch.Generator` seeded
    from ``(seed, epoch)``: the same for the same arguments on every run and
    machine, different between epochs.
    """
    g = torch.Generator().manual_seed(int(_derived(seed, _PERMUTATION, epoch).generate_state(1, np.uint64)[0]))
    return torch.randperm(int(n), generator=g)


def augment_batch(
    sketches: Sequence[Sketch],
    indices: Sequence[int],
    sigma: float,
    seed: int,
    epoch: int,
    frequency: float = 1.0,
    kind: str = "perlin",
) -> list[Sketch]:
    """Augmented (paper 4.6), re-normalised copies of training drawings for epoch ``epoch``.

    Drawing ``sketches[j]`` (the sample ``indices[j]`` of the training set)
    is warped by :func:`~sketchode.data.augment.perlin` with strength
    ``sigma`` (``kind="perlin"``), or jittered point by point by
    :func:`~sketchode.data.augment.gaussian_jitter` with standard deviation
    ``sigma`` (``kind="jitter"``, the discrete-time habit that chapter 12
    ablates), with a seed derived from ``(seed, epoch, indices[j])``: a new
    draw every epoch, the same on every run, independent of how the samples
    are batched.  ``frequency`` applies to Perlin noise only.
    """
    if kind == "perlin":
        return [
            perlin(s, sigma=sigma, seed=_derived(seed, _AUGMENT, epoch, i), frequency=frequency).normalize()
            for s, i in zip(sketches, indices)
        ]
    if kind == "jitter":
        return [gaussian_jitter(s, sigma=sigma, seed=_derived(seed, _AUGMENT, epoch, i)).normalize()
                for s, i in zip(sketches, indices)]
    raise ValueError(f"augment_batch: kind must be 'perlin' or 'jitter', got {kind!r}")


# ------------------------------------------------------------------ history
@dataclass
class History:
    """What :func:`fit` did: one record per epoch (chapter 8).

    ``records`` holds dicts with ``epoch`` (epochs of training done at the
    record: an int for a complete epoch, a fraction for the partial epoch of
    a run stopped by ``steps`` or ``time_limit``), ``step`` (optimiser steps
    done), ``train_loss`` (mean loss of the epoch's training batches,
    weighted by batch size), ``val_loss`` (``evaluate(model, val)["total"]``
    at the end of the epoch, or None), ``lr`` (learning rate of the next
    step), ``seconds`` (wall time of the epoch) and ``complete``.
    ``stopped`` says why training ended: ``"epochs"``, ``"steps"`` or
    ``"time_limit"``.
    """

    records: list[dict] = field(default_factory=list)
    stopped: str | None = None

    @property
    def last(self) -> dict | None:
        """The latest record, or None before the first epoch ended."""
        return self.records[-1] if self.records else None

    @property
    def best_val(self) -> float | None:
        """The lowest validation loss recorded, or None without validation."""
        vals = [r["val_loss"] for r in self.records if r.get("val_loss") is not None]
        return min(vals) if vals else None

    def to_dict(self) -> dict:
        """A JSON-able dict ``{"records": [...], "stopped": ...}`` (also stored in checkpoints)."""
        return {"records": [dict(r) for r in self.records], "stopped": self.stopped}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Inverse of :meth:`to_dict`."""
        return cls(records=[dict(r) for r in d.get("records", [])], stopped=d.get("stopped"))


# --------------------------------------------------------------- evaluation
def _check_sketches(sketches, name: str, where: str) -> list[Sketch]:
    if sketches is None or isinstance(sketches, (str, bytes)):
        raise TypeError(f"{where}: {name} must be a list of Sketch, got {type(sketches).__name__}")
    sketches = list(sketches)
    if not sketches:
        raise ValueError(f"{where}: {name} is empty (no sketches)")
    for i, s in enumerate(sketches):
        if not isinstance(s, Sketch):
            raise TypeError(f"{where}: {name}[{i}] is a {type(s).__name__}, expected Sketch")
    return sketches


def _parts(out) -> dict:
    if isinstance(out, dict):
        if "total" not in out:
            raise ValueError(f"model.loss(return_parts=True) returned a dict without 'total': keys {sorted(out)}")
        return out
    return {"total": out}


def _evaluate_prepared(model, sketches: list[Sketch], batch_size: int, device: torch.device) -> dict:
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    try:
        with torch.no_grad():
            for i in range(0, len(sketches), batch_size):
                chunk = sketches[i : i + batch_size]
                parts = _parts(model.loss(model.collate(chunk).to(device), return_parts=True))
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
                n += len(chunk)
    finally:
        model.train(was_training)
    out = {k: v / n for k, v in sums.items()}
    out["n"] = n
    return out


def evaluate(model, sketches: Sequence[Sketch], batch_size: int = 256, device=None, normalize: bool = True) -> dict:
    """Mean loss parts of ``model`` over ``sketches`` (validation of paper 5.1); no augmentation.

    The sketches are normalised (:func:`~sketchode.data.sketch.prepare`,
    as :func:`fit` does; pass ``normalize=False`` for prepared ones), batched
    in order with ``model.collate``, and scored with ``model.eval()`` under
    :func:`torch.no_grad`; every part of ``model.loss(batch,
    return_parts=True)`` is averaged over the samples (batch means weighted
    by batch size).  Returns the parts (at least ``"total"``) and ``"n"``,
    the number of samples.  The model's train/eval mode is restored.
    ``device`` defaults to where the model's parameters are.
    """
    check_protocol(model, "evaluate")
    sketches = _check_sketches(sketches, "sketches", "evaluate")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be an integer >= 1, got {batch_size!r}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    else:
        device = pick_device(device)
    if normalize:
        sketches = prepare(sketches)
    return _evaluate_prepared(model, sketches, int(batch_size), device)


# --------------------------------------------------------------------- fit
def _settings_mismatch(saved: dict, now: dict) -> list[str]:
    return config_differences(saved, now, names=("checkpoint", "now"))


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def fit(
    model: torch.nn.Module,
    data: Sequence[Sketch],
    *,
    val: Sequence[Sketch] | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    time_limit: float | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    weight_decay: float = 1e-2,
    clip: float | None = 0.01,
    period: float = 100,
    decay: float = 4.0,
    floor: float = 0.02,
    augment_sigma: float = 0.0,
    augment_frequency: float = 1.0,
    augment_kind: str = "perlin",
    seed: int = 0,
    device=None,
    threads: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_every: int | None = None,
    checkpoint_steps: int | None = None,
    overwrite: bool = False,
    skip_spikes: float | None = None,
    warmup: int = 0,
    patience: int | None = None,
    progress: bool = True,
    callback: Callable[[torch.nn.Module, dict], None] | None = None,
    meta: dict | None = None,
) -> History:
    """Train ``model`` on the drawings ``data`` as in paper section 5.1; returns the :class:`History`.

    Parameters
    ----------
    model : follows the model protocol of this module (``config``,
        ``collate``, ``loss``, ``default_lr``, optional ``dynamics_parameters``).
        It is trained in place (and moved to ``device``).
    data, val : lists of :class:`~sketchode.data.sketch.Sketch`, normalised
        here once (:func:`~sketchode.data.sketch.prepare`).  ``val`` is scored
        at the end of every epoch with :func:`evaluate`, never augmented.
    epochs, steps : when to stop: the total number of epochs, or of optimiser
        steps, counted from the start of the run (a resumed run counts those
        already done).  Exactly one is required unless ``time_limit`` is given.
    time_limit : seconds of training, counted from the first step of this
        call (data preparation and resuming excluded); the run stops cleanly
        after the step that crosses it (with a checkpoint when ``checkpoint``
        is given).
    batch_size : samples per step; the last batch of an epoch may be smaller.
    lr : AdamW learning rate, default ``model.default_lr`` (5.1: ``3e-3`` for
        SketchODE, ``1e-4`` for the baselines).
    weight_decay : on ``model.dynamics_parameters()`` only (5.1: ``1e-2``).
    clip : max gradient norm (5.1: ``0.01``); None disables clipping.
    period, decay, floor : of the :func:`cosine_decay` schedule, in epochs.
    warmup : optimiser steps of linear learning-rate warm-up before the
        schedule (:func:`make_scheduler`; 0, the paper's recipe, has none).
    augment_sigma, augment_frequency, augment_kind : augmentation of the
        training batches when ``augment_sigma > 0`` (:func:`augment_batch`):
        Perlin warps (4.6, ``"perlin"``) or point jitter (``"jitter"``).
    seed : seeds the epoch order and the augmentation (not the model's
        initial weights: see :func:`seed_everything`).
    device : see :func:`pick_device`.
    threads : torch threads on the CPU during this call (the previous count is
        restored when it returns); by default the process's setting is left
        alone (the command line sets it, see :func:`sensible_threads`).
    checkpoint : path of the checkpoint, written (atomically, see
        :func:`sketchode.training.checkpoint.save_checkpoint`) every
        ``checkpoint_every`` epochs (default 1) and when training stops.
    resume : continue the run stored at ``checkpoint``: model, optimiser,
        scheduler, step, epoch (also mid-epoch), history and torch's RNG state
        are restored, and the result equals an uninterrupted run.  The
        settings that shape the run (batch size, seed, schedule, lr, weight
        decay, clip, augmentation, number of training samples) must be the
        ones of the checkpoint.
    checkpoint_steps : also write the checkpoint every this many optimiser
        steps (mid-epoch; resuming from it replays the rest of the epoch).
    overwrite : a ``checkpoint`` path that already holds a file is refused
        (:class:`FileExistsError`) unless ``resume`` or ``overwrite`` is given:
        running the same command twice must not replace a finished run.
        While training, ``<checkpoint>.lock`` is held: a second process
        training into the same path is refused at once.
    skip_spikes : skip the optimiser update of a step whose gradient norm
        (before clipping) is not finite or exceeds ``skip_spikes`` times the
        median of the last 64 accepted norms (once 16 are known).  The step
        still counts (the schedule and the data order are unchanged), the
        history records how many were skipped, and 50 skips in a row raise
        :class:`TrainingDiverged`.  Chapter 9 explains why a few drawings
        make the encoder's gradient explode (its sensitivity grows
        exponentially along long multi-stroke paths) and why skipping their
        rare spikes keeps the paper's learning rate usable.
    patience : stop (``stopped == "converged"``) once the validation loss has
        not improved on its best for this many complete epochs.  Judged from
        the history alone, so a resumed run stops where an uninterrupted one
        would; needs ``val``.
    progress : show a tqdm bar with the loss and learning rate.
    callback : ``callback(model, record)`` after every record (end of each
        epoch, and the partial epoch at a ``steps``/``time_limit`` stop).
    meta : JSON-able facts stored in the checkpoint's ``train_state["meta"]``
        (the CLI records the config name and dataset there).

    Interrupting (Ctrl-C, a notebook's stop button) finishes the current
    step, writes the checkpoint when one is given, and returns with
    ``stopped == "interrupted"``; a second interrupt stops at once.

    Raises
    ------
    TrainingDiverged
        when the loss or the gradient norm is NaN/inf; the message names the
        step and epoch.  The optimiser step is skipped (the model keeps the
        last good weights) and no checkpoint is written afterwards.
    ValueError, TypeError
        on invalid arguments, before any training.
    """
    where = "fit"
    check_protocol(model, where)
    data = prepare(_check_sketches(data, "data", where))
    val = None if val is None else prepare(_check_sketches(val, "val", where))
    n_limits = (epochs is not None) + (steps is not None)
    if n_limits > 1 or (n_limits == 0 and time_limit is None):
        raise ValueError(
            f"{where}: give exactly one of epochs or steps (or time_limit, alone or with one of them); "
            f"got epochs={epochs!r}, steps={steps!r}, time_limit={time_limit!r}"
        )
    for name, v in (("epochs", epochs), ("steps", steps)):
        if v is not None and (int(v) != v or v < 1):
            raise ValueError(f"{where}: {name} must be an integer >= 1, got {v!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"{where}: time_limit must be > 0 seconds, got {time_limit!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an integer >= 1, got {batch_size!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"{where}: clip must be > 0 (or None to disable clipping), got {clip!r}")
    if not augment_sigma >= 0:
        raise ValueError(f"{where}: augment_sigma must be >= 0, got {augment_sigma!r}")
    if augment_kind not in ("perlin", "jitter"):
        raise ValueError(f"{where}: augment_kind must be 'perlin' or 'jitter', got {augment_kind!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    if checkpoint_every is not None and (int(checkpoint_every) != checkpoint_every or checkpoint_every < 1):
        raise ValueError(f"{where}: checkpoint_every must be an integer >= 1 (epochs), got {checkpoint_every!r}")
    if checkpoint_steps is not None and (int(checkpoint_steps) != checkpoint_steps or checkpoint_steps < 1):
        raise ValueError(f"{where}: checkpoint_steps must be an integer >= 1 (steps), got {checkpoint_steps!r}")
    if skip_spikes is not None and not skip_spikes > 1:
        raise ValueError(f"{where}: skip_spikes must be > 1 (a multiple of the median gradient norm), got {skip_spikes!r}")
    if checkpoint_steps is not None and checkpoint is None:
        raise ValueError(f"{where}: checkpoint_steps needs a checkpoint path")
    if resume and checkpoint is None:
        raise ValueError(f"{where}: resume=True needs the checkpoint path to resume from")
    if patience is not None and (int(patience) != patience or patience < 1 or val is None):
        raise ValueError(f"{where}: patience must be an integer >= 1 epochs and needs val, got {patience!r}"
                         f"{' without val' if val is None else ''}")
    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None:
        if ckpt_path.is_dir():
            raise ValueError(f"{where}: checkpoint {ckpt_path} is a directory; give the path of a file")
        if ckpt_path.exists() and not resume and not overwrite:
            raise FileExistsError(f"{where}: {ckpt_path} already exists; pass resume=True to continue that run, "
                                  "overwrite=True to replace it, or another path (nothing was changed)")
    every = int(checkpoint_every or 1)
    batch_size, seed = int(batch_size), int(seed)

    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"{where}: threads must be an integer >= 1, got {threads!r}")
    device = pick_device(device)
    threads_before = torch.get_num_threads() if threads is not None and device.type == "cpu" else None
    model.to(device)

    lr = model.default_lr if lr is None and hasattr(model, "default_lr") else lr
    optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay)
    n_train = len(data)
    steps_per_epoch = math.ceil(n_train / batch_size)
    scheduler = make_scheduler(optimizer, steps_per_epoch, period, decay, floor, warmup=int(warmup))
    settings = dict(
        batch_size=batch_size, seed=seed, n_train=n_train, period=float(period), decay=float(decay),
        floor=float(floor), lr=float(lr), weight_decay=float(weight_decay),
        clip=None if clip is None else float(clip), augment_sigma=float(augment_sigma),
        augment_frequency=float(augment_frequency),
    )  # fmt: skip
    if augment_kind != "perlin":  # only when not the default, so older checkpoints still resume
        settings["augment_kind"] = augment_kind
    if warmup:  # likewise
        settings["warmup"] = int(warmup)

    # progress of the run: restored from the checkpoint when resuming
    history = History()
    step = epoch = batch_in_epoch = 0  # optimiser steps, complete epochs, batches of the current epoch
    loss_sum, seen, epoch_seconds = 0.0, 0, 0.0  # accumulators of the current epoch
    norms: list[float] = []  # the last accepted gradient norms (skip_spikes)
    skipped = skipped_in_row = 0
    last_saved = None  # (step, epoch) of the last checkpoint written by this run or resumed from
    if resume:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        problems = []
        if ckpt["class"] != type(model).__name__:
            problems.append(f"class: checkpoint {ckpt['class']}, now {type(model).__name__}")
        problems += config_differences(ckpt["config"], dict(model.config), names=("checkpoint", "now"))
        ts = ckpt.get("train_state") or {}
        if "step" not in ts or ckpt.get("optimizer") is None or ckpt.get("scheduler") is None:
            raise ValueError(f"{where}: {ckpt_path} holds no training state to resume from (saved without fit?)")
        problems += _settings_mismatch(ts.get("settings", {}), settings)
        if problems:
            raise ValueError(f"{where}: cannot resume from {ckpt_path}: " + "; ".join(problems))
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, epoch, batch_in_epoch = int(ts["step"]), int(ts["epoch"]), int(ts["batch_in_epoch"])
        loss_sum, seen, epoch_seconds = float(ts["loss_sum"]), int(ts["seen"]), float(ts["epoch_seconds"])
        history = History.from_dict(ts["history"])
        history.records = [r for r in history.records if r.get("complete", True)]
        history.stopped = None
        _set_rng_state(ts.get("rng", {}))
        norms = [float(x) for x in ts.get("norms", [])]
        skipped, skipped_in_row = int(ts.get("skipped", 0)), int(ts.get("skipped_in_row", 0))
        last_saved = (step, epoch)

    def train_state() -> dict:
        return dict(
            step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, loss_sum=loss_sum, seen=seen,
            epoch_seconds=epoch_seconds, history=history.to_dict(), settings=settings, rng=_rng_state(),
            meta=dict(meta or {}), norms=list(norms), skipped=skipped, skipped_in_row=skipped_in_row,
        )  # fmt: skip

    def save() -> None:
        nonlocal last_saved
        save_checkpoint(ckpt_path, model, optimizer, scheduler, train_state())
        last_saved = (step, epoch)

    def diverged(what: str, value: float) -> TrainingDiverged:
        if ckpt_path is None:
            kept = "no checkpoint path was given"
        elif last_saved is None:
            kept = f"this run had not written a checkpoint to {ckpt_path} yet"
        else:
            kept = f"the last good checkpoint {ckpt_path} (step {last_saved[0]}, epoch {last_saved[1]}) was kept"
        return TrainingDiverged(
            f"fit: training diverged: {what} is {value} at global step {step + 1} "
            f"(epoch {epoch + 1}, batch {batch_in_epoch + 1} of {steps_per_epoch}); the optimiser step was "
            f"skipped, so the model keeps the weights of step {step}; {kept}"
        )

    if progress:
        from tqdm.auto import tqdm

        total = steps if steps is not None else (epochs * steps_per_epoch if epochs is not None else None)
        initial = min(step, total) if total else step
        bar = tqdm(total=total, initial=initial, unit="step", desc="fit", dynamic_ncols=True)
    else:
        bar = None
    params = [p for g in optimizer.param_groups for p in g["params"]]
    start = time.perf_counter()
    stopped = None
    lock = _PathLock(ckpt_path) if ckpt_path is not None else None
    interrupt = _Interrupt()
    try:
        if threads_before is not None:
            torch.set_num_threads(int(threads))  # for this call only: restored in `finally`
        if lock is not None:
            lock.acquire(where)
        interrupt.install()
        while stopped is None:
            if epochs is not None and epoch >= epochs:
                stopped = "epochs"
                break
            if steps is not None and step >= steps:
                stopped = "steps"
                break
            if patience is not None and batch_in_epoch == 0 and _stalled(history.records, int(patience)):
                stopped = "converged"
                break
            t_epoch = time.perf_counter()
            order = epoch_permutation(n_train, seed, epoch).split(batch_size)
            model.train()
            reason = None
            for idx in order[batch_in_epoch:]:
                ids = idx.tolist()
                sk = [data[i] for i in ids]
                if augment_sigma > 0:
                    sk = augment_batch(sk, ids, augment_sigma, seed, epoch, augment_frequency, augment_kind)
                batch = model.collate(sk).to(device)
                loss = _parts(model.loss(batch))["total"]
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise diverged("the training loss", value)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm=clip if clip is not None else math.inf))
                if skip_spikes is None:
                    if not math.isfinite(norm):
                        raise diverged("the gradient norm", norm)
                    optimizer.step()
                elif _is_spike(norm, norms, skip_spikes):
                    skipped += 1
                    skipped_in_row += 1
                    if skipped_in_row >= 50:
                        raise diverged(f"the gradient norm (50 spikes in a row, {skipped} skipped in all)", norm)
                else:
                    skipped_in_row = 0
                    norms = (norms + [norm])[-64:]
                    optimizer.step()
                scheduler.step()
                step += 1
                batch_in_epoch += 1
                loss_sum += value * len(ids)
                seen += len(ids)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4g}", lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
                if steps is not None and step >= steps:
                    reason = "steps"
                elif time_limit is not None and time.perf_counter() - start >= time_limit:
                    reason = "time_limit"
                elif interrupt.requested:
                    reason = "interrupted"
                if reason is not None:
                    break
                if checkpoint_steps is not None and step % int(checkpoint_steps) == 0 \
                        and batch_in_epoch < len(order):
                    save()
            complete = batch_in_epoch == len(order)
            val_loss = None if val is None else _evaluate_prepared(model, val, 256, device)["total"]
            epoch_seconds += time.perf_counter() - t_epoch
            record = dict(
                epoch=epoch + 1 if complete else epoch + batch_in_epoch / len(order), step=step,
                train_loss=loss_sum / seen, val_loss=val_loss, lr=float(optimizer.param_groups[0]["lr"]),
                seconds=epoch_seconds, complete=complete,
            )  # fmt: skip
            if skip_spikes is not None:
                record["skipped"] = skipped
            if complete:
                epoch += 1
                batch_in_epoch, loss_sum, seen, epoch_seconds = 0, 0.0, 0, 0.0
                if epochs is not None and epoch >= epochs:
                    reason = "epochs"
            history.records.append(record)
            if reason is None and patience is not None and complete and _stalled(history.records, int(patience)):
                reason = "converged"
            if callback is not None:
                callback(model, record)
            if reason is not None:
                stopped = reason
            if ckpt_path is not None and (stopped is not None or (complete and epoch % every == 0)):
                history.stopped = stopped
                save()
    finally:
        if threads_before is not None:
            torch.set_num_threads(threads_before)
        interrupt.uninstall()
        if lock is not None:
            lock.release()
        if bar is not None:
            bar.close()
    history.stopped = stopped
    if stopped == "interrupted":
        import warnings

        saved = f"; the checkpoint {ckpt_path} holds step {step} (resume with resume=True)" if ckpt_path else ""
        warnings.warn(f"fit: interrupted after step {step}{saved}", stacklevel=2)
    return history


class _Interrupt:
    """Turns the first SIGINT during :func:`fit` into a request to stop after the current step.

    Only in the main thread (where Python delivers signals); a second SIGINT
    raises :class:`KeyboardInterrupt` at once, as usual.
    """

    def __init__(self):
        self.requested = False
        self._old = None

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        old = signal.getsignal(signal.SIGINT)
        if old is None:  # a handler installed from C: leave it alone
            return

        def handler(signum, frame):
            if self.requested:
                signal.signal(signal.SIGINT, old)
                raise KeyboardInterrupt
            self.requested = True

        self._old = old
        signal.signal(signal.SIGINT, handler)

    def uninstall(self) -> None:
        if self._old is not None:
            import signal

            signal.signal(signal.SIGINT, self._old)
            self._old = None


class _PathLock:
    """An exclusive, non-blocking lock on ``<path>.lock`` (POSIX ``flock``; a no-op where it is missing)."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self._fd = None

    def acquire(self, where: str) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(f"{where}: another process is training into {self.path.with_suffix('')} "
                               f"(it holds {self.path}); wait for it or choose another path") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def _is_spike(norm: float, recent: list[float], factor: float) -> bool:
    """True when ``norm`` is not finite, or ``factor`` times above the median of ``recent`` (16 or more known)."""
    if not math.isfinite(norm):
        return True
    if len(recent) < 16:
        return False
    return norm > factor * float(np.median(recent))


def _stalled(records: list[dict], patience: int) -> bool:
    """True when the best validation loss of the complete epochs is ``patience`` or more epochs old."""
    done = [r for r in records if r.get("complete", True) and r.get("val_loss") is not None]
    if not done:
        return False
    best = min(range(len(done)), key=lambda i: done[i]["val_loss"])
    return done[-1]["epoch"] - done[best]["epoch"] >= patience


__all__ = [
    "TrainingDiverged",
    "History",
    "cosine_decay",
    "make_optimizer",
    "make_scheduler",
    "pick_device",
    "sensible_threads",
    "seed_everything",
    "epoch_permutation",
    "augment_batch",
    "evaluate",
    "fit",
]
