"""Readers of sketchode.data.formats on small files the tests write themselves."""

import io
import json
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchode.data import formats as F
from sketchode.data.formats import MalformedRecordWarning


def strokes_equal(a, b):
    return len(a.strokes) == len(b.strokes) and all(np.array_equal(x, y) for x, y in zip(a.strokes, b.strokes))


def same_sketch(a, b):
    return strokes_equal(a, b) and (a.label, a.timed, a.key) == (b.label, b.timed, b.key)


# ---------------------------------------------------------------- stroke-3
def naive_stroke3(a, flip=True):
    """Reference: one point at a time."""
    x = y = 0.0
    strokes, cur = [], []
    for dx, dy, p in np.asarray(a, dtype=float):
        x += dx
        y += dy
        cur.append((x, -y if flip else y, 0.0))
        if p >= 0.5:
            strokes.append(cur)
            cur = []
    if cur:
        strokes.append(cur)
    return [np.array(s) for s in strokes]


def test_stroke3_offsets_pen_flags_and_y_flip():
    a = np.array([[1, 2, 0], [3, 4, 1], [5, 6, 0], [1, 1, 1]], dtype=np.int16)
    s = F.stroke3_to_sketch(a, label="z", key="k:0")
    assert s.n_strokes == 2 and not s.timed and s.label == "z" and s.key == "k:0"
    # pen lifts AFTER row 1, so row 2 starts the second stroke; cumulative sums; y flipped
    np.testing.assert_array_equal(s.strokes[0], [[1, -2, 0], [4, -6, 0]])
    np.testing.assert_array_equal(s.strokes[1], [[9, -12, 0], [10, -13, 0]])
    up = F.stroke3_to_sketch(a, flip_y=False)
    np.testing.assert_array_equal(up.strokes[1][:, 1], [12, 13])


def test_stroke3_no_lift_is_one_stroke_and_single_points_kept():
    s = F.stroke3_to_sketch([[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    assert s.n_strokes == 1 and s.n_points == 3
    dots = F.stroke3_to_sketch([[2, 0, 1], [1, 0, 1], [1, 1, 1]])
    assert [len(x) for x in dots.strokes] == [1, 1, 1]


def test_read_stroke3_single_array_is_one_drawing():
    out = F.read_stroke3(np.array([[1, 1, 0], [1, 1, 1]]), source="one")
    assert len(out) == 1 and out[0].key == "one:0" and out[0].meta["index"] == 0


stroke3_arrays = st.lists(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50), st.integers(0, 1)), min_size=1, max_size=12),
    min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(stroke3_arrays)
def test_read_stroke3_batch_matches_point_by_point(drawings):
    arrays = [np.array(d, dtype=np.int16) for d in drawings]
    out = F.read_stroke3(arrays, label="q", source="s")
    assert len(out) == len(arrays)
    for i, (a, s) in enumerate(zip(arrays, out)):
        ref = naive_stroke3(a)
        assert s.key == f"s:{i}" and s.label == "q"
        assert len(ref) == s.n_strokes
        for r, x in zip(ref, s.strokes):
            np.testing.assert_array_equal(r, x)


def test_read_stroke3_float_input():
    a = np.array([[0.5, 0.25, 0], [0.5, 0.25, 1], [1.0, 1.0, 0]])
    (s,) = F.read_stroke3([a])
    np.testing.assert_allclose(s.strokes[0][:, :2], [[0.5, -0.25], [1.0, -0.5]])
    np.testing.assert_allclose(s.strokes[1][:, :2], [[2.0, -1.5]])


def stroke3_bad_list():
    good0 = np.array([[1, 1, 0], [2, 2, 1]], dtype=np.int16)
    good2 = np.array([[5, 5, 1]], dtype=np.int16)
    good4 = np.array([[3, 0, 0], [0, 3, 1], [1, 1, 0]], dtype=np.int16)
    bad = {
        1: np.zeros((0, 3)),  # empty drawing
        3: np.array([[1.0, np.nan, 0.0]]),  # NaN
        5: np.zeros((4, 2)),  # wrong shape
        6: np.array([[np.inf, 0.0, 1.0]]),  # infinite
    }
    items = [good0, bad[1], good2, bad[3], good4, bad[5], bad[6]]
    return items, [0, 2, 4]


def test_read_stroke3_strict_names_index():
    items, _ = stroke3_bad_list()
    with pytest.raises(ValueError, match=r"myfile, index 1: empty drawing"):
        F.read_stroke3(items, where="myfile")
    with pytest.raises(ValueError, match=r"index 1: non-finite value nan in dy at row 0"):
        F.read_stroke3(items[2:4])  # index is the position in the list given


def test_read_stroke3_skip_warns_once_and_keeps_good_unchanged():
    items, good = stroke3_bad_list()
    with pytest.warns(MalformedRecordWarning) as rec:
        out = F.read_stroke3(items, source="s", errors="skip")
    msgs = [str(w.message) for w in rec if issubclass(w.category, MalformedRecordWarning)]
    assert len(msgs) == 1 and "skipped 4 malformed record(s)" in msgs[0] and "index 1" in msgs[0]
    assert [s.key for s in out] == [f"s:{i}" for i in good]
    for i, s in zip(good, out):
        assert same_sketch(s, F.stroke3_to_sketch(items[i], key=f"s:{i}"))


def test_errors_argument_checked():
    with pytest.raises(ValueError, match="errors must be one of"):
        F.read_stroke3([np.ones((1, 3))], errors="ignore")


def test_stroke3_to_sketch_rejects_bad_array():
    with pytest.raises(ValueError, match="shape"):
        F.stroke3_to_sketch(np.zeros((3, 4)))


# ---------------------------------------------------------------- npz
def write_npz(path, **splits):
    arrs = {}
    for k, v in splits.items():
        a = np.empty(len(v), dtype=object)
        for i, x in enumerate(v):
            a[i] = x
        arrs[k] = a
    np.savez(path, **arrs)


def test_read_sketchrnn_npz_splits_and_keys(tmp_path):
    d = [np.array([[1, 2, 0], [3, 4, 1]], dtype=np.int16), np.array([[5, 5, 1]], dtype=np.int16)]
    p = tmp_path / "toy.npz"
    write_npz(p, train=d, valid=d[:1], test=d[1:])
    tr = F.read_sketchrnn_npz(p, "train", label="toy")
    assert [s.key for s in tr] == ["toy:train:0", "toy:train:1"] and tr[0].label == "toy"
    np.testing.assert_array_equal(tr[0].strokes[0], [[1, -2, 0], [4, -6, 0]])
    assert len(F.read_sketchrnn_npz(p, "valid")) == 1
    assert F.read_sketchrnn_npz(p, "test", source="x")[0].key == "x:test:0"
    with pytest.raises(ValueError, match=r"no split 'bogus'"):
        F.read_sketchrnn_npz(p, "bogus")


def test_read_sketchrnn_npz_bad_record_names_file_split_index(tmp_path):
    p = tmp_path / "bad.npz"
    write_npz(p, train=[np.array([[1, 1, 1]], dtype=np.int16), np.zeros((2, 5), dtype=np.int16)])
    with pytest.raises(ValueError) as e:
        F.read_sketchrnn_npz(p, "train")
    assert str(p) in str(e.value) and "[train]" in str(e.value) and "index 1" in str(e.value)
    with pytest.warns(MalformedRecordWarning, match="skipped 1"):
        out = F.read_sketchrnn_npz(p, "train", errors="skip")
    assert len(out) == 1 and out[0].key == "bad:train:0"


# ---------------------------------------------------------------- Quick, Draw! ndjson
def qd_line(word="cat", key_id="1", drawing=None):
    return json.dumps({"word": word, "countrycode": "GB", "recognized": True, "key_id": key_id,
                       "drawing": drawing})


RAW1 = [[[10, 20, 30], [5, 6, 7], [0, 16, 40]], [[1], [2], [90]]]
RAW2 = [[[0, 4], [0, 3], [0, 10]]]


def test_quickdraw_raw(tmp_path):
    p = tmp_path / "cat.ndjson"
    p.write_text(qd_line(drawing=RAW1, key_id="111") + "\n" + qd_line(drawing=RAW2, key_id="222") + "\n")
    out = F.read_quickdraw_ndjson(p)
    assert [s.key for s in out] == ["cat:1", "cat:2"]
    s = out[0]
    assert s.timed and s.label == "cat" and s.n_strokes == 2
    assert s.meta["key_id"] == "111" and s.meta["countrycode"] == "GB" and s.meta["line"] == 1
    np.testing.assert_array_equal(s.strokes[0], [[10, -5, 0], [20, -6, 16], [30, -7, 40]])  # y flipped, t kept
    np.testing.assert_array_equal(s.strokes[1], [[1, -2, 90]])  # single point kept
    assert F.read_quickdraw_ndjson(p, source="quickdraw-raw/cat")[1].key == "quickdraw-raw/cat:2"


def test_quickdraw_simplified_has_no_time_and_y_is_not_time():
    """Regression: the reference code read stroke[-1] as time, which is y in simplified files."""
    line = qd_line(drawing=[[[0, 100, 200], [255, 128, 0]]])
    (s,) = F.read_quickdraw_ndjson([line])
    assert not s.timed
    np.testing.assert_array_equal(s.strokes[0][:, 2], 0.0)
    np.testing.assert_array_equal(s.strokes[0][:, 1], [-255, -128, 0])
    assert s.key == "quickdraw:1"


def test_quickdraw_accepts_file_objects_bytes_and_blank_lines():
    lines = [b"", qd_line(drawing=RAW2).encode(), b"   ", qd_line(drawing=RAW1).encode()]
    out = F.read_quickdraw_ndjson(lines)
    assert [s.meta["line"] for s in out] == [2, 4]
    f = io.StringIO("\n".join(x.decode() for x in lines))
    assert [s.key for s in F.read_quickdraw_ndjson(f, source="f")] == ["f:2", "f:4"]


def test_quickdraw_empty_strokes_dropped():
    (s,) = F.read_quickdraw_ndjson([qd_line(drawing=[[[], [], []], RAW2[0], [[], [], []]])])
    assert s.n_strokes == 1


BAD_LINES = {
    2: ('{"word": "cat", "drawing": [[[1, 2], [3, 4], [5, 6]]', "bad JSON"),
    4: (qd_line(drawing=[[[1, 2, 3], [1, 2], [0, 1, 2]]]), "different lengths"),
    5: (qd_line(drawing=[[[1, 2], [1, 2], [0, 1]], [[1, 2], [3, 4]]]), "mixes timed"),
    6: ('{"word": "cat", "drawing": [[[1, NaN], [1, 2], [0, 1]]]}', "non-finite"),
    7: ('{"word": "cat", "drawing": [[[1, 2], [Infinity, 2], [0, 1]]]}', "non-finite"),
    8: (qd_line(drawing=[]), "empty drawing"),
    9: (qd_line(drawing=[[[], [], []]]), "empty drawing"),
    10: ('{"word": "cat"}', "'drawing'"),
    11: (qd_line(drawing=[[[1, "a"], [1, 2], [0, 1]]]), "non-numeric"),
    12: (qd_line(drawing=[[[1, 2]]]), "expected"),
    13: ("[1, 2, 3]", "'drawing'"),
}
GOOD_LINES = {1: RAW1, 3: RAW2, 14: RAW1}


def write_mixed(tmp_path):
    lines = {**{k: v[0] for k, v in BAD_LINES.items()}, **{k: qd_line(drawing=d) for k, d in GOOD_LINES.items()}}
    p = tmp_path / "mixed.ndjson"
    p.write_text("\n".join(lines[i] for i in sorted(lines)) + "\n")
    return p


@pytest.mark.parametrize("line_no", sorted(BAD_LINES))
def test_quickdraw_strict_names_file_and_line(tmp_path, line_no):
    bad, msg = BAD_LINES[line_no]
    p = tmp_path / "one.ndjson"
    p.write_text(qd_line(drawing=RAW2) + "\n" + bad + "\n")
    with pytest.raises(ValueError) as e:
        F.read_quickdraw_ndjson(p)
    assert f"{p}, line 2: " in str(e.value) and msg in str(e.value)


def test_quickdraw_strict_stops_at_first_bad_line(tmp_path):
    p = write_mixed(tmp_path)
    with pytest.raises(ValueError, match=r"mixed.ndjson, line 2: bad JSON"):
        F.read_quickdraw_ndjson(p)


def test_quickdraw_skip_mode_one_warning_and_good_records_unchanged(tmp_path):
    p = write_mixed(tmp_path)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = F.read_quickdraw_ndjson(p, errors="skip")
    ours = [w for w in rec if issubclass(w.category, MalformedRecordWarning)]
    assert len(ours) == 1
    msg = str(ours[0].message)
    assert f"skipped {len(BAD_LINES)} malformed record(s)" in msg and "line 2: bad JSON" in msg and str(p) in msg
    assert [s.meta["line"] for s in out] == sorted(GOOD_LINES)
    for s in out:  # each good record is exactly what a strict read of it alone gives
        (ref,) = F.read_quickdraw_ndjson([qd_line(drawing=GOOD_LINES[s.meta["line"]])], source="mixed")
        assert strokes_equal(s, ref) and s.label == ref.label and s.timed == ref.timed
        assert s.key == f"mixed:{s.meta['line']}"


# ---------------------------------------------------------------- DiDi
def didi_line(key="00ab", label="lab1", split="train", drawing=None):
    rec = {"key": key, "label_id": label, "split": split, "writing_guide": {"width": 100, "height": 50},
           "drawing": drawing if drawing is not None else RAW1}
    return json.dumps(rec)


def test_didi(tmp_path):
    p = tmp_path / "diagrams.ndjson"
    p.write_text(didi_line() + "\n" + didi_line(key="ff01", label="lab2", split="test", drawing=RAW2) + "\n")
    a, b = F.read_didi_ndjson(p)
    assert a.key == "diagrams:00ab" and a.label == "lab1" and a.timed
    assert a.meta["split"] == "train" and a.meta["writing_guide"] == {"width": 100, "height": 50}
    assert b.meta["split"] == "test" and b.meta["didi_key"] == "ff01"
    np.testing.assert_array_equal(a.strokes[0], [[10, -5, 0], [20, -6, 16], [30, -7, 40]])
    # no key, no label, untimed rows
    (c,) = F.read_didi_ndjson([json.dumps({"drawing": [[[0, 1], [0, 1]]]})], source="d")
    assert c.key == "d:1" and c.label is None and not c.timed


def test_didi_bad_records(tmp_path):
    p = tmp_path / "d.ndjson"
    p.write_text(didi_line() + "\n" + didi_line(drawing=[[[1, 2], [1], [1, 2]]]) + "\n" + didi_line(key="x") + "\n")
    with pytest.raises(ValueError, match=r"d.ndjson, line 2: stroke 0: x/y/t arrays have different lengths"):
        F.read_didi_ndjson(p)
    with pytest.warns(MalformedRecordWarning, match="skipped 1"):
        out = F.read_didi_ndjson(p, errors="skip")
    assert [s.key for s in out] == ["d:00ab", "d:x"]


# ---------------------------------------------------------------- Omniglot strokes
def omni_text(*strokes):
    lines = ["START"]
    for s in strokes:
        lines += [f"{x},{y},{t}" for x, y, t in s]
        lines.append("BREAK")
    return "\n".join(lines) + "\n"


S1 = [(18.5, -43.5, 0), (19.7, -41.9, 56), (19.7, -41.1, 57)]
S2 = [(30.0, -20.0, 300)]


def make_omniglot_zip(path, members, top="strokes_background_small1"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/", "")
        z.writestr(f"{top}/.DS_Store", b"\x00\x01junk")
        z.writestr("__MACOSX/", "")
        z.writestr(f"__MACOSX/{top}/._.DS_Store", b"\x00\x05junk")
        z.writestr(f"__MACOSX/{top}/Greek/character01/._0394_01.txt", b"\x00\x05\x16\x07junk")
        z.writestr(f"{top}/README.txt", "not a drawing")
        for name, text in members.items():
            z.writestr(f"{top}/{name}", text)


def test_omniglot_zip(tmp_path):
    p = tmp_path / "strokes.zip"
    make_omniglot_zip(p, {
        "Greek/character01/0394_01.txt": omni_text(S1, S2),
        "Greek/character01/0394_02.txt": omni_text(S2, [], S1),  # empty stroke (START..BREAK BREAK) dropped
        "Latin/character12/0694_18.txt": "START\n" + "\n".join(f"{x},{y},{t}" for x, y, t in S1) + "\n",  # no BREAK
    })
    out = F.read_omniglot_strokes_zip(p)
    assert [s.key for s in out] == ["omniglot-strokes:Greek/character01/0394_01.txt",
                                    "omniglot-strokes:Greek/character01/0394_02.txt",
                                    "omniglot-strokes:Latin/character12/0694_18.txt"]
    a, b, c = out
    assert a.label == "Greek/character01" and a.timed and c.label == "Latin/character12"
    np.testing.assert_array_equal(a.strokes[0], np.array(S1))  # already y-up: not flipped
    np.testing.assert_array_equal(a.strokes[1], np.array(S2))
    assert b.n_strokes == 2 and c.n_strokes == 1
    assert a.meta == {"archive": "strokes.zip", "member": "strokes_background_small1/Greek/character01/0394_01.txt",
                      "drawer": "01"}


@pytest.mark.parametrize("text, msg", [
    (omni_text(S1).replace("19.7,-41.9,56", "19.7,abc,56"), "line 3: non-numeric"),
    (omni_text(S1).replace("19.7,-41.9,56", "19.7,-41.9"), "line 3: expected 'x,y,t'"),
    (omni_text(S1).replace("19.7,-41.9,56", "19.7,nan,56"), "line 3: non-finite"),
    (omni_text(S1).replace("19.7,-41.9,56", "nan,nan,nan"), "line 3: non-finite"),
    (omni_text(S1).replace("19.7,-41.9,56", "inf,1,56"), "line 3: non-finite"),
    (omni_text(S1).replace("START", "BEGIN"), "line 1: expected START"),
    ("START\nBREAK\nBREAK\n", "empty drawing"),
    ("", "empty file"),
])
def test_omniglot_bad_files_strict_and_skip(tmp_path, text, msg):
    p = tmp_path / "s.zip"
    make_omniglot_zip(p, {"Greek/character01/0394_01.txt": omni_text(S1), "Greek/character02/0395_01.txt": text,
                          "Greek/character03/0396_01.txt": omni_text(S2)})
    with pytest.raises(ValueError) as e:
        F.read_omniglot_strokes_zip(p)
    assert str(p) in str(e.value) and "Greek/character02/0395_01.txt" in str(e.value) and msg in str(e.value)
    with pytest.warns(MalformedRecordWarning, match="skipped 1"):
        out = F.read_omniglot_strokes_zip(p, errors="skip")
    assert [s.label for s in out] == ["Greek/character01", "Greek/character03"]
    np.testing.assert_array_equal(out[1].strokes[0], np.array(S2))


# ---------------------------------------------------------------- VectorMNIST
def test_vectormnist_pickles_and_json(tmp_path):
    root = tmp_path / "vm"
    (root / "3").mkdir(parents=True)
    (root / "7").mkdir()
    with open(root / "3" / "a.pkl", "wb") as f:
        pickle.dump([np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[3.0, 3.0]])], f)
    (root / "7" / "b.json").write_text(json.dumps([[[0, 1, 2], [5, 6, 7]]]))
    (root / "7" / "c.json").write_text(json.dumps({"label": "seven", "strokes": [[[0, 1], [0, 1]]]}))
    out = F.read_vectormnist(root)
    assert [s.key for s in out] == ["vectormnist:3/a.pkl", "vectormnist:7/b.json", "vectormnist:7/c.json"]
    assert [s.label for s in out] == ["3", "7", "seven"] and not any(s.timed for s in out)
    np.testing.assert_array_equal(out[0].strokes[0], [[0, 0, 0], [1, 2, 0]])
    np.testing.assert_array_equal(out[1].strokes[0], [[0, 5, 0], [1, 6, 0], [2, 7, 0]])
    assert F.read_vectormnist(root, flip_y=True)[0].strokes[0][1, 1] == -2


def test_vectormnist_bad_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="ayandas.me/sketchode"):
        F.read_vectormnist(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ayandas.me/sketchode"):
        F.read_vectormnist(tmp_path / "empty")
    root = tmp_path / "vm"
    (root / "1").mkdir(parents=True)
    (root / "1" / "a.json").write_text(json.dumps([[[0, 1], [0, 1]]]))
    (root / "1" / "b.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"1/b.json: cannot read"):
        F.read_vectormnist(root)
    with pytest.warns(MalformedRecordWarning, match="skipped 1"):
        assert len(F.read_vectormnist(root, errors="skip")) == 1
