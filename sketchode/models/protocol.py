"""The model protocol: what every model of the library offers, and the one registry of model classes.

:class:`SketchODE`, :class:`MultiStrokeSketchODE` and the LSTM baseline
:class:`RNNAutoencoder` are different networks behind one interface, which
:func:`sketchode.training.fit.fit`, checkpoints and evaluation rely on
(:class:`DrawingAutoencoder`):

* ``config``: the constructor arguments, a JSON-able dict; ``from_config(config)`` rebuilds the model;
* ``format``: ``"full"`` (one sequence per drawing, pen as a channel) or ``"multi"`` (one latent per stroke);
* ``collate(sketches)``: a batch in the model's format; ``loss(batch)``: the eq. 5 loss of a batch;
* ``default_lr`` and ``dynamics_parameters()``: the recipe's learning rate and the parameters it clips.

Checkpoints store the class *name*; :func:`model_class` turns it back into
a class, importing the built-in ones lazily, and :func:`register_model`
adds a reader's own.  The named configs of :mod:`sketchode.training.configs`
use the same names.
"""

from __future__ import annotations

import importlib
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from sketchode.data.sketch import Sketch, uniform_grid

__all__ = ["DrawingAutoencoder", "check_protocol", "register_model", "model_class", "builtin_names",
           "reconstruct_full"]


@runtime_checkable
class DrawingAutoencoder(Protocol):
    """The interface shared by the library's models (a structural type: no base class to inherit)."""

    config: dict

    @classmethod
    def from_config(cls, config: dict): ...

    def collate(self, sketches: Sequence[Sketch]): ...

    def loss(self, batch, return_parts: bool = False): ...


def check_protocol(model, where: str) -> None:
    """TypeError naming what ``model`` lacks of :class:`DrawingAutoencoder` (``where``: the caller, for the message)."""
    missing = [a for a in ("config", "collate", "loss") if not hasattr(model, a)]
    if missing:
        raise TypeError(
            f"{where}: {type(model).__name__} does not follow the model protocol (sketchode.models.protocol): "
            f"missing {', '.join(missing)}"
        )


#: built-in model classes, imported only when a checkpoint needs them
_BUILTIN: dict[str, str] = {
    "RNNAutoencoder": "sketchode.models.lstm:RNNAutoencoder",
    "SketchODE": "sketchode.models.full_sequence:SketchODE",
    "MultiStrokeSketchODE": "sketchode.models.multistroke:MultiStrokeSketchODE",
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
        "Register your own class with sketchode.models.protocol.register_model(cls)"
    )



def builtin_names() -> list[str]:
    """The class names of the library's own models."""
    return sorted(_BUILTIN)


@torch.no_grad()
def reconstruct_full(model, sketches: Sequence[Sketch], G: int | None = None, batch_size: int = 256,
                     pen_threshold: float = 0.5) -> list[Sketch]:
    """Encode and decode a full-sequence model (``encode(batch)``, ``decode(z, t) -> (xy, pen_logit)``).

    Decoded at ``G`` uniform points (default: the model's training ``G``) and
    split into strokes where the pen probability is below ``pen_threshold``.
    The model's train/eval mode is restored afterwards.
    """
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    c = model.config
    G = int(c.get("G", 75) if G is None else G)
    t = torch.as_tensor(uniform_grid(G, c.get("T", 5.0)), dtype=torch.float32, device=dev)
    out = []
    try:
        for i in range(0, len(sketches), batch_size):
            chunk = list(sketches[i:i + batch_size])
            batch = model.collate(chunk).to(dev)
            xy, pen = model.decode(model.encode(batch), t)
            seq = torch.cat([t.expand(len(chunk), G).unsqueeze(-1), xy, torch.sigmoid(pen).unsqueeze(-1)], -1)
            for s, q in zip(chunk, seq.cpu().numpy().astype(np.float64)):
                out.append(Sketch.from_full_sequence(q, label=s.label, key=s.key, pen_threshold=pen_threshold))
    finally:
        model.train(was)
    return out
