"""Tests for the widened embedded digits (``digits(style="wide")``, dataset ``digits-wide``).

No real data is needed: everything here is generated.
"""

import hashlib
from collections import Counter

import numpy as np
import pytest

from sketchode.data import datasets as D
from sketchode.data import synthetic
from sketchode.data.synthetic import DIGITS, STYLES, digits, digits_wide, letters


def _digest(sketches) -> str:
    """sha256 over keys, labels, variants and the exact float64 bytes of every stroke."""
    m = hashlib.sha256()
    for s in sketches:
        m.update(f"{s.key}|{s.label}|{s.meta['variant']}|{len(s.strokes)}".encode())
        for st in s.strokes:
            m.update(np.ascontiguousarray(st, dtype=np.float64).tobytes())
    return m.hexdigest()


# Computed from the generator *before* the wide style was added: the default drawings must not change.
BEFORE = {
    ("digits", 3, 0): "40b81b728737f155a5efc6fd60330259f12132b9f0af2c3b706bb63bc6828bc6",
    ("digits", 7, 1): "6e86945389a2a07ce5a93a51e1fc67c141b8de428b2ae68610ad1a76846851e6",
    ("digits", 40, 0): "f7542dfa538d3fb2c9843c0d2db8732234fd210a4bb7c9688509a857831886ad",
    ("digits", 1000, 0): "727ce97f8c2a40b70f4dc899eb336bde39d349522ca7813aa18a2edfc5b6f18d",  # load("digits")
    ("letters", 3, 0): "38e4229a8fe06602a0cbfeed457487b1e479260a239190543df4d9690745835d",
}


@pytest.fixture(scope="module")
def wide():
    return digits(60, seed=0, style="wide")


@pytest.mark.parametrize("which,n,seed", sorted(BEFORE))
def test_default_drawings_unchanged_bit_for_bit(which, n, seed):
    gen = digits if which == "digits" else letters
    assert _digest(gen(n, seed=seed)) == BEFORE[(which, n, seed)]


def test_default_values_and_meta_unchanged():
    d = digits(3, seed=0)
    assert d[0].strokes[0][:2].tolist() == [[0.581320510905349, 0.9633086758598282, 0.0],
                                            [0.5852235639355731, 0.9524904407913514, 10.651453432797885]]
    assert d[13].meta == {"variant": "3/round", "source": "synthetic"}
    assert _digest(digits(3, seed=0, style="default")) == BEFORE[("digits", 3, 0)]
    assert {s.meta["variant"] for s in digits(40, seed=0)} <= {v.name for vs in synthetic._TEMPLATES["digits"].values()
                                                               for v in vs}


def test_wide_deterministic_and_distinct():
    a = digits(4, seed=3, style="wide")
    assert _digest(a) == _digest(digits(4, seed=3, style="wide")) == _digest(digits_wide(4, seed=3))
    assert _digest(a) != _digest(digits(4, seed=4, style="wide"))
    assert _digest(digits(4, seed=3)) == _digest(digits(4, seed=3))  # the wide call did not disturb the default
    with pytest.raises(ValueError, match="style"):
        digits(2, style="narrow")


def test_wide_labels_keys_meta(wide):
    assert len(wide) == 600 and Counter(s.label for s in wide) == {c: 60 for c in DIGITS}
    assert [s.label for s in wide[:20]] == list(DIGITS) * 2
    assert [s.key for s in wide[:2]] == ["digits-wide:000000", "digits-wide:000001"]
    assert len({s.key for s in wide}) == len(wide)
    assert all(s.timed and s.meta["source"] == "synthetic" and s.meta["style"] == "wide" for s in wide)
    assert all(s.meta["variant"].startswith(s.label + "/") for s in wide)
    assert digits(0, style="wide") == []


def test_wide_has_the_new_variants():
    default_names = {v.name for vs in synthetic._TEMPLATES["digits"].values() for v in vs}
    wide_names = {v.name for vs in synthetic._TEMPLATES["digits-wide"].values() for v in vs}
    assert default_names < wide_names  # every default variant is kept, and there are new ones
    must = {"1/lead-in", "1/lead-in-base", "1/hook", "9/curved-tail", "9/long-tail", "9/j-tail", "4/slant-open",
            "7/tick-crossbar", "8/two-loops", "8/waist-start", "2/z", "5/bar-first", "6/small-loop"}
    assert must <= wide_names
    seen = Counter(s.meta["variant"] for s in digits(150, seed=1, style="wide"))
    assert set(seen) == wide_names  # every variant is drawn
    # the lead-in 1 and the long-tailed 9s, missing from the default style, are a good part of their classes
    assert sum(seen[v] for v in seen if v.startswith("1/lead-in")) > 0.3 * 150
    assert sum(seen[v] for v in ("9/curved-tail", "9/long-tail", "9/j-tail")) > 0.3 * 150
    two_strokes = {s.meta["variant"]: s.n_strokes for s in digits(20, seed=1, style="wide")}
    assert two_strokes.get("8/two-loops", 2) == 2 and two_strokes.get("1/lead-in", 1) == 1


def test_wide_timestamps_points_and_size(wide):
    for s in wide:
        t = s.points[:, 2]
        assert t[0] == 0.0 and np.all(np.diff(t) > 0)
        for a, b in zip(s.strokes[:-1], s.strokes[1:]):
            assert b[0, 2] - a[-1, 2] > 50.0  # a pen lift takes time (ms)
        assert 100 < t[-1] < 6000
        assert np.isfinite(s.points).all()
    n = np.array([len(st) for s in wide for st in s.strokes])
    assert n.min() >= 20 and n.max() <= 80
    h = np.array([s.bounds[3] - s.bounds[1] for s in wide])
    assert 0.6 < np.median(h) < 1.4 and h.min() > 0.2


def test_wide_varies_more_than_default(wide):
    def spread(sk):
        w = np.array([s.bounds[2] - s.bounds[0] for s in sk])
        h = np.array([s.bounds[3] - s.bounds[1] for s in sk])
        return np.std(np.log(w / h))

    old = digits(60, seed=0)
    for c in "0369":
        assert spread([s for s in wide if s.label == c]) > spread([s for s in old if s.label == c])
    assert STYLES["default"] == synthetic._Style()  # the default knobs are the module constants
    assert STYLES["wide"].bend > 0 and STYLES["wide"].aspect_sd > STYLES["default"].aspect_sd


def test_load_digits_wide_splits(monkeypatch, tmp_path):
    monkeypatch.setenv("SKETCHODE_DATA", str(tmp_path))  # no real data anywhere
    D.clear_cache()
    assert "digits-wide" in D.NAMES and D.files_for("digits-wide") == []
    tr, te, al = D.load("digits-wide"), D.load("digits-wide", "test"), D.load("digits-wide", "all")
    assert len(al) == 10000 and len(tr) + len(te) == 10000 and 0.75 < len(tr) / 10000 < 0.85
    assert not {s.key for s in tr} & {s.key for s in te}
    assert all(s.meta["style"] == "wide" for s in tr[:50])
    assert [s.key for s in al[:3]] == ["digits-wide:000000", "digits-wide:000001", "digits-wide:000002"]
    assert [s.key for s in D.load("digits-wide")[:5]] == [s.key for s in tr[:5]]
    with pytest.raises(ValueError):
        D.load("digits-wide", "valid")
