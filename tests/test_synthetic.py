"""Tests for sketchode.data.synthetic (embedded stand-in for VectorMNIST, paper section 5.1)."""

import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchode.data.synthetic import DIGITS, LETTERS, digits, letters


@pytest.fixture(scope="module")
def small_digits():
    return digits(40, seed=0)


def _same(a, b):
    return (
        len(a) == len(b)
        and all(x.label == y.label and x.key == y.key and x.n_strokes == y.n_strokes for x, y in zip(a, b))
        and all(np.array_equal(p, q) for x, y in zip(a, b) for p, q in zip(x.strokes, y.strokes))
    )


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_deterministic_for_seed_and_seeds_differ(seed):
    a = digits(3, seed=seed)
    assert _same(a, digits(3, seed=seed))
    b = digits(3, seed=seed + 1)
    assert not _same(a, b)


def test_balance_labels_keys(small_digits):
    d = small_digits
    assert len(d) == 400
    assert Counter(s.label for s in d) == {c: 40 for c in DIGITS}
    assert [s.label for s in d[:20]] == list(DIGITS) * 2  # classes interleaved
    assert [s.key for s in d[:3]] == ["digits:000000", "digits:000001", "digits:000002"]
    assert len({s.key for s in d}) == len(d)
    assert all(s.timed and s.meta["source"] == "synthetic" for s in d)
    assert digits(0) == []


def test_letters_classes():
    ls = letters(3, seed=1, classes="ABD")
    assert [s.label for s in ls] == list("ABD") * 3
    assert ls[0].key == "letters:000000"
    for c in "ABD":
        assert c in LETTERS
    full = letters(2)
    assert Counter(s.label for s in full) == {c: 2 for c in LETTERS}
    with pytest.raises(ValueError):
        letters(2, classes="A?")


def test_timestamps_strictly_increasing_with_pen_up_gaps(small_digits):
    for s in small_digits:
        t = s.points[:, 2]
        assert t[0] == 0.0
        assert np.all(np.diff(t) > 0)
        for a, b in zip(s.strokes[:-1], s.strokes[1:]):
            assert b[0, 2] - a[-1, 2] > 50.0  # pen lift takes time (ms)
        assert 100 < t[-1] < 5000  # a character takes a fraction of a second to a few seconds


def test_points_per_stroke_and_size(small_digits):
    n = np.array([len(st_) for s in small_digits for st_ in s.strokes])
    assert n.min() >= 20 and n.max() <= 80
    h = np.array([s.bounds[3] - s.bounds[1] for s in small_digits])
    assert 0.6 < np.median(h) < 1.4


def _turning(stroke):
    v = np.diff(stroke[:, :2], axis=0)
    a = np.arctan2(v[:, 1], v[:, 0])
    return np.degrees(np.abs(np.angle(np.exp(1j * np.diff(a)))))


def test_smooth_strokes(small_digits):
    turns = np.concatenate([_turning(st_) for s in small_digits for st_ in s.strokes])
    assert np.median(turns) < 8.0
    assert np.percentile(turns, 95) < 40.0
    # second differences small compared with the step length (no jagged points); they
    # include the pen's acceleration along the stroke, so only the bulk is bounded
    rel = []
    for s in small_digits:
        for st_ in s.strokes:
            d1 = np.linalg.norm(np.diff(st_[:, :2], axis=0), axis=1)
            d2 = np.linalg.norm(np.diff(st_[:, :2], 2, axis=0), axis=1)
            rel.append(d2 / (0.5 * (d1[1:] + d1[:-1])))
    rel = np.concatenate(rel)
    assert np.median(rel) < 0.2 and np.percentile(rel, 90) < 0.5


def test_time_is_not_arc_length(small_digits):
    cv = []
    for s in small_digits:
        for st_ in s.strokes:
            ds = np.linalg.norm(np.diff(st_[:, :2], axis=0), axis=1)
            v = ds / np.diff(st_[:, 2])
            cv.append(v.std() / v.mean())
    cv = np.array(cv)
    assert np.median(cv) > 0.15  # speed varies along strokes
    # and slow at the ends, faster in the middle
    s = small_digits[1]  # a "1"
    st_ = s.strokes[-1] if s.meta["variant"] != "1/flag-base" else s.strokes[0]
    v = np.linalg.norm(np.diff(st_[:, :2], axis=0), axis=1) / np.diff(st_[:, 2])
    k = len(v) // 5
    assert v[:3].mean() < v[k:-k].mean() and v[-3:].mean() < v[k:-k].mean()


def test_multi_stroke_variants_present():
    d = digits(60, seed=2)
    for c in "47":
        counts = {s.n_strokes for s in d if s.label == c}
        assert {1, 2} <= counts, (c, counts)
    variants = {s.meta["variant"] for s in d if s.label == "1"}
    assert {"1/plain", "1/flag"} <= variants


def test_formats_work(small_digits):
    s = small_digits[7].normalize()
    seq = s.to_full_sequence()
    assert seq.shape[1] == 4 and np.all(np.diff(seq[:, 0]) > 0)
    assert np.hypot(seq[:, 1], seq[:, 2]).max() == pytest.approx(1.0)


def test_generation_speed():
    t = time.perf_counter()
    digits(100, seed=3)
    assert time.perf_counter() - t < 3.0  # 1000 drawings; measured about 0.12 s
