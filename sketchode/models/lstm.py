"""Deterministic LSTM-LSTM Seq2Seq baseline (paper sections 5.1-5.2).

The paper compares SketchODE with "an LSTM-LSTM Seq2Seq model with same
hidden dimension".  This module implements it for the full-sequence format
(:class:`~sketchode.data.batching.FullBatch`):

* :class:`BiLSTMEncoder` - a bidirectional LSTM over the control path
  ``(t, x, y, pen)`` (``in_dim=4``) or the points ``(x, y, pen)``
  (``in_dim=3``); the final forward and backward hidden states are
  concatenated and mapped by a Linear layer to the latent code ``z``.
  With a mask only the true entries are read, in time order: they are moved
  to the front of each row (stable) and the rows are packed with
  :func:`~torch.nn.utils.rnn.pack_padded_sequence`, so padding, and for the
  union grid the interpolated not-own points, never reach the encoder.
* :class:`LSTMDecoder` - a deterministic LSTM conditioned on ``z`` at every
  step.  **Design choice:** the per-step input is ``[z, t]`` (latent code
  concatenated with the time of the step, as sketch-rnn concatenates ``z`` to
  its input) and there is *no* teacher forcing and no feedback of previous
  outputs: decoding needs only ``z`` and a time grid, so training and
  inference (reconstruction, interpolation of ``z``, decoding at another
  granularity ``G``) run the very same computation, like SketchODE's decoder
  ``z -> trajectory``.  The initial state is ``(h0, c0) = tanh(Linear(z))``.
  Each step outputs absolute ``x, y`` and the logit of "pen up".
* :class:`RNNAutoencoder` - encoder + decoder + the eq. 5 loss
  (:func:`sketchode.models.losses.reconstruction_loss`), same ``d`` (hidden) and
  ``l`` (latent) as SketchODE; ``config`` holds the constructor arguments for
  checkpoints (``RNNAutoencoder(**config)`` rebuilds it).  It follows the
  model protocol of :mod:`sketchode.training.fit` and :mod:`sketchode.training.checkpoint`:
  ``config`` / ``from_config``, ``collate`` (list of normalised sketches ->
  :class:`FullBatch` on a uniform grid of ``G`` points over ``[0, T]``),
  ``loss``, ``default_lr = 1e-4`` and ``dynamics_parameters`` (the LSTM
  weights, the parameters that get weight decay; section 5.1).

All public entry points validate their inputs (shape, empty batch, NaN/inf)
and raise :class:`ValueError` before any computation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from sketchode.data.batching import FullBatch, collate_full
from sketchode.data.sketch import T_DEFAULT


def _check_seq(x, in_dim: int, where: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a tensor (B, G, {in_dim}), got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != in_dim:
        raise ValueError(f"{where}: expected shape (B, G, {in_dim}), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: empty batch, shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{where}: expected a floating-point tensor, got dtype {x.dtype}")


def _check_mask(mask, B: int, G: int, where: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{where}: mask must be a bool tensor (B, G), got {type(mask).__name__}")
    if tuple(mask.shape) != (B, G):
        raise ValueError(f"{where}: mask must have shape (B, G) = ({B}, {G}), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{where}: mask must be bool, got dtype {mask.dtype}")
    if not bool(mask.any(dim=1).all()):
        raise ValueError(f"{where}: every sample needs at least one true mask entry")


class BiLSTMEncoder(nn.Module):
    """Bidirectional LSTM encoder ``(B, G, in_dim) -> z (B, latent)``."""

    def __init__(self, in_dim: int = 4, hidden: int = 64, latent: int = 48, num_layers: int = 1):
        super().__init__()
        if in_dim not in (3, 4):
            raise ValueError(f"BiLSTMEncoder: in_dim must be 4 (t, x, y, pen) or 3 (x, y, pen), got {in_dim}")
        if hidden < 1 or latent < 1 or num_layers < 1:
            raise ValueError(f"BiLSTMEncoder: hidden, latent, num_layers must be >= 1, got {hidden}, {latent}, {num_layers}")
        self.in_dim, self.hidden, self.latent = in_dim, hidden, latent
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.to_z = nn.Linear(2 * hidden, latent)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_seq(x, self.in_dim, "BiLSTMEncoder")
        B, G = x.shape[:2]
        if mask is not None:
            _check_mask(mask, B, G, "BiLSTMEncoder")
            mask = mask.to(x.device)
            # values at masked entries are never read: zero them (also removes NaN there)
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if not bool(torch.isfinite(x).all()):
            raise ValueError("BiLSTMEncoder: input has NaN/inf (at unmasked entries)")
        if mask is None or bool(mask.all()):
            _, (h, _) = self.lstm(x)
        else:
            # move the valid entries to the front of each row, keeping their order
            order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
            xs = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            lengths = mask.sum(dim=1).cpu()
            packed = pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
        # h: (num_layers * 2, B, hidden); last layer's forward and backward states
        hcat = torch.cat([h[-2], h[-1]], dim=-1)
        return self.to_z(hcat)


class LSTMDecoder(nn.Module):
    """Deterministic LSTM decoder ``(z, t) -> (xy (B, G, 2), pen_logit (B, G))``.

    Per-step input ``[z, t]``; initial ``(h, c) = tanh(Linear(z))``; no teacher
    forcing (see the module docstring).
    """

    def __init__(self, latent: int = 48, hidden: int = 64, num_layers: int = 1):
        super().__init__()
        if hidden < 1 or latent < 1 or num_layers < 1:
            raise ValueError(f"LSTMDecoder: hidden, latent, num_layers must be >= 1, got {hidden}, {latent}, {num_layers}")
        self.latent, self.hidden, self.num_layers = latent, hidden, num_layers
        self.init = nn.Linear(latent, 2 * num_layers * hidden)
        self.lstm = nn.LSTM(latent + 1, hidden, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden, 3)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(z, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise TypeError("LSTMDecoder: z and t must be tensors")
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ValueError(f"LSTMDecoder: z must have shape (B, {self.latent}), got {tuple(z.shape)}")
        B = z.shape[0]
        if B == 0:
            raise ValueError("LSTMDecoder: empty batch (z has 0 rows)")
        if t.ndim == 1:
            t = t.unsqueeze(0).expand(B, -1)
        elif not (t.ndim == 2 and t.shape[0] == B):
            raise ValueError(f"LSTMDecoder: t must have shape (G,) or (B, G) = ({B}, G), got {tuple(t.shape)}")
        G = t.shape[1]
        if G == 0:
            raise ValueError("LSTMDecoder: empty time grid (G = 0)")
        if not bool(torch.isfinite(z).all()) or not bool(torch.isfinite(t).all()):
            raise ValueError("LSTMDecoder: z or t has NaN/inf")
        t = t.to(device=z.device, dtype=z.dtype)
        inp = torch.cat([z.unsqueeze(1).expand(B, G, self.latent), t.unsqueeze(-1)], dim=-1)
        hc = torch.tanh(self.init(z)).view(B, 2, self.num_layers, self.hidden)
        h0 = hc[:, 0].transpose(0, 1).contiguous()
        c0 = hc[:, 1].transpose(0, 1).contiguous()
        y, _ = self.lstm(inp, (h0, c0))
        o = self.out(y)
        return o[..., :2], o[..., 2]


class RNNAutoencoder(nn.Module):
    """LSTM-LSTM Seq2Seq autoencoder baseline (paper 5.1-5.2) with hidden ``d`` and latent ``l``.

    Parameters
    ----------
    d : hidden size of both LSTMs (SketchODE's ``d``).
    l : latent size (SketchODE's ``l``).
    in_dim : 4 to encode ``batch.path`` (t, x, y, pen), 3 to encode ``batch.points``.
    num_layers : LSTM layers of encoder and decoder.
    beta, pen_weight : of :func:`sketchode.models.losses.reconstruction_loss`.
    G, T : the uniform training grid of :meth:`collate` (``G`` points over ``[0, T]``).

    Attributes
    ----------
    default_lr : ``1e-4``, the learning rate section 5.1 gives for the
        baselines (SketchODE models use ``3e-3``); :func:`sketchode.training.fit.fit`
        uses it when no ``lr`` is given.
    """

    #: learning rate of the baselines (paper 5.1)
    default_lr: float = 1e-4

    def __init__(
        self,
        d: int = 64,
        l: int = 48,  # noqa: E741
        in_dim: int = 4,
        num_layers: int = 1,
        beta: float = 1.0,
        pen_weight: float = 1.0,
        G: int = 75,
        T: float = T_DEFAULT,
    ):
        super().__init__()
        if int(G) != G or G < 1:
            raise ValueError(f"RNNAutoencoder: G (points of the training grid) must be an integer >= 1, got {G!r}")
        if not (T > 0):
            raise ValueError(f"RNNAutoencoder: T (end of the time grid) must be > 0, got {T!r}")
        self.config = dict(
            d=d, l=l, in_dim=in_dim, num_layers=num_layers, beta=beta, pen_weight=pen_weight, G=int(G), T=float(T)
        )
        self.encoder = BiLSTMEncoder(in_dim=in_dim, hidden=d, latent=l, num_layers=num_layers)
        self.decoder = LSTMDecoder(latent=l, hidden=d, num_layers=num_layers)

    @classmethod
    def from_config(cls, config: dict) -> "RNNAutoencoder":
        """Rebuild a (freshly initialised) model from its :attr:`config` dict (for checkpoints)."""
        return cls(**config)

    def collate(self, sketches) -> FullBatch:
        """Batch normalised sketches for :meth:`loss` (appendix D).

        :func:`~sketchode.data.batching.collate_full` on the uniform grid of
        ``config["G"]`` points over ``[0, config["T"]]``.
        """
        return collate_full(sketches, grid="uniform", G=self.config["G"], T=self.config["T"])

    def dynamics_parameters(self) -> list[nn.Parameter]:
        """The parameters that get weight decay (paper 5.1): the encoder and decoder LSTM weights.

        Section 5.1 puts weight decay ``1e-2`` on "the weight of the dynamics
        networks"; for this baseline the recurrent cells play that part.  The
        input/output Linear layers get none.
        """
        return list(self.encoder.lstm.parameters()) + list(self.decoder.lstm.parameters())

    def _input(self, batch_or_path, mask=None):
        if isinstance(batch_or_path, torch.Tensor):
            return batch_or_path, mask
        if hasattr(batch_or_path, "points") and hasattr(batch_or_path, "t"):
            x = batch_or_path.path if self.config["in_dim"] == 4 else batch_or_path.points
            m = batch_or_path.mask if mask is None else mask
            return x, m
        raise TypeError(f"RNNAutoencoder: expected a FullBatch or a tensor, got {type(batch_or_path).__name__}")

    def encode(self, batch_or_path, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, l)`` from a :class:`FullBatch` (its path/points and mask) or a ``(B, G, in_dim)`` tensor."""
        x, m = self._input(batch_or_path, mask)
        return self.encoder(x, m)

    def decode(self, z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(xy (B, G, 2), pen_logit (B, G))`` at the time grid ``t`` (``(G,)`` or ``(B, G)``)."""
        p = next(self.parameters())
        z = torch.as_tensor(z).to(p.device, p.dtype)  # a float64 code decodes too, as encode casts its input
        return self.decoder(z, torch.as_tensor(t).to(p.device, p.dtype))

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(xy, pen_logit, z)`` reconstructing ``batch`` at its own time grid ``batch.t``."""
        z = self.encode(batch)
        xy, pen = self.decode(z, batch.t)
        return xy, pen, z

    def loss(self, batch, return_parts: bool = False):
        """Masked eq. 5 reconstruction loss of ``batch`` (Huber on x, y + pen BCE)."""
        from sketchode.models.losses import reconstruction_loss

        xy, pen, _ = self(batch)
        return reconstruction_loss(
            xy,
            pen,
            batch.points,
            mask=batch.mask,
            beta=self.config["beta"],
            pen_weight=self.config["pen_weight"],
            return_parts=return_parts,
        )


__all__ = ["BiLSTMEncoder", "LSTMDecoder", "RNNAutoencoder"]
