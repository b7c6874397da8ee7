"""The second-order augmented Neural ODE decoder (paper section 4.1, eq. 2-3, appendix B; chapter 8).

The decoder's state is ``a(t) = [s(t), h(t)]``: the visible drawing ``s``
(``x, y`` and the pen's logit for the full-sequence format, ``x, y`` for a
stroke) augmented (Dupont et al., 2019) with a hidden process ``h`` of size
``d``.  Its *acceleration* is a network (eq. 2-3)::

    a''(t) = F_theta(a'(t), t, z)          (position dropped from the inputs, 4.1)
    s(t0) = s'(t0) = 0                      (visible start fixed)
    [h(t0), h'(t0)] = L_dec(z)              (hidden start from the latent code)

and ``z`` enters ``F`` as a fixed input ("data-controlled dynamics",
appendix B).  The paper implements the fixed input by putting ``z`` in the
state with zero derivative; ``solver="torchdiffeq"`` does exactly that (and
``adjoint=True`` then backpropagates by the adjoint method, as in the
authors' code).

``solver="fast"`` (the default) computes the same RK4 (3/8 rule) solution
with three observations:

1. ``F`` reads the velocity, never the position, so the velocity alone
   solves a first-order ODE; positions follow from the velocity's RK4 stages
   by one cumulative sum after the loop
   (:func:`~sketchode.numerics.solvers.rk4_second_order_positions`);
2. ``z`` and ``t`` are fixed during a solve, so their contribution to ``F``'s
   first layer is computed for all stages at once, outside the loop, and
   ``z`` never enters the integrated state;
3. the frequency ``w`` is folded into the weights once per solve
   (:class:`~sketchode.models.dynamics.FoldedMLP`).

Both paths agree to 1e-5 (``tests/test_decoder.py``).  A consequence of (1)
worth knowing: in the full-sequence model the hidden *position* ``h(t)``
influences nothing that is observed (``F`` reads only velocities), so
``h(t0)`` is a dead output of ``L_dec``; the multi-stroke model uses it,
because the next stroke's start is a function of the whole final state.
"""

from __future__ import annotations

import torch
import torchdiffeq
from torch import nn

from sketchode.models.dynamics import MLP, FoldedMLP, paper_hidden
from sketchode.numerics.fused import rk4_mlp
from sketchode.numerics.solvers import check_grid, check_solver, rk4_loop, rk4_second_order_positions, stage_times

__all__ = ["ODEDecoder", "check_latent", "decoding_grid"]


def check_latent(z, latent: int, where: str) -> None:
    """Validate a batch of latent codes ``(B, latent)``: a finite floating tensor, non-empty."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{where}: z must be a tensor (B, {latent}), got {type(z).__name__}")
    if z.ndim != 2 or z.shape[1] != latent:
        raise ValueError(f"{where}: z must have shape (B, {latent}), got {tuple(z.shape)}")
    if z.shape[0] == 0:
        raise ValueError(f"{where}: empty batch (z shape {tuple(z.shape)})")
    if not z.is_floating_point():
        raise ValueError(f"{where}: z must be floating point, got dtype {z.dtype}")
    bad = ~torch.isfinite(z)
    if bool(bad.any()):
        b, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{where}: NaN/inf in z at sample {b}, component {j}")


def decoding_grid(t, where: str = "decode", t0: float = 0.0) -> tuple[torch.Tensor, bool]:
    """The grid to solve on: ``t`` itself when it starts at ``t0``, else ``[t0, *t]``.

    Returns ``(grid, prepended)``.  The initial condition holds at ``t0 = 0``,
    so a grid may start later (the solution there is integrated from ``t0``)
    but not earlier.
    """
    check_grid(t, where, min_points=1)
    if float(t[0]) < t0:
        raise ValueError(f"{where}: the time grid starts at {float(t[0]):g}, before the initial time {t0:g}")
    if float(t[0]) > t0:
        return torch.cat([t.new_full((1,), t0), t]), True
    if t.numel() < 2:
        raise ValueError(f"{where}: the time grid needs at least 2 points, got {t.numel()}")
    return t, False


class _AugmentedField(nn.Module):
    """Appendix B's system on the state ``[s, h, s', h', z]``: ``(s', h', F([s', h'], t, z), 0)``."""

    def __init__(self, F: MLP, n: int, latent: int):
        super().__init__()
        self.F, self.n, self.latent = F, n, latent

    def forward(self, t, y):
        n = self.n
        vel, z = y[:, n:2 * n], y[:, 2 * n:]
        acc = self.F(torch.cat([vel, t.expand(y.shape[0], 1).to(y.dtype), z], dim=1))
        return torch.cat([vel, acc, torch.zeros_like(z)], dim=1)


class ODEDecoder(nn.Module):
    """Second-order augmented ODE decoder ``z -> s(t)`` (eq. 2-3).

    Parameters
    ----------
    latent : size of ``z`` (``l``).
    d : size of the hidden process ``h``.
    visible : size of ``s`` (3 = ``x, y``, pen logit; 2 = ``x, y``).
    hidden : hidden widths of ``F`` (default: two layers of ``ceil(1.2 d)``).
    activation, w, learn_w, init : of ``F`` (section 4.5).
    zero_last : start ``F`` at zero acceleration (torchdiffeq's FAQ advice).
    solver : ``"fast"`` or ``"torchdiffeq"``; ``adjoint`` needs ``"torchdiffeq"``.
    """

    def __init__(self, latent: int = 48, d: int = 64, visible: int = 3, hidden=None, activation: str = "cos",
                 w: float = 1.0, learn_w: bool = False, init: str = "default", zero_last: bool = False,
                 solver: str = "fast", adjoint: bool = False):
        super().__init__()
        self.latent, self.d, self.visible = latent, d, visible
        self.n = visible + d
        self.solver, self.adjoint = check_solver(solver, adjoint, "ODEDecoder", "torchdiffeq", "torchdiffeq")
        hidden = paper_hidden(d, 2) if hidden is None else tuple(hidden)
        self.L_dec = nn.Linear(latent, 2 * d)
        # input [velocity (n), t (1), z (latent)] -> acceleration (n)
        self.F = MLP(self.n + 1 + latent, self.n, hidden, activation=activation, w=w, learn_w=learn_w,
                     init=init, zero_last=zero_last)

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a0, a0')``, each ``(B, visible + d)``: visible part zero, hidden part from ``L_dec(z)``."""
        h = self.L_dec(z)
        zeros = z.new_zeros(z.shape[0], self.visible)
        return torch.cat([zeros, h[:, : self.d]], 1), torch.cat([zeros, h[:, self.d:]], 1)

    def solve(self, z: torch.Tensor, t: torch.Tensor, state0=None, full: bool = False,
              solver: str | None = None, adjoint: bool | None = None):
        """Solve on grid ``t`` and return the visible trajectory ``s (B, G, visible)``.

        ``state0 = (a0, a0')`` overrides :meth:`initial_state` (the
        multi-stroke chain).  With ``full=True`` return ``(a, a')``, position
        and velocity of the whole state, each ``(B, G, visible + d)``.
        """
        check_latent(z, self.latent, "ODEDecoder")
        grid, prepended = decoding_grid(t, "ODEDecoder")
        solver = self.solver if solver is None else solver
        adjoint = self.adjoint if adjoint is None else adjoint
        check_solver(solver, adjoint, "ODEDecoder", "torchdiffeq", "torchdiffeq")
        if state0 is None:
            a0, v0 = self.initial_state(z)
        else:
            a0, v0 = state0
            want = (z.shape[0], self.n)
            if tuple(a0.shape) != want or tuple(v0.shape) != want:
                raise ValueError(f"ODEDecoder: state0 must be two tensors of shape (B, visible + d) = {want}; "
                                 f"got {tuple(a0.shape)} and {tuple(v0.shape)}")
        grid = grid.to(z.dtype)
        if solver == "torchdiffeq":
            pos, vel = self._solve_torchdiffeq(z, grid, a0, v0, adjoint)
        else:
            pos, vel = self._solve_fast(z, grid, a0, v0, full)
        if prepended:
            pos, vel = pos[:, 1:], (vel[:, 1:] if vel is not None else None)
        return (pos, vel) if full else pos[..., : self.visible]

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The visible trajectory ``s (B, G, visible)`` at times ``t``."""
        return self.solve(z, t)

    # ------------------------------------------------------------- solvers
    def _solve_torchdiffeq(self, z, t, a0, v0, adjoint):
        field = _AugmentedField(self.F, self.n, self.latent)
        y0 = torch.cat([a0, v0, z], 1)
        if adjoint:
            ys = torchdiffeq.odeint_adjoint(field, y0, t, method="rk4", adjoint_params=tuple(self.F.parameters()))
        else:
            ys = torchdiffeq.odeint(field, y0, t, method="rk4")
        ys = ys.transpose(0, 1)
        return ys[..., : self.n], ys[..., self.n: 2 * self.n]

    def _solve_fast(self, z, t, a0, v0, full):
        f = FoldedMLP(self.F, n_state=self.n)
        ts = stage_times(t).reshape(-1)  # (4 (G - 1),)
        h = t[1:] - t[:-1]
        # first-layer bias at every stage: b + W_z z + W_t t, all stages at once
        bz = f.first_bias(torch.cat([z.new_zeros(z.shape[0], 1), z], 1))  # (B, H)
        w_t = f._W0_fixed_t[0]  # (H,)
        bias_all = bz.unsqueeze(0) + ts.view(-1, 1, 1) * w_t  # (S, B, H)
        cols = slice(None) if full else slice(0, self.visible)
        if f.fusable:
            (W1, _, _, k0), *mids, (WL, bL, _, _) = f.layers
            S = bias_all.shape[0]
            Y, K = rk4_mlp(v0, h.tolist(), [k0] + [m[3] for m in mids], bias_all,
                           bL.expand(S, *v0.shape), W1, [(m[0], m[1]) for m in mids], WL, stages=True)
            pos = rk4_second_order_positions(a0[:, cols], Y[:-1, :, cols], K[0, ..., cols], K[1, ..., cols],
                                             K[2, ..., cols], h)
            return pos.transpose(0, 1), (Y.transpose(0, 1) if full else None)
        biases = bias_all.unbind(0)
        # one host sync per solve (h.tolist()), then Python-float steps
        V, stages = rk4_loop(lambda i, j, v: f(v, biases[4 * i + j]), v0, h.tolist(), keep_stages=True)
        pos = rk4_second_order_positions(a0[:, cols], V[:-1, ..., cols], *(k[..., cols] for k in stages), h)
        vel = V.transpose(0, 1) if full else None
        return pos.transpose(0, 1), vel

