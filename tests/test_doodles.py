"""Tests of sketchode.book.ch14_multistroke: chapter 14's measurements and figures of the multi-stroke model (appendix C)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import make_sketch  # noqa: E402
from sketchode.data.sketch import prepare  # noqa: E402
from sketchode.book.ch14_multistroke import (chain_magnitudes, compare_stopping, end_probabilities, first_strokes,  # noqa: E402
                               growth_factor, mixed_reconstructions, own_vs_other, plot_by_stroke,
                               plot_chain_magnitudes, plot_count_histogram, plot_end_flag, plot_stroke_batch,
                               plot_stroke_counts, plot_stroke_progress, plot_train_test, stop_rule, stroke_colors,
                               stroke_count_stats, wilson_interval)
from sketchode.evaluation.scores import chamfer  # noqa: E402
from sketchode.models.full_sequence import SketchODE  # noqa: E402
from sketchode.models.multistroke import MultiStrokeSketchODE  # noqa: E402
from sketchode.evaluation.recognition import RecognitionCNN  # noqa: E402
from sketchode.training.fit import History  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(**kw):
    torch.manual_seed(0)
    return MultiStrokeSketchODE(**{**dict(d=8, l=4, G=8), **kw})


@pytest.fixture(scope="module")
def drawings():
    """Normalised drawings with 1 to 6 strokes."""
    return prepare([make_sketch(n, n=12, seed=n, label="ab"[n % 2]) for n in (1, 3, 6, 2)])


@pytest.fixture(scope="module")
def plot_teardown():
    yield
    plt.close("all")


# ------------------------------------------------------------------ drawings
def test_first_strokes(drawings):
    s = drawings[2]
    assert first_strokes(s, None) is s and first_strokes(s, 99) is s
    cut = first_strokes(s, 2)
    assert cut.n_strokes == 2 and cut.label == s.label and cut.key == s.key
    np.testing.assert_array_equal(cut.points, np.concatenate(s.strokes[:2]))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            first_strokes(s, bad)
    with pytest.raises(TypeError, match="Sketch"):
        first_strokes(np.zeros((3, 3)), 1)


# ---------------------------------------------------------------- the chain
def test_chain_magnitudes_records_every_stroke(drawings):
    m = _model()
    b = m.collate(drawings)
    r = chain_magnitudes(m, b)
    K = b.points.shape[1]
    for key in ("encoder", "decoder", "start", "count"):
        assert r[key].shape == (K,)
    assert r["encoder"][0] == 0.0 and np.all(r["encoder"][1:] > 0)  # g_0^1 = 0, then U's output
    np.testing.assert_array_equal(r["count"], [4, 3, 2, 1, 1, 1])
    # the loss parts are the model's own, and the hooks are gone afterwards
    parts = m.loss(b, return_parts=True)
    assert r["loss"] == pytest.approx({k: float(v.detach()) for k, v in parts.items()})
    assert not m.U._forward_hooks and not m.P._forward_hooks
    # stroke 1's start comes from L_dec(z): same mean norm as computed directly
    with torch.no_grad():
        a0, v0 = m.decoder.initial_state(m.encode(b))
        h = torch.cat([a0[:, 2:], v0[:, 2:]], 1)
        start = m.P(h)
    assert r["decoder"][0] == pytest.approx(float(h.norm(dim=1).mean()), rel=1e-5)
    assert r["start"][0] == pytest.approx(float(start.norm(dim=1).mean()), rel=1e-5)


def test_chain_norm_bounds_the_decoder_chain():
    # many strokes: without chain_norm the decoder's states grow from stroke to stroke, with it they do not
    sk = prepare([make_sketch(12, n=8, seed=s) for s in range(3)])
    batch = _model(d=32).collate(sk)
    grow = {cn: chain_magnitudes(_model(chain_norm=cn, d=32), batch)["decoder"] for cn in (False, True)}
    assert growth_factor(grow[False]) > 1.4
    assert 0.95 < growth_factor(grow[True]) < 1.05
    assert grow[False][-1] > 100 * grow[True][-1]


def test_growth_factor():
    assert growth_factor(3.0 * 2.0 ** np.arange(8), first=0) == pytest.approx(2.0)
    assert growth_factor([100.0, 1, 1.5, 2.25, 3.375]) == pytest.approx(1.5)  # the first value is skipped
    with pytest.raises(ValueError, match="at least 2"):
        growth_factor([1.0, 2.0])
    with pytest.raises(ValueError, match="> 0"):
        growth_factor([1.0, 0.0, 2.0])


def test_bad_model_is_refused(drawings):
    full = SketchODE(d=8, l=4, G=10, n_hidden=1)
    with pytest.raises(TypeError, match="multi-stroke"):
        end_probabilities(full, drawings)
    with pytest.raises(TypeError, match="multi-stroke"):
        chain_magnitudes(full, None)


# ------------------------------------------------------------- end flag
def test_end_probabilities_and_stop_rule_match_decode(drawings):
    m = _model()
    with torch.no_grad():  # make the flag vary: some drawings stop early, others run on
        m.R.bias.fill_(-0.2)
    e = end_probabilities(m, drawings, K=7, batch_size=3)  # two chunks
    assert e["p"].shape == (4, 7) and np.all((e["p"] > 0) & (e["p"] < 1))
    np.testing.assert_array_equal(e["n_true"], [1, 3, 6, 2])
    with torch.no_grad():
        b = m.collate(drawings)
        dec = m.decode(m.encode(b), max_strokes=7)
        p_ref = torch.sigmoid(m.decode(m.encode(b), n_strokes=7)["end_logit"]).numpy()
    np.testing.assert_array_equal(e["n_pred"], dec["n_strokes"].numpy())
    np.testing.assert_allclose(e["p"], p_ref, rtol=1e-6)
    # the config's max_strokes is the default bound
    assert end_probabilities(_model(max_strokes=3), drawings)["p"].shape == (4, 3)
    with pytest.raises(ValueError, match="K must be"):
        end_probabilities(m, drawings, K=0)
    with pytest.raises(ValueError, match="is empty"):
        end_probabilities(m, [])


def test_stop_rule():
    p = np.array([[0.1, 0.7, 0.9], [0.2, 0.3, 0.4], [0.6, 0.1, 0.9], [0.1, 0.5, 0.51]])
    np.testing.assert_array_equal(stop_rule(p), [2, 3, 1, 3])  # never above 0.5: the bound K
    np.testing.assert_array_equal(stop_rule(p, threshold=0.8), [3, 3, 3, 3])
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        stop_rule(np.zeros(3))


def test_stroke_count_stats():
    r = stroke_count_stats([3, 5, 8, 1], [3, 4, 2, 1])
    assert r == pytest.approx({"n": 4, "mae": 7 / 4, "exact": 0.5, "within_one": 0.75, "bias": -7 / 4,
                               "mean_true": 17 / 4, "mean_pred": 10 / 4})
    with pytest.raises(ValueError, match="same"):
        stroke_count_stats([1, 2], [1])


def test_compare_stopping(drawings):
    m = _model()
    rec = RecognitionCNN(2, classes=["a", "b"], width=4, hidden=8).eval()
    out = compare_stopping(m, drawings, recognizer=rec)
    assert set(out) == {"stop", "true"}
    np.testing.assert_array_equal(out["true"]["n_strokes"], [s.n_strokes for s in drawings])
    n_stop = end_probabilities(m, drawings)["n_pred"]
    np.testing.assert_array_equal(out["stop"]["n_strokes"], n_stop)
    for mode in out.values():
        assert len(mode["recon"]) == 4 and mode["chamfer"].shape == (4,)
        np.testing.assert_allclose(mode["chamfer"], chamfer(drawings, mode["recon"]))
        assert 0.0 <= mode["accuracy"] <= 1.0
    assert compare_stopping(m, drawings[:1])["stop"]["accuracy"] is None


def test_mixed_reconstructions(drawings):
    m = _model()
    mix = mixed_reconstructions(m, drawings, batch_size=3)
    rec = m.reconstruct(drawings, true_strokes=True)
    b = m.collate(drawings)
    for i, s in enumerate(drawings):
        n = s.n_strokes
        assert all(len(mix[k][i].strokes) == n for k in mix)
        # "model" is the model's own reconstruction
        np.testing.assert_allclose(mix["model"][i].points, rec[i].points, atol=1e-6)
        for k in range(n):
            # true starts: every stroke begins at the drawing's start point; true shapes: the batch's relative points
            np.testing.assert_allclose(mix["true starts"][i].strokes[k][0, :2], b.start[i, k].numpy(), atol=1e-6)
            shape = mix["true shapes"][i].strokes[k][:, :2]
            np.testing.assert_allclose(shape - shape[0], b.points[i, k].numpy(), atol=1e-5)
            np.testing.assert_allclose(mix["true shapes"][i].strokes[k][0, :2], mix["model"][i].strokes[k][0, :2],
                                       atol=1e-6)


def test_own_vs_other(drawings):
    # perfect reconstructions: own distance 0, other = the drawings' own spread
    r = own_vs_other(drawings, drawings, shifts=(1, 2))
    np.testing.assert_allclose(r["own"], 0.0, atol=1e-6)
    np.testing.assert_allclose(r["other"], r["spread_data"])
    np.testing.assert_allclose(r["spread_recon"], r["spread_data"])
    assert np.all(r["other"] > 0)
    # a decoder that draws the same drawing for every code: no spread, own no closer than other on average
    same = [drawings[0]] * len(drawings)
    r = own_vs_other(drawings, same, shifts=(1,))
    np.testing.assert_allclose(r["spread_recon"], 0.0, atol=1e-6)
    np.testing.assert_allclose(r["other"], np.roll(r["own"], -1))
    assert r["own"].mean() == pytest.approx(r["other"].mean())
    with pytest.raises(ValueError, match="shifts"):
        own_vs_other(drawings, drawings, shifts=(4,))
    with pytest.raises(ValueError, match="against"):
        own_vs_other(drawings, drawings[:2])


def test_wilson_interval():
    lo, hi = wilson_interval(16, 17)
    assert 0.70 < lo < 0.75 and 0.98 < hi < 1.0  # known value: (0.730, 0.990)
    lo, hi = wilson_interval(np.array([0, 17, 8]), np.array([17, 17, 17]))
    assert lo[0] == 0.0 and hi[1] == 1.0 and lo[2] < 8 / 17 < hi[2]
    assert hi[0] == pytest.approx(1 - lo[1])  # symmetric in k <-> n - k
    # wider for fewer drawings and for higher confidence
    assert np.ptp(wilson_interval(5, 10)) > np.ptp(wilson_interval(50, 100))
    assert np.ptp(wilson_interval(5, 10, level=0.99)) > np.ptp(wilson_interval(5, 10))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(1, 2, level=1.0)


# ------------------------------------------------------------------ figures
def test_stroke_colors():
    c = stroke_colors(12)
    assert c.shape == (12, 4)
    np.testing.assert_array_equal(c[10], c[0])  # tab10 cycles
    assert len({tuple(x) for x in c[:10]}) == 10
    assert stroke_colors(5, "viridis").shape == (5, 4)
    with pytest.raises(ValueError):
        stroke_colors(-1)


def test_figures(drawings, plot_teardown):
    m = _model()
    b = m.collate(drawings)
    fig = plot_stroke_batch(b, index=2)
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="index"):
        plot_stroke_batch(b, index=4)
    ax = plot_by_stroke(drawings[2], upto=2)
    # the ghost (whole drawing) and the first two strokes in colour
    assert len(ax.collections[1].get_segments()) == sum(len(s) - 1 for s in drawings[2].strokes[:2])
    fig = plot_stroke_progress({"a": drawings[2], "b": drawings[1]}, steps=(1, 2, None))
    assert len(fig.axes) == 6 and fig.axes[2].get_title() == "all (6)"
    with pytest.raises(ValueError):
        plot_stroke_progress({})
    ax = plot_count_histogram({"x": [1, 2, 2, 9], "y": [3]}, max_count=5)
    assert len(ax.patches) == 10
    fig = plot_chain_magnitudes({"m": chain_magnitudes(m, b)})
    assert len(fig.axes) == 3
    e = end_probabilities(m, drawings, K=5)
    ax = plot_end_flag(e["p"], e["n_true"])
    assert len(ax.lines) == 2 * 4 + 1
    with pytest.raises(ValueError):
        plot_end_flag(e["p"], e["n_true"][:2])
    ax = plot_stroke_counts(e["n_true"], e["n_pred"], cap=5)
    assert ax.get_xlabel() == "true strokes"
    h = History(records=[{"step": s, "train_loss": 1.0 / s} for s in (1, 2, 3)])
    ax = plot_train_test({"a": h, "b": h.to_dict()}, {"a": {"train": 0.3, "test": 0.6}})
    assert len(ax.lines) == 2 + 2
    with pytest.raises(ValueError, match="no records"):
        plot_train_test({"a": History(records=[])}, {})
