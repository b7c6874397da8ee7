"""SketchODE, the full-sequence autoencoder (paper sections 4.1-4.4, eq. 2-5; chapter 8).

``SketchODE`` = :class:`~sketchode.models.encoder.CDEEncoder` (a drawing's path
``[t, x, y, pen]`` to a latent code ``z``) + :class:`~sketchode.models.decoder.ODEDecoder`
(``z`` to the continuous trajectory ``s(t) = (x(t), y(t), pen logit(t))``),
trained with the eq. 5 loss (Huber on positions + pen cross-entropy,
:func:`~sketchode.models.losses.reconstruction_loss`) on ``G`` uniform points of
``[0, T]``.

Decoding is continuous: :meth:`SketchODE.decode` takes *any* increasing time
grid starting at or after 0, so a drawing trained at ``G = 75`` can be
rendered at ``G = 1000`` (the RK4 step is then the finer spacing).

The model follows the library's model protocol, which
:mod:`sketchode.training.fit` and :mod:`sketchode.training.checkpoint` rely on: ``config``
(the constructor arguments, JSON-able) and ``from_config``, ``collate``,
``loss``, ``default_lr``, ``dynamics_parameters``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from sketchode.data.batching import collate_full
from sketchode.data.sketch import JOIN_POINTS, T_DEFAULT, Sketch, uniform_grid
from sketchode.models.decoder import ODEDecoder
from sketchode.models.dynamics import paper_hidden
from sketchode.models.encoder import CDEEncoder
from sketchode.models.losses import reconstruction_loss
from sketchode.models.protocol import reconstruct_full
from sketchode.numerics.solvers import check_solver

__all__ = ["SketchODE"]


class SketchODE(nn.Module):
    """The full-sequence SketchODE autoencoder (section 4, figure 3).

    Parameters
    ----------
    d : hidden size of the encoder CDE and of the decoder's augmentation ``h``.
    l : latent size.
    G, T : training grid: ``G`` uniform points on ``[0, T]`` (paper: 75, 5).
    hidden : hidden widths of both dynamics MLPs (default ``n_hidden`` layers
        of ``ceil(1.2 d)``, section 5.1).
    n_hidden : number of hidden layers when ``hidden`` is not given (2 for the
        full-sequence format).
    activation, w, learn_w, init : dynamics family (section 4.5).
    cde_final : activation after the CDE field's last layer (``None`` or
        ``"tanh"``; with periodic hidden layers the field is bounded anyway).
    readout : ``"final"`` (``z = L_enc(g(t1))``, the paper) or ``"max"``.
    zero_last : start the decoder at zero acceleration.
    solver : ``"fast"`` (fused RK4, the default) or ``"reference"``
        (torchcde + torchdiffeq, the paper's composition).
    adjoint : adjoint backpropagation (needs ``solver="reference"``).
    beta, pen_weight : of the eq. 5 loss.
    join_points : samples on each straight pen-up join (full-sequence format).
    pen : ``"state"`` (the paper, 4.4: the pen is a visible coordinate of the
        state, starting at 0) or ``"hidden"`` (a Linear read-out of the hidden
        position ``h(t)``, which the full-sequence decoder otherwise never
        uses; x and y stay visible coordinates starting at 0).
    """

    default_lr = 3e-3
    format = "full"

    def __init__(self, d: int = 64, l: int = 48, G: int = 75, T: float = T_DEFAULT,  # noqa: E741
                 hidden: Sequence[int] | None = None, n_hidden: int = 2, activation: str = "cos", w: float = 1.0,
                 learn_w: bool = False, init: str = "default", cde_final: str | None = None,
                 readout: str = "final", zero_last: bool = False, solver: str = "fast", adjoint: bool = False,
                 beta: float = 1.0, pen_weight: float = 1.0, join_points: int = JOIN_POINTS,
                 pen: str = "state"):
        super().__init__()
        check_solver(solver, adjoint, "SketchODE")
        if pen not in ("state", "hidden"):
            raise ValueError(f"SketchODE: pen must be 'state' or 'hidden', got {pen!r}")
        if int(G) < 2 or not T > 0:
            raise ValueError(f"SketchODE: need G >= 2 and T > 0, got G={G}, T={T}")
        hidden = list(paper_hidden(d, n_hidden) if hidden is None else hidden)
        self.config = dict(d=d, l=l, G=int(G), T=float(T), hidden=hidden, n_hidden=n_hidden,
                           activation=activation, w=float(w), learn_w=bool(learn_w), init=init,
                           cde_final=cde_final, readout=readout, zero_last=bool(zero_last), solver=solver,
                           adjoint=bool(adjoint), beta=float(beta), pen_weight=float(pen_weight),
                           join_points=int(join_points), pen=pen)
        dyn = dict(hidden=hidden, activation=activation, w=w, learn_w=learn_w, init=init)
        self.encoder = CDEEncoder(channels=4, d=d, latent=l, final=cde_final, readout=readout,
                                  solver="fast" if solver == "fast" else "torchcde", adjoint=adjoint, **dyn)
        self.decoder = ODEDecoder(latent=l, d=d, visible=3 if pen == "state" else 2, zero_last=zero_last,
                                  solver="fast" if solver == "fast" else "torchdiffeq", adjoint=adjoint, **dyn)
        # pen="hidden": the pen logit is a linear read-out of the hidden position h(t) (the authors'
        # code reads x, y and the pen from the position state, an "observation model")
        self.pen_readout = nn.Linear(d, 1) if pen == "hidden" else None

    @classmethod
    def from_config(cls, config: dict) -> "SketchODE":
        """Rebuild a model from its :attr:`config`."""
        return cls(**config)

    # ---------------------------------------------------------------- data
    @property
    def t(self) -> torch.Tensor:
        """The training grid: ``G`` uniform points of ``[0, T]``."""
        return torch.as_tensor(uniform_grid(self.config["G"], self.config["T"]), dtype=torch.float32)

    def collate(self, sketches: Sequence[Sketch], grid: str = "uniform"):
        """A :class:`~sketchode.data.batching.FullBatch` of normalised sketches on the model's grid."""
        c = self.config
        return collate_full(sketches, grid=grid, G=c["G"], T=c["T"], join_points=c["join_points"])

    def dynamics_parameters(self) -> list[nn.Parameter]:
        """Weights of the two dynamics networks (the only ones with weight decay, section 5.1)."""
        return [p for m in (self.encoder.field, self.decoder.F) for n, p in m.named_parameters() if "w_raw" not in n]

    # ------------------------------------------------------------- the model
    def encode(self, batch_or_path, t: torch.Tensor | None = None) -> torch.Tensor:
        """``z (B, l)`` of a :class:`FullBatch`, or of a path ``(B, G, 4)`` (``t, x, y, pen``) on grid ``t``."""
        if hasattr(batch_or_path, "path") and hasattr(batch_or_path, "t"):
            path, t = batch_or_path.path, batch_or_path.t
        elif isinstance(batch_or_path, torch.Tensor):
            path = batch_or_path
            if t is None:
                raise ValueError("SketchODE.encode: give the time grid t with a path tensor")
        else:
            raise TypeError(f"SketchODE.encode: expected a FullBatch or a (B, G, 4) tensor, got {type(batch_or_path).__name__}")
        p = next(self.parameters())
        return self.encoder(path.to(p.device, p.dtype), t.to(p.device, p.dtype))

    def decode(self, z: torch.Tensor, t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(xy (B, G, 2), pen_logit (B, G))`` at times ``t`` (default: the training grid).

        ``t`` is any strictly increasing grid with ``t[0] >= 0``: the decoder
        is a continuous-time model, so the resolution is free.
        """
        if t is None:
            t = self.t
        p = next(self.parameters())
        z = torch.as_tensor(z).to(p.device, p.dtype)  # as encode does: a float64 or CPU code decodes too
        t = t.to(z.device, z.dtype) if isinstance(t, torch.Tensor) else t
        if self.pen_readout is None:
            s = self.decoder(z, t)
            return s[..., :2], s[..., 2]
        pos, _ = self.decoder.solve(z, t, full=True)
        return pos[..., :2], self.pen_readout(pos[..., 2:]).squeeze(-1)

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(xy, pen_logit, z)`` reconstructing ``batch`` on its own time grid."""
        z = self.encode(batch)
        xy, pen = self.decode(z, batch.t)
        return xy, pen, z

    def loss(self, batch, return_parts: bool = False):
        """The eq. 5 loss of ``batch``: masked Huber on ``x, y`` + pen cross-entropy."""
        xy, pen, _ = self(batch)
        return reconstruction_loss(xy, pen, batch.points, mask=batch.mask, beta=self.config["beta"],
                                   pen_weight=self.config["pen_weight"], return_parts=return_parts)

    @torch.no_grad()
    def reconstruct(self, sketches: Sequence[Sketch], G: int | None = None, batch_size: int = 256,
                    pen_threshold: float = 0.5) -> list[Sketch]:
        """Encode normalised ``sketches`` and decode them at ``G`` points (default the training ``G``) as Sketches."""
        return reconstruct_full(self, sketches, G=G, batch_size=batch_size, pen_threshold=pen_threshold)
