"""SketchODE from first principles.

The front door, for a researcher::

    import sketchode
    train = sketchode.load("pendigits")               # real handwriting (or "digits", embedded)
    model = sketchode.SketchODE(d=64, l=48, G=75)      # or MultiStrokeSketchODE, RNNAutoencoder (the baseline)
    sketchode.fit(model, train, epochs=10)             # section 5.1's recipe
    sketchode.evaluate(model, "pendigits")             # loss, chamfer, retrieval, recognition (chapter 9)

The package behind *The SketchODE book*: a small PyTorch library for
continuous-time neural models of drawing (Das et al., ICLR 2022).

The folder tree is the map.  Two wings and a front door: the **library**
(``data``, ``numerics``, ``models``, ``training``, ``evaluation``, ``plot``)
is what a researcher imports; the **book wing** (``book/``, one module per
chapter: figures, probes, budgets) and the **command line** (``cli/``) sit
on top of it, and the library never imports them (``tests/test_layers.py``)::

    sketchode/
      __init__.py        the front door: SketchODE, MultiStrokeSketchODE, RNNAutoencoder, load, fit, evaluate
      settings.py        the data root and downloads, read from the environment
      pretrained.py      shipped checkpoints and results, fetched against a SHA-256 registry
      plot.py            figures, rasterisation, SVG, animations
      data/              one drawing (sketch), batching, file formats, datasets and splits,
                         the embedded digits and letters (synthetic), Perlin augmentation (4.4, 4.6, 5.1; ch. 1, 6)
      accel/             the C++ stage loops of the fused solver, built once per machine into a keyed cache
      numerics/          RK4 reference (solvers), fused RK4 with its backward (fused) (5.1; ch. 2, 8)
      models/            dynamics, encoder (CDE), decoder (second-order ODE), losses (eq. 5),
                         full_sequence (SketchODE), multistroke, lstm (the baseline) (4.1-4.5; ch. 3, 7, 8, 14)
      training/          fit, checkpoint, runlog, configs (the paper's named settings) (5.1; ch. 8)
      evaluation/        scores (chamfer, retrieval, recognition), recognition (the CNN), curves (5.2; ch. 9)
      book/              the chapters' wing: budget (SKETCHODE_FAST, load_or_train) and one chNN_*.py per chapter
      cli/               python -m sketchode: main, bench, campaign
"""

from sketchode._version import __version__  # noqa: E402

from sketchode.models.lstm import RNNAutoencoder  # noqa: E402,F401
from sketchode.data import load  # noqa: E402,F401
from sketchode.evaluation.scores import evaluate_checkpoint as evaluate  # noqa: E402,F401
from sketchode.models.full_sequence import SketchODE  # noqa: E402,F401
from sketchode.models.multistroke import MultiStrokeSketchODE  # noqa: E402,F401
from sketchode.training.fit import fit  # noqa: E402,F401

__all__ = ["__version__", "SketchODE", "MultiStrokeSketchODE", "RNNAutoencoder", "load", "fit", "evaluate"]
