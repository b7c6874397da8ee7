"""Checkpoints: save and restore models and training state (the library's own contract).

No paper section prescribes a file format; this module fixes the one used by
:func:`sketchode.train.fit`, the command line and the book (chapter 8).  A
checkpoint is one file written by :func:`torch.save` holding a plain dict

==================  ======================================================
``format``          ``"sketchode-checkpoint"``
``format_version``  ``1`` (:data:`FORMAT_VERSION`); readers refuse newer ones
``package_version`` ``sketchode.__version__`` of the writer
``class``           the model's class name (``"RNNAutoencoder"``, ...)
``config``          ``model.config``: JSON-able constructor arguments
``state_dict``      ``model.state_dict()``
``optimizer``       ``optimizer.state_dict()`` or ``None``
``scheduler``       ``scheduler.state_dict()`` or ``None``
``train_state``     a dict of plain values (step, epoch, history, ...) or ``{}``
==================  ======================================================

Design rules
------------
* **Loadable with** ``torch.load(path, weights_only=True)``: the file holds
  only tensors, dicts, lists, tuples, strings, numbers, booleans and ``None``
  (checked before writing; numpy scalars are turned into Python numbers, any
  other object is refused with the place where it was found).  Loading never
  runs pickled code.
* **Atomic writes**: the file is written to a temporary file in the same
  folder, flushed and ``fsync``-ed, then moved over the target with
  :func:`os.replace`.  A crash while writing leaves the previous checkpoint
  intact and removes the temporary file.
* **Rebuilding a model** needs no pickled class: ``class`` is looked up in a
  registry of names (built-in models are imported lazily, user classes are
  added with :func:`register_model`) and the model is rebuilt with
  ``cls.from_config(config)``.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sketchode

FORMAT = "sketchode-checkpoint"
FORMAT_VERSION = 1

#: built-in model classes, imported only when a checkpoint needs them
_BUILTIN: dict[str, str] = {
    "RNNAutoencoder": "sketchode.baselines:RNNAutoencoder",
    "SketchODE": "sketchode.model:SketchODE",
    "MultiStrokeSketchODE": "sketchode.multistroke:MultiStrokeSketchODE",
}
#: classes registered by users (and built-ins once imported)
_REGISTERED: dict[str, type] = {}


# ------------------------------------------------------------------ registry
def register_model(cls: type, name: str | None = None) -> type:
    """Make ``cls`` loadable by :func:`load_model` under ``name`` (default: its class name).

    ``cls`` must implement the model protocol used by checkpoints: a
    ``from_config(config)`` class method and a ``config`` dict on instances.
    Returns ``cls``, so it can be used as a class decorator.
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_model: expected a class, got {type(cls).__name__}")
    if not callable(getattr(cls, "from_config", None)):
        raise TypeError(f"register_model: {cls.__name__} has no from_config(config) class method")
    _REGISTERED[name or cls.__name__] = cls
    return cls


def model_class(name: str) -> type:
    """The model class registered under ``name`` (built-ins are imported on first use)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ImportError(
                f"model class {name!r} lives in {_BUILTIN[name]}, which could not be imported: {e}"
            ) from e
        return cls
    known = sorted(set(_BUILTIN) | set(_REGISTERED))
    raise ValueError(
        f"unknown model class {name!r}; known classes: {known}. "
        "Register your own class with sketchode.checkpoint.register_model(cls)"
    )


# ------------------------------------------------------------ plain payload
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy scalars turned into Python numbers; TypeError for anything not weights_only-safe."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(
                    f"save_checkpoint: {where} has a key {k!r} of type {type(k).__name__}; use str or int keys"
                )
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"save_checkpoint: {where} is a {type(obj).__module__}.{type(obj).__name__}, which "
        "torch.load(weights_only=True) cannot read; store tensors, numbers, strings, lists or dicts"
    )


def _major(version: str) -> int | None:
    m = re.match(r"\s*(\d+)", str(version))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------- save
def atomic_save(payload, path) -> Path:
    """``torch.save(payload)`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    A crash mid-write leaves the previous file intact and no temp file behind.
    Used for checkpoints and for recognizers (:mod:`sketchode.recognition`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # make the rename itself durable where the platform allows it
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    train_state: dict | None = None,
) -> Path:
    """Write ``model`` (and optionally optimiser, scheduler, training state) to ``path`` atomically.

    The payload is the dict described in the module docstring.  It is checked
    to be readable with ``torch.load(weights_only=True)``, written to a
    temporary file next to ``path``, flushed and ``fsync``-ed, and moved over
    ``path`` with :func:`os.replace`: readers see either the old file or the
    complete new one, never a partial file, and a failure while writing
    removes the temporary file and leaves the old checkpoint untouched.
    Missing parent folders are created.  Returns the path.
    """
    path = Path(path)
    if not hasattr(model, "config"):
        raise TypeError(f"save_checkpoint({path}): {type(model).__name__} has no .config (constructor arguments)")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": sketchode.__version__,
        "class": type(model).__name__,
        "config": _plain(dict(model.config), "model.config"),
        "state_dict": _plain(dict(model.state_dict()), "model.state_dict()"),
        "optimizer": None if optimizer is None else _plain(optimizer.state_dict(), "optimizer.state_dict()"),
        "scheduler": None if scheduler is None else _plain(scheduler.state_dict(), "scheduler.state_dict()"),
        "train_state": _plain(dict(train_state or {}), "train_state"),
    }
    return atomic_save(payload, path)


# --------------------------------------------------------------------- load
def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint with ``torch.load(weights_only=True)``; returns the payload dict.

    Raises FileNotFoundError when ``path`` does not exist, and ValueError
    naming ``path`` when the file is not a sketchode checkpoint, has a newer
    ``format_version`` than this library reads, or was written by a newer
    major version of the package.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise ValueError(
            f"load_checkpoint: {path} is not a sketchode checkpoint (torch.load(weights_only=True) failed: {e})"
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = f"format {ckpt.get('format')!r}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise ValueError(
            f"load_checkpoint: {path} is not a sketchode checkpoint (it holds {what}, expected format {FORMAT!r})"
        )
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"load_checkpoint: {path} has checkpoint format_version {version!r}, but sketchode "
            f"{sketchode.__version__} reads format_version <= {FORMAT_VERSION}; upgrade sketchode"
        )
    theirs, ours = _major(ckpt.get("package_version", "")), _major(sketchode.__version__)
    if theirs is not None and ours is not None and theirs > ours:
        raise ValueError(
            f"load_checkpoint: {path} was written by sketchode {ckpt['package_version']}, a newer major "
            f"version than this one ({sketchode.__version__}); upgrade sketchode"
        )
    missing = [k for k in ("class", "config", "state_dict") if k not in ckpt]
    if missing:
        raise ValueError(f"load_checkpoint: {path} is a damaged sketchode checkpoint: missing {missing}")
    return ckpt


def load_model(path: str | os.PathLike, map_location="cpu") -> torch.nn.Module:
    """Rebuild the model stored at ``path`` (``cls.from_config(config)`` + weights), in eval mode.

    The class is looked up by name (:func:`model_class`): built-in models
    and classes added with :func:`register_model`.  The model is moved to
    ``map_location`` when it names a device.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    try:
        cls = model_class(ckpt["class"])
    except (ValueError, ImportError) as e:
        raise type(e)(f"load_model: {path}: {e}") from e
    model = cls.from_config(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()


def config_differences(a: dict, b: dict, names: tuple[str, str] = ("checkpoint", "model")) -> list[str]:
    """Lines ``"key: <names[0]> va, <names[1]> vb"`` for every key whose values differ (sorted by key)."""
    absent = "<absent>"
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k, absent), b.get(k, absent)
        if va != vb:
            out.append(f"{k}: {names[0]} {va!r}, {names[1]} {vb!r}")
    return out


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load the weights stored at ``path`` into the existing ``model``; returns ``model``.

    Refuses (ValueError naming ``path``) a checkpoint of another class or
    with another ``config``, listing every differing key with both values
    (``"d: checkpoint 64, model 96"``), before any weight is touched.  The
    model's train/eval mode and device are unchanged.
    """
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    ckpt = load_checkpoint(path, map_location=device)
    problems = []
    if ckpt["class"] != type(model).__name__:
        problems.append(f"class: checkpoint {ckpt['class']}, model {type(model).__name__}")
    problems += config_differences(ckpt["config"], dict(getattr(model, "config", {})))
    if problems:
        raise ValueError(f"load_weights: {path} does not match the model: " + "; ".join(problems))
    model.load_state_dict(ckpt["state_dict"])
    return model


__all__ = [
    "atomic_save",
    "FORMAT",
    "FORMAT_VERSION",
    "register_model",
    "model_class",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "config_differences",
]
