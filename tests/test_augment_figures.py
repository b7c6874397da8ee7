"""Tests for the chapter-6 analysis and figure helpers of sketchode.data.augment (paper 4.6)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode.data import Sketch  # noqa: E402
from sketchode.book.ch06_perlin import (  # noqa: E402
    plot_augmentations, plot_displacement, plot_perlin_field, plot_warp,
)
from sketchode.data.augment import (  # noqa: E402
    center_of_gravity,
    displacement_rms,
    gaussian_jitter,
    perlin,
    perlin_displacement,
    roughness,
    time_weights,
    warp_field,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def line(n=200, timed=True):
    u = np.linspace(0.0, 1.0, n)
    return Sketch([np.column_stack([u, 0.5 * u, u])], timed=timed, key="line")


def polygon(n, turns=1.0):
    a = np.linspace(0.0, 2 * np.pi * turns, int(n * turns) + 1)
    return Sketch([np.column_stack([np.cos(a), np.sin(a), a])], timed=True, key="poly")


def two_strokes(timed=True):
    u = np.linspace(0.0, 1.0, 80)
    s1 = np.column_stack([0.6 * np.cos(3 * u), 0.5 * np.sin(4 * u), 10 * u])
    s2 = np.column_stack([0.2 + 0.3 * u, -0.4 + 0.2 * u ** 2, 20 + 5 * u])
    return Sketch([s1, s2], timed=timed, key="two")


# ----------------------------------------------------------------- roughness
def test_roughness_closed_forms():
    assert roughness(line()) == pytest.approx(0.0, abs=1e-12)
    for n in (12, 50, 300):
        assert roughness(polygon(n)) == pytest.approx(2 * np.sin(np.pi / n), rel=1e-9)


def test_roughness_invariances():
    sk = two_strokes()
    r = roughness(sk)
    p = sk.points.copy()
    c, s = np.cos(0.7), np.sin(0.7)
    p[:, :2] = 3.5 * p[:, :2] @ np.array([[c, -s], [s, c]]).T + [4.0, -2.0]
    assert roughness(sk.with_points(p)) == pytest.approx(r, rel=1e-10)


def test_roughness_ignores_pen_lifts():
    # two straight strokes joined by a jump: the jump is not a second difference
    a = np.column_stack([np.linspace(0, 1, 20), np.zeros(20), np.arange(20.0)])
    b = np.column_stack([np.linspace(0, 1, 20), np.ones(20), 30 + np.arange(20.0)])
    assert roughness(Sketch([a, b], timed=True)) == pytest.approx(0.0, abs=1e-12)


def test_roughness_of_white_noise_matches_theory():
    # straight line with step h plus jitter s: sqrt(12 s^2 / (h^2 + 4 s^2))
    sk = line(20000)
    h2 = np.mean(np.sum(np.diff(sk.points[:, :2], axis=0) ** 2, axis=1))
    s = 0.01
    expect = np.sqrt(12 * s**2 / (h2 + 4 * s**2))
    assert roughness(gaussian_jitter(sk, s, seed=1)) == pytest.approx(expect, rel=0.03)


def test_roughness_errors():
    with pytest.raises(ValueError, match="3 points"):
        roughness(Sketch([np.array([[0.0, 0, 0], [1, 1, 1]])]))
    with pytest.raises(ValueError, match="never moves"):
        roughness(Sketch([np.zeros((4, 3)) + [0, 0, 0]]))
    with pytest.raises(TypeError):
        roughness(np.zeros((5, 3)))


def test_perlin_keeps_roughness_jitter_inflates_it():
    """The claim of chapter 6 on real-looking drawings, at matched displacement."""
    rng = np.random.default_rng(0)
    u = np.linspace(0.0, 1.0, 65)
    drawings = []
    for _ in range(20):  # digit-sized smooth curves, about 65 samples, uneven speed
        a, b, ph = rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.5), rng.uniform(0, 2 * np.pi, 2)
        w = u + 0.15 * np.sin(2 * np.pi * u + ph[0]) / (2 * np.pi)
        xy = np.column_stack([a * np.cos(5 * w + ph[0]), b * np.sin(4 * w + ph[1])])
        drawings.append(Sketch([np.column_stack([xy, u])], timed=True))
    rp, rj = [], []
    for k, s in enumerate(drawings):
        p = perlin(s, 0.15, seed=k)
        j = gaussian_jitter(s, displacement_rms(s, p) / np.sqrt(2), seed=k)
        r0 = roughness(s)
        rp.append(roughness(p) / r0)
        rj.append(roughness(j) / r0)
    assert 0.8 < np.median(rp) < 1.25
    assert np.median(rj) > 3.0


# ------------------------------------------------------ displacement_rms
def test_displacement_rms():
    sk = two_strokes()
    assert displacement_rms(sk, sk) == 0.0
    p = sk.points.copy()
    p[:, :2] += [0.3, 0.4]
    assert displacement_rms(sk, sk.with_points(p)) == pytest.approx(0.5)
    # jitter of s per coordinate: rms about sqrt(2) s
    big = line(20000)
    assert displacement_rms(big, gaussian_jitter(big, 0.02, seed=3)) == pytest.approx(0.02 * np.sqrt(2), rel=0.02)
    with pytest.raises(ValueError, match="structure"):
        displacement_rms(sk, line())


# -------------------------------------------------------------- warp_field
@pytest.mark.parametrize("center", ["drawing", "none"])
@pytest.mark.parametrize("timed", [True, False])
def test_warp_field_equals_displacement_on_the_drawing(center, timed):
    sk = two_strokes(timed)
    d = perlin_displacement(sk, 0.2, seed=5, frequency=1.5, center=center)
    w = warp_field(sk.points[:, :2], sk, 0.2, seed=5, frequency=1.5, center=center)
    np.testing.assert_allclose(w, d, atol=1e-14)


def test_warp_field_shapes_and_smoothness():
    sk = two_strokes()
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 5)), axis=-1)  # (5, 7, 2)
    assert warp_field(g, sk).shape == (5, 7, 2)
    assert warp_field([0.1, 0.2], sk).shape == (2,)
    # a small step in position, a small change in displacement
    a = warp_field([0.3, 0.1], sk, 0.2, 1)
    b = warp_field([0.3 + 1e-6, 0.1], sk, 0.2, 1)
    assert np.linalg.norm(a - b) < 1e-5


def test_warp_field_errors():
    sk = two_strokes()
    with pytest.raises(ValueError, match="stroke"):
        warp_field([0.0, 0.0], sk, center="stroke")
    with pytest.raises(ValueError, match="center"):
        warp_field([0.0, 0.0], sk, center="bogus")
    with pytest.raises(ValueError, match="size 2"):
        warp_field(np.zeros((4, 3)), sk)
    with pytest.raises(TypeError):
        warp_field([0.0, 0.0], sk.points)


# -------------------------------------------------------- center_of_gravity
def test_center_of_gravity_kept_by_centred_warp():
    for timed in (True, False):
        sk = two_strokes(timed)
        c0 = center_of_gravity(sk)
        np.testing.assert_allclose(c0, time_weights(sk) @ sk.points[:, :2])
        aug = perlin(sk, 0.2, seed=2)
        np.testing.assert_allclose(center_of_gravity(aug, weights_from=sk), c0, atol=1e-12)
        moved = perlin(sk, 0.2, seed=2, center="none")
        assert np.linalg.norm(center_of_gravity(moved, weights_from=sk) - c0) > 1e-3
    with pytest.raises(ValueError):
        center_of_gravity(two_strokes(), weights_from=line())


# ------------------------------------------------------------------ figures
def test_plot_perlin_field():
    ax = plot_perlin_field((0, 3, 0, 2), resolution=30)
    im = ax.images[0]
    assert im.get_array().shape == (20, 30)
    assert ax.get_xlim() == (0.0, 3.0)
    assert len(ax.lines) == 4 + 3  # lattice lines x = 0..3, y = 0..2
    with pytest.raises(ValueError):
        plot_perlin_field((1, 0, 0, 1))
    with pytest.raises(ValueError):
        plot_perlin_field(resolution=1)


def test_plot_warp():
    sk = two_strokes()
    ax = plot_warp(sk, 0.15, seed=1, grid=6, title="w")
    assert ax.get_title() == "w"
    # grid collection holds 2 * grid warped lines
    assert any(len(c.get_segments()) == 12 for c in ax.collections)
    # the two centre markers coincide with the drawing's centre
    c0 = center_of_gravity(sk)
    np.testing.assert_allclose(ax.lines[0].get_xydata()[0], c0)
    np.testing.assert_allclose(ax.lines[1].get_xydata()[0], c0, atol=1e-12)
    plot_warp(sk, 0.15, seed=1, center="stroke", grid=0)
    with pytest.raises(ValueError):
        plot_warp(sk, center="stroke")
    with pytest.raises(ValueError):
        plot_warp(sk, grid=-1)


def test_plot_augmentations_layout():
    sks = [two_strokes(), polygon(40)]
    fig = plot_augmentations(sks, sigmas=(0.1, 0.2), seeds=(0, 1, 2))
    assert len(fig.axes) == 2 * 3
    assert fig.axes[1].get_title() == "σ = 0.1"
    # every panel of a row shares one scale
    lims = {fig.axes[k].get_xlim()[1] - fig.axes[k].get_xlim()[0] for k in range(3)}
    assert max(lims) - min(lims) < 1e-9
    fig = plot_augmentations(two_strokes(), sigmas=(0.1, 0.2), seeds=(0, 1), overlay=False)
    assert len(fig.axes) == 1 + 4
    with pytest.raises(ValueError):
        plot_augmentations([], sigmas=(0.1,))
    with pytest.raises(TypeError):
        plot_augmentations([np.zeros((3, 3))])


def test_plot_displacement():
    sk = two_strokes()
    aug = perlin(sk, 0.2, seed=0)
    ax = plot_displacement(sk, aug, label="perlin")
    x, y = ax.lines[0].get_data()
    assert np.isnan(x).sum() == 1 and len(x) == sk.n_points + 1  # broken at the pen lift
    np.testing.assert_allclose(y[~np.isnan(y)], (aug.points - sk.points)[:, 0])
    assert ax.lines[0].get_label() == "perlin: dx"
    with pytest.raises(ValueError):
        plot_displacement(sk, line())
