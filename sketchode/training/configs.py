"""Named configurations: the paper's settings, one name each (section 5.1; chapters 8-9).

=================  =========================  ====  ====  ==========  ===  ==================================
name               model                      d     l     format      G    dataset
=================  =========================  ====  ====  ==========  ===  ==================================
``digits``         SketchODE                  64    48    full-seq.   75   ``digits``
``vectormnist``    SketchODE                  64    48    full-seq.   75   ``vectormnist``
``digits-rnn``     RNNAutoencoder (baseline)  64    48    full-seq.   75   ``digits``
``pendigits``      SketchODE                  64    48    full-seq.   75   ``pendigits`` (real digits)
``pendigits-rnn``  RNNAutoencoder (baseline)  64    48    full-seq.   75   ``pendigits``
``omniglot``       SketchODE                  64    48    full-seq.   75   ``omniglot-strokes``
``omniglot-rnn``   RNNAutoencoder (baseline)  64    48    full-seq.   75   ``omniglot-strokes``
``sheep``          MultiStrokeSketchODE       144   96    multi       30   ``sheep``
``sheep-rnn``      RNNAutoencoder (baseline)  144   96    full-seq.   200  ``sheep``
``sheep-full``     SketchODE                  64    48    full-seq.   200  ``sheep``
``quickdraw``      MultiStrokeSketchODE       144   96    multi       30   ``sheep``
``doodles``        MultiStrokeSketchODE       144   96    multi       30   ``quickdraw-raw/face,fish,flower``
``didi``           MultiStrokeSketchODE       96    84    multi       30   ``didi``
``tiny``           SketchODE                  16    8     full-seq.   25   ``digits``
=================  =========================  ====  ====  ==========  ===  ==================================

Dynamics MLPs have hidden width ``ceil(1.2 d)``: two hidden layers for the
full-sequence format, one for multi-stroke (section 5.1).  ``T = 5``,
``cos`` activations.  ``digits`` is the embedded VectorMNIST stand-in, so the
``digits`` config runs anywhere without downloads; ``vectormnist`` needs the
authors' files under the data root.  ``tiny`` exists for tests and quick demos.
The ``-rnn`` configs are the LSTM-LSTM baseline at the same ``d`` and ``l``
(chapter 9); on sheep it reads the full sequence (strokes joined by pen-up
segments) on ``G = 200`` points, about 1.6 per point of the mean drawing
(125 points, 11.6 strokes).  ``omniglot`` is the digits setting on Omniglot
handwriting with its recorded pen timing (``omniglot-strokes``); ``doodles``
is the Quick, Draw! setting on the face, fish and flower samples (chapter 14).

The multi-stroke configs start the decoder at zero acceleration
(``zero_last=True``, torchdiffeq's advice: without it the first steps blow
the point loss up). The full-sequence configs keep the paper's choice of the
pen as a visible coordinate of the state (``pen="state"``, section 4.4);
``pen="hidden"`` reads it from the decoder's hidden position, as the
authors' code does. Frequencies: ``w = 1`` (fixed). The short comparisons
behind these choices are on the book's "Measurements" page.

Training settings (``train`` of each config) are keyword arguments of
:func:`sketchode.training.fit.fit`; anything can be overridden:
``build_model("digits", d=32)``, ``get_config("digits").train | {"epochs": 5}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["NamedConfig", "CONFIGS", "get_config", "build_model", "names"]


@dataclass(frozen=True)
class NamedConfig:
    """A model class with its constructor arguments, the dataset it trains on and its training settings."""

    name: str
    model: str  # a class name of the model registry (sketchode.models.protocol)
    kwargs: dict
    dataset: str
    train: dict = field(default_factory=dict)
    description: str = ""

    def model_class(self):
        from sketchode.models.protocol import model_class

        return model_class(self.model)

    def build(self, **overrides):
        """The model, with ``overrides`` applied to the constructor arguments."""
        return self.model_class()(**{**self.kwargs, **overrides})


_ODE_TRAIN = dict(batch_size=64, weight_decay=1e-2, clip=0.01, period=100, decay=4.0, augment_sigma=0.0)
_RNN_TRAIN = dict(batch_size=64, lr=1e-4, weight_decay=1e-2, clip=0.01, period=100, decay=4.0)
_FULL = dict(d=64, l=48, G=75, n_hidden=2, w=1.0)
_MULTI = dict(d=144, l=96, G=30, n_hidden=1, zero_last=True)

CONFIGS: dict[str, NamedConfig] = {
    c.name: c
    for c in [
        NamedConfig("digits", "SketchODE", dict(_FULL), "digits",
                    dict(_ODE_TRAIN, lr=3e-3), "Full-sequence SketchODE on the embedded digits (VectorMNIST stand-in)."),
        NamedConfig("vectormnist", "SketchODE", dict(_FULL), "vectormnist", dict(_ODE_TRAIN, lr=3e-3), "Full-sequence SketchODE on VectorMNIST (section 5.1)."),
        NamedConfig("digits-rnn", "RNNAutoencoder", dict(d=64, l=48, G=75), "digits",
                    dict(_RNN_TRAIN), "The LSTM-LSTM seq2seq baseline at the same d and l (section 5.2)."),
        NamedConfig("pendigits", "SketchODE", dict(_FULL), "pendigits", dict(_ODE_TRAIN, lr=3e-3),
                    "Full-sequence SketchODE on real handwritten digits (UCI pen-based digits, 44 writers)."),
        NamedConfig("pendigits-rnn", "RNNAutoencoder", dict(d=64, l=48, G=75), "pendigits",
                    dict(_RNN_TRAIN), "The LSTM-LSTM baseline on the real digits (chapter 9)."),
        NamedConfig("omniglot", "SketchODE", dict(_FULL), "omniglot-strokes",
                    dict(_ODE_TRAIN, lr=3e-3), "Full-sequence SketchODE on Omniglot handwriting with pen timing."),
        NamedConfig("omniglot-rnn", "RNNAutoencoder", dict(d=64, l=48, G=75), "omniglot-strokes",
                    dict(_RNN_TRAIN), "The LSTM-LSTM baseline on Omniglot (chapter 9)."),
        NamedConfig("sheep", "MultiStrokeSketchODE", dict(_MULTI),
                    "sheep", dict(_ODE_TRAIN, lr=3e-3), "Multi-stroke SketchODE on Quick, Draw! sheep (section 5.1)."),
        NamedConfig("sheep-rnn", "RNNAutoencoder", dict(d=144, l=96, G=200), "sheep",
                    dict(_RNN_TRAIN), "The LSTM-LSTM baseline on sheep, full sequence (chapter 9)."),
        NamedConfig("sheep-full", "SketchODE", dict(_FULL, G=200), "sheep",
                    dict(_ODE_TRAIN, lr=3e-3, warmup=500),
                    "Full-sequence SketchODE on sheep (strokes joined by pen-up segments, G=200), with a "
                    "500-step warm-up of the learning rate (chapter 9)."),
        NamedConfig("quickdraw", "MultiStrokeSketchODE", dict(_MULTI),
                    "sheep", dict(_ODE_TRAIN, lr=3e-3), "Alias of the paper's Quick, Draw! setting, on the sheep file."),
        NamedConfig("doodles", "MultiStrokeSketchODE", dict(_MULTI),
                    "quickdraw-raw/face,fish,flower", dict(_ODE_TRAIN, lr=3e-3, batch_size=32),
                    "Multi-stroke SketchODE on the Quick, Draw! face, fish and flower samples (chapter 14)."),
        NamedConfig("didi", "MultiStrokeSketchODE", dict(_MULTI, d=96, l=84),
                    "didi", dict(_ODE_TRAIN, lr=3e-3), "Multi-stroke SketchODE on DiDi diagrams (section 5.1)."),
        NamedConfig("tiny", "SketchODE", dict(d=16, l=8, G=25, n_hidden=1), "digits",
                    dict(_ODE_TRAIN, lr=3e-3), "A small full-sequence model for tests and quick demos."),
    ]
}


def names() -> list[str]:
    """The names of the configurations."""
    return list(CONFIGS)


def get_config(name: str) -> NamedConfig:
    """The :class:`NamedConfig` called ``name`` (clear error listing the names otherwise)."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}") from None


def build_model(name: str, **overrides):
    """A fresh model of the named configuration (constructor arguments overridable)."""
    return get_config(name).build(**overrides)
