"""Tests for sketchode.book.ch05_periodic (paper 4.5, 5.5; chapter 5): spectra, centroids, random networks, learned w."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.book import ch05_periodic as S  # noqa: E402
from sketchode.models.dynamics import MLP, frequencies, override_w  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------ power_spectrum
def test_sine_peaks_at_its_frequency():
    dt, N = 0.01, 1000  # 10 units, resolution 0.1
    t = np.arange(N) * dt
    x = np.sin(2 * np.pi * 3.0 * t) + 0.5 * np.cos(2 * np.pi * 7.0 * t)
    f, P = S.power_spectrum(x, dt, detrend=None, window=None)
    assert f.shape == P.shape == (N // 2 + 1,)
    assert np.isclose(f[1], 0.1) and np.isclose(f[-1], 50.0)
    top2 = sorted(f[np.argsort(P)[-2:]])
    assert np.allclose(top2, [3.0, 7.0])  # whole periods: all power in two bins
    assert P.sum() - P[[30, 70]].sum() < 1e-9 * P.sum()
    # power ratio of the peaks is the squared amplitude ratio
    assert np.isclose(P[70] / P[30], 0.25, rtol=1e-6)
    # the defaults (detrend, Hann window) spread each peak over a few bins but keep its place
    _, H = S.power_spectrum(x, dt)
    peaks = np.flatnonzero((H[1:-1] > H[:-2]) & (H[1:-1] > H[2:]) & (H[1:-1] > 1e-3 * H.max())) + 1
    assert np.allclose(f[peaks], [3.0, 7.0])


@pytest.mark.parametrize("N", [64, 65])
def test_parseval_normalisation(N):
    """Without detrend and window: sum(power) / (N dt) is exactly the mean square."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, N))
    dt = 0.3
    f, P = S.power_spectrum(x, dt, detrend=None, window=None)
    assert np.allclose(P.sum(-1) / (N * dt), (x ** 2).mean(-1))
    # with the Hann window: the window-weighted mean square
    _, Ph = S.power_spectrum(x, dt, detrend=None)
    w = np.hanning(N)
    assert np.allclose(Ph.sum(-1) / (N * dt), (w ** 2 * x ** 2).sum(-1) / (w ** 2).sum())


def test_detrend_axis_and_torch_input():
    t = np.linspace(0, 5, 101)
    line = 3.0 - 2.0 * t
    _, P = S.power_spectrum(line, t[1] - t[0])
    assert P.max() < 1e-20  # a straight line has no power after linear detrending
    _, Pm = S.power_spectrum(line, t[1] - t[0], detrend="mean")
    assert Pm.max() > 1e-3  # ... but does after removing only its mean
    Y = torch.randn(4, 101, 2, generator=torch.Generator().manual_seed(0))
    f, P1 = S.power_spectrum(Y, 0.05, axis=1)
    _, P2 = S.power_spectrum(Y.transpose(1, 2).numpy(), 0.05)
    assert P1.shape == (4, 2, 51) and np.allclose(P1, P2) and P1.dtype == np.float64


@pytest.mark.parametrize(
    "args, kw, exc",
    [
        ((np.ones(10), 0.0), {}, ValueError),
        ((np.ones(10), -1), {}, ValueError),
        ((np.ones(10), "a"), {}, TypeError),
        ((np.ones(3), 0.1), {}, ValueError),
        ((np.array([1.0, np.nan, 2, 3, 4]), 0.1), {}, ValueError),
        ((np.ones(10), 0.1), {"detrend": "cubic"}, ValueError),
        ((np.ones(10), 0.1), {"window": "hamming"}, ValueError),
        ((np.ones(10), 0.1), {"axis": 2}, ValueError),
        ((np.array(["a"] * 5), 0.1), {}, TypeError),
    ],
)
def test_power_spectrum_rejects_bad_input(args, kw, exc):
    with pytest.raises(exc):
        S.power_spectrum(*args, **kw)


# ------------------------------------------------------- centroid and fraction
def test_centroid_and_high_fraction():
    f = np.array([0.0, 1.0, 2.0, 3.0])
    P = np.array([[0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0.0]])
    c = S.spectral_centroid(f, P)
    assert c[0] == 1.0 and c[1] == 2.0 and np.isnan(c[2])
    h = S.high_frequency_fraction(f, P, cutoff=2.0)
    assert h[0] == 0.0 and h[1] == 0.5 and np.isnan(h[2])
    assert isinstance(S.spectral_centroid(f, P[1]), float)
    with pytest.raises(ValueError, match="non-negative"):
        S.spectral_centroid(f, -P)
    with pytest.raises(ValueError, match="length of freqs"):
        S.spectral_centroid(f[:3], P)
    with pytest.raises(ValueError, match="cutoff"):
        S.high_frequency_fraction(f, P, cutoff=-1)


def test_centroid_moves_with_frequency():
    t = np.linspace(0, 5, 501)
    f, P = S.power_spectrum(np.stack([np.sin(2 * np.pi * k * t) for k in (1, 2, 4)]), t[1] - t[0])
    c = S.spectral_centroid(f, P)
    assert np.all(np.diff(c) > 0) and np.allclose(c, [1, 2, 4], rtol=0.05)


# ------------------------------------------------------------ random networks
def test_random_function_seeded_and_w_raises_frequency():
    x = np.linspace(-5, 5, 512)
    state = torch.get_rng_state()
    a = S.random_function(x, w=2.0, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert np.array_equal(a, S.random_function(x, w=2.0, seed=3))
    assert not np.allclose(a, S.random_function(x, w=2.0, seed=4))
    assert a.shape == (512,) and a.dtype == np.float64
    f, P = S.power_spectrum(np.stack([S.random_function(x, w, seed=0) for w in (0.5, 8.0)]), x[1] - x[0])
    lo, hi = S.spectral_centroid(f, P)
    assert hi > 3 * lo
    with pytest.raises(ValueError):
        S.random_function(np.ones((2, 2)))
    with pytest.raises(TypeError):
        S.random_function(x, seed=1.5)


def test_random_trajectories_shapes_and_starts():
    t, Y = S.random_trajectories(2.0, seed=1, n=5, G=41)
    assert t.shape == (41,) and Y.shape == (5, 41, 2) and not Y.requires_grad
    assert torch.isclose(t[-1], torch.tensor(5.0))
    from sketchode.book.ch03_vector_fields import default_starts
    assert torch.allclose(Y[:, 0], default_starts(5, 1.0, 1))
    t, D = S.random_trajectories(2.0, seed=1, n=5, G=41, model="decoder")
    assert D.shape == (5, 41, 2) and torch.all(D[:, 0] == 0)  # decoder starts at the origin (4.1)
    for bad in (dict(model="lstm"), dict(n=0), dict(G=1), dict(T=-1.0)):
        with pytest.raises(ValueError):
            S.random_trajectories(1.0, **bad)


@pytest.mark.parametrize("model", ["field", "decoder"])
def test_same_seed_same_weights_so_override_equals_rebuild(model):
    """Under the default init one seed gives the same weights for every w: halving w by override_w
    is the same network as building it at w / 2, and w is restored after the block."""
    from sketchode.book import ch03_vector_fields as fields

    net = (fields.random_field("cos", w=4.0, seed=2, time=True, init="default") if model == "field"
           else S.random_decoder(4.0, seed=2))
    with override_w(net, scale=0.5):
        _, A = S.random_trajectories(seed=2, n=3, G=31, model=model, module=net)
    _, B = S.random_trajectories(2.0, seed=2, n=3, G=31, model=model)
    assert torch.allclose(A, B, atol=1e-6)
    assert frequencies(net) == [4.0, 4.0]


def test_trajectory_spectra_centroid_grows_with_w():
    r = S.trajectory_spectra([0.5, 8.0], seeds=[0], n=4, G=201, cutoff=1.0)
    assert r.power.shape == (2, 1, 101) and r.freqs.shape == (101,)
    assert r.centroid.shape == r.hf_fraction.shape == (2, 1)
    assert r.mean_power.shape == (2, 101) and r.mean_centroid.shape == (2,)
    assert r.mean_centroid[1] > 1.5 * r.mean_centroid[0]
    assert r.hf_fraction[1, 0] > r.hf_fraction[0, 0]
    with pytest.raises(ValueError):
        S.trajectory_spectra([], seeds=[0])
    with pytest.raises(ValueError):
        S.trajectory_spectra([1.0], seeds=[0], module=None)


# ------------------------------------------------------------------ fit_curve
def _data():
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    return x, torch.sin(2 * np.pi * 2 * x)


def test_fit_curve_records_learned_w():
    x, y = _data()
    torch.manual_seed(0)
    m = MLP(1, 1, hidden=(16, 16), w=0.5, learn_w=True)
    h = S.fit_curve(m, x, y, steps=60, lr=3e-3, lr_w=3e-2)
    assert h["loss"].shape == (60,) and h["w"].shape == (61, 2)
    assert np.allclose(h["w"][0], 0.5, atol=1e-6) and np.allclose(h["w"][-1], frequencies(m))
    assert not np.allclose(h["w"][-1], 0.5)
    assert h["final_loss"] < h["loss"][0]
    # a fixed w is a buffer: it never moves
    torch.manual_seed(0)
    fixed = MLP(1, 1, hidden=(16, 16), w=0.5)
    hf = S.fit_curve(fixed, x, y, steps=20)
    assert np.all(hf["w"] == 0.5)


def test_fit_curve_lr_w_is_a_separate_group():
    x, y = _data()
    moves = []
    for lr_w in (1e-6, 1e-1):
        torch.manual_seed(0)
        m = MLP(1, 1, hidden=(16,), w=1.0, learn_w=True)
        h = S.fit_curve(m, x, y, steps=20, lr=1e-3, lr_w=lr_w)
        moves.append(abs(h["w"][-1, 0] - h["w"][0, 0]))
    assert moves[0] < 1e-4 < 1e-2 < moves[1]


def test_fit_curve_rejects_bad_input():
    x, y = _data()
    m = MLP(1, 1, hidden=(4,))
    with pytest.raises(ValueError):
        S.fit_curve(m, x[:, 0], y)
    with pytest.raises(ValueError):
        S.fit_curve(m, x, y[:10])
    with pytest.raises(ValueError):
        S.fit_curve(m, x, y, steps=0)
    with pytest.raises(ValueError):
        S.fit_curve(m, x, y, lr=0)


# -------------------------------------------------------------------- figures
def test_figures():
    fig = S.plot_activations((1.0, 2.0))
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    x = np.linspace(0, 1, 64)
    fig = S.plot_signals_and_spectra(x, np.stack([np.sin(6 * x), np.cos(20 * x)]), ["a", "b"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        S.plot_signals_and_spectra(x ** 2, np.stack([x, x]), ["a", "b"])  # not a uniform grid
    f, P = S.power_spectrum(np.stack([np.sin(6 * x), np.cos(20 * x)]), x[1] - x[0])
    ax = S.plot_spectra(f, P, labels=["a", "b"], cutoff=2.0)
    assert len(ax.get_legend().get_texts()) == 2
    with pytest.raises(ValueError):
        S.plot_spectra(f, P, labels=["a"])
    ax = S.plot_centroids([1.0, 2.0], np.array([[0.1, 0.2], [0.3, 0.4]]))
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError):
        S.plot_centroids([1.0, 2.0, 4.0], np.ones((2, 2)))
    fig = S.plot_trajectories_by_w((1.0, 2.0), n=2, G=21)
    assert len(fig.axes) == 4
    fig = S.plot_trajectory_spectrum(2.0, 0, n=2, G=21)
    assert len(fig.axes) == 3
    ax = S.plot_w_history(np.ones((5, 2)), true_w=1.0)
    assert len(ax.lines) == 3
    with pytest.raises(ValueError):
        S.plot_activations(kinds=("tanh",))
