"""Chapter 13's measurement and figure helpers of sketchode.book.ch13_one_shot (interpolate, class_probabilities, ...)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.book.ch10_latent import decode_sketches, encode_sketches, lerp, path_smoothness  # noqa: E402
from sketchode.models.full_sequence import SketchODE  # noqa: E402
from sketchode.book.ch13_one_shot import (by_variant, class_probabilities, finetune, held_out, interpolate,  # noqa: E402
                               loss_spikes, one_shot_set, plot_histories, plot_strips, score)
from sketchode.evaluation.recognition import RecognitionCNN, predict  # noqa: E402
from sketchode.training.fit import History, evaluate  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shots():
    return one_shot_set("ABD")


@pytest.fixture(scope="module")
def model(tiny_autoencoder):  # conftest.py: a tiny SketchODE, then a tiny LSTM baseline
    return tiny_autoencoder


@pytest.fixture(scope="module")
def recognizer():
    torch.manual_seed(0)
    return RecognitionCNN(3, classes=list("ABD"), width=4, hidden=8).eval()


def test_interpolate_matches_latent_pipeline(model, shots):
    out = interpolate(model, shots[0], shots[1], n=5)
    assert out["xy"].shape == (5, 20, 2) and out["pen"].shape == (5, 20) and out["z"].shape == (5, 6)
    np.testing.assert_allclose(out["alpha"], np.linspace(0, 1, 5))
    z = encode_sketches(model, shots[:2])
    torch.testing.assert_close(out["z"], lerp(z[0], z[1], 5))
    ref = path_smoothness(out["xy"])
    assert out["jump"] == ref["jump"] and out["detour"] == ref["detour"]
    np.testing.assert_array_equal(out["steps"], ref["steps"])
    # the drawings are the latent module's decodings of the same codes
    dec = decode_sketches(model, out["z"])
    assert len(out["sketches"]) == 5
    for a, b in zip(out["sketches"], dec):
        assert a.n_strokes == b.n_strokes
        np.testing.assert_allclose(a.points[:, :2], b.points[:, :2], atol=1e-6)
    # the ends are the reconstructions of a and b
    assert out["sketches"][0].n_points > 0 and np.isfinite(out["xy"]).all()


def test_interpolate_bad_input(model, shots):
    with pytest.raises(ValueError, match="n must be"):
        interpolate(model, shots[0], shots[1], n=2)
    with pytest.raises(TypeError, match="Sketches"):
        interpolate(model, shots[0], np.zeros((5, 3)))


def test_class_probabilities(recognizer, shots):
    p = class_probabilities(recognizer, shots)
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    assert list(p.argmax(1)) == ["ABD".index(c) for c in predict(recognizer, shots)]
    pb = class_probabilities(recognizer, shots, "DB")
    np.testing.assert_allclose(pb, p[:, [2, 1]])
    with pytest.raises(ValueError, match="not among"):
        class_probabilities(recognizer, shots, "AZ")
    with pytest.raises(ValueError, match="no drawings"):
        class_probabilities(recognizer, [])


def test_by_variant(shots):
    test = held_out("ABD", per_class=10)
    same, other = by_variant(test, shots)
    assert len(same) + len(other) == len(test) and same and other
    want = {s.label: s.meta["variant"] for s in shots}
    assert all(s.meta["variant"] == want[s.label] for s in same)
    assert all(s.meta["variant"] != want[s.label] for s in other)
    with pytest.raises(ValueError, match="no shot of its class"):
        by_variant(held_out("E", per_class=1), shots)


def test_score(model, shots, recognizer):
    r = score(model, shots)
    ref = evaluate(model, shots)
    assert r["n"] == 3 and r["accuracy"] is None
    assert r["loss"] == pytest.approx(ref["total"]) and r["loss_position"] == pytest.approx(ref["position"])
    r = score(model, shots, recognizer)
    assert r["accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0) or 0.0 <= r["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="no drawings"):
        score(model, [])


def test_plot_strips(shots):
    fig = plot_strips({"first": shots, "second": shots[:2]}, col_titles=["0", "0.5", "1"])
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel() == "first" and axes[1, 0].get_ylabel() == "second"
    assert axes[0, 1].get_title() == "0.5" and axes[1, 1].get_title() == ""
    assert not axes[1, 2].axison  # the shorter row leaves a blank cell
    plt.close(fig)
    fig = plot_strips({"a": shots, "b": shots}, col_titles=["x", "y", "z"], cell_titles={"b": ["1", "2", "3"]})
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 2].get_title() == "z" and axes[1, 2].get_title() == "3"
    plt.close(fig)
    with pytest.raises(ValueError, match="one title per drawing"):
        plot_strips({"a": shots}, cell_titles={"a": ["1"]})
    with pytest.raises(ValueError, match="no drawings"):
        plot_strips({})
    with pytest.raises(ValueError, match="column titles"):
        plot_strips({"a": shots[:1]}, col_titles=["x", "y"])


def test_plot_histories_and_finetune(shots):
    torch.manual_seed(0)
    m = SketchODE(d=8, l=6, G=20, n_hidden=1)
    h = finetune(m, shots, steps=3)
    assert isinstance(h, History) and [r["step"] for r in h.records] == [1, 2, 3]
    ax = plot_histories({"ode": h, "as dict": h.to_dict(), "as list": h.records})
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="no records"):
        plot_histories({"empty": History()})


def test_loss_spikes():
    recs = [{"step": i + 1, "train_loss": v} for i, v in enumerate([1.0, 0.5, 1.2, 0.3, 0.2, 0.5, 0.1])]
    assert loss_spikes(recs) == 2  # 0.5 -> 1.2 and 0.2 -> 0.5
    assert loss_spikes(recs, factor=2.45) == 1
    h = History(records=recs)
    assert loss_spikes(h) == loss_spikes(h.to_dict()) == 2
    assert loss_spikes([]) == 0 and loss_spikes(recs[:1]) == 0
    with pytest.raises(ValueError, match="factor"):
        loss_spikes(recs, factor=1.0)
