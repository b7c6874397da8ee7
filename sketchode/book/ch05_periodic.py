"""Frequency content of periodic-activation networks and of the trajectories they draw (paper 4.5, 5.5; chapter 5).

Section 4.5 of the paper replaces the usual activations of the dynamics MLPs
by the periodic ``sin(w x)`` / ``cos(w x)`` of SIREN (Sitzmann et al., 2020)
"in order to increase the temporal frequency content of solution
trajectories", with ``w`` a hyperparameter or learned per layer; section 5.5
lowers ``w`` at test time to remove detail (the "abstraction effect").  This
module turns those sentences into measurements:

* :func:`power_spectrum`: the one-sided power spectral density of uniformly
  sampled signals (linear detrend, Hann window, ``numpy.fft.rfft``);
* :func:`spectral_centroid`, :func:`high_frequency_fraction`: one number per
  spectrum, the power-weighted mean frequency and the share of power above a
  cutoff;
* :func:`random_function`: a random 1-D MLP ``f(x)`` at frequency ``w``;
* :func:`random_decoder`, :func:`random_trajectories`: 2-D solution
  trajectories of random networks, either a time-dependent random vector
  field (:func:`sketchode.book.ch03_vector_fields.random_field`, chapter 3) or a random
  second-order decoder (:class:`sketchode.models.decoder.ODEDecoder`); one seed gives
  the same weights for every ``w``, so a sweep over ``w`` changes nothing else;
* :func:`trajectory_spectra`: spectra and centroids over a grid of ``w`` and seeds;
* :func:`fit_curve`: full-batch regression that records the learned
  frequencies at every step;
* figures: :func:`plot_activations`, :func:`plot_signals_and_spectra`,
  :func:`plot_spectra`, :func:`plot_centroids`, :func:`plot_trajectories_by_w`,
  :func:`plot_trajectory_spectrum`, :func:`plot_w_history`.

Frequencies are in cycles per unit of the sampled variable (per unit time
for trajectories on ``[0, T]``), never in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sketchode.models.dynamics import MLP, PERIODIC, _positive_float, frequencies, periodic_layers

__all__ = [
    "power_spectrum",
    "spectral_centroid",
    "high_frequency_fraction",
    "random_function",
    "random_decoder",
    "random_trajectories",
    "SpectraResult",
    "trajectory_spectra",
    "fit_curve",
    "plot_activations",
    "plot_signals_and_spectra",
    "plot_spectra",
    "plot_centroids",
    "plot_trajectories_by_w",
    "plot_trajectory_spectrum",
    "plot_w_history",
]

#: Models :func:`random_trajectories` can draw from.
MODELS = ("field", "decoder")


# ----------------------------------------------------------------- helpers
_positive = _positive_float  # the same check the dynamics family uses


def _count(value, least: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{what} must be an int >= {least}; got {value!r}")
    return int(value)


def _seed(seed, what: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{what}: seed must be an int; got {seed!r}")
    return int(seed)


def _numpy(a, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{what} must be a real numeric array; got dtype {a.dtype}")
    return a.astype(np.float64)


def _check_spectrum(freqs, power, where: str) -> tuple[np.ndarray, np.ndarray]:
    f, p = _numpy(freqs, f"{where}: freqs"), _numpy(power, f"{where}: power")
    if f.ndim != 1 or p.ndim < 1 or p.shape[-1] != f.shape[0]:
        raise ValueError(f"{where}: power (..., F) must end with the length of freqs (F,); "
                         f"got freqs {f.shape} and power {p.shape}")
    if not (np.isfinite(f).all() and np.isfinite(p).all()):
        raise ValueError(f"{where}: freqs and power must be finite")
    if (p < 0).any():
        raise ValueError(f"{where}: power must be non-negative (a power spectrum); got a minimum of {p.min():g}")
    return f, p


# ---------------------------------------------------------------- spectra
def power_spectrum(signal, dt: float, axis: int = -1, detrend: str | None = "linear",
                   window: str | None = "hann") -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density of uniformly sampled signals (sections 4.5, 5.5; chapter 5).

    ``signal`` is a numpy array or tensor sampled every ``dt`` along ``axis``
    (``N >= 4`` samples); every other axis is a batch.  Each signal is

    1. detrended: ``"linear"`` (default) subtracts its least-squares line,
       ``"mean"`` its mean, ``None`` nothing.  A trajectory that drifts from
       start to end would otherwise look, to the periodic FFT, like a saw tooth
       whose jump leaks power into every frequency;
    2. multiplied by a ``"hann"`` window (default; ``None``: no window), which
       tapers both ends to zero for the same reason;
    3. transformed with :func:`numpy.fft.rfft`.

    Returns ``(freqs, power)``: ``freqs (N // 2 + 1,)`` in cycles per unit of
    the sampled variable (``numpy.fft.rfftfreq(N, dt)``, resolution
    ``1 / (N dt)``, Nyquist ``1 / (2 dt)``) and ``power`` of the signal's shape
    with ``axis`` replaced by the last axis of length ``N // 2 + 1``::

        power_k = c_k dt |X_k|^2 / sum(window^2),   c_k = 2 except at 0 and Nyquist (1)

    normalised so that ``sum(power) / (N dt)`` is the window-weighted mean
    square of the detrended signal (Parseval's theorem).  Float64 numpy.
    """
    x = _numpy(signal, "power_spectrum: signal")
    dt = _positive(dt, "power_spectrum: dt")
    if x.ndim == 0:
        raise ValueError("power_spectrum: signal must have at least one axis (the samples)")
    try:
        x = np.moveaxis(x, axis, -1)
    except (ValueError, IndexError):  # numpy AxisError
        raise ValueError(f"power_spectrum: axis {axis} out of range for a signal of shape {x.shape}") from None
    N = x.shape[-1]
    if N < 4:
        raise ValueError(f"power_spectrum: need at least 4 samples along axis {axis}; got {N}")
    if not np.isfinite(x).all():
        raise ValueError("power_spectrum: the signal has NaN or inf values")
    if detrend == "linear":
        n = np.arange(N) - 0.5 * (N - 1)
        slope = (x * n).sum(-1, keepdims=True) / (n * n).sum()
        x = x - x.mean(-1, keepdims=True) - slope * n
    elif detrend == "mean":
        x = x - x.mean(-1, keepdims=True)
    elif detrend is not None:
        raise ValueError(f"power_spectrum: detrend must be 'linear', 'mean' or None; got {detrend!r}")
    if window == "hann":
        win = np.hanning(N)
    elif window is None:
        win = np.ones(N)
    else:
        raise ValueError(f"power_spectrum: window must be 'hann' or None; got {window!r}")
    X = np.fft.rfft(x * win, axis=-1)
    power = dt * (X.real ** 2 + X.imag ** 2) / (win * win).sum()
    power[..., 1:] *= 2.0
    if N % 2 == 0:
        power[..., -1] /= 2.0  # the Nyquist bin has no negative twin
    return np.fft.rfftfreq(N, dt), power


def spectral_centroid(freqs, power) -> np.ndarray:
    """Power-weighted mean frequency ``sum_k f_k P_k / sum_k P_k`` of spectra ``power (..., F)`` (chapter 5).

    The "centre of mass" of a spectrum, in the units of ``freqs``: it grows
    when power moves to higher frequencies (section 4.5: larger ``w``) and
    falls when detail is removed (section 5.5).  Returns ``(...)`` (a numpy
    float for one spectrum); NaN where a spectrum has no power at all (a
    constant or, after linear detrending, straight-line signal).
    """
    f, p = _check_spectrum(freqs, power, "spectral_centroid")
    total = p.sum(-1)
    out = np.divide((p * f).sum(-1), total, out=np.full_like(total, np.nan), where=total > 0)
    return out[()] if out.ndim == 0 else out


def high_frequency_fraction(freqs, power, cutoff: float) -> np.ndarray:
    """Share of the power at frequencies ``>= cutoff``, per spectrum ``power (..., F)`` (chapter 5).

    A number in ``[0, 1]``, the complement of a low-pass filter's kept power:
    how much of a trajectory lies above the scale ``1 / cutoff``.  NaN where a
    spectrum has no power.
    """
    f, p = _check_spectrum(freqs, power, "high_frequency_fraction")
    cutoff = float(cutoff)
    if not math.isfinite(cutoff) or cutoff < 0:
        raise ValueError(f"high_frequency_fraction: cutoff must be a finite number >= 0; got {cutoff!r}")
    total = p.sum(-1)
    high = p[..., f >= cutoff].sum(-1)
    out = np.divide(high, total, out=np.full_like(total, np.nan), where=total > 0)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------- random networks
def random_function(x, w: float = 1.0, seed: int = 0, activation: str = "cos",
                    hidden: Sequence[int] = (64, 64), init: str = "default") -> np.ndarray:
    """A random scalar MLP ``f: R -> R`` with activation ``act(w .)``, evaluated at ``x`` (section 4.5; chapter 5).

    The MLP is :class:`~sketchode.models.dynamics.MLP` ``(1 -> hidden -> 1)``; its
    weights depend on ``seed``, ``hidden`` and ``init`` only (drawn under
    ``torch.manual_seed(seed)`` inside a forked RNG: the global generator is
    untouched).  With ``init="default"`` (PyTorch's) one seed gives the same
    weights for every ``w``, so comparing ``w`` values compares *only* the
    frequency.  (``init="siren"`` divides the later layers' weights by ``w``,
    which is its point: keep the activations' distribution fixed.)

    ``x`` is a 1-D array or tensor of inputs; returns ``f(x)`` as a float64
    numpy array of the same length.
    """
    xs = _numpy(x, "random_function: x")
    if xs.ndim != 1 or xs.size < 1:
        raise ValueError(f"random_function: x must be a non-empty 1-D array; got shape {xs.shape}")
    seed = _seed(seed, "random_function")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = MLP(1, 1, hidden=tuple(hidden), activation=activation, w=w, init=init).double()
    with torch.no_grad():
        return mlp(torch.from_numpy(xs)[:, None])[:, 0].numpy()


def random_decoder(w: float = 1.0, seed: int = 0, activation: str = "sin", latent: int = 8, d: int = 8,
                   hidden: Sequence[int] = (32, 32), init: str = "default"):
    """A second-order decoder with random weights, drawing ``x, y`` only (sections 4.1, 4.5, 5.5; chapter 5).

    :class:`~sketchode.models.decoder.ODEDecoder` with ``visible=2`` (the
    multi-stroke format), a hidden process of size ``d`` and a latent code of
    size ``latent``; the dynamics MLP has hidden widths ``hidden`` and the
    activation ``activation(w .)``.  The default is ``sin``, the activation
    the paper uses for the abstraction effect (5.5): ``sin(w x) -> w x`` as
    ``w -> 0``, a linear network, whereas ``cos(w x) -> 1`` loses the input
    altogether.  Weights depend on ``seed`` (and sizes, ``init``), not on ``w``
    under the default init; the global RNG is untouched.  Returns the decoder
    in eval mode with gradients disabled.
    """
    from sketchode.models.decoder import ODEDecoder

    seed = _seed(seed, "random_decoder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dec = ODEDecoder(latent=latent, d=d, visible=2, hidden=tuple(hidden), activation=activation, w=w,
                         init=init)
    dec.requires_grad_(False)
    return dec.eval()


def _latent(n: int, latent: int, seed: int) -> torch.Tensor:
    return torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))


def random_trajectories(w: float = 1.0, seed: int = 0, model: str = "field", activation: str | None = None,
                        n: int = 16, T: float = 5.0, G: int = 401, hidden: Sequence[int] = (32, 32),
                        init: str = "default", module: nn.Module | None = None):
    """``n`` solution trajectories of a random network at frequency ``w`` (section 4.5; chapter 5).

    ``model="field"``: a time-dependent random vector field
    ``dy/dt = f(x, y, t)`` (:func:`sketchode.book.ch03_vector_fields.random_field` with
    ``time=True``; time is an input channel, as in SketchODE's dynamics),
    solved by RK4 (:func:`sketchode.numerics.solvers.rk4`, one step per grid interval)
    from ``n`` start points in ``[-0.8, 0.8]^2``
    (:func:`sketchode.book.ch03_vector_fields.default_starts` with ``seed``).  Default
    activation ``"cos"``.

    ``model="decoder"``: :func:`random_decoder` decoding ``n`` latent codes
    ``z ~ N(0, I)`` (drawn from ``seed``); every trajectory starts at the
    origin at rest (section 4.1).  Default activation ``"sin"``.

    Both are solved on ``G`` uniform times over ``[0, T]`` (``T = 5`` as in
    the paper, 5.1).  ``module`` passes an already built field or decoder
    (e.g. inside :func:`~sketchode.models.dynamics.override_w`); then ``w``,
    ``activation``, ``hidden`` and ``init`` are not used.  Returns
    ``(t, Y)``: times ``(G,)`` and positions ``(n, G, 2)``, float32 tensors
    without gradient.

    Keep ``T / (G - 1)`` small against the field's time scale: RK4 on a coarse
    grid at large ``w`` returns the solver's errors, not the ODE's solution
    (chapter 5 measures it).
    """
    from sketchode.book import ch03_vector_fields as fields

    if model not in MODELS:
        raise ValueError(f"random_trajectories: model must be one of {MODELS}; got {model!r}")
    seed = _seed(seed, "random_trajectories")
    n = _count(n, 1, "random_trajectories: n")
    G = _count(G, 2, "random_trajectories: G")
    T = _positive(T, "random_trajectories: T")
    if activation is None:
        activation = "cos" if model == "field" else "sin"
    if model == "field":
        f = module if module is not None else fields.random_field(
            activation, w=w, seed=seed, hidden=tuple(hidden), init=init, time=True)
        Y = fields.trajectories(f, fields.default_starts(n, 1.0, seed), T=T, G=G).transpose(0, 1)
        t = torch.linspace(0.0, T, G, dtype=Y.dtype)
    else:
        dec = module if module is not None else random_decoder(w, seed, activation, hidden=hidden, init=init)
        t = torch.linspace(0.0, T, G)
        with torch.no_grad():
            Y = dec(_latent(n, dec.latent, seed), t)
    return t, Y.contiguous()


@dataclass
class SpectraResult:
    """Spectra of random trajectories over a grid of frequencies ``ws`` and ``seeds`` (chapter 5).

    ``power (W, S, F)`` is each seed's power spectrum averaged over its
    trajectories and over both coordinates ``x(t), y(t)``; ``centroid`` and
    ``hf_fraction`` ``(W, S)`` are computed from it (:func:`spectral_centroid`,
    :func:`high_frequency_fraction` with ``cutoff``).
    """

    ws: np.ndarray
    seeds: np.ndarray
    freqs: np.ndarray
    power: np.ndarray
    centroid: np.ndarray
    hf_fraction: np.ndarray
    cutoff: float

    @property
    def mean_power(self) -> np.ndarray:
        """``(W, F)``: the spectrum averaged over seeds."""
        return self.power.mean(1)

    @property
    def mean_centroid(self) -> np.ndarray:
        """``(W,)``: the centroid averaged over seeds."""
        return self.centroid.mean(1)


def trajectory_spectra(ws: Sequence[float], seeds: Sequence[int], cutoff: float = 1.0,
                       **kw) -> SpectraResult:
    """Power spectra of :func:`random_trajectories` for every ``w`` in ``ws`` and seed in ``seeds`` (4.5; chapter 5).

    For each ``(w, seed)``: the trajectories ``(n, G, 2)``, the
    :func:`power_spectrum` of ``x(t)`` and ``y(t)`` of all of them in one
    call, averaged into one spectrum; then its centroid and its share of
    power above ``cutoff`` (cycles per unit time).  Keywords go to
    :func:`random_trajectories` (``model``, ``activation``, ``n``, ``T``,
    ``G``, ``hidden``, ``init``).  One network per ``(w, seed)``: the loop
    is over networks, each solve is batched over its trajectories.
    """
    ws = np.asarray([_positive(w, "trajectory_spectra: w") for w in ws], dtype=np.float64)
    seeds = np.asarray([_seed(s, "trajectory_spectra") for s in seeds], dtype=np.int64)
    if ws.size == 0 or seeds.size == 0:
        raise ValueError("trajectory_spectra: need at least one w and one seed")
    if "module" in kw:
        raise ValueError("trajectory_spectra: builds its own networks; 'module' is not accepted")
    powers, freqs = [], None
    for w in ws:
        row = []
        for s in seeds:
            t, Y = random_trajectories(float(w), int(s), **kw)
            freqs, P = power_spectrum(Y, float(t[1] - t[0]), axis=1)  # (n, 2, F)
            row.append(P.mean(axis=(0, 1)))
        powers.append(row)
    power = np.asarray(powers)  # (W, S, F)
    return SpectraResult(ws, seeds, freqs, power, spectral_centroid(freqs, power),
                         high_frequency_fraction(freqs, power, cutoff), float(cutoff))


# ---------------------------------------------------------------- training
def fit_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 1000, lr: float = 3e-3,
              lr_w: float | None = None) -> dict:
    """Fit ``model(x) ~ y`` by full-batch Adam on the mean squared error, recording the frequencies (4.5; chapter 5).

    The raw frequency parameters of learned periodic activations
    (:class:`~sketchode.models.dynamics.Periodic` with ``learn_w=True``) form their
    own parameter group with learning rate ``lr_w`` (default ``lr``): they are
    a handful of scalars, each multiplying a whole layer, and a separate rate
    is the usual way to let them move at a chosen speed.

    ``x (N, in)``, ``y (N, out)`` tensors.  Returns a dict of numpy arrays:
    ``"loss" (steps,)``, the loss *before* each step; ``"w" (steps + 1, L)``,
    the effective frequency of each of the ``L`` periodic layers
    (:func:`~sketchode.models.dynamics.frequencies`) before the first step and after
    each; and ``"final_loss"``, the loss after the last step.
    """
    steps = _count(steps, 1, "fit_curve: steps")
    lr = _positive(lr, "fit_curve: lr")
    lr_w = lr if lr_w is None else _positive(lr_w, "fit_curve: lr_w")
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.ndim != 2 or y.ndim != 2 \
            or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError("fit_curve: x and y must be 2-D tensors (N, in) and (N, out) with the same N >= 1; "
                         f"got {getattr(x, 'shape', type(x).__name__)} and {getattr(y, 'shape', type(y).__name__)}")
    raw = {id(l.w_raw) for l in periodic_layers(model) if l.learn_w}
    params = [p for p in model.parameters() if p.requires_grad]
    freq = [p for p in params if id(p) in raw]
    rest = [p for p in params if id(p) not in raw]
    groups = [g for g in ({"params": rest, "lr": lr}, {"params": freq, "lr": lr_w}) if g["params"]]
    if not groups:
        raise ValueError("fit_curve: the model has no trainable parameters")
    opt = torch.optim.Adam(groups)
    losses = np.empty(steps)
    ws = [frequencies(model)]
    for i in range(steps):
        loss = torch.mean((model(x) - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[i] = float(loss.detach())
        ws.append(frequencies(model))
    with torch.no_grad():
        final = float(torch.mean((model(x) - y) ** 2))
    return {"loss": losses, "w": np.asarray(ws, dtype=np.float64).reshape(steps + 1, -1), "final_loss": final}


# ----------------------------------------------------------------- figures
def _colors(k: int, cmap: str = "viridis"):
    import matplotlib.pyplot as plt

    cm = plt.get_cmap(cmap)
    return [cm(v) for v in np.linspace(0.0, 0.85, max(k, 1))]


def plot_activations(ws: Sequence[float] = (0.5, 1.0, 2.0, 4.0), kinds: Sequence[str] = ("sin", "cos"),
                     lim: float = 2 * math.pi, size: float = 3.2):
    """The periodic activations ``sin(w x)``, ``cos(w x)`` for several ``w`` (section 4.5; chapter 5).

    One panel per kind over ``x`` in ``[-lim, lim]``; the period ``2 pi / w``
    shrinks as ``w`` grows.  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    ws = [_positive(w, "plot_activations: w") for w in ws]
    for k in kinds:
        if k not in PERIODIC:
            raise ValueError(f"plot_activations: kinds must be among {PERIODIC}; got {k!r}")
    x = np.linspace(-lim, lim, 1001)
    fig, axes = plt.subplots(1, len(kinds), figsize=(size * len(kinds), 0.7 * size), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        fn = np.sin if kind == "sin" else np.cos
        for w, c in zip(ws, _colors(len(ws))):
            ax.plot(x, fn(w * x), color=c, lw=1.5, label=f"w = {w:g}")
        ax.set_title(f"{kind}(w x)", fontsize=10)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.tight_layout(pad=0.4)
    return fig


def plot_spectra(freqs, power, labels: Sequence[str] | None = None, ax=None, cutoff: float | None = None,
                 fmax: float | None = None, centroids: bool = True, cmap: str = "viridis", floor: float = 1e-12):
    """Power spectra ``power (K, F)`` on a log scale, one colour per row (chapter 5).

    ``labels`` name the rows (legend); ``cutoff`` draws a dotted line at that
    frequency; ``fmax`` limits the axis; ``centroids`` marks each row's
    :func:`spectral_centroid` on the top edge.  Powers are relative to the
    largest value of all rows, clipped at ``floor``.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    f, p = _check_spectrum(freqs, power, "plot_spectra")
    p = np.atleast_2d(p)
    if p.ndim != 2:
        raise ValueError(f"plot_spectra: power must be (F,) or (K, F); got {p.shape}")
    if labels is not None and len(labels) != p.shape[0]:
        raise ValueError(f"plot_spectra: {len(labels)} labels for {p.shape[0]} spectra")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    rel = np.clip(p / max(p.max(), np.finfo(float).tiny), floor, None)
    cs = _colors(p.shape[0], cmap)
    for k in range(p.shape[0]):
        ax.semilogy(f[1:], rel[k, 1:], color=cs[k], lw=1.5, label=None if labels is None else labels[k])
    if centroids:
        c = spectral_centroid(f, p)
        for k in range(p.shape[0]):
            if np.isfinite(c[k]):
                ax.plot([c[k]], [1.0], marker="v", color=cs[k], ms=7, clip_on=False,
                        transform=ax.get_xaxis_transform())
    if cutoff is not None:
        ax.axvline(cutoff, color="0.4", ls=":", lw=1)
    ax.set_xlim(0, fmax if fmax is not None else f[-1])
    ax.set_xlabel("frequency (cycles per unit)")
    ax.set_ylabel("relative power")
    ax.grid(alpha=0.3, which="major")
    if labels is not None:
        ax.legend(fontsize=8)
    return ax


def plot_signals_and_spectra(x, signals, labels: Sequence[str], fmax: float | None = None,
                             detrend: str | None = "linear", size: float = 3.3, xlabel: str = "x"):
    """Signals ``(K, N)`` sampled at uniform ``x (N,)`` beside their power spectra (chapter 5).

    Left: each signal (rescaled to unit range, stacked with offsets so their
    shapes can be compared); right: :func:`plot_spectra` of their
    :func:`power_spectrum` (``detrend`` passed on).  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    xs = _numpy(x, "plot_signals_and_spectra: x")
    S = np.atleast_2d(_numpy(signals, "plot_signals_and_spectra: signals"))
    if xs.ndim != 1 or S.ndim != 2 or S.shape[1] != xs.size or len(labels) != S.shape[0]:
        raise ValueError(f"plot_signals_and_spectra: need x (N,), signals (K, N) and K labels; got x {xs.shape}, "
                         f"signals {S.shape}, {len(labels)} labels")
    d = np.diff(xs)
    step = (xs[-1] - xs[0]) / max(xs.size - 1, 1)
    if xs.size < 4 or step <= 0 or not np.allclose(d, step, rtol=1e-3, atol=0):  # float32 grids pass
        raise ValueError("plot_signals_and_spectra: x must be an increasing uniform grid of >= 4 points")
    freqs, P = power_spectrum(S, float(step), detrend=detrend)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(2.4 * size, size))
    cs = _colors(S.shape[0])
    for k in range(S.shape[0]):
        s = S[k] - S[k].mean()
        span = max(float(np.ptp(s)), 1e-12)
        a0.plot(xs, s / span - 1.2 * k, color=cs[k], lw=1.4, label=labels[k])
    a0.set_yticks([])
    a0.set_xlabel(xlabel)
    a0.set_title("signals (each scaled to unit range)", fontsize=9)
    plot_spectra(freqs, P, labels=labels, ax=a1, fmax=fmax)
    a1.set_title("power spectra (triangles: centroids)", fontsize=9)
    fig.tight_layout(pad=0.4)
    return fig


def plot_centroids(ws, values, ax=None, ylabel: str = "spectral centroid (cycles per unit time)",
                   logy: bool = False):
    """A per-seed measure ``values (W, S)`` against ``ws (W,)``: seeds as dots, their mean as a line (chapter 5).

    The ``w`` axis is logarithmic (base 2).  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    w = _numpy(ws, "plot_centroids: ws")
    v = _numpy(values, "plot_centroids: values")
    if v.ndim == 1:
        v = v[:, None]
    if w.ndim != 1 or v.ndim != 2 or v.shape[0] != w.size:
        raise ValueError(f"plot_centroids: need ws (W,) and values (W, S); got {w.shape} and {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.2))
    jitter = np.linspace(-0.04, 0.04, v.shape[1]) if v.shape[1] > 1 else np.zeros(1)
    ax.scatter((w[:, None] * 2.0 ** jitter).ravel(), v.ravel(), s=12, color="0.6", zorder=2, label="one seed")
    ax.plot(w, np.nanmean(v, axis=1), "o-", color="crimson", lw=2, zorder=3, label="mean over seeds")
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xticks(w)
    ax.set_xticklabels([f"{x:g}" for x in w])
    ax.set_xlabel("w")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_trajectories_by_w(ws: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0), seed: int = 0, n: int = 6,
                           size: float = 2.1, **kw):
    """One random network at several ``w``, side by side (section 4.5; chapter 5).

    Column ``j``: :func:`random_trajectories` ``(w_j, seed, n=n, **kw)``.
    Top row: the trajectories in the plane, coloured by time like ink
    (:func:`sketchode.book.ch03_vector_fields.plot_trajectories`); bottom row: ``x(t)`` of each.
    The same seed gives the same weights in every column.  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sketchode.book.ch03_vector_fields import plot_trajectories

    ws = [_positive(w, "plot_trajectories_by_w: w") for w in ws]
    if not ws:
        raise ValueError("plot_trajectories_by_w: no w")
    fig, axes = plt.subplots(2, len(ws), figsize=(size * len(ws), 1.9 * size), squeeze=False,
                             gridspec_kw={"height_ratios": [1.0, 0.75]})
    for j, w in enumerate(ws):
        t, Y = random_trajectories(w, seed, n=n, **kw)
        plot_trajectories(Y.transpose(0, 1), ax=axes[0, j], linewidth=1.6, title=f"w = {w:g}")
        axes[1, j].plot(t.numpy(), Y[..., 0].T.numpy(), lw=1)
        axes[1, j].set_xlabel("t")
        axes[1, j].grid(alpha=0.3)
    axes[1, 0].set_ylabel("x(t)")
    fig.tight_layout(pad=0.3)
    return fig


def plot_trajectory_spectrum(w: float = 2.0, seed: int = 0, n: int = 6, fmax: float = 4.0, size: float = 3.0,
                             **kw):
    """Trajectories of one random network, their ``x(t), y(t)`` and their mean spectrum (chapter 5; widget).

    :func:`random_trajectories` ``(w, seed, n=n, **kw)``; the right panel is
    the power spectrum averaged over trajectories and coordinates, with its
    centroid in the title.  Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from sketchode.book.ch03_vector_fields import plot_trajectories

    t, Y = random_trajectories(w, seed, n=n, **kw)
    freqs, P = power_spectrum(Y, float(t[1] - t[0]), axis=1)
    mean = P.mean(axis=(0, 1))
    fig, axes = plt.subplots(1, 3, figsize=(3.3 * size, size))
    plot_trajectories(Y.transpose(0, 1), ax=axes[0], linewidth=1.6, title=f"w = {float(w):g}, seed {seed}")
    axes[1].plot(t.numpy(), Y[..., 0].T.numpy(), lw=1)
    axes[1].set_xlabel("t")
    axes[1].set_title("x(t)", fontsize=9)
    axes[1].grid(alpha=0.3)
    plot_spectra(freqs, mean, ax=axes[2], fmax=fmax)
    axes[2].set_title(f"spectrum, centroid {float(spectral_centroid(freqs, mean)):.3f}", fontsize=9)
    fig.tight_layout(pad=0.4)
    return fig


def plot_w_history(w_history, ax=None, labels: Sequence[str] | None = None, true_w: float | None = None):
    """Learned frequencies ``w_history (steps + 1, L)`` against the step (as from :func:`fit_curve`) (chapter 5).

    One line per periodic layer; ``true_w`` draws a reference level.  Returns the Axes.
    """
    import matplotlib.pyplot as plt

    h = _numpy(w_history, "plot_w_history: w_history")
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or h.shape[0] < 1:
        raise ValueError(f"plot_w_history: w_history must be (steps + 1, L); got {h.shape}")
    if labels is None:
        labels = [f"layer {i + 1}" for i in range(h.shape[1])]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.0))
    for i, c in enumerate(_colors(h.shape[1], "plasma")):
        ax.plot(np.arange(h.shape[0]), h[:, i], color=c, lw=1.8, label=labels[i])
    if true_w is not None:
        ax.axhline(true_w, color="0.4", ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("w")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
