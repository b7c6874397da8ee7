"""SketchODE in the multi-stroke format (paper section 4.4 and appendix C, figure 10; chapter 8).

A drawing is a *set of strokes* ``{x_1(t), x_2(t), ...}``, each a continuous
function on its own time range ``[0, T]`` and expressed relative to its start
point (:func:`~sketchode.data.batching.collate_strokes`).  One encoder CDE and
one decoder ODE are *shared* by all strokes and chained from stroke to
stroke::

    encoder (appendix C)                       decoder (appendix C)
    g_0^1 = 0                                  [h_0^1, h_0^1'] = L_dec(z)
    g_1^k = g_0^k + int G_phi(g) dX_k          A^k(t) = second-order ODE from [0, h_0^k | 0, h_0^k']
    g_0^{k+1} = U([g_1^k, v_{k+1}])            [h_0^{k+1}, h_0^{k+1}'] = V(A^k(t1))
    z = L_enc(g_1^n)   (n = last real stroke)  v_k = P([h_0^k, h_0^k'])    start of stroke k
                                               p(r_k = 1) = sigmoid(R(A^k(t1)))   "stroke k is the last"

* ``X_k = [t, x, y]`` is stroke ``k`` relative to its start, so every stroke
  starts at the origin in both the encoder and the decoder (appendix C: "for
  every stroke, the initial position and velocity is fixed to zero").
* **The start positions reach the encoder through U.**  Relative strokes do not
  carry where they are drawn, so ``U`` reads the next stroke's absolute start
  ``v_{k+1}`` beside the state: ``U(g, v) = LeakyReLU(W [g, v] + b)``.  Feeding
  it to ``U`` (rather than to ``L_enc`` or as an extra control channel, which
  would be constant along the stroke and invisible to a CDE) keeps ``g_0^1 = 0``
  a constant as the paper fixes it; the first stroke of a *normalised*
  drawing starts at the origin (:meth:`~sketchode.data.sketch.Sketch.normalize`),
  so nothing is lost there.  The decoder regresses every start ``v_k`` with a
  head ``P`` on the stroke's initial hidden state (appendix C: "a starting
  position ``v_k`` for every stroke to be predicted separately").
* ``V`` maps the *full* final state (positions and velocities of the visible
  and hidden parts, ``2 (2 + d)`` values) to the next stroke's hidden initial
  state; ``z`` stays an input of ``F`` for every stroke (the shared
  :class:`~sketchode.models.decoder.ODEDecoder`).  ``U``, ``V`` and ``R`` read the
  *final* states ``g_1^k`` and ``A^k(t1)`` as appendix C writes them (the
  authors' code max-pools states over the stroke instead).  The encoder's
  own initial map ``Linear(X(t0))`` is removed: every ``g_0^k`` comes from the
  chain.
* The end-of-sketch flag ``r_k`` (1 on a drawing's last stroke) is predicted
  from the final state of stroke ``k`` by a Linear ``R``; inference stops at
  the first stroke with ``p(r_k = 1) > 0.5``.

Batching: every solve runs over the samples of the batch that have a
``k``-th stroke at once; the only Python loop is over the stroke index ``k``
(the chain is sequential).  Samples have different numbers of strokes: a
padded stroke (``stroke_mask`` false) is never solved and the encoder state
of a sample that has no ``k``-th stroke is kept, so ``z`` is read after each
sample's *own* last stroke and never depends on the other samples of the
batch (the authors' code pooled padded strokes too, so a latent depended on
the rest of its batch: ``tests/test_multistroke.py`` checks that it does not
here).  Padded inputs never reach a solver, so even NaN there changes neither
outputs nor gradients; the loss counts only real strokes and valid points.

Speed (a training step on Quick, Draw! sheep, batch 64, one thread): the two
chains run batched (:meth:`MultiStrokeSketchODE._encode_chain`,
:meth:`MultiStrokeSketchODE._decode_chain`): the samples are sorted by their
numbers of strokes, so those still drawing at stroke ``k`` are a slice; the
splines and control derivatives of all strokes are computed at once (they do
not depend on the chain); folded weights and the decoder's first-layer bias
from ``z`` are built once per pass; each stroke is one fused RK4 solve
(:mod:`sketchode.numerics.fused`).  The per-stroke loops through
:meth:`CDEEncoder.solve` and :meth:`ODEDecoder.solve` remain as the reference
(``fast_chain = False``, and for the reference solver); both give the same
loss and gradients to float32 rounding (``tests/test_multistroke_speed.py``).
What remains is arithmetic: a step of the ``sheep`` config on a batch with
691 strokes is 73 GFLOP of matrix products (forward, backward and weight
gradients of ``2 x 691`` RK4 solves of 29 steps), which one core cannot run
much faster than ~150 GFLOP/s at these matrix sizes.

The model follows the library's model protocol (:mod:`sketchode.training.fit`,
:mod:`sketchode.training.checkpoint`): ``config``/``from_config``, ``collate``,
``loss``, ``default_lr``, ``dynamics_parameters``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchcde
from torch import nn

from sketchode.data.batching import collate_strokes
from sketchode.data.sketch import T_DEFAULT, Sketch, uniform_grid
from sketchode.models.decoder import ODEDecoder, check_latent
from sketchode.models.dynamics import FoldedMLP, Periodic, paper_hidden
from sketchode.models.encoder import CDEEncoder, natural_cubic_coeffs
from sketchode.numerics.fused import rk4_mlp
from sketchode.numerics.solvers import check_grid, check_solver, stage_times

__all__ = ["MultiStrokeSketchODE", "MAX_STROKES"]

#: Strokes decoded at most when neither ``max_strokes`` nor the config bounds them.
MAX_STROKES = 20


def _fusable(mlp) -> bool:
    """:attr:`FoldedMLP.fusable <sketchode.models.dynamics.FoldedMLP.fusable>` read from the modules (no weights folded)."""
    mods = list(mlp.net)
    kinds = []  # what follows each Linear: "periodic", "other" or None
    for i, mod in enumerate(mods):
        if isinstance(mod, nn.Linear):
            nxt = mods[i + 1] if i + 1 < len(mods) and not isinstance(mods[i + 1], nn.Linear) else None
            kinds.append(None if nxt is None else "periodic" if isinstance(nxt, Periodic) else "other")
    return len(kinds) >= 2 and all(k == "periodic" for k in kinds[:-1]) and kinds[-1] is None


class MultiStrokeSketchODE(nn.Module):
    """SketchODE for the multi-stroke format (section 4.4, appendix C, figure 10).

    Parameters
    ----------
    d : hidden size of the encoder CDE and of the decoder's augmentation ``h``.
    l : latent size.
    G, T : training grid of every stroke: ``G`` uniform points on ``[0, T]``.
    hidden : hidden widths of both dynamics MLPs (default ``n_hidden`` layers
        of ``ceil(1.2 d)``, section 5.1).
    n_hidden : number of hidden layers when ``hidden`` is not given.
    activation, w, learn_w, init : dynamics family (section 4.5).
    max_strokes : drawings are truncated to their first ``max_strokes``
        strokes by :meth:`collate`, and decoding without a given number of
        strokes stops there (default: no truncation, :data:`MAX_STROKES` at
        decoding).
    solver : ``"fast"`` (fused RK4, the default) or ``"reference"``
        (torchcde + torchdiffeq, the paper's composition).
    adjoint : adjoint backpropagation (needs ``solver="reference"``).
    beta : Huber transition point of the point and start losses.
    start_weight, end_weight : weights of the start-position loss and of the
        end-of-sketch cross-entropy (appendix C).
    cde_final : activation after the CDE field's last layer (``None`` or
        ``"tanh"``), as in :class:`~sketchode.models.full_sequence.SketchODE`.
    zero_last : start the decoder at zero acceleration.
    chain_norm : layer-normalise (without parameters) the states that the
        chain maps ``U``, ``V`` and ``R`` read (default).  Without it, as in
        appendix C and the authors' code, each stroke's final state feeds the
        next stroke's initial state unnormalised, and at initialisation the
        states grow geometrically along the chain (the book's "Measurements"
        page gives the growth on the sheep), which stalls training on
        drawings of many strokes.
    """

    default_lr = 3e-3
    format = "strokes"
    #: Batched chains (:meth:`_encode_chain`, :meth:`_decode_chain`); ``False`` runs the per-stroke
    #: reference loops (:meth:`_encode_loop`, :meth:`_decode_loop`), same numbers, slower.
    fast_chain = True

    def __init__(self, d: int = 144, l: int = 96, G: int = 30, T: float = T_DEFAULT,  # noqa: E741
                 hidden: Sequence[int] | None = None, n_hidden: int = 1, activation: str = "cos", w: float = 1.0,
                 learn_w: bool = False, init: str = "default", max_strokes: int | None = None,
                 solver: str = "fast", adjoint: bool = False, beta: float = 1.0, start_weight: float = 1.0,
                 end_weight: float = 1.0, cde_final: str | None = None, zero_last: bool = False,
                 chain_norm: bool = True):
        super().__init__()
        where = "MultiStrokeSketchODE"
        check_solver(solver, adjoint, where)
        if int(G) < 2 or not T > 0:
            raise ValueError(f"{where}: need G >= 2 and T > 0, got G={G}, T={T}")
        if max_strokes is not None and (isinstance(max_strokes, bool) or int(max_strokes) != max_strokes
                                        or max_strokes < 1):
            raise ValueError(f"{where}: max_strokes must be None or an integer >= 1, got {max_strokes!r}")
        if not beta > 0:
            raise ValueError(f"{where}: beta must be > 0, got {beta!r}")
        if not (start_weight >= 0 and end_weight >= 0):
            raise ValueError(f"{where}: start_weight and end_weight must be >= 0, got {start_weight!r}, {end_weight!r}")
        hidden = list(paper_hidden(d, n_hidden) if hidden is None else hidden)
        self.config = dict(d=d, l=l, G=int(G), T=float(T), hidden=hidden, n_hidden=n_hidden,
                           activation=activation, w=float(w), learn_w=bool(learn_w), init=init,
                           max_strokes=None if max_strokes is None else int(max_strokes), solver=solver,
                           adjoint=bool(adjoint), beta=float(beta), start_weight=float(start_weight),
                           end_weight=float(end_weight), cde_final=cde_final, zero_last=bool(zero_last),
                           chain_norm=bool(chain_norm))
        dyn = dict(hidden=hidden, activation=activation, w=w, learn_w=learn_w, init=init)
        # one encoder for every stroke; its L_enc reads the state after the last real stroke
        self.encoder = CDEEncoder(channels=3, d=d, latent=l, final=cde_final, readout="final",
                                  solver="fast" if solver == "fast" else "torchcde", adjoint=adjoint, **dyn)
        # every initial state comes from the chain (g_0^1 = 0, then U): the encoder's own
        # initial map Linear(X(t0)) would be dead weight, so it is removed
        self.encoder.initial = None
        self.decoder = ODEDecoder(latent=l, d=d, visible=2, zero_last=zero_last,
                                  solver="fast" if solver == "fast" else "torchdiffeq", adjoint=adjoint, **dyn)
        n_state = 2 * (2 + d)  # full decoder state [a, a'] with a = [x, y, h]
        self.U = nn.Sequential(nn.Linear(d + 2, d), nn.LeakyReLU())  # [g_1^k, v_{k+1}] -> g_0^{k+1}
        self.V = nn.Sequential(nn.Linear(n_state, 2 * d), nn.LeakyReLU())  # A^k(t1) -> [h_0, h_0']^{k+1}
        self.P = nn.Linear(2 * d, 2)  # [h_0, h_0']^k -> start v_k
        self.R = nn.Linear(n_state, 1)  # A^k(t1) -> logit of "stroke k is the last"

    def _norm(self, state: torch.Tensor) -> torch.Tensor:
        """What the chain maps U, V and R read: the state, layer-normalised when ``chain_norm`` (no parameters)."""
        return F.layer_norm(state, state.shape[-1:]) if self.config["chain_norm"] else state

    @classmethod
    def from_config(cls, config: dict) -> "MultiStrokeSketchODE":
        """Rebuild a model from its :attr:`config`."""
        return cls(**config)

    # ---------------------------------------------------------------- data
    @property
    def t(self) -> torch.Tensor:
        """The training grid of every stroke: ``G`` uniform points of ``[0, T]``."""
        return torch.as_tensor(uniform_grid(self.config["G"], self.config["T"]), dtype=torch.float32)

    def collate(self, sketches: Sequence[Sketch], grid: str = "uniform"):
        """A :class:`~sketchode.data.batching.StrokeBatch` of normalised sketches on the model's grid."""
        c = self.config
        return collate_strokes(sketches, grid=grid, G=c["G"], T=c["T"], max_strokes=c["max_strokes"])

    def dynamics_parameters(self) -> list[nn.Parameter]:
        """Weights of the two dynamics networks (the only ones with weight decay, section 5.1)."""
        return [p for m in (self.encoder.field, self.decoder.F) for n, p in m.named_parameters() if "w_raw" not in n]

    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    # ------------------------------------------------------------ checking
    def _check_batch(self, batch, where: str):
        """Validate a StrokeBatch before any solve; returns it on the model's device and dtype."""
        need = ("t", "points", "start", "mask", "stroke_mask", "n_strokes")
        missing = [a for a in need if not hasattr(batch, a)]
        if missing:
            raise TypeError(f"{where}: expected a StrokeBatch (collate), got {type(batch).__name__} "
                            f"without {', '.join(missing)}")
        for a in need:
            if not isinstance(getattr(batch, a), torch.Tensor):
                raise TypeError(f"{where}: batch.{a} must be a tensor, got {type(getattr(batch, a)).__name__}")
        pts, start, mask, smask, n = batch.points, batch.start, batch.mask, batch.stroke_mask, batch.n_strokes
        if pts.ndim != 4 or pts.shape[-1] != 2:
            raise ValueError(f"{where}: batch.points must have shape (B, K, M, 2), got {tuple(pts.shape)}")
        B, K, M = pts.shape[:3]
        if B == 0:
            raise ValueError(f"{where}: empty batch (points shape {tuple(pts.shape)})")
        if K == 0:
            raise ValueError(f"{where}: the batch has no strokes (points shape {tuple(pts.shape)})")
        check_grid(batch.t, where)
        if batch.t.shape[0] != M:
            raise ValueError(f"{where}: batch.points has {M} time points but batch.t has {batch.t.shape[0]}")
        for name, v, shape in (("start", start, (B, K, 2)), ("mask", mask, (B, K, M)),
                               ("stroke_mask", smask, (B, K)), ("n_strokes", n, (B,))):
            if tuple(v.shape) != shape:
                raise ValueError(f"{where}: batch.{name} must have shape {shape}, got {tuple(v.shape)}")
        for name, v in (("mask", mask), ("stroke_mask", smask)):
            if v.dtype != torch.bool:
                raise ValueError(f"{where}: batch.{name} must be a bool tensor, got dtype {v.dtype}")
        if n.is_floating_point() or n.dtype == torch.bool:
            raise ValueError(f"{where}: batch.n_strokes must hold integers, got dtype {n.dtype}")
        if bool((n < 1).any()):
            b = int((n < 1).nonzero()[0])
            raise ValueError(f"{where}: sample {b} has {int(n[b])} strokes; every drawing needs at least one")
        if bool((n > K).any()):
            b = int((n > K).nonzero()[0])
            raise ValueError(f"{where}: sample {b} has n_strokes = {int(n[b])} > K = {K} strokes in the batch")
        expected = torch.arange(K, device=n.device)[None, :] < n[:, None]
        if not torch.equal(smask.to(n.device), expected):
            b = int((smask.to(n.device) != expected).any(1).nonzero()[0])
            raise ValueError(f"{where}: batch.stroke_mask of sample {b} does not mark its first n_strokes = "
                             f"{int(n[b])} strokes (real strokes must come first)")
        real = smask[..., None, None].expand_as(pts)
        bad = real & ~torch.isfinite(pts)
        if bool(bad.any()):
            b, k, m, c = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"{where}: NaN/inf in batch.points at sample {b}, stroke {k}, time index {m}, "
                             f"coordinate {'xy'[c]}")
        bad = smask[..., None] & ~torch.isfinite(start)
        if bool(bad.any()):
            b, k, c = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"{where}: NaN/inf in batch.start at sample {b}, stroke {k}, coordinate {'xy'[c]}")
        if not bool((mask & smask[..., None]).any()):
            raise ValueError(f"{where}: batch.mask has no true entry on a real stroke")
        p = self._param()
        return batch.to(p.device, p.dtype) if hasattr(batch, "to") else batch

    def _check_grid(self, t, where: str) -> tuple[torch.Tensor, slice]:
        """The solve grid for output times ``t`` inside ``[0, T]``: ``0`` and ``T`` added when missing.

        Every stroke is integrated over the whole ``[0, T]``: the chain passes
        the state at ``t1 = T`` to the next stroke, whatever grid is asked for.
        Returns ``(grid, keep)`` with ``grid[keep]`` the requested times.
        """
        p = self._param()
        T = self.config["T"]
        if t is None:
            return self.t.to(p.device, p.dtype), slice(None)
        check_grid(t, where, min_points=1)
        t = t.to(p.device, p.dtype)
        tol = 1e-6 * T
        if float(t[0]) < -tol or float(t[-1]) > T + tol:
            raise ValueError(f"{where}: the time grid must lie in [0, T] = [0, {T:g}], got "
                             f"[{float(t[0]):g}, {float(t[-1]):g}]")
        head = float(t[0]) > tol
        tail = float(t[-1]) < T - tol
        grid = torch.cat([t.new_zeros(1)] * head + [t] + [t.new_full((1,), T)] * tail)
        if grid.numel() < 2:
            raise ValueError(f"{where}: the time grid needs at least 2 points, got {t.numel()}")
        return grid, slice(int(head), grid.numel() - int(tail))

    # ------------------------------------------------------------- the model
    def encode(self, batch) -> torch.Tensor:
        """``z (B, l)`` of a :class:`~sketchode.data.batching.StrokeBatch` (appendix C's encoder chain).

        Stroke ``k`` of every sample is solved at once; ``g`` keeps its value
        on padded strokes, so ``z = L_enc(g_1^{n_b})`` after each sample's own
        last stroke.
        """
        batch = self._check_batch(batch, "MultiStrokeSketchODE.encode")
        return self._encode(batch)

    def _encode(self, batch) -> torch.Tensor:
        if self._chain_fusable():
            return self._encode_chain(batch)
        return self._encode_loop(batch)

    def _encode_loop(self, batch) -> torch.Tensor:
        """The encoder chain stroke by stroke through :meth:`CDEEncoder.solve` (reference of :meth:`_encode_chain`)."""
        pts, start, smask, t = batch.points, batch.start, batch.stroke_mask, batch.t
        B, K, M = pts.shape[:3]
        tt = t.expand(B, M).unsqueeze(-1)
        g = pts.new_zeros(B, self.encoder.d)  # g_0^1 = 0 (appendix C)
        for k in range(K):
            # Only the samples that have a k-th stroke are solved (strokes are padded at the end, so
            # the set only shrinks): a batch of sheep has 12 strokes on average but up to 47, and
            # solving the padding too made every step several times slower.  Padded strokes never
            # reach the solver, so their values (even NaN) cannot matter.
            idx = torch.nonzero(smask[:, k]).flatten()
            if idx.numel() == 0:
                break
            g_act = g.index_select(0, idx)
            if k > 0:
                g_act = self.U(torch.cat([self._norm(g_act), start[idx, k]], 1))
            path = torch.cat([tt[idx], pts[idx, k]], -1)  # (b, M, 3): t, x, y
            g1 = self.encoder.solve(path, t, g0=g_act)[:, -1]
            g = g1 if idx.numel() == B else g.index_copy(0, idx, g1)  # the others keep their state
        return self.encoder.L_enc(g)

    def _chain_fusable(self) -> bool:
        """Whether the chains take the batched fast path (:meth:`_encode_chain`, :meth:`_decode_chain`).

        Needs ``solver="fast"``, :attr:`fast_chain` and dynamics that the fused
        RK4 solver takes (periodic hidden activations, no activation after the
        last layer); otherwise the per-stroke loops run (same numbers).
        """
        if not self.fast_chain or self.config["solver"] != "fast":
            return False
        return _fusable(self.encoder.field.mlp) and _fusable(self.decoder.F)

    @staticmethod
    def _order(n: torch.Tensor, K: int):
        """Samples sorted by decreasing number of strokes: ``(perm, inverse, counts)``.

        In that order the samples that have a ``k``-th stroke are the first
        ``counts[k]`` rows (a slice instead of an index), for ``k < max n``.
        """
        perm = torch.argsort(n, descending=True, stable=True)
        inv = torch.argsort(perm)
        counts = (n[:, None] > torch.arange(K, device=n.device)[None, :]).sum(0)
        counts = [c for c in counts.tolist() if c > 0]
        return perm, inv, counts

    def _encode_chain(self, batch, order=None) -> torch.Tensor:
        """The encoder chain with everything that does not depend on the chain computed once for all strokes.

        The chain ``g_1^k -> g_0^{k+1}`` is sequential, but the strokes' splines
        and their control derivatives ``h dX/dt`` at every RK4 stage do not
        depend on ``g``: they are computed for all real strokes of the batch at
        once (one knot solve, one derivative evaluation), in stroke-major order
        of the samples sorted by their numbers of strokes, so stroke ``k`` reads
        a contiguous block of rows.  The field's folded weights are built once
        per pass, and each stroke is one fused RK4 solve
        (:func:`~sketchode.numerics.fused.rk4_mlp`, the same as
        :meth:`CDEEncoder.solve` with ``solver="fast"``).  Same numbers as
        :meth:`_encode_loop` to rounding (``tests/test_multistroke_speed.py``).
        """
        pts, start, t, n = batch.points, batch.start, batch.t, batch.n_strokes
        B, K, M = pts.shape[:3]
        perm, inv, counts = self._order(n, K) if order is None else order
        enc = self.encoder
        d, C = enc.d, enc.channels
        pts_s, start_s = pts.index_select(0, perm.to(pts.device)), start.index_select(0, perm.to(pts.device))
        # every real stroke as a path [t, x, y], stroke-major: stroke 0 of the counts[0] samples, then stroke 1, ...
        xy = torch.cat([pts_s[:c, k] for k, c in enumerate(counts)], 0)  # (N, M, 2)
        path = torch.cat([t.expand(xy.shape[0], M).unsqueeze(-1), xy], -1)
        n_steps, S = M - 1, 4 * (M - 1)
        X = torchcde.CubicSpline(natural_cubic_coeffs(path, t), t)
        h = (t[1:] - t[:-1]).to(path.dtype)
        dX = X.derivative(stage_times(t).reshape(-1)).view(-1, n_steps, 4, C).permute(1, 2, 0, 3)
        dX = (dX * h.view(n_steps, 1, 1, 1)).reshape(S, -1, C)  # (S, N, C): h dX/dt at every stage
        f = FoldedMLP(enc.field.mlp)
        hidden, (W, b, _, _) = f.layers[:-1], f.layers[-1]
        Hl = W.shape[1]
        Wr = W.view(d, C, Hl).permute(1, 2, 0).reshape(C * Hl, d)  # the last layer regrouped (see _fast_cde)
        bT = b.view(d, C).t().contiguous()  # the last bias, contracted with each stroke's dX in the loop
        dxs = [x.contiguous() for x in dX.split(counts, 1)]  # (S, c, C) per stroke
        W1, b1 = hidden[0][0].contiguous(), hidden[0][1]
        mids = [(W_.contiguous(), b_) for W_, b_, _, _ in hidden[1:]]
        acts = [kind for *_, kind in hidden]
        hs = [1.0] * n_steps  # the step is folded into dX
        finals = []
        g = None
        for k, c in enumerate(counts):
            if k == 0:
                g0 = pts.new_zeros(c, d)  # g_0^1 = 0 (appendix C)
            else:
                g0 = self.U(torch.cat([self._norm(g[:c]), start_s[:c, k]], 1))
            g = rk4_mlp(g0, hs, acts, b1.expand(S, c, -1), dxs[k] @ bT, W1, mids, Wr, dx=dxs[k])[-1]
            nxt = counts[k + 1] if k + 1 < len(counts) else 0
            if nxt < c:
                finals.append(g[nxt:])  # the samples whose last stroke is k
        gl = torch.cat(finals[::-1], 0)  # sorted order: the samples with the most strokes finish last
        return enc.L_enc(gl).index_select(0, inv.to(gl.device))

    def decode(self, z: torch.Tensor, n_strokes=None, t: torch.Tensor | None = None,
               max_strokes: int | None = None) -> dict:
        """Decode latent codes into strokes (appendix C's decoder chain).

        Parameters
        ----------
        z : ``(B, l)`` latent codes.
        n_strokes : strokes to decode: an int (every sample), a ``(B,)`` integer
            tensor, or ``None`` to stop each sample at its first stroke with
            ``p(last) = sigmoid(end_logit) > 0.5`` (at most ``max_strokes``).
        t : output times of every stroke, strictly increasing inside ``[0, T]``
            (default: the training grid); each stroke is still integrated over
            the whole ``[0, T]``, the time range the chain is trained on.
        max_strokes : bound for ``n_strokes=None`` (default: the config's
            ``max_strokes``, else :data:`MAX_STROKES`).

        Returns
        -------
        dict with ``points (B, K, M, 2)`` relative to each stroke's start,
        ``start (B, K, 2)``, ``end_logit (B, K)``, ``stroke_mask (B, K)``
        (true on the decoded strokes of each sample) and ``n_strokes (B,)``.
        ``K`` is the largest number of strokes in the batch; entries where
        ``stroke_mask`` is false are zeros: past a sample's end the chain is
        not solved.
        """
        where = "MultiStrokeSketchODE.decode"
        check_latent(z, self.config["l"], where)
        p = next(self.parameters())
        z = z.to(p.device, p.dtype)  # a float64 code decodes too, as encode casts its input
        B = z.shape[0]
        stop = n_strokes is None
        if stop:
            if max_strokes is None:
                max_strokes = self.config["max_strokes"] or MAX_STROKES
            if isinstance(max_strokes, bool) or int(max_strokes) != max_strokes or max_strokes < 1:
                raise ValueError(f"{where}: max_strokes must be an integer >= 1, got {max_strokes!r}")
            K = int(max_strokes)
        else:
            if isinstance(n_strokes, torch.Tensor):
                bad_shape = tuple(n_strokes.shape) not in ((B,), ())
                if n_strokes.is_floating_point() or n_strokes.dtype == torch.bool or bad_shape:
                    raise ValueError(f"{where}: n_strokes must be an int or a ({B},) integer tensor, got "
                                     f"{n_strokes.dtype} {tuple(n_strokes.shape)}")
                n = n_strokes.to(z.device).expand(B).long()
            elif isinstance(n_strokes, (int, np.integer)) and not isinstance(n_strokes, bool):
                n = torch.full((B,), int(n_strokes), dtype=torch.long, device=z.device)
            else:
                raise TypeError(f"{where}: n_strokes must be None, an int or a (B,) tensor, "
                                f"got {type(n_strokes).__name__}")
            if bool((n < 1).any()):
                raise ValueError(f"{where}: n_strokes must be >= 1 for every sample, got {n.tolist()}")
            K = int(n.max())
        grid, keep = self._check_grid(t, where)
        pts, start, logit = self._decode(z, grid, K, stop, None if stop else n)
        K = pts.shape[1]
        if stop:
            # first stroke with p(last) > 0.5; the bound when none is
            ended = logit > 0  # sigmoid(logit) > 0.5
            n = torch.where(ended.any(1), ended.float().argmax(1) + 1, K)
        smask = torch.arange(K, device=z.device)[None, :] < n[:, None]
        return dict(points=pts[:, :, keep], start=start, end_logit=logit, stroke_mask=smask, n_strokes=n)

    def _decode(self, z, grid, K: int, stop: bool = False, n: torch.Tensor | None = None):
        """The decoder chain for ``K`` strokes on ``grid``: points, starts, end logits (see :meth:`_decode_loop`)."""
        if n is not None and not stop and self._chain_fusable():
            return self._decode_chain(z, grid, n)
        return self._decode_loop(z, grid, K, stop, n)

    def _decode_chain(self, z, grid, n: torch.Tensor, order=None):
        """The decoder chain for ``n`` strokes per sample, with the per-pass work done once.

        The samples are sorted by their numbers of strokes (those still drawing
        at stroke ``k`` are the first rows), ``F``'s folded weights, its
        first-layer bias from ``z`` and the stage times are built once, and each
        stroke is one fused RK4 solve of the velocity
        (:func:`~sketchode.numerics.fused.rk4_mlp`, as :meth:`ODEDecoder.solve` with
        ``solver="fast"``); positions follow from its stages, the visible ones
        on the whole grid and the hidden ones at ``t1`` only (the chain reads
        no other).  Same numbers as :meth:`_decode_loop` to rounding.
        """
        dec = self.decoder
        d, D, B = dec.d, dec.n, z.shape[0]
        perm, inv, counts = self._order(n, int(n.max())) if order is None else order
        zs = z.index_select(0, perm.to(z.device))
        n_steps = grid.shape[0] - 1
        S = 4 * n_steps
        grid = grid.to(z.dtype)
        h = grid[1:] - grid[:-1]
        hs = h.tolist()
        ts = stage_times(grid).reshape(-1)
        f = FoldedMLP(dec.F, n_state=D)
        (W1, _, _, k0), *mids, (WL, bL, _, _) = f.layers
        W1 = W1.contiguous()
        mids = [(m[0].contiguous(), m[1]) for m in mids]
        acts = [k0] + [m[3] for m in f.layers[1:-1]]
        bz = f.first_bias(torch.cat([zs.new_zeros(B, 1), zs], 1))  # (B, H): b + W_z z
        tb = ts.view(-1, 1, 1) * f._W0_fixed_t[0]  # (S, 1, H): W_t t at every stage
        hidden0 = dec.L_dec(zs)  # [h_0^1, h_0^1'] (stroke 1: s = s' = 0)
        hb = h.view(-1, 1, 1)
        pts, starts, logits = [], [], []
        fin = None
        for k, c in enumerate(counts):
            hidden = hidden0 if k == 0 else self.V(self._norm(fin[:c]))  # V(A^k(t1))
            zeros = zs.new_zeros(c, 2)
            a0 = torch.cat([zeros, hidden[:, :d]], 1)  # visible position and velocity fixed at 0
            v0 = torch.cat([zeros, hidden[:, d:]], 1)
            Y, Kst = rk4_mlp(v0, hs, acts, bz[:c].unsqueeze(0) + tb, bL.expand(S, c, D), W1, mids, WL, stages=True)
            # positions from the velocity's stages (rk4_second_order_positions), through split/unbind
            # (one cheap backward each) rather than several slices of Y and K
            v, v1 = Y.split([n_steps, 1])
            k1, k2, k3 = Kst.unbind(0)
            inc = hb * v + (hb * hb / 8) * (k1 + 2 * k2 + k3)  # (n, c, D): position increment of every step
            inc_vis, inc_hid = inc.split([2, D - 2], -1)
            pos = torch.cat([zeros.unsqueeze(0), torch.cumsum(inc_vis, 0)], 0)  # (G, c, 2): s(t0) = 0
            fin = torch.cat([pos[-1], hidden[:, :d] + inc_hid.sum(0), v1[0]], 1)  # A^k(t1) = [a(t1), a'(t1)]
            logit = self.R(self._norm(fin)).squeeze(-1)
            pad = B - c  # the samples past their last stroke: zeros (outside the stroke mask)
            pts.append(F.pad(pos.transpose(0, 1), (0, 0, 0, 0, 0, pad)))
            starts.append(F.pad(self.P(hidden), (0, 0, 0, pad)))
            logits.append(F.pad(logit, (0, pad)))
        back = inv.to(z.device)
        return (torch.stack(pts, 1).index_select(0, back), torch.stack(starts, 1).index_select(0, back),
                torch.stack(logits, 1).index_select(0, back))

    def _decode_loop(self, z, grid, K: int, stop: bool = False, n: torch.Tensor | None = None):
        """Run the decoder chain for ``K`` strokes on ``grid`` (starting at 0): points, starts, end logits.

        Only the samples still drawing are solved at each stroke: with ``n``
        (strokes per sample) those with ``n > k``; with ``stop`` those that
        have not yet passed a stroke with ``p(last) > 0.5`` (the loop ends
        when none is left).  The other samples' entries are zeros: they lie
        outside the stroke mask and are no part of any drawing.
        """
        d, B = self.decoder.d, z.shape[0]
        a0, v0 = self.decoder.initial_state(z)  # stroke 1: s = s' = 0, [h, h'] = L_dec(z)
        hidden0 = torch.cat([a0[:, 2:], v0[:, 2:]], 1)
        active = torch.ones(B, dtype=torch.bool, device=z.device) if n is None else n > 0
        pts, starts, logits = [], [], []
        final = None
        for k in range(K):
            idx = torch.nonzero(active).flatten()
            if idx.numel() == 0:
                break
            everyone = idx.numel() == B

            def full(x):  # a subset's rows scattered into zeros for the whole batch (differentiable)
                return x if everyone else x.new_zeros(B, *x.shape[1:]).index_copy(0, idx, x)

            if k > 0:
                hidden = self.V(self._norm(final if everyone else final.index_select(0, idx)))  # V(A^k(t1))
            else:
                hidden = hidden0 if everyone else hidden0.index_select(0, idx)
            zeros = z.new_zeros(idx.numel(), 2)
            a0 = torch.cat([zeros, hidden[:, :d]], 1)  # visible position and velocity fixed at 0
            v0 = torch.cat([zeros, hidden[:, d:]], 1)
            zk = z if everyone else z.index_select(0, idx)
            pos, vel = self.decoder.solve(zk, grid, state0=(a0, v0), full=True)
            fin = torch.cat([pos[:, -1], vel[:, -1]], 1)
            logit = self.R(self._norm(fin)).squeeze(-1)
            pts.append(full(pos[..., :2]))
            starts.append(full(self.P(hidden)))
            logits.append(full(logit))
            final = full(fin)
            if n is not None:
                active = n > k + 1
            elif stop:
                active = active & ~full(logit > 0)  # done after the first stroke with p(last) > 0.5
        return torch.stack(pts, 1), torch.stack(starts, 1), torch.stack(logits, 1)

    def forward(self, batch) -> dict:
        """Reconstruct ``batch`` on its own grid with its own numbers of strokes (teacher-forced length).

        Returns :meth:`decode`'s dict plus ``z``.
        """
        return self._forward(self._check_batch(batch, "MultiStrokeSketchODE"))

    def _forward(self, batch) -> dict:
        grid, keep = self._check_grid(batch.t, "MultiStrokeSketchODE")
        if self._chain_fusable():
            order = self._order(batch.n_strokes, batch.points.shape[1])
            z = self._encode_chain(batch, order)
            pts, start, logit = self._decode_chain(z, grid, batch.n_strokes, order)
        else:
            z = self._encode_loop(batch)
            pts, start, logit = self._decode_loop(z, grid, batch.points.shape[1], n=batch.n_strokes)
        return dict(points=pts[:, :, keep], start=start, end_logit=logit, stroke_mask=batch.stroke_mask,
                    n_strokes=batch.n_strokes, z=z)

    def loss(self, batch, return_parts: bool = False):
        """Appendix C's loss: Huber on the relative points + start positions + end-of-sketch cross-entropy.

        * ``points``: Huber (``beta``) summed over ``x, y`` and averaged over
          the valid points of real strokes (``mask`` and ``stroke_mask``);
        * ``start``: Huber on the start positions averaged over real strokes;
        * ``end``: binary cross-entropy (with logits) of the flag "stroke ``k``
          is the last" (:attr:`StrokeBatch.end_of_sketch`) over real strokes.

        ``total = points + start_weight * start + end_weight * end``.  Masked
        entries are replaced by zeros *before* the point-wise losses, and
        padded strokes never reach a solver, so their values (even NaN)
        change neither the loss nor its gradients.  Every point of a *real*
        stroke must be finite (ValueError otherwise): the encoder's spline
        runs through all of them (on the union grid the points that are not
        the stroke's own observations are its interpolations).
        """
        c = self.config
        batch = self._check_batch(batch, "MultiStrokeSketchODE.loss")
        out = self._forward(batch)
        smask = batch.stroke_mask
        pmask = batch.mask & smask[..., None]
        zero = out["z"].new_zeros(())

        def huber(pred, target, mask):
            m = mask[..., None]
            val = F.smooth_l1_loss(torch.where(m, pred, zero), torch.where(m, target, zero), beta=c["beta"],
                                   reduction="none").sum(-1)
            return (val * mask).sum() / mask.sum()

        points = huber(out["points"], batch.points, pmask)
        start = huber(out["start"], batch.start, smask)
        bce = F.binary_cross_entropy_with_logits(torch.where(smask, out["end_logit"], zero), batch.end_of_sketch,
                                                 reduction="none")
        end = (bce * smask).sum() / smask.sum()
        total = points + c["start_weight"] * start + c["end_weight"] * end
        if return_parts:
            return {"points": points, "start": start, "end": end, "total": total}
        return total

    @torch.no_grad()
    def reconstruct(self, sketches: Sequence[Sketch], G: int | None = None, batch_size: int = 256,
                    true_strokes: bool = False, max_strokes: int | None = None) -> list[Sketch]:
        """Encode normalised ``sketches`` and decode them as Sketches, ``G`` points per stroke.

        Stroke ``k`` of the result is ``start_k + points_k`` (absolute), with
        its time on ``[0, T]`` (``timed=False``: per-stroke time ranges, as in
        the multi-stroke format).  The number of strokes is the model's own
        (stop rule of :meth:`decode`), or each drawing's when
        ``true_strokes`` (useful before the end flag is learned).
        """
        was = self.training
        self.eval()
        try:
            p = self._param()
            G = self.config["G"] if G is None else int(G)
            t = torch.as_tensor(uniform_grid(G, self.config["T"]), dtype=p.dtype, device=p.device)
            out: list[Sketch] = []
            for i in range(0, len(sketches), batch_size):
                chunk = list(sketches[i:i + batch_size])
                batch = self.collate(chunk)
                z = self.encode(batch)
                dec = self.decode(z, n_strokes=batch.n_strokes if true_strokes else None, t=t,
                                  max_strokes=max_strokes)
                xy = (dec["points"] + dec["start"][:, :, None]).cpu().numpy().astype(np.float64)
                tn = t.cpu().numpy().astype(np.float64)[:, None]
                for s, q, n in zip(chunk, xy, dec["n_strokes"].tolist()):
                    strokes = [np.column_stack([q[k], tn]) for k in range(n)]
                    out.append(Sketch(strokes, label=s.label, key=s.key, timed=False))
        finally:
            self.train(was)
        return out
