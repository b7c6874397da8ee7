"""The models: dynamics, encoder, decoder, loss, and the three autoencoders that share one protocol.

* :mod:`~sketchode.models.dynamics`: MLP fields with periodic activations (4.5; chapters 3, 5)
* :mod:`~sketchode.models.encoder`: the Neural CDE encoder on a natural cubic spline in real time (4.2, eq. 4; chapter 7)
* :mod:`~sketchode.models.decoder`: the second-order augmented ODE decoder (4.1, eq. 2-3, app. B; chapter 8)
* :mod:`~sketchode.models.losses`: Huber + pen cross-entropy (eq. 5; chapter 8)
* :mod:`~sketchode.models.full_sequence`: :class:`SketchODE` (4.1-4.4; chapter 8)
* :mod:`~sketchode.models.multistroke`: :class:`MultiStrokeSketchODE` (4.4, appendix C; chapter 14)
* :mod:`~sketchode.models.lstm`: :class:`RNNAutoencoder`, the LSTM-LSTM baseline (5.2; chapter 9)

Models import the data and numerics layers only: never training, evaluation or the book.
"""

from sketchode.models.full_sequence import SketchODE
from sketchode.models.lstm import RNNAutoencoder
from sketchode.models.multistroke import MultiStrokeSketchODE

__all__ = ["SketchODE", "MultiStrokeSketchODE", "RNNAutoencoder"]
