"""SketchODE from first principles.

The front door, for a researcher::

    import sketchode
    train = sketchode.load("pendigits")               # real handwriting (or "digits", embedded)
    model = sketchode.SketchODE(d=64, l=48, G=75)      # or MultiStrokeSketchODE, RNNAutoencoder (the baseline)
    sketchode.fit(model, train, epochs=10)             # section 5.1's recipe
    sketchode.evaluate(model, "pendigits")             # loss, chamfer, retrieval, recognition (chapter 9)

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
* ``sketchode.neural_ode``: Euler vs RK4, fitting one trajectory, adjoint memory (3; chapter 2)
* ``sketchode.fields``: random MLP vector fields, figure 4 left (4.5; chapter 3)
* ``sketchode.augmented``: first-order, augmented and second-order toy ODEs (4.1, app. B; chapter 4)
* ``sketchode.spectrum``: power spectra, frequency vs ``w``, learned ``w`` (4.5, 5.5; chapter 5)
* ``sketchode.controls``: control paths, splines on real time, resampling sensitivity (4.2; chapter 7)
* ``sketchode.solvers``: fixed-grid RK4 (3/8 rule), stage times, grid checks (5.1; chapter 2)
* ``sketchode.fused``: RK4 of periodic MLP fields with an exact hand-written backward (chapter 8)
* ``sketchode.encoder``: the Neural CDE encoder on a natural cubic spline in real time (4.2, eq. 4; chapter 7)
* ``sketchode.decoder``: the second-order augmented ODE decoder (4.1, eq. 2-3, app. B; chapter 8)
* ``sketchode.model``: ``SketchODE``, the full-sequence autoencoder (4.1-4.4; chapter 8)
* ``sketchode.multistroke``: ``MultiStrokeSketchODE`` (4.4, appendix C; chapters 8, 14)
* ``sketchode.train``: ``fit``, the schedule, ``evaluate`` (5.1; chapter 8)
* ``sketchode.checkpoint``: atomic, versioned checkpoints (chapter 8)
* ``sketchode.configs``: the paper's named settings (5.1; chapters 8-9)
* ``sketchode.bench``: one training step, SketchODE vs LSTM vs naive (6; chapter 8)
* ``sketchode.evaluation``: test loss, chamfer distance and recognition accuracy of reconstructions (5.2; chapter 9)
* ``sketchode.baselines``: the LSTM-LSTM seq2seq autoencoder (5.2; chapter 9)
* ``sketchode.recognition``: the recognition CNN behind the semantic metric (5.2; chapter 9)
* ``sketchode.latent``: interpolation, cyclic walks, conditional sampling (5.2, 5.4, app. E; chapter 10)
* ``sketchode.abstraction``: decoding at lower frequencies, the abstraction effect (5.5; chapter 11)
* ``sketchode.experiments``: grids of runs: table 1 (5.2; chapter 9), data efficiency, ablations (5.3; chapter 12)
* ``sketchode.oneshot``: one-shot fine-tuning on unseen letters (5.4; chapter 13)
* ``sketchode.doodles``: measurements and figures of the multi-stroke model (appendix C; chapter 14)
"""

from sketchode._version import __version__  # noqa: E402

from sketchode import config  # noqa: E402,F401
from sketchode.baselines import RNNAutoencoder  # noqa: E402,F401
from sketchode.data import load  # noqa: E402,F401
from sketchode.evaluation import evaluate_checkpoint as evaluate  # noqa: E402,F401
from sketchode.model import SketchODE  # noqa: E402,F401
from sketchode.multistroke import MultiStrokeSketchODE  # noqa: E402,F401
from sketchode.train import fit  # noqa: E402,F401

__all__ = ["__version__", "config", "SketchODE", "MultiStrokeSketchODE", "RNNAutoencoder", "load", "fit", "evaluate"]
