"""Control paths and splines (sketchode.book.ch07_cde_encoder, chapter 7): the index-spline bug's factor, time warps,
irregular sampling, the union grid's pen overshoot, encoders side by side, the classifier probe, figures, input checks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from conftest import make_sketch  # noqa: E402
from sketchode.models.lstm import BiLSTMEncoder, RNNAutoencoder  # noqa: E402
from sketchode.book.ch07_cde_encoder import (  # noqa: E402
    EncoderClassifier,
    classifier_accuracy,
    collate_on_grid,
    encode,
    gap_ratio,
    index_spline_derivative,
    irregular_grid,
    median_seconds,
    plot_hidden_trajectory,
    plot_spline,
    relative_shift,
    resampling_sensitivity,
    spline_derivative,
    spline_extremes,
    step_path,
    subsample,
    train_classifier,
    warp_time,
)
from sketchode.data import load  # noqa: E402
from sketchode.data.batching import collate_full  # noqa: E402
from sketchode.models.encoder import CDEEncoder  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(scope="module")
def digits():
    return [s.normalize() for s in load("digits", "test")[:12]]


def _enc(seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("d", 8)
    kw.setdefault("latent", 4)
    kw.setdefault("hidden", (10,))
    kw.setdefault("final", None)
    return CDEEncoder(**kw)


# ------------------------------------------------------------------ splines
def test_spline_derivative_is_the_velocity_on_real_time():
    t = torch.linspace(0, 5, 40, dtype=torch.float64)
    path = torch.stack([t, 0.3 * t - 1, -2 * t, torch.zeros_like(t)], -1)[None]  # straight line at constant speed
    q = torch.linspace(0.1, 4.9, 17, dtype=torch.float64)
    d = spline_derivative(path, t, q)
    assert d.shape == (1, 17, 4)
    assert torch.allclose(d[0], torch.tensor([1.0, 0.3, -2.0, 0.0], dtype=torch.float64).expand(17, 4), atol=1e-10)
    assert torch.equal(spline_derivative(path, t), spline_derivative(path, t, t))  # default: at the knots


@pytest.mark.parametrize("G", [50, 100])
def test_index_spline_bug_divides_the_derivative_by_the_sampling_rate(digits, G):
    """Fitted on the index, read on time: dX/dt comes out smaller by (G - 1) / T (exactly on the t channel)."""
    b = collate_full(digits[:8], G=G)
    p, t = b.path.double(), b.t.double()
    dense = torch.linspace(0, 5, 1500, dtype=torch.float64)
    right, wrong = spline_derivative(p, t, dense), index_spline_derivative(p, t, dense)
    ratio = (right.pow(2).mean((0, 1)) / wrong.pow(2).mean((0, 1))).sqrt()
    expected = (G - 1) / 5.0
    assert abs(float(ratio[0]) / expected - 1) < 1e-5
    assert all(abs(float(r) / expected - 1) < 0.02 for r in ratio[1:3])


def test_index_spline_bug_on_a_nonuniform_grid_follows_the_local_rate():
    """On a grid whose spacing varies smoothly the factor is the local sampling rate 1 / (t_{k+1} - t_k)."""
    u = torch.linspace(0, 1, 40, dtype=torch.float64)
    t = 5 * (0.3 * u + 0.7 * u**2)
    path = torch.stack([t, torch.sin(t), torch.cos(t), torch.zeros_like(t)], -1)[None]
    mid = (t[1:] + t[:-1]) / 2
    r = spline_derivative(path, t, mid)[0, :, 0] / index_spline_derivative(path, t, mid)[0, :, 0]
    local = 1 / t.diff()
    assert float(((r - local).abs() / local)[2:-2].max()) < 0.05
    assert float(r.max() / r.min()) > 3  # not one global factor


@pytest.mark.parametrize("fn", [spline_derivative, index_spline_derivative])
def test_spline_functions_check_input(fn):
    t = torch.linspace(0, 1, 5)
    with pytest.raises(TypeError, match="tensor"):
        fn(np.zeros((1, 5, 4)), t)
    with pytest.raises(ValueError, match=r"\(B, G, C\)"):
        fn(torch.zeros(5, 4), t)
    with pytest.raises(ValueError, match="time points"):
        fn(torch.zeros(1, 6, 4), t)
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.full((1, 5, 4), float("nan")), t)
    with pytest.raises(ValueError, match="1-D"):
        fn(torch.zeros(1, 5, 4), t, at=torch.zeros(2, 2))


# ------------------------------------------------------ re-timing, re-sampling
def test_warp_time_keeps_the_points_and_changes_the_clock():
    s = make_sketch(n_strokes=2, n=15)
    w = warp_time(s, 2.0)
    assert w.timed and w.n_strokes == 2 and w.label == s.label and w.key == s.key
    assert np.array_equal(w.points[:, :2], s.points[:, :2])
    t, tw = s.ink_time(), w.points[:, 2]
    assert tw[0] == pytest.approx(t[0]) and tw[-1] == pytest.approx(t[-1])
    u = (t - t[0]) / (t[-1] - t[0])
    assert np.allclose((tw - t[0]) / (t[-1] - t[0]), u**2)
    same = warp_time(s, lambda u: u)
    assert np.allclose(same.points, np.column_stack([s.points[:, :2], t]))
    untimed = warp_time(make_sketch(timed=False), 0.5)  # arc-length clock warped
    assert untimed.timed and np.all(np.diff(untimed.points[:, 2]) > 0)


def test_warp_time_checks_input():
    s = make_sketch()
    with pytest.raises(TypeError, match="Sketch"):
        warp_time(s.points, 2.0)
    with pytest.raises(ValueError, match="> 0"):
        warp_time(s, -1.0)
    with pytest.raises(TypeError, match="callable"):
        warp_time(s, "fast")
    with pytest.raises(ValueError, match="0 to 0 and 1 to 1"):
        warp_time(s, lambda u: 0.5 * u)
    with pytest.raises(ValueError, match="strictly increase"):
        warp_time(s, lambda u: np.where(u < 0.5, 0.0, u))
    with pytest.raises(ValueError, match="NaN"):
        warp_time(s, lambda u: np.full_like(u, np.nan))


def test_time_channel_sees_speed_and_without_it_the_code_is_invariant(digits):
    """Reparametrisation invariance of a CDE (section 4.2): only a time channel reveals the speed."""
    sample = digits[:4]
    warped = [warp_time(s, 2.0) for s in sample]

    def codes(enc, sk):
        with torch.no_grad():
            return torch.cat([encode(enc, collate_full([s], grid="union")) for s in sk])

    with_t, without_t = _enc(channels=4), _enc(channels=3)
    s_with = relative_shift(codes(with_t, sample), codes(with_t, warped))
    s_without = relative_shift(codes(without_t, sample), codes(without_t, warped))
    assert float(s_without.max()) < 1e-2
    assert float(s_without.mean()) < 0.05 * float(s_with.mean())


def test_subsample_keeps_stroke_ends_and_a_random_subset():
    s = make_sketch(n_strokes=3, n=40)
    h = subsample(s, 0.5, seed=1)
    assert h.n_strokes == 3 and h.timed
    assert 6 < h.n_points < s.n_points
    for a, b in zip(s.strokes, h.strokes):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[-1], b[-1])
        assert np.isin(b[:, 2], a[:, 2]).all()  # the survivors keep their own timestamps
    assert np.array_equal(subsample(s, 0.5, seed=1).points, h.points)  # deterministic
    assert not np.array_equal(subsample(s, 0.5, seed=2).points, h.points)
    assert np.array_equal(subsample(s, 1.0).points, s.points)
    dot = subsample(make_sketch(n_strokes=1, n=1), 0.5)
    assert dot.n_points == 1
    u = subsample(make_sketch(timed=False), 0.5)  # arc-length time kept for the survivors
    assert u.timed and np.all(np.diff(u.points[:, 2]) > 0)
    with pytest.raises(ValueError, match="keep"):
        subsample(s, 0.0)
    with pytest.raises(TypeError, match="Sketch"):
        subsample(s.points)


def test_irregular_grid():
    g = irregular_grid(60, T=5.0, seed=4, min_gap=0.2)
    assert g.shape == (60,) and g[0] == 0 and g[-1] == pytest.approx(5.0)
    gaps = np.diff(g)
    assert gaps.min() >= 0.2 * 5.0 / 59 * (1 - 1e-9)
    assert gaps.max() / gaps.min() > 3  # really irregular
    assert np.array_equal(irregular_grid(60, seed=4), g)
    assert np.all(np.diff(torch.as_tensor(g, dtype=torch.float32).numpy()) > 0)  # safe in float32
    for bad in (dict(G=1), dict(G=2.5), dict(G=10, T=0), dict(G=10, min_gap=1.0)):
        with pytest.raises(ValueError):
            irregular_grid(**bad)


def test_collate_on_grid_matches_the_uniform_batch(digits):
    a = collate_on_grid(digits[:3], np.linspace(0, 5, 30))
    b = collate_full(digits[:3], G=30)
    assert torch.allclose(a.t, b.t) and torch.allclose(a.points, b.points) and bool(a.mask.all())
    assert a.labels == b.labels and a.keys == b.keys
    irr = collate_on_grid(digits[:3], irregular_grid(25))
    assert irr.points.shape == (3, 25, 3)
    with pytest.raises(ValueError, match="empty"):
        collate_on_grid([], np.linspace(0, 5, 5))
    with pytest.raises(TypeError, match="Sketch"):
        collate_on_grid([digits[0].points], np.linspace(0, 5, 5))
    with pytest.raises(ValueError, match="strictly increasing"):
        collate_on_grid(digits[:2], [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        collate_on_grid(digits[:2], [0.0, 6.0])


# ------------------------------------------------------------ encoders
def test_encode_dispatches_on_the_encoder(digits):
    b = collate_full(digits[:3], G=20)
    cde4, cde3 = _enc(channels=4), _enc(channels=3)
    assert torch.equal(encode(cde4, b), cde4(b.path, b.t))
    assert torch.equal(encode(cde3, b), cde3(b.points, b.t))  # no time channel
    torch.manual_seed(0)
    lstm = BiLSTMEncoder(in_dim=4, hidden=8, latent=4)
    assert torch.equal(encode(lstm, b), lstm(b.path, b.mask))
    torch.manual_seed(0)
    ae = RNNAutoencoder(d=8, l=4)
    assert torch.equal(encode(ae, b), ae.encode(b))
    with pytest.raises(ValueError, match="channels"):
        encode(_enc(channels=2), b)
    with pytest.raises(TypeError, match="encode"):
        encode(torch.nn.Linear(3, 3), b)
    with pytest.raises(TypeError, match="FullBatch"):
        encode(cde4, b.path)


def test_relative_shift():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 5, generator=g)
    assert torch.equal(relative_shift(z, z), torch.zeros(6))
    dz = 0.1 * torch.randn(6, 5, generator=g)
    r = relative_shift(z, z + dz)
    assert torch.allclose(relative_shift(3 * z, 3 * (z + dz)), r)  # scale-free
    n = 6
    spread = torch.cdist(z, z).sum() / (n * (n - 1))
    assert torch.allclose(r, dz.norm(dim=1) / spread)
    with pytest.raises(ValueError, match="same shape"):
        relative_shift(z, z[:3])
    with pytest.raises(ValueError, match="at least 2"):
        relative_shift(z[:1], z[:1])
    with pytest.raises(ValueError, match="zero spread"):
        relative_shift(torch.ones(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"\(B, l\)"):
        relative_shift(z[0], z[0])


def test_cde_is_more_resampling_invariant_than_the_lstm(digits):
    cde = _enc(channels=4, d=16, latent=8)
    torch.manual_seed(0)
    lstm = BiLSTMEncoder(in_dim=4, hidden=16, latent=8)
    s_cde = resampling_sensitivity(cde, digits, 40, 120)
    s_lstm = resampling_sensitivity(lstm, digits, 40, 120)
    assert s_cde < 0.02 and s_cde < 0.2 * s_lstm
    irr = irregular_grid(40, seed=1)
    assert resampling_sensitivity(cde, digits, 40, irr) < resampling_sensitivity(lstm, digits, 40, irr)
    assert resampling_sensitivity(cde, digits, 40, 40) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        resampling_sensitivity(cde, digits[:1], 40, 120)
    with pytest.raises(TypeError, match="grid"):
        resampling_sensitivity(cde, digits, 40, "union")


def test_classifier_probe_learns(digits):
    # (the first optimiser of a process imports torch._dynamo: a few seconds once, not training time)
    train = [s.normalize() for s in load("digits", "test")[:300] if s.label in ("0", "1")]
    torch.manual_seed(0)
    m = EncoderClassifier(BiLSTMEncoder(in_dim=4, hidden=16, latent=8), 8, ["0", "1"])
    before = classifier_accuracy(m, train[:40], 25)
    losses = train_classifier(m, train, 30, G=25, batch_size=32, lr=1e-2, seed=0)
    assert len(losses) == 30 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    after = classifier_accuracy(m, train[:40], 25, batch_size=15)  # chunked evaluation
    assert 0.0 <= before <= 1.0 and after > 0.9 and after > before
    assert not m.training
    assert m(collate_full(digits[:3], G=25)).shape == (3, 2)
    assert train_classifier(m, train, 0) == []
    with pytest.raises(ValueError, match="not among"):
        m.targets(["z"])
    with pytest.raises(ValueError, match="distinct"):
        EncoderClassifier(BiLSTMEncoder(), 48, ["a", "a"])
    with pytest.raises(ValueError, match="steps"):
        train_classifier(m, train, -1)
    with pytest.raises(TypeError, match="EncoderClassifier"):
        train_classifier(BiLSTMEncoder(), train, 1)
    with pytest.raises(ValueError, match="no drawings"):
        classifier_accuracy(m, [], 30)


def test_median_seconds():
    calls = []
    s = median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert s >= 0 and len(calls) == 5
    with pytest.raises(ValueError, match="repeats"):
        median_seconds(lambda: None, repeats=0)


# ------------------------------------------------------------------ figures
def test_plot_spline_from_sketch_batch_and_array(digits):
    s = digits[0]
    axes = plot_spline(s)
    assert axes.shape == (2, 3)
    assert [a.get_title() for a in axes[0]] == ["x(t)", "y(t)", "pen(t)"]
    plt.close("all")
    halves = [subsample(d, 0.5, seed=k) for k, d in enumerate(digits[:3])]
    ub = collate_full(halves, grid="union")
    axes = plot_spline(ub, index=1, channels=("x", "pen"), derivative=False)
    assert axes.shape == (1, 2)
    labels = [ln.get_label() for ln in axes[0, 0].get_lines()]
    assert "not own (interpolated)" in labels  # union-grid points that are not the drawing's own
    plt.close("all")
    axes = plot_spline(s.to_full_sequence(), channels=("y",), index_bug=True)
    assert any("bug" in ln.get_label() for ln in axes[1, 0].get_lines())
    _, ax = plt.subplots()
    panel = np.array([[ax]])
    plot_spline(s, channels=("x",), derivative=False, axes=panel, label="a")
    plot_spline(warp_time(s, 2.0), channels=("x",), derivative=False, axes=panel, label="b", color="C3")
    assert {"a", "b"} <= {ln.get_label() for ln in ax.get_lines()}
    plt.close("all")
    with pytest.raises(ValueError, match="channels"):
        plot_spline(s, channels=("speed",))
    with pytest.raises(IndexError):
        plot_spline(ub, index=5)
    with pytest.raises(ValueError, match=r"\(G, 4\)"):
        plot_spline(np.zeros((5, 3)))
    with pytest.raises(TypeError):
        plot_spline("a drawing")


def test_plot_hidden_trajectory(digits):
    b = collate_full([d for d in digits if d.n_strokes > 1][:1], G=40)
    with torch.no_grad():
        g = _enc(channels=4).solve(b.path, b.t)
    ax = plot_hidden_trajectory(g, b.t, pen=b.points[0, :, 2], channels=5)
    assert len(ax.get_lines()) == 5
    assert len(ax.patches) >= 1  # a shaded pen-up interval
    plt.close("all")
    with pytest.raises(ValueError, match=r"\(G, d\)"):
        plot_hidden_trajectory(g[0, 0], b.t)
    with pytest.raises(ValueError, match="t must be"):
        plot_hidden_trajectory(g[0], b.t[:-1])
    with pytest.raises(ValueError, match="pen must be"):
        plot_hidden_trajectory(g[0], b.t, pen=b.points[0, :-1, 2])
    with pytest.raises(ValueError, match="channels"):
        plot_hidden_trajectory(g[0], b.t, channels=0)


# ------------------------------------------------------ the union grid
def test_gap_ratio():
    assert gap_ratio(np.linspace(0, 5, 11)) == pytest.approx(1.0)
    assert gap_ratio(torch.tensor([0.0, 1.0, 1.001, 2.001], dtype=torch.float64)) == pytest.approx(1000.0)
    assert gap_ratio([0.0, 0.5, 2.5]) == pytest.approx(4.0)  # either direction counts
    with pytest.raises(ValueError, match=">= 3"):
        gap_ratio([0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        gap_ratio([0.0, 1.0, 1.0, 2.0])


def test_step_path_has_one_narrow_gap_at_the_jump():
    p = step_path(50.0, n=4, T=5.0)
    assert p.shape == (10, 4) and p.dtype == torch.float64
    t, pen = p[:, 0], p[:, 3]
    assert float(t[0]) == 0.0 and float(t[-1]) == pytest.approx(5.0)
    assert pen.tolist() == [0.0] * 5 + [1.0] * 5 and torch.all(p[:, 1:3] == 0)
    h = t.diff()
    assert float(h[4]) == pytest.approx(float(h[0]) / 50) and torch.allclose(h[torch.arange(9) != 4], h[0])
    assert gap_ratio(t) == pytest.approx(50.0)
    assert torch.allclose(step_path(1.0, n=4)[:, 0].diff(), torch.full((9,), 5.0 / 9, dtype=torch.float64))
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="ratio"):
            step_path(bad)
    with pytest.raises(ValueError, match="n must"):
        step_path(10.0, n=0)


def test_spline_overshoot_of_a_step_grows_with_the_gap_ratio():
    """A natural cubic spline through a step overshoots ~0.1 on a uniform grid and about in proportion to the gap ratio."""
    over = []
    for r in (1.0, 10.0, 100.0, 1000.0):
        p = step_path(r)
        low, high = spline_extremes(p[None], p[:, 0].contiguous(), dense=20000)
        assert low.shape == (1, 4) and high.shape == (1, 4)
        assert float(low[0, 3]) <= 0.0 and float(high[0, 3]) >= 1.0  # the knots are included
        over.append(float(high[0, 3]) - 1.0)
    assert 0.05 < over[0] < 0.2
    assert over[1] > 1.0 and all(b > a for a, b in zip(over, over[1:]))
    assert over[3] / over[2] == pytest.approx(10.0, rel=0.05)  # linear in the ratio for large ratios


def test_spline_extremes_of_a_line_and_input_checks():
    t = torch.linspace(0, 5, 9, dtype=torch.float64)
    path = torch.stack([t, 2 * t - 1, -t, torch.zeros_like(t)], -1)[None].expand(3, -1, -1)
    low, high = spline_extremes(path, t, dense=50)
    assert torch.allclose(low[0], torch.tensor([0.0, -1.0, -5.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(high[0], torch.tensor([5.0, 9.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    with pytest.raises(ValueError, match="dense"):
        spline_extremes(path, t, dense=1)
    with pytest.raises(ValueError, match=r"\(B, G, C\)"):
        spline_extremes(path[0], t)
