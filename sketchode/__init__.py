"""SketchODE from first principles.

The package behind *The SketchODE book*: a small PyTorch library for
continuous-time neural models of drawing (Das et al., ICLR 2022).

Modules map to the paper's sections and the book's chapters:

* ``sketchode.data.sketch``: one drawing, its two formats, re-sampling (4.4, appendix D; chapter 1)
* ``sketchode.data.batching``: mini-batches with masks (appendix D; chapter 1)
* ``sketchode.data.formats`` and ``sketchode.data.datasets``: file formats, data root, splits (5.1; chapter 1)
* ``sketchode.data.synthetic``: the embedded digits and letters, a VectorMNIST stand-in (5.1; chapter 1)
* ``sketchode.data.augment``: Perlin noise augmentation (4.6; chapter 6)
* ``sketchode.plot``: figures, rasterisation, SVG, animations (every chapter)
* ``sketchode.dynamics``: MLP dynamics with periodic activations, ``override_w`` (4.5, 5.5; chapters 3, 5)
* ``sketchode.losses``: Huber + pen cross-entropy reconstruction loss (eq. 5; chapter 8)
* ``sketchode.baselines``: the LSTM-LSTM seq2seq autoencoder (5.2; chapter 9)
* ``sketchode.recognition``: the recognition CNN behind the semantic metric (5.2; chapter 9)
"""

__version__ = "0.1.0"

from sketchode import config  # noqa: E402,F401

__all__ = ["__version__", "config"]
