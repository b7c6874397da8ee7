"""The family of ODE dynamics functions (paper section 4.5 and 5.5; chapters 3 and 5).

SketchODE's vector fields ``F_Theta`` (encoder) and ``G_Phi`` (decoder) are
plain multi-layer perceptrons.  What the paper changes is the non-linearity:
instead of ReLU, Tanh or Sigmoid it uses the periodic activations
``sin(w x)`` or ``cos(w x)`` of SIREN (Sitzmann et al., 2020), whose frequency
``w`` controls how much high-frequency content the induced vector field, and
therefore the solution trajectories, can carry (figure 4, left).  ``w`` is
either a fixed hyperparameter or learned, one scalar per layer.  Lowering ``w``
at test time removes detail from reconstructions: the "abstraction effect" of
section 5.5, available here as the :func:`override_w` context manager.

Contents
--------
* :class:`Periodic`: the activation ``sin(w x)`` / ``cos(w x)``, ``w`` fixed or learned;
* :func:`make_activation`: an activation module by name;
* :class:`MLP`: Linear layers with activations between them, optional SIREN
  initialisation and a zero-initialised last layer;
* :func:`paper_hidden`: the paper's hidden widths ``ceil(1.2 d)``;
* :func:`periodic_layers`, :func:`frequencies`, :func:`override_w`: inspect and
  temporarily change the frequencies inside any module.

Parametrisation of a learned ``w``
----------------------------------
A learned frequency must stay positive (``w`` and ``-w`` give the same ``cos``
and only flip ``sin``; ``w = 0`` kills the layer).  Two parametrisations:

* default: ``w = softplus(p)``, with ``p`` initialised to ``softplus^{-1}(w0)``
  so that the initial ``w`` equals the given ``w0``;
* ``w_max=...`` (the authors' code): ``w = w_max * sigmoid(p)``, ``p``
  initialised to ``logit(w0 / w_max)``; requires ``0 < w0 < w_max``.  (The
  authors initialise ``p = 1``, i.e. ``w0 = 0.73 w_max``; here the initial
  value is whatever ``w`` says.)

A fixed ``w`` is a buffer (saved in the ``state_dict``, moved by ``.to()``,
never returned by ``.parameters()``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "PERIODIC",
    "Periodic",
    "make_activation",
    "MLP",
    "paper_hidden",
    "periodic_layers",
    "frequencies",
    "override_w",
    "FoldedMLP",
]

#: Names of the periodic activations.
PERIODIC = ("sin", "cos")
#: Every name :func:`make_activation` accepts.
ACTIVATIONS = ("sin", "cos", "relu", "tanh", "sigmoid", "softplus")
#: Hidden-width factor of the paper's dynamics MLPs (section 5.1: width ``ceil(1.2 d)``).
WIDTH_FACTOR = 1.2


def _positive_float(value, what: str) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{what} must be a positive number; got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a positive number; got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{what} must be a positive finite number; got {value!r}")
    return v


def _inverse_softplus(w: float) -> float:
    # softplus^{-1}(w) = log(exp(w) - 1) = w + log(1 - exp(-w)), stable for large w.
    return w + math.log(-math.expm1(-w))


class Periodic(nn.Module):
    """The periodic activation ``sin(w x)`` or ``cos(w x)`` (paper section 4.5).

    Parameters
    ----------
    kind:
        ``"sin"`` or ``"cos"`` (the paper's experiments and the authors' code use cos).
    w:
        The frequency (initial value when learned); positive.  The authors'
        code uses ``w = 3``.
    learn_w:
        ``False``: ``w`` is a fixed buffer.  ``True``: ``w`` is a learned scalar
        of this layer, positive by construction (see the module docstring).
    w_max:
        Only with ``learn_w=True``: use ``w = w_max * sigmoid(p)`` (bounded, as
        in the authors' code) instead of ``w = softplus(p)``.

    The property :attr:`w` is the effective frequency as a 0-dim tensor
    (differentiable when learned).  Inside :func:`override_w` it is the
    override value, a constant.
    """

    def __init__(self, kind: str = "cos", w: float = 1.0, learn_w: bool = False, w_max: float | None = None):
        super().__init__()
        if not isinstance(kind, str) or kind.lower() not in PERIODIC:
            raise ValueError(f"Periodic: kind must be one of {PERIODIC}; got {kind!r}")
        self.kind = kind.lower()
        self._fn = torch.sin if self.kind == "sin" else torch.cos
        w = _positive_float(w, "Periodic: w")
        self.learn_w = bool(learn_w)
        self.w_max: float | None = None
        if w_max is not None:
            if not self.learn_w:
                raise ValueError("Periodic: w_max only applies to a learned frequency (learn_w=True)")
            self.w_max = _positive_float(w_max, "Periodic: w_max")
            if not w < self.w_max:
                raise ValueError(f"Periodic: the initial w must lie in (0, w_max); got w={w}, w_max={self.w_max}")
        if self.learn_w:
            if self.w_max is None:
                p0 = _inverse_softplus(w)
            else:
                r = w / self.w_max
                p0 = math.log(r) - math.log1p(-r)
            self.w_raw = nn.Parameter(torch.tensor(p0, dtype=torch.get_default_dtype()))
        else:
            self.register_buffer("w_raw", torch.tensor(w, dtype=torch.get_default_dtype()))
        # Set only by override_w; deliberately a plain attribute (not in the state_dict).
        self._w_override: torch.Tensor | None = None

    @property
    def w(self) -> torch.Tensor:
        """The effective current frequency, a 0-dim tensor."""
        if self._w_override is not None:
            return self._w_override
        if not self.learn_w:
            return self.w_raw
        if self.w_max is None:
            return nn.functional.softplus(self.w_raw)
        return self.w_max * torch.sigmoid(self.w_raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(self.w * x)

    def extra_repr(self) -> str:
        s = f"kind={self.kind!r}, w={float(self.w.detach()):.4g}, learn_w={self.learn_w}"
        if self.w_max is not None:
            s += f", w_max={self.w_max:g}"
        if self._w_override is not None:
            s += " (overridden)"
        return s


_SIMPLE = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softplus": nn.Softplus}


def make_activation(name: str, w: float = 1.0, learn_w: bool = False, w_max: float | None = None) -> nn.Module:
    """An activation module by name (section 4.5).

    ``"sin"`` and ``"cos"`` give a :class:`Periodic` with frequency ``w``
    (learned when ``learn_w``); ``"relu"``, ``"tanh"``, ``"sigmoid"`` and
    ``"softplus"`` give the standard modules, for which ``w``, ``learn_w`` and
    ``w_max`` do not apply: passing ``w != 1``, ``learn_w=True`` or a ``w_max``
    with them raises, so a mistyped configuration cannot go unnoticed.
    """
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"make_activation: unknown activation {name!r}; choose one of {ACTIVATIONS}")
    name = name.lower()
    if name in PERIODIC:
        return Periodic(name, w=w, learn_w=learn_w, w_max=w_max)
    if learn_w or w_max is not None or float(w) != 1.0:
        raise ValueError(
            f"make_activation: w, learn_w and w_max only apply to periodic activations {PERIODIC}; "
            f"got {name!r} with w={w!r}, learn_w={learn_w!r}, w_max={w_max!r}"
        )
    return _SIMPLE[name]()


def paper_hidden(d: int, n_layers: int = 2) -> tuple[int, ...]:
    """Hidden widths of the paper's dynamics MLPs: ``ceil(1.2 d)`` repeated ``n_layers`` times.

    ``d`` is the ODE state size (section 5.1).  E.g. ``paper_hidden(64, 2) == (77, 77)``.
    The authors' code uses ``(32, 32)`` instead.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"paper_hidden: d must be a positive int; got {d!r}")
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 0:
        raise ValueError(f"paper_hidden: n_layers must be a non-negative int; got {n_layers!r}")
    # Round first: 1.2 * d is inexact in floating point (1.2 * 10 = 12.000000000000002).
    return (math.ceil(round(WIDTH_FACTOR * d, 9)),) * n_layers


class MLP(nn.Module):
    """A dynamics MLP: ``Linear -> act -> Linear -> act -> ... -> Linear [-> final]`` (section 4.5).

    Parameters
    ----------
    in_dim, out_dim:
        Input and output sizes.
    hidden:
        Hidden widths; one activation follows each hidden Linear.  The default
        ``(77, 77)`` is the paper's ``ceil(1.2 d)`` for ``d = 64``
        (:func:`paper_hidden`); ``()`` gives a single Linear layer.
    activation:
        Name for :func:`make_activation`; the default is the paper's ``"cos"``.
    w, learn_w, w_max:
        Frequency of periodic activations.  With ``learn_w=True`` every hidden
        layer learns its own ``w`` (a separate :class:`Periodic` per layer).
    final_activation:
        ``None`` (linear output, the usual choice for a vector field), an
        activation name, or an ``nn.Module`` applied to the output.  A periodic
        final activation uses (and learns) ``w`` like the hidden ones.
    zero_last:
        Zero the last Linear's weight and bias, so the MLP starts as the zero
        vector field (the identity flow, as the torchdiffeq/torchcde FAQs
        recommend).  With a ``final_activation`` the initial output is
        ``final_activation(0)`` instead of zero.
    init:
        ``"default"`` (PyTorch's) or ``"siren"`` (Sitzmann et al., 2020; periodic
        activations only): first layer weights ``U(-1/n, 1/n)``, later layers
        ``U(-sqrt(6/n)/w, sqrt(6/n)/w)``, ``n`` the layer's fan-in and ``w`` the
        initial frequency; biases keep PyTorch's default.  ``zero_last`` is
        applied after it.

    The forward pass is a single :class:`nn.Sequential` over ``(..., in_dim)``
    tensors: no Python work per element, cheap to call inside ODE solvers.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (77, 77),
        activation: str = "cos",
        w: float = 1.0,
        learn_w: bool = False,
        final_activation: str | nn.Module | None = None,
        zero_last: bool = False,
        init: str = "default",
        w_max: float | None = None,
    ):
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MLP: {name} must be a positive int; got {v!r}")
        if isinstance(hidden, int) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ValueError(f"MLP: hidden must be a sequence of positive ints; got {hidden!r}")
        if init not in ("default", "siren"):
            raise ValueError(f"MLP: init must be 'default' or 'siren'; got {init!r}")
        if not isinstance(activation, str) or activation.lower() not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        activation = activation.lower()
        periodic = activation in PERIODIC
        if init == "siren" and not periodic:
            raise ValueError(f"MLP: init='siren' needs a periodic activation {PERIODIC}; got {activation!r}")

        # A non-periodic hidden activation with w/learn_w/w_max set is a configuration error.
        if periodic:
            _positive_float(w, "MLP: w")
        else:
            make_activation(activation, w=w, learn_w=learn_w, w_max=w_max)

        def act(name):
            if name in PERIODIC:
                return make_activation(name, w=w, learn_w=learn_w, w_max=w_max)
            return make_activation(name)

        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden = tuple(hidden)
        self.activation = activation
        self.init = init
        widths = (in_dim, *self.hidden, out_dim)
        layers: list[nn.Module] = []
        linears: list[nn.Linear] = []
        for i in range(len(widths) - 1):
            lin = nn.Linear(widths[i], widths[i + 1])
            linears.append(lin)
            layers.append(lin)
            if i < len(widths) - 2:
                layers.append(act(activation))
        if final_activation is not None:
            if isinstance(final_activation, nn.Module):
                layers.append(final_activation)
            elif isinstance(final_activation, str) and final_activation.lower() in ACTIVATIONS:
                layers.append(act(final_activation.lower()))
            else:
                raise ValueError(
                    f"MLP: final_activation must be None, an nn.Module or one of {ACTIVATIONS}; "
                    f"got {final_activation!r}"
                )
        self.net = nn.Sequential(*layers)

        if init == "siren":
            w0 = float(w)
            with torch.no_grad():
                for i, lin in enumerate(linears):
                    n = lin.in_features
                    bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / w0
                    lin.weight.uniform_(-bound, bound)
        if zero_last:
            with torch.no_grad():
                linears[-1].weight.zero_()
                linears[-1].bias.zero_()

    @property
    def linears(self) -> list[nn.Linear]:
        """The Linear layers, first to last."""
        return [m for m in self.net if isinstance(m, nn.Linear)][: len(self.hidden) + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FoldedMLP:
    """One solve's view of an :class:`MLP`: frequencies folded into the weights (fast path, chapter 8).

    ``cos(w (W x + b)) = cos((w W) x + w b)``: multiplying each Linear that
    feeds a periodic activation by its ``w`` once per solve removes one
    element-wise product per layer from each of the ``4 (G - 1)`` vector-field
    evaluations of an RK4 solve.  The folding is differentiable (a learned
    ``w`` gets its gradient) and honours :func:`override_w`, because it reads
    each layer's current effective ``w``.

    ``n_state`` splits the first layer's input into the part that changes at
    every evaluation (the first ``n_state`` columns: the ODE state) and the
    part that is fixed during the solve (the rest: e.g. the latent code ``z``
    and time).  :meth:`first_bias` maps the fixed part once, through the first
    layer, to a bias; :meth:`__call__` then only multiplies the state.

    Build it inside the forward pass (never cache it across optimiser steps:
    the weights change).  It equals the module's own forward (tested).
    """

    def __init__(self, mlp: "MLP", n_state: int | None = None):
        mods = list(mlp.net)
        layers = []  # [weight (out, in), bias, fn or None, kind]
        i = 0
        while i < len(mods):
            lin = mods[i]
            act = mods[i + 1] if i + 1 < len(mods) and not isinstance(mods[i + 1], nn.Linear) else None
            W, b = lin.weight, lin.bias
            fn, kind = None, None
            if isinstance(act, Periodic):
                w = act.w
                W, b = W * w, b * w
                fn, kind = act._fn, act.kind
            elif act is not None:
                fn, kind = act, "other"
            layers.append([W, b, fn, kind])
            i += 2 if act is not None else 1
        W0 = layers[0][0]
        self.n_state = W0.shape[1] if n_state is None else int(n_state)
        if not 0 < self.n_state <= W0.shape[1]:
            raise ValueError(f"FoldedMLP: n_state must lie in 1..{W0.shape[1]}, got {n_state}")
        self._W0_fixed_t = W0[:, self.n_state:].t()
        layers[0][0] = W0[:, : self.n_state]
        #: ``(weight (out, in), bias, fn, kind)`` per Linear; ``kind`` is "cos"/"sin" (folded),
        #: "other" or None (no activation after this Linear)
        self.layers = [tuple(layer) for layer in layers]

    @property
    def fusable(self) -> bool:
        """True when every hidden activation is periodic and the last Linear has none (see :mod:`sketchode.numerics.fused`)."""
        return all(k in ("cos", "sin") for *_, k in self.layers[:-1]) and self.layers[-1][3] is None

    def first_bias(self, fixed: torch.Tensor | None = None) -> torch.Tensor:
        """The first layer's effective bias given the fixed inputs ``fixed (..., in_dim - n_state)``."""
        b0 = self.layers[0][1]
        if fixed is None or fixed.shape[-1] == 0:
            return b0
        return torch.addmm(b0, fixed.reshape(-1, fixed.shape[-1]), self._W0_fixed_t).reshape(
            *fixed.shape[:-1], b0.shape[0]
        )

    def __call__(self, x: torch.Tensor, bias0: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP at state ``x (B, n_state)``; ``bias0`` from :meth:`first_bias` (default: no fixed input)."""
        for j, (W, b, fn, _) in enumerate(self.layers):
            x = torch.addmm(b if (j or bias0 is None) else bias0, x, W.t())
            if fn is not None:
                x = fn(x)
        return x


def periodic_layers(module: nn.Module) -> list[Periodic]:
    """Every :class:`Periodic` inside ``module`` (itself included), in ``module.modules()`` order."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"periodic_layers: expected an nn.Module; got {type(module).__name__}")
    return [m for m in module.modules() if isinstance(m, Periodic)]


def frequencies(module: nn.Module) -> list[float]:
    """The effective frequency ``w`` of every :class:`Periodic` inside ``module``, as floats."""
    return [float(m.w.detach()) for m in periodic_layers(module)]


@contextmanager
def override_w(module: nn.Module, w=None, scale=None) -> Iterator[list[Periodic]]:
    """Temporarily change the frequency of every periodic activation (section 5.5, "abstraction").

    Give exactly one of

    * ``w``: the new frequency of every layer (a positive number), or one per
      layer (a sequence as long as :func:`periodic_layers` of ``module``);
    * ``scale``: multiply each layer's current effective ``w`` by this positive
      number (``scale < 1`` gives the abstraction effect of figure 7).

    Inside the block each layer's ``w`` is a constant (no gradient reaches a
    learned frequency); the parameters and buffers themselves are not touched,
    so a ``state_dict`` saved inside the block holds the original values.  On
    exit, also when the block raises, the previous state is restored exactly:
    the previous override (so blocks nest), and the raw frequency parameters
    and buffers (values, ``requires_grad``, same tensor objects; a value the
    block changed is copied back in place).  Yields the list of affected layers.

    The override values live on the device and dtype the layers had on entry;
    move the module before entering the block, not inside it.

    Raises ``ValueError`` when ``module`` holds no :class:`Periodic` (e.g. a
    ReLU MLP), since there is no frequency to change.
    """
    layers = periodic_layers(module)
    if not layers:
        raise ValueError(
            f"override_w: {type(module).__name__} contains no Periodic (sin/cos) activation; "
            "there is no frequency w to override"
        )
    if (w is None) == (scale is None):
        raise ValueError("override_w: give exactly one of w= (new frequency) or scale= (multiplier)")
    if w is not None:
        if isinstance(w, (int, float)) or (torch.is_tensor(w) and w.ndim == 0):
            values = [_positive_float(w, "override_w: w")] * len(layers)
        else:
            values = [_positive_float(v, "override_w: w") for v in w]
            if len(values) != len(layers):
                raise ValueError(
                    f"override_w: got {len(values)} frequencies for {len(layers)} periodic layers"
                )
        new = [torch.tensor(v, dtype=l.w_raw.dtype, device=l.w_raw.device) for v, l in zip(values, layers)]
    else:
        s = _positive_float(scale, "override_w: scale")
        with torch.no_grad():
            new = [(l.w.detach() * s).clone() for l in layers]

    saved = [(l._w_override, l.w_raw, l.w_raw.detach().clone(), l.w_raw.requires_grad) for l in layers]
    try:
        for l, v in zip(layers, new):
            l._w_override = v
        yield layers
    finally:
        for l, (prev, raw, value, req) in zip(layers, saved):
            l._w_override = prev
            if l.w_raw is not raw:  # the block replaced the tensor: put the original back
                l._parameters.pop("w_raw", None)
                l._buffers.pop("w_raw", None)
                if isinstance(raw, nn.Parameter):
                    l._parameters["w_raw"] = raw
                else:
                    l._buffers["w_raw"] = raw
            with torch.no_grad():
                if raw.shape != value.shape:
                    raw.data = value.to(raw.device)
                elif not torch.equal(raw, value):
                    raw.copy_(value)
            raw.requires_grad_(req)
