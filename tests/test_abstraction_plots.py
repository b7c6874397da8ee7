"""Chapter 11's additions to sketchode.book.ch11_abstraction: spread, the LSTM and smoothing controls, sweep extras, figures."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.book.ch11_abstraction import (  # noqa: E402
    class_accuracy, decode_at, decode_rnn_at, decode_smoothed, paths_to_sketches, plot_accuracy_vs_detail,
    plot_class_accuracy, plot_measures, plot_sweep, scale_lstm, spread, sweep, threshold_scale,
)
from sketchode.models.lstm import RNNAutoencoder  # noqa: E402
from sketchode.data import load  # noqa: E402
from sketchode.book.ch10_latent import decode_paths, decode_sketches, encode_sketches  # noqa: E402
from sketchode.models.full_sequence import SketchODE  # noqa: E402
from sketchode.evaluation.recognition import RecognitionCNN, predict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = load("digits", "test")[:6]
LABELS = [s.label for s in DIGITS]


@pytest.fixture(scope="module")
def ode():
    torch.manual_seed(0)
    m = SketchODE(d=8, l=6, G=20, n_hidden=1)
    with torch.no_grad():  # an untrained decoder lifts the pen everywhere: push its logit down, so there is ink
        m.decoder.F.linears[-1].bias[2] -= 5.0
    return m, encode_sketches(m, DIGITS)


@pytest.fixture(scope="module")
def rnn():
    torch.manual_seed(0)
    m = RNNAutoencoder(d=8, l=6, G=20)
    return m, encode_sketches(m, DIGITS)


@pytest.fixture(scope="module")
def recognizer():
    torch.manual_seed(0)
    return RecognitionCNN(10, classes=[str(k) for k in range(10)]).eval()


def test_spread_is_zero_for_identical_and_scale_free():
    t = np.linspace(0, 1, 30)
    one = np.stack([t, t ** 2], -1)
    assert spread(np.stack([one, one, one])) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(5, 30, 2)).cumsum(1)
    assert spread(xy) > 0.1
    assert spread(3.0 * xy) == pytest.approx(spread(xy))            # invariant to the drawings' size
    assert np.isnan(spread(np.zeros((3, 10, 2))))
    with pytest.raises(ValueError, match="n >= 2"):
        spread(xy[:1])


def test_cos_decoder_spread_vanishes_and_trajectory_is_the_constant_acceleration_ray(ode):
    m, z = ode
    xy1, _ = decode_at(m, z, 1.0, raw=True)
    xy0, _ = decode_at(m, z, 1e-5, raw=True)
    assert spread(xy0) < 1e-3 < spread(xy1)
    lin = m.decoder.F.linears[-1]
    c = (lin.weight.sum(1) + lin.bias).detach().numpy()[:2]          # F -> W 1 + b when cos -> 1
    t = np.linspace(0, m.config["T"], xy0.shape[1])
    assert np.allclose(xy0, 0.5 * c * t[:, None] ** 2, atol=1e-4)


def test_scale_lstm_scales_preactivations_and_restores_exactly(rnn):
    m, z = rnn
    before = {k: v.clone() for k, v in m.state_dict().items()}
    xy1, p1 = decode_paths(m, z)
    with scale_lstm(m.decoder, 0.5) as params:
        assert torch.allclose(m.decoder.lstm.weight_hh_l0, 0.5 * before["decoder.lstm.weight_hh_l0"])
        assert torch.equal(m.decoder.out.weight, before["decoder.out.weight"])   # linear output untouched
        assert len(params) == 6
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(RuntimeError):
        with scale_lstm(m.decoder, 0.5):
            raise RuntimeError("inside")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    xy_half, _ = decode_rnn_at(m, z, 0.5, raw=True)
    assert not np.allclose(xy_half, xy1)
    # scale -> 0: gates at 1/2, cell input 0, so the output is the output layer's bias: a dot
    xy0, _ = decode_rnn_at(m, z, 1e-6, raw=True)
    assert np.allclose(xy0, m.decoder.out.bias.detach().numpy()[:2], atol=1e-4)
    assert np.allclose(decode_rnn_at(m, z, 1.0, raw=True)[0], xy1)
    with pytest.raises(ValueError, match="no nn.LSTM"):
        with scale_lstm(torch.nn.Linear(2, 2), 0.5):
            pass
    with pytest.raises(ValueError, match="scale must be"):
        with scale_lstm(m.decoder, 0.0):
            pass


def test_decode_smoothed_zero_is_the_reconstruction_and_smoothing_lowers_detail(ode):
    m, z = ode
    xy, pen = decode_paths(m, z, 60)
    xs, ps = decode_smoothed(m, z, 0.0, 60, raw=True)
    assert np.array_equal(xs, xy) and np.array_equal(ps, pen)
    r = sweep(m, z, (0.0, 0.2, 0.8), G=60, decode=decode_smoothed)
    assert r["reference"] == 0
    d = [np.mean(v) for v in r["detail"]]
    assert np.isfinite(d).all() and d[2] < d[0]
    with pytest.raises(ValueError, match="sigma"):
        decode_smoothed(m, z, -1.0)


def test_paths_to_sketches_matches_decode_sketches(ode):
    m, z = ode
    xy, pen = decode_paths(m, z, 30)
    a, b = paths_to_sketches(xy, pen, m.config["T"]), decode_sketches(m, z, 30)
    assert all(np.array_equal(x.points, y.points) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="expected xy"):
        paths_to_sketches(xy[..., :1], pen)


def test_sweep_with_recognizer_and_class_accuracy(ode, recognizer):
    m, z = ode
    r = sweep(m, z, (1.0, 0.5), G=30, recognizer=recognizer, labels=LABELS)
    assert r["reference"] == 0 and len(r["spread"]) == 2 and len(r["accuracy"]) == 2
    pred = predict(recognizer, r["sketches"][1])
    assert r["correct"][1].tolist() == [p == q for p, q in zip(pred, LABELS)]
    assert r["accuracy"][1] == pytest.approx(np.mean(r["correct"][1]))
    classes, acc = class_accuracy(r, LABELS)
    assert classes == sorted(set(LABELS)) and acc.shape == (len(classes), 2)
    for i, c in enumerate(classes):
        sel = np.array(LABELS) == c
        assert acc[i, 1] == pytest.approx(r["correct"][1][sel].mean())
    with pytest.raises(ValueError, match="labels"):
        sweep(m, z, (1.0,), recognizer=recognizer)
    with pytest.raises(ValueError, match="without a recognizer"):
        class_accuracy(sweep(m, z, (1.0,), G=30), LABELS)
    assert sweep(m, z, (0.5,), G=30)["reference"] is None


def test_threshold_scale():
    s = [1.0, 0.9, 0.8, 0.7]
    assert threshold_scale(s, [1.0, 0.8, 0.4, 0.2], 0.5) == pytest.approx(0.825)
    assert threshold_scale(s[::-1], [0.2, 0.4, 0.8, 1.0], 0.5) == pytest.approx(0.825)   # any order
    assert np.isnan(threshold_scale([1.2, 1.0, 0.9], [0.1, 1.0, 0.9], 0.5))   # scales above start ignored
    assert threshold_scale(s, [0.3, 0.2, 0.1, 0.0], 0.5) == 1.0
    with pytest.raises(ValueError):
        threshold_scale([1.0], [1.0, 2.0], 0.5)


def test_figures(ode, rnn, recognizer):
    m, z = ode
    r = sweep(m, z, (1.0, 0.5, 0.2), G=30, recognizer=recognizer, labels=LABELS)
    rr = sweep(rnn[0], rnn[1], (1.0, 0.5), G=20, recognizer=recognizer, labels=LABELS, decode=decode_rnn_at)
    fig = plot_sweep(r, rows=3, row_titles=LABELS[:3])
    assert np.array(fig.axes).size == 9 and fig.axes[0].get_title() == "w x 1"
    with pytest.raises(ValueError, match="row indices"):
        plot_sweep(r, rows=[99])
    fig = plot_measures({"ode": r, "lstm": rr})
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 3          # two curves and the s = 1 marker
    assert np.allclose(fig.axes[0].lines[0].get_ydata()[0], 1.0)       # relative to scale 1
    ax = plot_accuracy_vs_detail({"ode": r})
    assert np.allclose(ax.lines[0].get_ydata(), r["accuracy"])
    with pytest.raises(ValueError, match="without a recognizer"):
        plot_accuracy_vs_detail({"x": sweep(m, z, (1.0,), G=30)})
    ax = plot_class_accuracy(r, LABELS)
    assert ax.images[0].get_array().shape == (len(set(LABELS)), 3)
    plt.close("all")
