"""RK4 solves of periodic MLP vector fields with a hand-written backward pass (chapter 8, "making it fast").

Backpropagating through an RK4 solve with autograd records every small
operation of every stage (``4 (G - 1)`` evaluations of an MLP, each a few
matrix products and element-wise ops) and replays them backwards one by one.
For the tiny batches of sketch models the cost is dominated by that
book-keeping and by ``4 (G - 1)`` separate small weight-gradient products.

:func:`rk4_mlp` computes the *same* forward solution (RK4, 3/8 rule) and the
*exact* gradient of the discrete solve (not the adjoint ODE's approximation),
but

* the forward runs without recording a graph, into preallocated buffers;
* the backward walks the steps in reverse with the chain rule of the 3/8 rule
  written out (no graph), computing only the gradients *with respect to the
  state* inside the loop;
* every weight gradient is one large matrix product over all stages and the
  whole batch at the end (``(4 (G - 1) B) x in`` by ``(4 (G - 1) B) x out``).

The vector field is an MLP with periodic hidden activations (``cos`` or
``sin``, frequency already folded into the weights by
:class:`~sketchode.models.dynamics.FoldedMLP`) and a linear last layer, in one of two
forms:

* ``plain``: ``k = W_L z_L + b_s`` (the decoder's acceleration, eq. 3);
* ``controlled``: ``k = W_r (dX_s (x) z_L) + b_s``, the CDE's matrix-vector
  product ``G(g) dX/dt`` with the last layer regrouped (eq. 4).

The first layer's bias and the output bias are given per stage (``(S, B, H)``
and ``(S, B, D)``, ``S = 4 (G - 1)``; expanded views are fine): that is how
the latent code and time enter the decoder without being part of the state.
Gradients with respect to all of them (and to the control ``dx`` when it
requires grad) are returned, so autograd carries them on to ``z``, ``L_dec``,
learned frequencies, the encoder and its input path.

The tests (``tests/test_fused.py``) compare values and gradients with plain
autograd through :func:`sketchode.numerics.solvers.rk4` and with torchdiffeq/torchcde.

Two implementations of the two stage loops
------------------------------------------
The loops are written here in Python (read them: they are the reference) and
once more in C++ (``sketchode/accel/csrc/fused_rk4.cpp``), the accelerator
(:mod:`sketchode.accel`): compiled with :func:`torch.utils.cpp_extension.load`
once per machine (needs a C++ compiler) into a cache keyed by the source's
hash and the torch build, at the first solve that runs them, never at import.
The C++ loops compute the same stages in the same
order, but call the BLAS on raw pointers instead of creating thousands of
small tensors, compute ``sin`` and ``cos`` of a layer in one float32 pass,
split the batch into one block of rows per CPU thread, sum the weight
gradients inside the backward loop (one RK4 step at a time, while its stage
gradients are in cache: the controlled form then keeps no outer products
between forward and backward) and flush subnormal numbers to zero (gradients
that travel back through a long chain of strokes reach that range, where
every x86 core slows down several-fold).  They agree with the Python loops
to rounding (``tests/test_fused_cpp.py``) and make a training step at the
paper's size faster on a CPU (``python -m sketchode bench`` measures it).
They serve CPU tensors; CUDA tensors always take the Python loops.

Which loops run is set by :func:`loops` (a context manager) or the
environment variable ``SKETCHODE_LOOPS``: ``auto`` (default: C++ when it
compiles, else Python with one warning), ``cpp`` (C++ or an error) or
``python`` (nothing is compiled).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from sketchode import accel

__all__ = ["rk4_mlp", "FusedSpec", "keep_freed_memory", "loops", "cpp_extension", "LOOPS"]

LOOPS = ("auto", "cpp", "python")
_state = {"loops": None, "warned": False}


def _mode() -> str:
    mode = _state["loops"] or os.environ.get("SKETCHODE_LOOPS", "auto") or "auto"
    if mode not in LOOPS:
        raise ValueError(f"SKETCHODE_LOOPS must be one of {LOOPS}, got {mode!r}")
    return mode


def cpp_extension():
    """The compiled C++ stage loops (:func:`sketchode.accel.load`: built into its cache on first use), or ``None``.

    ``None`` where they cannot be built; why is kept in
    ``cpp_extension.error``.  The build is made once per machine and shared
    by every checkout of the same source (:mod:`sketchode.accel`).
    """
    ext = accel.load()
    cpp_extension.error = accel.error()
    return ext


cpp_extension.error = None


@contextlib.contextmanager
def loops(kind: str):
    """Run fused solves with the ``"cpp"``, ``"python"`` or ``"auto"`` stage loops inside the block.

    >>> with loops("python"):          # the reference loops, e.g. to compare
    ...     pass
    """
    if kind not in LOOPS:
        raise ValueError(f"loops: kind must be one of {LOOPS}, got {kind!r}")
    old = _state["loops"]
    _state["loops"] = kind
    try:
        yield
    finally:
        _state["loops"] = old


def _ext_for(t: torch.Tensor):
    """The C++ extension if it should run a solve on ``t``'s device, else ``None`` (Python loops)."""
    mode = _mode()
    if mode == "python" or t.device.type != "cpu":
        return None
    ext = cpp_extension()
    if ext is None:
        if mode == "cpp":
            raise RuntimeError(f"the C++ RK4 loops could not be built ({cpp_extension.error}); "
                               "use SKETCHODE_LOOPS=python or install a C++ compiler")
        if not _state["warned"]:
            _state["warned"] = True
            warnings.warn(f"sketchode: the C++ RK4 loops could not be built ({cpp_extension.error}); "
                          "using the Python loops (slower, same results)", RuntimeWarning, stacklevel=3)
    return ext


@dataclass(frozen=True)
class FusedSpec:
    """Static description of a fused solve: step sizes, activations, last-layer form."""

    hs: tuple  # step sizes as Python floats (1.0 when already folded into the control)
    acts: tuple  # "cos" / "sin" per hidden layer
    controlled: bool  # last layer contracted with a per-stage control dX
    stages: bool  # also return k1, k2, k3 of every step (for second-order positions)
    grad: bool = True  # keep what the backward pass needs (False: inference, no act' computed)


def _act(kind, a, z_out, d_out):
    """z = act(a) into z_out; d_out = act'(a) (sign folded into the backward for cos; skipped if None)."""
    if kind == "cos":
        torch.cos(a, out=z_out)
        if d_out is not None:
            torch.sin(a, out=d_out)  # act' = -sin
    else:
        torch.sin(a, out=z_out)
        if d_out is not None:
            torch.cos(a, out=d_out)


def _forward_loop(spec, y0, bias1, out_bias, dx, W1, mids, Wlast):
    """The forward stage loop in Python: ``Y``, ``K``, and what the backward needs (``X``, ``Z``, ``Dr``, ``O``).

    ``X (S, B, D)`` are the stage inputs, ``Z[j]`` / ``Dr[j]`` ``(S, B, H_j)``
    the activations of hidden layer ``j`` and their derivatives (``-sin`` kept
    as ``sin`` for cos layers), ``O (S, B, C, H_L)`` the controlled form's outer
    products ``dX (x) z_L`` (kept: the last weight's gradient is one product
    with them).
    """
    L, n = len(spec.acts), len(spec.hs)
    S, (B, D) = 4 * n, y0.shape
    H = [W1.shape[0]] + [W.shape[0] for W, _ in mids]
    opts = dict(dtype=y0.dtype, device=y0.device)
    # every buffer is written in place through per-stage views (no copies, no indexing in the loop)
    X = torch.empty(S, B, D, **opts)
    Z = [torch.empty(S, B, h, **opts) for h in H]
    Dr = [torch.empty(S, B, h, **opts) for h in H] if spec.grad else []
    Y = torch.empty(n + 1, B, D, **opts)
    K = torch.empty(3, n, B, D, **opts) if spec.stages else None
    # the outer products of every stage are kept for the backward; without it one stage's worth is reused
    O = torch.empty(S if spec.grad else 1, B, dx.shape[-1], H[-1], **opts) if spec.controlled else None
    Xs, Ys = X.unbind(0), Y.unbind(0)
    Zs = [z.unbind(0) for z in Z]
    Ds = [d.unbind(0) for d in Dr] if spec.grad else [[None] * S for _ in H]
    Ks = [k.unbind(0) for k in K] if K is not None else None
    Os = (O.unbind(0) if spec.grad else O.unbind(0) * S) if O is not None else None
    b1s, obs = bias1.unbind(0), out_bias.unbind(0)
    dxs = dx.unsqueeze(-1).unbind(0) if spec.controlled else None
    W1t = W1.t()
    midt = [(W.t(), b) for W, b in mids]
    Wl = Wlast if spec.controlled else Wlast.t()  # (C H, D) or (H, D)
    acts = spec.acts

    def f(s, out=None):  # the field at stage s, input already in Xs[s]
        a = torch.addmm(b1s[s], Xs[s], W1t)
        _act(acts[0], a, Zs[0][s], Ds[0][s])
        for j, (Wt, b) in enumerate(midt):
            a = torch.addmm(b, Zs[j][s], Wt)
            _act(acts[j + 1], a, Zs[j + 1][s], Ds[j + 1][s])
        z = Zs[-1][s]
        if dxs is not None:
            z = torch.mul(dxs[s], z.unsqueeze(-2), out=Os[s]).view(B, -1)  # (B, C H), H innermost
        if out is None:
            return torch.addmm(obs[s], z, Wl)
        return torch.addmm(obs[s], z, Wl, out=out)

    Ys[0].copy_(y0)
    for i, h in enumerate(spec.hs):
        s = 4 * i
        y = Ys[i]
        Xs[s].copy_(y)
        k1 = f(s, Ks[0][i] if Ks else None)
        torch.add(y, k1, alpha=h / 3, out=Xs[s + 1])
        k2 = f(s + 1, Ks[1][i] if Ks else None)
        torch.add(y, torch.sub(k2, k1, alpha=1 / 3), alpha=h, out=Xs[s + 2])
        k3 = f(s + 2, Ks[2][i] if Ks else None)
        torch.add(y, torch.sub(k1, k2).add_(k3), alpha=h, out=Xs[s + 3])
        k4 = f(s + 3)
        torch.add(y, torch.add(k2, k3).mul_(3).add_(k1).add_(k4), alpha=h / 8, out=Ys[i + 1])
    return Y, K, X, Z, Dr, (O if spec.grad else None)


class _FusedRK4(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: FusedSpec, y0, bias1, out_bias, dx, *weights):
        L = len(spec.acts)
        weights = [w.contiguous() for w in weights]  # sliced views would be copied by every mm
        W1, Wlast = weights[0], weights[-1]
        mids = [(weights[1 + 2 * j], weights[2 + 2 * j]) for j in range(L - 1)]
        ext = _ext_for(y0)
        if ext is not None:  # the same loop in C++ (sketchode/accel/csrc/fused_rk4.cpp)
            Y, K, X, O, *ZD = ext.forward(list(spec.hs), [a == "cos" for a in spec.acts], spec.stages, spec.grad,
                                          y0, bias1, out_bias, dx, W1, weights[1:-1], Wlast)
            Z, Dr = ZD[:L], ZD[L:]
        else:
            Y, K, X, Z, Dr, O = _forward_loop(spec, y0, bias1, out_bias, dx, W1, mids, Wlast)
        ctx.spec, ctx.L, ctx.ext = spec, L, ext  # the backward uses the same loops as the forward
        if spec.grad:
            none = torch.empty(0)
            ctx.save_for_backward(X, dx if dx is not None else none, O if O is not None else none, W1, Wlast,
                                  *weights[1:-1], *Z, *Dr)
        return (Y, K) if K is not None else (Y,)

    @staticmethod
    @once_differentiable
    def backward(ctx, gY, gK=None):
        spec, L = ctx.spec, ctx.L
        X, dx, O, W1, Wlast, *rest = ctx.saved_tensors
        mids = [(rest[2 * j], rest[2 * j + 1]) for j in range(L - 1)]
        Z, Dr = rest[2 * (L - 1): 2 * (L - 1) + L], rest[2 * (L - 1) + L:]
        neg = [a == "cos" for a in spec.acts]
        midW = [W for W, _ in mids]
        dx, O = (dx, O) if spec.controlled else (None, None)
        if ctx.ext is not None:  # the C++ loop also sums the weight gradients, step by step
            a, GO, *rest = ctx.ext.backward(list(spec.hs), neg, gY, gK, dx, W1, midW, Wlast, Dr, X, list(Z))
            GA, WG = rest[:L], rest[L:]
            gdx = _control_grad(spec, ctx, dx, GO, Wlast, Z)
            return (None, a, GA[0], GO, gdx, *WG)
        a, GO, GA = _backward_loop(spec.hs, neg, gY, gK, dx, W1, midW, Wlast, Dr)
        return _weight_grads(ctx, spec, X, dx, O, Wlast, mids, Z, a, GO, GA)


def _backward_loop(hs, neg, gY, gK, dx, W1, midW, Wlast, Dr):
    """The backward stage loop in Python: ``a`` (gradient wrt ``y0``), ``GO`` and ``GA`` per stage."""
    L, n = len(neg), len(hs)
    S, B, D = 4 * n, gY.shape[1], gY.shape[2]
    GO = torch.empty(S, B, D, dtype=gY.dtype, device=gY.device)
    GA = [torch.empty_like(d) for d in Dr]
    GOs, GAs, Ds = GO.unbind(0), [g.unbind(0) for g in GA], [d.unbind(0) for d in Dr]
    gYs = gY.unbind(0)
    gKs = [k.unbind(0) for k in gK] if gK is not None else None
    controlled = dx is not None
    if controlled:
        C = dx.shape[-1]
        dxs = dx.unsqueeze(-1).unbind(0)
        WlT = Wlast.t()

    def fb(s):  # gradient wrt the stage input, given the gradient wrt the stage output in GOs[s]
        g = GOs[s]
        if controlled:
            gz = (torch.mm(g, WlT).view(B, C, -1) * dxs[s]).sum(1)
        else:
            gz = torch.mm(g, Wlast)
        for j in range(L - 1, -1, -1):
            ga = torch.mul(gz, Ds[j][s], out=GAs[j][s])
            if neg[j]:
                ga.neg_()
            if j:
                gz = torch.mm(ga, midW[j - 1])
        return torch.mm(GAs[0][s], W1)

    a = gYs[n].clone()
    for i in range(n - 1, -1, -1):
        h = hs[i]
        s = 4 * i
        gk1, gk2, gk3, gk4 = GOs[s], GOs[s + 1], GOs[s + 2], GOs[s + 3]
        torch.mul(a, h / 8, out=gk4)
        torch.mul(a, 3 * h / 8, out=gk3)
        if gKs is not None:
            torch.add(gk3, gKs[1][i], out=gk2)
            torch.add(gk4, gKs[0][i], out=gk1)
            gk3 += gKs[2][i]
        else:
            gk2.copy_(gk3)
            gk1.copy_(gk4)
        a += gYs[i]
        gu = fb(s + 3)
        a += gu
        gk1.add_(gu, alpha=h)
        gk2.sub_(gu, alpha=h)
        gk3.add_(gu, alpha=h)
        gu = fb(s + 2)
        a += gu
        gk2.add_(gu, alpha=h)
        gk1.sub_(gu, alpha=h / 3)
        gu = fb(s + 1)
        a += gu
        gk1.add_(gu, alpha=h / 3)
        a += fb(s)

    return a, GO, GA


def _at_b(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a^T b`` for tall ``a (R, m)``, ``b (R, n)`` (a weight gradient: R = stages x samples rows).

    Computed as ``(b^T a)^T`` when ``n < m``: the BLAS runs these long, skinny
    products faster with the smaller side as the result's rows (the book's
    "Measurements" page).
    """
    return (b.t() @ a).t() if b.shape[1] < a.shape[1] else a.t() @ b


def _weight_grads(ctx, spec, X, dx, O, Wlast, mids, Z, a, GO, GA):
    """Every weight gradient as one matrix product over all stages and samples (after the Python loop)."""
    S, B, _ = X.shape
    flat = lambda t: t.reshape(S * B, -1)  # noqa: E731
    gW1 = _at_b(flat(GA[0]), flat(X))
    gmids = []
    for j in range(len(mids)):
        gmids += [_at_b(flat(GA[j + 1]), flat(Z[j])), GA[j + 1].sum((0, 1))]
    # the last layer: with the forward's outer products O = dX (x) z_L in the controlled form
    gWl = _at_b(flat(O), flat(GO)) if spec.controlled else _at_b(flat(GO), flat(Z[-1]))
    return (None, a, GA[0], GO, _control_grad(spec, ctx, dx, GO, Wlast, Z), gW1, *gmids, gWl)


def _control_grad(spec, ctx, dx, GO, Wlast, Z):
    """The gradient wrt the control ``dx`` (controlled form, when the path requires grad), else ``None``."""
    if not (spec.controlled and ctx.needs_input_grad[4]):
        return None
    S, B, _ = GO.shape
    return ((GO.reshape(S * B, -1) @ Wlast.t()).view(S, B, dx.shape[-1], -1) * Z[-1].unsqueeze(-2)).sum(-1)


def rk4_mlp(y0, hs, acts, bias1, out_bias, W1, mids, Wlast, dx=None, stages=False):
    """Fused RK4 (3/8 rule) solve of ``y' = MLP(y)`` with per-stage biases; exact gradients.

    Parameters
    ----------
    y0 : ``(B, D)`` initial state.
    hs : step sizes, a sequence of ``n`` Python floats (``n + 1`` grid points).
    acts : ``"cos"`` / ``"sin"`` per hidden layer (frequencies folded in).
    bias1 : ``(S, B, H1)`` first-layer bias at every stage (``S = 4 n``).
    out_bias : ``(S, B, D)`` output bias at every stage.
    W1 : ``(H1, D)`` first-layer weight (state columns only).
    mids : ``[(W_j, b_j), ...]`` the following hidden layers.
    Wlast : ``(D, H_L)`` last weight, or ``(C H_L, D)`` regrouped when ``dx`` is given
        (row ``c H_L + j`` multiplies ``dX_c z_j``).
    dx : ``(S, B, C)`` control increments per stage (controlled form) or ``None``.
    stages : also return ``K (3, n, B, D)``, the stages ``k1, k2, k3`` of every step.

    Returns ``Y (n + 1, B, D)`` (and ``K``).
    """
    if len(acts) != 1 + len(mids):
        raise ValueError(f"rk4_mlp: {len(acts)} activations for {1 + len(mids)} hidden layers")
    for a in acts:
        if a not in ("cos", "sin"):
            raise ValueError(f"rk4_mlp: hidden activations must be 'cos' or 'sin', got {a!r}")
    weights = [W1] + [t for m in mids for t in m] + [Wlast]
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (y0, bias1, out_bias, dx, *weights)
    )
    spec = FusedSpec(tuple(float(h) for h in hs), tuple(acts), dx is not None, bool(stages), grad)
    out = _FusedRK4.apply(spec, y0, bias1, out_bias, dx, *weights)
    return out if stages else out[0]


_MALLOC_TUNED = False


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Ask glibc to keep large freed blocks instead of returning them to the OS (Linux only).

    A fused solve allocates tens of MB of stage buffers per training step.
    glibc serves such blocks with ``mmap`` and unmaps them on free, so every
    step pays the page faults of touching fresh memory again (the book's
    "Measurements" page has the cost).  Raising the mmap and trim thresholds
    (``mallopt``, the same as ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` in the environment) keeps the blocks in the
    heap for reuse.  A process-wide setting, so no library function calls it:
    the command line does (``train``, ``finetune``, ``experiment``,
    ``campaign``, ``bench``); a no-op returning ``False`` where glibc is absent.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return False
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1 and libc.mallopt(M_TRIM_THRESHOLD, int(threshold)) == 1
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED
