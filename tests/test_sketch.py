"""Behaviour of Sketch: normalisation, time, formats, resampling (paper 4.4, appendix D)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import make_sketch
from sketchode.data import (
    Sketch,
    interp_linear,
    interp_pen,
    resample_full,
    resample_stroke,
    strictly_increasing,
    uniform_grid,
)

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@st.composite
def sketches(draw):
    k = draw(st.integers(1, 4))
    strokes = []
    for _ in range(k):
        n = draw(st.integers(1, 12))
        xy = draw(arrays(np.float64, (n, 2), elements=finite))
        t = np.cumsum(draw(arrays(np.float64, (n,), elements=st.floats(0, 100))))
        strokes.append(np.column_stack([xy, t]))
    return Sketch(strokes, timed=draw(st.booleans()))


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "strokes, msg",
    [
        ([], "empty drawing"),
        ([np.zeros((0, 3))], "empty stroke"),
        ([np.zeros((3, 2))], "shape"),
        ([np.array([[0, 0, 0], [np.nan, 1, 1.0]])], "point 1, column x"),
        ([np.zeros((2, 3)), np.array([[0, np.inf, 0.0]])], "stroke 1"),
    ],
)
def test_bad_strokes_raise_with_location(strokes, msg):
    with pytest.raises(ValueError, match=msg):
        Sketch(strokes, key="file.ndjson:7")


def test_arrays_are_read_only(sketch):
    with pytest.raises(ValueError):
        sketch.strokes[0][0, 0] = 1.0


# ------------------------------------------------------------- normalisation
@settings(max_examples=60, deadline=None)
@given(sketches())
def test_normalize_invariants(s):
    n = s.normalize()
    p = n.points
    assert np.allclose(p[0, :2], 0.0)
    r = np.hypot(p[:, 0], p[:, 1])
    assert r.max() <= 1.0 + 1e-12
    if np.ptp(s.points[:, :2], axis=0).max() > 1e-6:
        assert np.isclose(r.max(), 1.0)
    # time and structure untouched
    assert np.array_equal(p[:, 2], s.points[:, 2])
    assert [len(a) for a in n.strokes] == [len(a) for a in s.strokes]
    # idempotent
    assert np.allclose(n.normalize().points, p)


def test_normalize_preserves_shape_up_to_similarity(sketch):
    p, q = sketch.points[:, :2], sketch.normalize().points[:, :2]
    d0 = np.linalg.norm(p[1:] - p[:-1], axis=1)
    d1 = np.linalg.norm(q[1:] - q[:-1], axis=1)
    ratio = d1 / d0
    assert np.allclose(ratio, ratio[0])


# -------------------------------------------------------------------- time
def test_strictly_increasing_lifts_repeats():
    t = np.array([0, 0, 0, 5, 5, 10, 9, 20.0])
    u = strictly_increasing(t)
    assert np.all(np.diff(u) > 0)
    assert u[0] == 0 and abs(u[-1] - 20) < 0.1


def test_retime_keeps_real_time_shape(sketch):
    r = sketch.retime(T=5.0).points[:, 2]
    raw = sketch.points[:, 2]
    assert r[0] == 0 and np.isclose(r[-1], 5.0)
    assert np.allclose(r, (raw - raw[0]) / (raw[-1] - raw[0]) * 5.0)


def test_retime_untimed_is_arc_length():
    s = Sketch([np.array([[0, 0, 0], [3, 0, 0], [3, 4, 0.0]]), np.array([[3, 10, 0], [3, 11, 0.0]])], timed=False)
    t = s.retime(T=14.0).points[:, 2]  # path length 3 + 4 + (pen-up 6) + 1 = 14
    assert np.allclose(t, [0, 3, 7, 13, 14])


# ----------------------------------------------------------- full sequence
def test_full_sequence_joins(sketch):
    J = 3
    seq = sketch.normalize().to_full_sequence(T=5.0, join_points=J)
    n_ink = sketch.n_points
    assert seq.shape == (n_ink + J * (sketch.n_strokes - 1), 4)
    assert seq[0, 0] == 0 and np.isclose(seq[-1, 0], 5.0)
    assert np.all(np.diff(seq[:, 0]) > 0)
    assert seq[0, 3] == 0 and seq[-1, 3] == 0
    assert seq[:, 3].sum() == J * (sketch.n_strokes - 1)
    # each join lies on the straight segment from one stroke's end to the next's start
    norm = sketch.normalize()
    i = len(norm.strokes[0])
    a, b = norm.strokes[0][-1, :2], norm.strokes[1][0, :2]
    join = seq[i : i + J, 1:3]
    f = np.arange(1, J + 1) / (J + 1)
    assert np.allclose(join, a + f[:, None] * (b - a))
    assert np.all(seq[i : i + J, 3] == 1)
    # timed: the join spans the real gap time
    raw = norm.strokes[0][-1, 2], norm.strokes[1][0, 2]
    tt = (np.array(raw) - norm.points[0, 2]) / (norm.points[-1, 2] - norm.points[0, 2]) * 5
    assert np.isclose(seq[i - 1, 0], tt[0]) and np.isclose(seq[i + J, 0], tt[1])


def test_full_sequence_roundtrip(sketch):
    seq = sketch.to_full_sequence()
    back = Sketch.from_full_sequence(seq)
    assert back.n_strokes == sketch.n_strokes
    for a, b in zip(back.strokes, sketch.strokes):
        assert np.allclose(a[:, :2], b[:, :2])


def test_single_point_stroke_rule():
    s = Sketch([np.array([[0, 0, 0], [1, 0, 1.0]]), np.array([[2, 2, 5.0]]), np.array([[3, 0, 9], [4, 0, 10.0]])], timed=True)
    seq = s.to_full_sequence(join_points=2)
    assert (seq[:, 3] == 0).sum() == 5  # the dot is one ink sample
    strokes = s.to_strokes(T=5.0)
    assert strokes[1].shape == (2, 3)
    assert np.allclose(strokes[1][:, 0], [0, 5]) and np.allclose(strokes[1][:, 1:], [[2, 2], [2, 2]])
    # zero-length stroke: constant, strictly increasing time, no crash
    z = Sketch([np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0.0]])], timed=False).to_strokes()
    assert np.all(np.diff(z[0][:, 0]) > 0)


def test_to_strokes_each_on_0_T(sketch):
    for st_ in sketch.to_strokes(T=5.0):
        assert st_[0, 0] == 0 and np.isclose(st_[-1, 0], 5.0)
        assert np.all(np.diff(st_[:, 0]) > 0)


# ------------------------------------------------------------------ resampling
def test_resample_endpoints_and_pen(sketch):
    seq = sketch.normalize().to_full_sequence(T=5.0)
    g = resample_full(seq, uniform_grid(75, 5.0))
    assert g.shape == (75, 4)
    assert np.allclose(g[0, 1:3], seq[0, 1:3]) and np.allclose(g[-1, 1:3], seq[-1, 1:3])
    assert set(np.unique(g[:, 3])) <= {0.0, 1.0}
    assert g[0, 3] == 0 and g[-1, 3] == 0
    # pen is up exactly on the open intervals between consecutive strokes
    ink = seq[seq[:, 3] == 0]
    ends = np.cumsum([len(s) for s in sketch.strokes])
    gaps = [(ink[e - 1, 0], ink[e, 0]) for e in ends[:-1]]
    expected = np.zeros(75)
    for a, b in gaps:
        expected[(g[:, 0] > a) & (g[:, 0] < b)] = 1
    assert np.array_equal(g[:, 3], expected)


def test_interp_pen_two_samples_per_join():
    t = np.array([0, 1, 2, 3.0])
    pen = np.array([0, 1, 1, 0.0])
    q = np.array([0, 0.01, 0.5, 1, 2.99, 3])
    assert np.array_equal(interp_pen(t, pen, q), [0, 1, 1, 1, 1, 0])


def test_interp_linear_matches_numpy():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 5, 30))
    v = rng.normal(size=(30, 2))
    q = np.linspace(-1, 6, 101)
    got = interp_linear(t, v, q)
    for c in range(2):
        assert np.allclose(got[:, c], np.interp(q, t, v[:, c]))


def test_resample_stroke_is_exact_on_lines():
    stroke = np.array([[0, 0, 0], [1, 2, 4], [5, 10, 20.0]])  # x = 2t, y = 4t... piecewise
    g = resample_stroke(stroke, np.array([0, 0.5, 3]))
    assert np.allclose(g, [[0, 0, 0], [0.5, 1, 2], [3, 6, 12]])


def test_simplify_keeps_endpoints_and_times():
    u = np.linspace(0, 1, 200)
    line = np.column_stack([u, 1e-5 * np.sin(50 * u), u * 100])
    s = Sketch([line]).simplify(0.01)
    assert len(s.strokes[0]) == 2
    assert np.allclose(s.strokes[0][[0, -1]], line[[0, -1]])
    corner = np.array([[0, 0, 0], [0.5, 0, 1], [1, 0, 2], [1, 1, 3.0]])
    assert np.array_equal(Sketch([corner]).simplify(0.01).strokes[0], corner[[0, 2, 3]])


def test_with_points_checks_shape(sketch):
    with pytest.raises(ValueError, match="expected points of shape"):
        sketch.with_points(np.zeros((3, 3)))


def test_meta_is_read_only_and_not_shared():
    m = {"line": 3}
    s = Sketch([np.zeros((2, 3))], meta=m)
    m["line"] = 99  # the caller's dict does not leak in
    assert s.meta["line"] == 3
    with pytest.raises(TypeError):
        s.meta["line"] = 4
    n = s.normalize()
    assert n.meta["line"] == 3 and n.label == s.label and n.key == s.key


def test_with_points_rejects_non_finite(sketch):
    p = sketch.points.copy()
    p[5, 1] = np.nan
    with pytest.raises(ValueError, match="point 5"):
        sketch.with_points(p)
