"""Tests for sketchode.data.augment (paper section 4.6)."""

import time

import noise
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchode.data.augment import (
    PERLIN_LIPSCHITZ,
    augment_copies,
    gaussian_jitter,
    perlin,
    perlin2d,
    perlin_displacement,
    sample_seed,
    time_weights,
)
from sketchode.data.sketch import Sketch


def make_sketch(timed=True, key="t:000001", n=(60, 40, 100), seed=0):
    rng = np.random.default_rng(seed)
    strokes, t0 = [], 0.0
    for k, m in enumerate(n):
        u = np.linspace(0, 1, m)
        x = 0.5 * np.cos(3 * u + k) + 0.1 * k
        y = 0.4 * np.sin(5 * u - k)
        t = t0 + np.cumsum(rng.uniform(5, 15, m))
        t0 = t[-1] + 100
        strokes.append(np.column_stack([x, y, t]))
    return Sketch(strokes, label="s", timed=timed, key=key, meta={"src": "test"})


# ------------------------------------------------------------------ perlin2d
@pytest.mark.parametrize("base", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 20.0, 500.0])
def test_perlin2d_matches_noise_pnoise2(base, scale):
    rng = np.random.default_rng(42)
    x = rng.uniform(-scale, scale, 3000).astype(np.float32)
    y = rng.uniform(-scale, scale, 3000).astype(np.float32)
    ref = np.array([noise.pnoise2(float(a), float(b), octaves=1, base=base) for a, b in zip(x, y)])
    ours = perlin2d(x.astype(np.float64), y.astype(np.float64), base=base)
    # the C code works in float32; the algorithm is the same
    np.testing.assert_allclose(ours, ref, atol=3e-6, rtol=0)


@settings(max_examples=50, deadline=None)
@given(st.floats(-1000, 1000, width=32), st.floats(-1000, 1000, width=32))
def test_perlin2d_matches_pnoise2_hypothesis(x, y):
    assert abs(perlin2d(x, y) - noise.pnoise2(x, y)) < 3e-6


def test_perlin2d_vectorised_shapes_and_lattice_zero():
    x = np.arange(-5, 6, dtype=float)
    X, Y = np.meshgrid(x, x)
    Z = perlin2d(X, Y)
    assert Z.shape == X.shape
    np.testing.assert_array_equal(Z, 0.0)  # zero at every lattice point
    assert perlin2d(np.zeros((3, 1)), np.linspace(0.1, 0.9, 4)).shape == (3, 4)
    g = np.linspace(0, 4, 401)
    Z = perlin2d(*np.meshgrid(g, g))
    assert np.abs(Z).max() <= 1.0
    # period 256
    np.testing.assert_allclose(perlin2d(g, 0.3), perlin2d(g + 256.0, 0.3 - 256.0), atol=1e-9)


# ----------------------------------------------------------- perlin augment
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), sigma=st.floats(0.01, 1.0), timed=st.booleans())
def test_perlin_displacement_has_zero_time_mean(seed, sigma, timed):
    sk = make_sketch(timed=timed)
    d = perlin_displacement(sk, sigma, seed)
    w = time_weights(sk)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w @ d, 0.0, atol=1e-12)
    assert np.abs(d).max() > 0


def test_centre_uses_time_not_index():
    # a stroke sampled densely at its start: the plain point mean differs from the time mean
    t = np.concatenate([np.linspace(0, 1, 80), np.linspace(1.05, 10, 20)])
    xy = np.column_stack([np.linspace(0, 1, 100), np.zeros(100), t])
    sk = Sketch([xy], timed=True)
    d = perlin_displacement(sk, 1.0, seed=1)
    dt = np.diff(t)
    w = np.zeros(100)
    w[:-1] += dt / 2
    w[1:] += dt / 2
    np.testing.assert_allclose((w / w.sum()) @ d, 0.0, atol=1e-12)
    assert np.abs(d.mean(axis=0)).max() > 1e-3


def test_centre_invariant_to_time_rescaling():
    sk = make_sketch()
    a = perlin(sk, 0.2, seed=3)
    b = perlin(sk.retime(5.0), 0.2, seed=3)
    np.testing.assert_allclose(a.points[:, :2], b.points[:, :2], atol=1e-12)


def test_untimed_uses_arc_length():
    sk = make_sketch(timed=False)
    d = perlin_displacement(sk, 0.3, seed=2)
    ref = sk.retime(1.0)  # arc-length time, now as timestamps
    ref = Sketch(ref.strokes, timed=True)
    np.testing.assert_allclose(perlin_displacement(ref, 0.3, seed=2), d, atol=1e-12)


def test_per_stroke_centre():
    sk = make_sketch()
    d = perlin_displacement(sk, 0.5, seed=4, center="stroke")
    w = time_weights(sk, per_stroke=True)
    sid = sk.stroke_index
    for k in range(sk.n_strokes):
        np.testing.assert_allclose(w[sid == k] @ d[sid == k], 0.0, atol=1e-12)
    with pytest.raises(ValueError):
        perlin_displacement(sk, center="bogus")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_deterministic_for_seed_and_differs_across_seeds(seed):
    sk = make_sketch()
    a = perlin(sk, 0.15, seed=seed)
    b = perlin(sk, 0.15, seed=seed)
    c = perlin(sk, 0.15, seed=seed + 1)
    np.testing.assert_array_equal(a.points, b.points)
    assert np.abs(a.points - c.points).max() > 1e-3


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), sigma=st.floats(1e-3, 2.0), k=st.floats(0.0, 5.0))
def test_strength_linear_in_sigma(seed, sigma, k):
    sk = make_sketch()
    d1 = perlin_displacement(sk, sigma, seed)
    dk = perlin_displacement(sk, k * sigma, seed)
    np.testing.assert_allclose(dk, k * d1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(perlin(sk, 0.0, seed).points, sk.points)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    sigma=st.floats(0.01, 1.0),
    freq=st.floats(0.2, 4.0),
    pts=st.lists(st.tuples(st.floats(-2, 2), st.floats(-2, 2)), min_size=2, max_size=30),
)
def test_displacement_is_lipschitz(seed, sigma, freq, pts):
    """Nearby points get nearby displacements: |d(a) - d(b)| <= sigma f L |a - b|."""
    xy = np.array(pts, dtype=float)
    sk = Sketch([np.column_stack([xy, np.arange(len(xy), dtype=float)])], timed=True)
    d = perlin_displacement(sk, sigma, seed, frequency=freq)
    dd = np.linalg.norm(d[:, None] - d[None], axis=-1)
    dx = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    # each component is L-Lipschitz, so the 2-vector is sqrt(2) L
    assert np.all(dd <= np.sqrt(2) * PERLIN_LIPSCHITZ * sigma * freq * dx + 1e-12)


def test_smooth_warp_keeps_curve_smooth():
    """Continuous noise: a finely sampled line stays smooth (white noise would not)."""
    u = np.linspace(0, 1, 2000)
    sk = Sketch([np.column_stack([u, 0 * u, u])], timed=True)
    p = perlin(sk, 0.2, seed=7).points[:, :2]
    j = gaussian_jitter(sk, 0.01, seed=7).points[:, :2]
    d2p = np.abs(np.diff(p, 2, axis=0)).max()
    d2j = np.abs(np.diff(j, 2, axis=0)).max()
    assert d2p < 1e-4 < d2j


def test_structure_time_and_metadata_unchanged():
    sk = make_sketch()
    for out in (perlin(sk, 0.3, seed=1), gaussian_jitter(sk, 0.05, seed=1)):
        assert out.n_strokes == sk.n_strokes
        assert [len(s) for s in out.strokes] == [len(s) for s in sk.strokes]
        for a, b in zip(out.strokes, sk.strokes):
            np.testing.assert_array_equal(a[:, 2], b[:, 2])
        assert (out.label, out.key, out.timed, out.meta) == (sk.label, sk.key, sk.timed, sk.meta)
        assert not np.allclose(out.points[:, :2], sk.points[:, :2])


def test_dots_and_single_point():
    sk = Sketch([np.array([[0.1, 0.2, 0.0]]), np.array([[0.5, 0.5, 1.0]])], timed=True)
    d = perlin_displacement(sk, 1.0, seed=0)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=1e-12)
    out = perlin(Sketch([np.array([[0.3, 0.3, 0.0]])]), 1.0)
    np.testing.assert_allclose(out.points, [[0.3, 0.3, 0.0]])  # a single point: centred warp is zero


def test_sample_seed():
    a, b = sample_seed(0), sample_seed(1)
    assert a.shape == (2,) and np.all((0 <= a) & (a < 256))
    np.testing.assert_array_equal(a, sample_seed(0))
    assert not np.allclose(a, b)


def test_augment_200_points_fast():
    sk = make_sketch(n=(80, 70, 50))
    perlin(sk)
    n = 200
    t = time.perf_counter()
    for i in range(n):
        perlin(sk, 0.15, seed=i)
    per = (time.perf_counter() - t) / n
    assert per < 5e-3  # measured about 0.25 ms; loose for busy CI machines


# ------------------------------------------------------------------- jitter
def test_gaussian_jitter_statistics():
    u = np.linspace(0, 1, 20000)
    sk = Sketch([np.column_stack([u, u, u])], timed=True)
    out = gaussian_jitter(sk, 0.05, seed=3)
    e = out.points[:, :2] - sk.points[:, :2]
    assert abs(e.mean()) < 0.002
    assert e.std() == pytest.approx(0.05, rel=0.03)
    assert abs(np.corrcoef(e[:-1, 0], e[1:, 0])[0, 1]) < 0.03  # independent per point
    assert abs(np.corrcoef(e[:, 0], e[:, 1])[0, 1]) < 0.03
    np.testing.assert_array_equal(out.points[:, 2], sk.points[:, 2])
    np.testing.assert_array_equal(gaussian_jitter(sk, 0.05, seed=3).points, out.points)


# ----------------------------------------------------------- augment_copies
def test_augment_copies_keep_keys_and_number_copies():
    sks = [make_sketch(key=f"t:{i:06d}", seed=i) for i in range(4)]
    out = augment_copies(sks, 3, sigma=0.1, seed=5)
    assert len(out) == 12
    assert [s.key for s in out] == [s.key for s in sks for _ in range(3)]
    assert [s.meta["augmented"] for s in out] == [1, 2, 3] * 4
    assert all(s.meta["src"] == "test" and s.label == "s" for s in out)
    assert all("augmented" not in s.meta for s in sks)
    # copies differ from each other and from the original
    assert not np.allclose(out[0].points, out[1].points)
    assert not np.allclose(out[0].points, sks[0].points)
    # deterministic, and independent of the company of a drawing (seeded by its key)
    again = augment_copies(sks[::-1], 3, sigma=0.1, seed=5)
    np.testing.assert_array_equal(again[-3].points, out[0].points)
    other = augment_copies(sks, 3, sigma=0.1, seed=6)
    assert not np.allclose(other[0].points, out[0].points)


def test_augment_copies_options():
    sks = [make_sketch(key=None, seed=i) for i in range(2)]
    out = augment_copies(sks, 2, sigma=[0.0, 0.2], include_original=True)
    assert len(out) == 6
    assert out[0] is sks[0]
    np.testing.assert_allclose(out[1].points, sks[0].points)  # sigma 0
    assert not np.allclose(out[2].points, sks[0].points)
    g = augment_copies(sks, 2, kind="gaussian", sigma=0.01)
    assert [s.meta["augmented"] for s in g] == [1, 2, 1, 2]
    with pytest.raises(ValueError):
        augment_copies(sks, 2, kind="nope")
    with pytest.raises(ValueError):
        augment_copies(sks, 2, sigma=[0.1])


def test_augment_copies_split_never_leaks():
    import zlib

    sks = [make_sketch(key=f"t:{i:06d}", seed=i, n=(20,)) for i in range(30)]
    out = augment_copies(sks, 4)
    side = lambda s: zlib.crc32(s.key.encode()) % 5 == 0  # noqa: E731
    for orig in sks:
        copies = [s for s in out if s.key == orig.key]
        assert len(copies) == 4 and {side(s) for s in copies} == {side(orig)}
