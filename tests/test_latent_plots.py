"""Chapter 10's measurements and figures of the latent space (sketchode.book.ch10_latent additions): slerp,
distances, many-pair interpolation statistics, conditional-sampling statistics, strips and morph animations."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.data import load  # noqa: E402
from sketchode.book.ch10_latent import (animate_morph, different_class_pairs, decode_paths, decode_sketches,  # noqa: E402
                              conditional_stats, encode_sketches, interpolation_smoothness, lerp,
                              path_smoothness, plot_rows, rms_distance, slerp)
from sketchode.models.full_sequence import SketchODE  # noqa: E402
from sketchode.plot import animation_html  # noqa: E402
from sketchode.evaluation.recognition import RecognitionCNN, predict  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits12():
    return load("digits", "test")[:12]


@pytest.fixture(scope="module")
def model(tiny_autoencoder):  # conftest.py: a tiny SketchODE, then a tiny LSTM baseline
    return tiny_autoencoder


@pytest.fixture(scope="module")
def recognizer():
    torch.manual_seed(0)
    return RecognitionCNN(10).eval()  # untrained: enough to test the bookkeeping


# ----------------------------------------------------------------- slerp
def test_slerp_ends_norms_and_constant_angular_speed():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(7, generator=g), 3 * torch.randn(7, generator=g)
    p = slerp(z0, z1, 9)
    assert p.shape == (9, 7) and torch.allclose(p[0], z0, atol=1e-5) and torch.allclose(p[-1], z1, atol=1e-5)
    # norms interpolate linearly; directions turn by equal angles
    r = p.norm(dim=1)
    assert torch.allclose(r, torch.linspace(float(z0.norm()), float(z1.norm()), 9), atol=1e-4)
    u = p / r[:, None]
    ang = torch.arccos((u[1:] * u[:-1]).sum(1).clamp(-1, 1))
    assert torch.allclose(ang, ang[:1].expand(8), atol=1e-3)
    # parallel codes: the same as lerp; bad input refused
    assert torch.allclose(slerp(z0, 2 * z0, 5), lerp(z0, 2 * z0, 5), atol=1e-5)
    with pytest.raises(ValueError):
        slerp(z0, torch.zeros(7))
    with pytest.raises(ValueError):
        slerp(z0, z1, 1)


# ------------------------------------------------------------- distances
def test_rms_distance_broadcasts_and_checks():
    a = np.zeros((3, 5, 2))
    b = np.zeros((5, 2))
    b[:, 0] = 3.0
    b[:, 1] = 4.0
    np.testing.assert_allclose(rms_distance(a, b), [5.0, 5.0, 5.0])
    with pytest.raises(ValueError):
        rms_distance(np.zeros((4, 2)), np.zeros((5, 2)))


def test_different_class_pairs_are_seeded_and_different():
    labels = list("0011122")
    p = different_class_pairs(labels, 50, seed=1)
    assert p.shape == (50, 2) and p.dtype.kind == "i"
    assert all(labels[i] != labels[j] for i, j in p)
    assert np.array_equal(p, different_class_pairs(labels, 50, seed=1))
    with pytest.raises(ValueError):
        different_class_pairs(list("000"), 3)


# ----------------------------------------------------- interpolation stats
def test_interpolation_smoothness_matches_path_smoothness(model, digits12, recognizer):
    z = encode_sketches(model, digits12)
    pairs = np.array([[0, 1], [2, 5], [7, 3]])
    out = interpolation_smoothness(model, z, pairs, n=9, recognizer=recognizer)
    for k, (i, j) in enumerate(pairs):
        xy, pen = decode_paths(model, lerp(z[i], z[j], 9))
        ref = path_smoothness(xy)
        # one batch of P * n codes against P batches of n: float32 rounding differs, and a ratio of
        # small steps (jump = largest / median) magnifies it (2e-4 seen on a fresh clone)
        assert out["jump"][k] == pytest.approx(ref["jump"], rel=2e-3)
        assert out["detour"][k] == pytest.approx(ref["detour"], rel=2e-3)
        assert out["where"][k] == pytest.approx((np.argmax(ref["steps"]) + 0.5) / 8)
        # the recognizer's reading of every decoded drawing, and the class changes along the path
        names = predict(recognizer, decode_sketches(model, lerp(z[i], z[j], 9)))
        assert [recognizer.classes[c] for c in out["classes"][k]] == names
        assert out["switches"][k] == sum(a != b for a, b in zip(names[:-1], names[1:]))
    assert out["P"] == 3 and out["n"] == 9
    with pytest.raises(ValueError):
        interpolation_smoothness(model, z, np.array([[0, 12]]))
    with pytest.raises(ValueError):
        interpolation_smoothness(model, z, pairs, n=2)


# ------------------------------------------------------ conditional stats
def test_conditional_stats_zero_sigma_and_growth(model, digits12, recognizer):
    z = encode_sketches(model, digits12)
    labels = [s.label for s in digits12]
    s0 = conditional_stats(model, z, labels, recognizer, sigma=0.0, n_samples=3)
    assert s0["rms"] == pytest.approx(0.0, abs=1e-6) and s0["agree"] == 1.0
    assert s0["kept"] == pytest.approx(s0["kept_decode"])
    assert s0["rms_all"].shape == (12, 3)
    small = conditional_stats(model, z, labels, recognizer, sigma=0.01, n_samples=3, seed=2)
    big = conditional_stats(model, z, labels, recognizer, sigma=0.1, n_samples=3, seed=2)
    # common random numbers: ten times the noise moves the output further (about ten times for a smooth decoder)
    assert big["rms"] > 3 * small["rms"] > 0
    assert conditional_stats(model, z, labels, recognizer, 0.1, 3, seed=2)["rms"] == pytest.approx(big["rms"])
    with pytest.raises(ValueError, match="not classes"):
        conditional_stats(model, z, ["x"] * 12, recognizer, 0.05)
    with pytest.raises(ValueError):
        conditional_stats(model, z, labels[:5], recognizer, 0.05)
    with pytest.raises(ValueError):
        conditional_stats(model, z, labels, recognizer, -1.0)


# ----------------------------------------------------------------- figures
def test_plot_rows_layout(digits12):
    fig = plot_rows([digits12[:4], digits12[4:6]], row_labels=["a", "b"], titles=list("wxyz"), size=0.8)
    axes = np.array(fig.axes).reshape(2, 4)
    assert [ax.get_title() for ax in axes[0]] == list("wxyz") and axes[1, 0].get_title() == ""
    assert axes[0, 0].get_ylabel() == "a" and axes[1, 0].get_ylabel() == "b"
    assert not axes[1, 3].axison  # padded cell
    with pytest.raises(ValueError):
        plot_rows([digits12[:2]], row_labels=["a", "b"])
    with pytest.raises(ValueError):
        plot_rows([[]])


def test_animate_morph_frames_fixed_view_and_html(model, digits12):
    z = encode_sketches(model, digits12[:3])
    walk = torch.cat([lerp(z[0], z[1], 3), lerp(z[1], z[2], 3)[1:]])
    frames = decode_sketches(model, walk)
    anim = animate_morph([frames, digits12[:5]], titles=["model", "data"], frame_titles=[str(k) for k in range(5)])
    fig = anim._fig
    anim._func(3)
    assert fig._suptitle.get_text() == "3" and fig.axes[0].get_title() == "model"
    lim = fig.axes[0].get_xlim()
    anim._func(1)
    assert fig.axes[0].get_xlim() == lim  # the view does not move between frames
    html = animation_html(anim)
    assert "<script" in html and html.count("data:image/png;base64") >= 5
    with pytest.raises(ValueError):
        animate_morph([frames, digits12[:4]])
