"""Fixed-grid RK4, the solver of every SketchODE model (paper section 5.1; chapters 2 and 8).

The paper solves both the encoder CDE and the decoder ODE "using RK4 (the
classic Runge-Kutta method)" with the step equal to the spacing of the output
grid.  The RK4 of torchdiffeq (``method="rk4"``), which the authors' code
calls, is the *3/8 rule* variant of Kutta (1901)::

    k1 = f(t,        y)
    k2 = f(t + h/3,  y + h k1 / 3)
    k3 = f(t + 2h/3, y + h (k2 - k1 / 3))
    k4 = f(t + h,    y + h (k1 - k2 + k3))
    y' = y + h (k1 + 3 k2 + 3 k3 + k4) / 8

Both have fourth-order accuracy; this module uses the 3/8 rule so that every
fast path in the package can be checked against ``torchdiffeq.odeint`` and
``torchcde.cdeint`` to round-off (``tests/test_solvers.py``,
``tests/test_encoder.py``, ``tests/test_decoder.py``).

Contents
--------
* :func:`check_grid`: the validation every solver entry point runs first;
* :func:`stage_times`: the ``4 (G - 1)`` times at which RK4 evaluates the
  vector field (the encoder precomputes its control's derivative there);
* :func:`check_solver`: the one check of a ``solver=`` / ``adjoint=`` pair, for every model;
* :func:`rk4_loop`: the 3/8 rule on any stage function, the one RK4 loop of the
  package outside the fused solver (the models' fallbacks use it);
* :func:`rk4`: a small, general fixed-grid solver ``dy/dt = f(t, y)``, output
  at every grid point, the one chapter 2 derives;
* :func:`rk4_second_order_positions`: the closed form that turns the RK4
  stages of a velocity into RK4 positions, used by the second-order decoder.

Why a hand-written loop instead of ``torchdiffeq.odeint``?  The library
solver is general (any method, any state, tuples, events); per step it
re-validates, copies and interpolates, which costs more than the tiny MLP
evaluations of a sketch model.  The loop here does only the arithmetic of the
3/8 rule; the model-specific fast paths in :mod:`sketchode.models.encoder` and
:mod:`sketchode.models.decoder` go further (precomputed control derivatives, the
latent code kept out of the state, the frequency folded into the weights).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["check_grid", "check_solver", "stage_times", "rk4_loop", "rk4", "rk4_second_order_positions",
           "RK4_STAGES"]

#: Fractions of the step at which the 3/8-rule stages are evaluated.
RK4_STAGES = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)


def check_grid(t, where: str = "solver", min_points: int = 2) -> torch.Tensor:
    """Validate a time grid: a 1-D floating tensor, finite, strictly increasing, ``>= min_points`` long.

    Returns ``t`` unchanged.  The message names the caller (``where``) and the
    first offending index, so a bad batch fails before any solver runs.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: the time grid must be a 1-D tensor, got {type(t).__name__}")
    if t.ndim != 1:
        raise ValueError(f"{where}: the time grid must be 1-D, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{where}: the time grid must be floating point, got dtype {t.dtype}")
    if t.numel() < min_points:
        raise ValueError(f"{where}: the time grid needs at least {min_points} points, got {t.numel()}")
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"{where}: the time grid has a non-finite value {float(t[i])} at index {i}")
    d = t[1:] - t[:-1]
    if bool((d <= 0).any()):
        i = int((d <= 0).nonzero()[0])
        raise ValueError(
            f"{where}: the time grid must be strictly increasing; t[{i}] = {float(t[i]):g} "
            f">= t[{i + 1}] = {float(t[i + 1]):g}"
        )
    return t


def check_solver(solver: str, adjoint: bool, where: str, reference: str = "reference",
                 reference_is: str = "torchcde/torchdiffeq") -> tuple[str, bool]:
    """Validate a model's ``solver`` (``"fast"`` or ``reference``) and ``adjoint`` pair; returns them.

    ``adjoint=True`` (the adjoint method of torchdiffeq/torchcde, O(1) memory
    in the number of steps) exists only for the reference libraries: the fast
    paths backpropagate through their own stages.
    """
    if solver not in ("fast", reference):
        raise ValueError(f"{where}: solver must be 'fast' or {reference!r}, got {solver!r}")
    if adjoint and solver == "fast":
        raise ValueError(f"{where}: adjoint=True needs solver={reference!r} ({reference_is}; the fast path "
                         "backpropagates directly)")
    return solver, bool(adjoint)


def stage_times(t: torch.Tensor) -> torch.Tensor:
    """``(G - 1, 4)`` times of the 3/8-rule stages on grid ``t``: ``t_n + c h_n``, ``c`` in :data:`RK4_STAGES`.

    Computed the way torchdiffeq computes them (``t0 + h / 3``, ``t0 + 2h / 3``
    with ``h = t1 - t0``, and ``t1`` itself), so a control evaluated here is
    bit-for-bit the one ``torchcde.cdeint`` sees.
    """
    t0, t1 = t[:-1], t[1:]
    h = t1 - t0
    return torch.stack([t0, t0 + h * RK4_STAGES[1], t0 + h * RK4_STAGES[2], t1], dim=1)


def rk4_loop(k: Callable[[int, int, torch.Tensor], torch.Tensor], y0: torch.Tensor, h, keep_stages: bool = False):
    """The 3/8 rule with a stage function: ``k(n, j, y)`` is the field at stage ``j`` (0-3) of step ``n``.

    One step, in torchdiffeq's order of operations (``rk4_alt_step_func``)::

        k1 = k(n, 0, y);  k2 = k(n, 1, y + h (k1 / 3));  k3 = k(n, 2, y + h (k2 - k1 / 3))
        k4 = k(n, 3, y + h (k1 - k2 + k3));  y' = y + (k1 + 3 (k2 + k3) + k4) h / 8

    ``h`` is a sequence of step sizes (Python floats or 0-d tensors; a field that
    already includes the step, ``h dX``, passes ones).  Returns the states at
    every grid point, ``(len(h) + 1, *y0.shape)``, and with ``keep_stages`` also
    the stages ``k1, k2, k3`` of every step (``(len(h), *y0.shape)`` each; the
    second-order decoder turns them into positions, :func:`rk4_second_order_positions`).
    """
    third = 1.0 / 3.0
    ys, ks = [y0], ([], [], [])
    y = y0
    for n, hn in enumerate(h):
        k1 = k(n, 0, y)
        k2 = k(n, 1, y + hn * (k1 * third))
        k3 = k(n, 2, y + hn * (k2 - k1 * third))
        k4 = k(n, 3, y + hn * (k1 - k2 + k3))
        y = y + (k1 + 3 * (k2 + k3) + k4) * hn * 0.125
        ys.append(y)
        if keep_stages:
            for lst, kk in zip(ks, (k1, k2, k3)):
                lst.append(kk)
    out = torch.stack(ys)
    return (out, tuple(torch.stack(s) for s in ks)) if keep_stages else out


def rk4(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Solve ``dy/dt = f(t, y)``, ``y(t[0]) = y0`` with one 3/8-rule RK4 step per grid interval.

    Returns ``(len(t), *y0.shape)``: the solution at every grid point (the
    first is ``y0``).  Equal to ``torchdiffeq.odeint(f, y0, t, method="rk4")``
    to round-off.  Differentiable by ordinary backpropagation.
    """
    check_grid(t, "rk4")
    ts = stage_times(t)
    return rk4_loop(lambda n, j, y: f(ts[n, j], y), y0, (t[1:] - t[:-1]).unbind(0))


def rk4_second_order_positions(
    p0: torch.Tensor, v: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, k3: torch.Tensor, h: torch.Tensor
) -> torch.Tensor:
    """RK4 positions of a second-order system from the stages of its velocity (eq. 2, appendix B).

    For ``p' = v``, ``v' = F(v, t)`` (the decoder drops position from ``F``'s
    inputs, section 4.1), one 3/8-rule step on the joint state ``[p, v]``
    moves the position by ``h (v1 + 3 v2 + 3 v3 + v4) / 8`` where ``v_i`` are the
    velocity's stage values; expanding them gives::

        p_{n+1} = p_n + h v_n + h^2 (k1 + 2 k2 + k3) / 8

    with ``k_i`` the velocity's RK4 stages.  Position never feeds back into
    the dynamics, so all positions follow from one cumulative sum after the
    velocity solve, with no per-step work.

    Shapes: ``p0 (..., D)``, ``v`` the velocities at grid points ``0..G-2``
    ``(G - 1, ..., D)``, ``k1, k2, k3`` the stages ``(G - 1, ..., D)``, ``h``
    the steps ``(G - 1,)``.  Returns ``(G, ..., D)``.
    """
    hb = h.reshape(-1, *([1] * (v.ndim - 1)))
    inc = hb * v + (hb * hb / 8) * (k1 + 2 * k2 + k3)
    return torch.cat([p0.unsqueeze(0), p0.unsqueeze(0) + torch.cumsum(inc, dim=0)], dim=0)
