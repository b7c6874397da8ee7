"""sketchode.data.datasets: file lookup, downloads (mocked), splits, caching."""

import hashlib
import json
import sys
import types
import zipfile

import numpy as np
import pooch
import pytest

from sketchode.data import datasets as D
from sketchode.data.formats import MalformedRecordWarning
from sketchode.data.sketch import Sketch


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.delenv("SKETCHODE_DATA", raising=False)
    D.clear_cache()
    D._VERIFIED.clear()
    yield
    D.clear_cache()
    D._VERIFIED.clear()


#: sha256 of the small stand-ins the tests write at the paths of published files (relpath -> digest)
STAND_INS = {}


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    """Present files are checked against the registry's sha256: for the length of a test the registry
    knows the sha256 of the stand-ins it wrote (:func:`stand_in`), so they pass that check as the
    published files would (and a stand-in changed without :func:`stand_in` fails it)."""
    STAND_INS.clear()
    real = D.sha256_for
    monkeypatch.setattr(D, "sha256_for", lambda rel: STAND_INS.get(rel) or real(rel))
    yield
    STAND_INS.clear()


def stand_in(path, rel=None):
    """Record ``path`` (at ``rel``, default its last folder and name) as the published file."""
    rel = rel or f"{path.parent.name}/{path.name}"
    STAND_INS[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return path


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("pooch.retrieve must not be called")

    monkeypatch.setattr(pooch, "retrieve", refuse)


def qd_line(i, word="face"):
    return json.dumps({"word": word, "key_id": str(1000 + i),
                       "drawing": [[[i, i + 1, i + 3], [0, 2, 1], [0, 10, 25]], [[5], [5], [40]]]})


def write_qd(root, cat="face", n=40):
    p = root / "quickdraw-raw" / f"{cat}.ndjson"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(qd_line(i, cat) for i in range(n)) + "\n")
    return stand_in(p)


def write_npz(path, **splits):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrs = {}
    for k, n in splits.items():
        a = np.empty(n, dtype=object)
        for i in range(n):
            a[i] = np.array([[i + 1, 1, 0], [1, i, 1], [2, 2, 1]], dtype=np.int16)
        arrs[k] = a
    np.savez(path, **arrs)
    stand_in(path)


# ---------------------------------------------------------------- splits
def test_split_of_is_sha256_of_key():
    for key in ["a", "digits:000123", "quickdraw-raw/face:7", "omniglot-strokes:Greek/character01/0394_01.txt"]:
        frac = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        assert D.split_of(key) == ("train" if frac < 0.8 else "test")
        assert D.split_of(key, 0.0) == "test" and D.split_of(key, 1.0) == "train"


def test_split_of_proportions_and_errors():
    sides = [D.split_of(f"k:{i}") for i in range(20000)]
    assert abs(sides.count("train") / len(sides) - 0.8) < 0.015
    with pytest.raises(ValueError):
        D.split_of(None)
    with pytest.raises(ValueError):
        D.split_of("x", frac=1.5)


def test_split_no_leak_and_augmented_copies_follow_their_key():
    sk = [Sketch([np.array([[0.0, 0.0, 0.0], [1.0, float(i), 1.0]])], key=f"s:{i}") for i in range(200)]
    tr, te = D.split(sk, "train"), D.split(sk, "test")
    assert not {s.key for s in tr} & {s.key for s in te}
    assert len(tr) + len(te) == 200 and len(D.split(sk, "all")) == 200
    jittered = [s.with_points(s.points + 0.01) for s in sk]  # same key, different points
    assert [s.key for s in D.split(jittered, "train")] == [s.key for s in tr]
    with pytest.raises(ValueError):
        D.split(sk, "valid")


# ---------------------------------------------------------------- local files
def test_load_quickdraw_raw_split_all_disjoint(tmp_path, no_network):
    write_qd(tmp_path, n=40)
    allv = D.load("quickdraw-raw/face", split="all", root=tmp_path)
    tr = D.load("quickdraw-raw/face", root=tmp_path)
    te = D.load("quickdraw-raw/face", split="test", root=tmp_path)
    assert len(allv) == 40 and len(tr) + len(te) == 40
    assert not {s.key for s in tr} & {s.key for s in te}
    assert {s.key for s in tr} | {s.key for s in te} == {s.key for s in allv}
    assert all(s.key.startswith("quickdraw-raw/face:") and s.label == "face" and s.timed for s in allv)
    assert all(D.split_of(s.key) == "train" for s in tr)


def test_load_uses_env_root(tmp_path, monkeypatch, no_network):
    write_qd(tmp_path, n=5)
    monkeypatch.setenv("SKETCHODE_DATA", str(tmp_path))
    assert len(D.load("quickdraw-raw/face", "all")) == 5


def test_cache_returns_fresh_lists_and_notices_changed_files(tmp_path, no_network):
    p = write_qd(tmp_path, n=10)
    a = D.load("quickdraw-raw/face", "all", root=tmp_path)
    b = D.load("quickdraw-raw/face", "all", root=tmp_path)
    assert a is not b and a == b  # same (immutable) sketches, new list
    a.clear()
    assert len(D.load("quickdraw-raw/face", "all", root=tmp_path)) == 10
    p.write_text("\n".join(qd_line(i) for i in range(12)) + "\n")  # different size -> re-read
    stand_in(p)
    assert len(D.load("quickdraw-raw/face", "all", root=tmp_path)) == 12


def test_skip_warning_repeats_on_cached_loads(tmp_path, no_network):
    p = write_qd(tmp_path, n=3)
    p.write_text(p.read_text() + "{broken\n")
    stand_in(p)
    with pytest.raises(ValueError, match=r"face.ndjson, line 4: bad JSON"):
        D.load("quickdraw-raw/face", "all", root=tmp_path)
    for _ in range(2):
        with pytest.warns(MalformedRecordWarning, match="skipped 1"):
            assert len(D.load("quickdraw-raw/face", "all", root=tmp_path, errors="skip")) == 3
    with pytest.raises(ValueError, match="errors must be"):
        D.load("quickdraw-raw/face", root=tmp_path, errors="nope")


def test_npz_datasets_use_their_own_splits(tmp_path, no_network):
    write_npz(tmp_path / "sketchrnn" / "aaron_sheep.npz", train=7, valid=2, test=3)
    write_npz(tmp_path / "sketchrnn" / "omniglot.npz", train=4, valid=1, test=1)
    write_npz(tmp_path / "quickdraw" / "cat.npz", train=5, valid=1, test=2)
    sheep = D.load("sheep", root=tmp_path)
    assert len(sheep) == 7 and sheep[0].label == "sheep" and sheep[0].key == "sheep:train:0"
    assert [len(D.load("sheep", s, root=tmp_path)) for s in ("valid", "test", "all")] == [2, 3, 12]
    om = D.load("omniglot", root=tmp_path)
    assert len(om) == 4 and om[0].label is None
    cat = D.load("quickdraw/cat", "test", root=tmp_path)
    assert len(cat) == 2 and cat[0].label == "cat" and cat[0].key == "quickdraw/cat:test:0"
    with pytest.raises(ValueError, match="split must be one of"):
        D.load("sheep", "dev", root=tmp_path)


def test_bad_names_and_splits(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        D.load("mnist", root=tmp_path)
    with pytest.raises(ValueError, match="bad dataset name"):
        D.load("quickdraw-raw/", root=tmp_path)
    with pytest.raises(ValueError, match="bad dataset name"):
        D.load("quickdraw/a/b", root=tmp_path)
    write_qd(tmp_path, n=2)
    with pytest.raises(ValueError, match="split must be one of"):
        D.load("quickdraw-raw/face", "valid", root=tmp_path)


def test_unknown_category_suggests(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="Did you mean 'face'"):
        D.load("quickdraw-raw/facee", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="not a Quick, Draw! category"):
        D.load("quickdraw/not-a-thing", root=tmp_path)


# ---------------------------------------------------------------- downloads (mocked)
@pytest.fixture(autouse=True)
def downloads_on(monkeypatch):
    """These tests mock pooch; the suite turns real downloads off (conftest), so turn them on here."""
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "1")


def test_downloads_off_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: (_ for _ in ()).throw(AssertionError("no download")))
    with pytest.raises(FileNotFoundError, match=r"downloads are off .*python -m sketchode fetch sheep"):
        D.load("sheep", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fetch pendigits$"):
        D.load("pendigits", "test", root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.fixture
def fake_retrieve(monkeypatch):
    calls = []

    def retrieve(url, known_hash=None, fname=None, path=None, progressbar=False, **kw):
        calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": path})
        out = path / fname
        out.parent.mkdir(parents=True, exist_ok=True)
        if fname.endswith(".npz"):
            write_npz(out, train=3, valid=1, test=1)
        else:
            out.write_text(qd_line(0, fname[:-7]) + "\n")
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    return calls


def test_download_sheep_with_known_hash(tmp_path, fake_retrieve):
    out = D.load("sheep", root=tmp_path)
    assert len(out) == 3
    (call,) = fake_retrieve
    assert call["url"] == ("https://raw.githubusercontent.com/hardmaru/sketch-rnn-datasets/master/"
                           "aaron_sheep/aaron_sheep.npz")
    assert call["known_hash"] == "sha256:65f8e51e43587661798ac137a204c9e049e0d11dcd50cba372ae3ca32de8b54c"
    assert call["path"] == tmp_path / "sketchrnn" and call["fname"] == "aaron_sheep.npz"
    D.clear_cache()
    D.load("sheep", root=tmp_path)  # now present: no second download
    assert len(fake_retrieve) == 1


def test_download_quickdraw_npz_without_hash_and_raw_with_quoted_url(tmp_path, fake_retrieve):
    D.load("quickdraw/cat", root=tmp_path)
    assert fake_retrieve[-1]["url"] == "https://storage.googleapis.com/quickdraw_dataset/sketchrnn/cat.npz"
    assert fake_retrieve[-1]["known_hash"] is None
    p = D.fetch("quickdraw-raw/The Eiffel Tower.ndjson", root=tmp_path)
    assert p == tmp_path / "quickdraw-raw" / "The Eiffel Tower.ndjson" and p.is_file()
    assert fake_retrieve[-1]["url"] == ("https://raw.githubusercontent.com/borismus/exupery/master/public/sketches/"
                                        "The%20Eiffel%20Tower.ndjson")
    assert fake_retrieve[-1]["known_hash"] == "sha256:" + D.sha256_for("quickdraw-raw/The Eiffel Tower.ndjson")


def test_download_both_omniglot_archives(tmp_path, monkeypatch):
    urls = []

    def retrieve(url, known_hash=None, fname=None, path=None, progressbar=False):
        urls.append((url, known_hash))
        path.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path / fname, "w") as z:
            z.writestr(f"{fname[:-4]}/Greek/character01/0394_01.txt", "START\n1,2,0\n3,4,5\nBREAK\n")
            z.writestr(f"{fname[:-4]}/Latin/character0{fname[-5]}/0700_01.txt", "START\n1,2,0\nBREAK\n")
        return str(path / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    out = D.load("omniglot-strokes", "all", root=tmp_path)
    assert [u for u, _ in urls] == [
        "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/strokes_background_small1.zip",
        "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/strokes_background_small2.zip"]
    assert all(h.startswith("sha256:") for _, h in urls)
    # Greek/character01/0394_01.txt is in both archives: kept once
    assert sorted(s.key for s in out) == ["omniglot-strokes:Greek/character01/0394_01.txt",
                                          "omniglot-strokes:Latin/character01/0700_01.txt",
                                          "omniglot-strokes:Latin/character02/0700_01.txt"]


def test_failed_download_is_file_not_found_and_leaves_no_folders(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(FileNotFoundError, match=r"aaron_sheep.npz not found and downloading .* failed"):
        D.load("sheep", root=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()

    def bad_hash(*a, **k):
        raise ValueError("SHA256 hash of downloaded file does not match")

    monkeypatch.setattr(pooch, "retrieve", bad_hash)
    with pytest.raises(ValueError, match="does not match"):
        D.fetch("sketchrnn/omniglot.npz", root=tmp_path)


def test_fetch_no_download_and_bad_paths(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="download it from https://"):
        D.fetch("sketchrnn/omniglot.npz", root=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="no public URL"):
        D.fetch("something/else.bin", root=tmp_path)
    with pytest.raises(ValueError):
        D.fetch("../etc/passwd", root=tmp_path)
    (tmp_path / "something").mkdir()
    (tmp_path / "something" / "else.bin").write_bytes(b"x")
    assert D.fetch("something/else.bin", root=tmp_path) == tmp_path / "something" / "else.bin"


# ---------------------------------------------------------------- no URL: didi, vectormnist
def test_didi_missing_names_path_and_source(tmp_path, no_network):
    with pytest.raises(FileNotFoundError) as e:
        D.load("didi", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "didi" / "diagrams_wo_text_20200131.ndjson") in msg
    assert "google-research/google-research/tree/master/didi_dataset" in msg
    assert "storage.googleapis.com/digital_ink_diagram_data" in msg


def test_didi_own_split_and_hash_fallback(tmp_path, no_network):
    p = tmp_path / "didi" / "diagrams_20200131.ndjson"
    p.parent.mkdir()
    recs = [{"key": f"{i:04x}", "label_id": "L", "split": ["train", "valid", "test"][i % 3],
             "drawing": [[[0, 1], [0, 1], [0, 5]]]} for i in range(9)]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert [len(D.load("didi", s, root=tmp_path)) for s in ("train", "valid", "test", "all")] == [3, 3, 3, 9]
    for r in recs:
        del r["split"]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    tr, te = D.load("didi", "train", root=tmp_path), D.load("didi", "test", root=tmp_path)
    assert len(tr) + len(te) == 9 and all(D.split_of(s.key) == "train" for s in tr)
    with pytest.raises(ValueError):
        D.load("didi", "valid", root=tmp_path)


def test_vectormnist_missing_and_present(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="ayandas.me/sketchode"):
        D.load("vectormnist", root=tmp_path)
    for d in "0123456789":
        (tmp_path / "vectormnist" / d).mkdir(parents=True)
        for j in range(3):
            (tmp_path / "vectormnist" / d / f"{j}.json").write_text(json.dumps([[[0, 1, j], [0, 2, 3]]]))
    allv = D.load("vectormnist", "all", root=tmp_path)
    assert len(allv) == 30 and {s.label for s in allv} == set("0123456789")
    assert len(D.load("vectormnist", root=tmp_path)) + len(D.load("vectormnist", "test", root=tmp_path)) == 30


# ---------------------------------------------------------------- synthetic
def test_digits_and_letters_call_synthetic_and_split(monkeypatch):
    calls = []

    def gen(name):
        def f(n_per_class=1000, seed=0):
            calls.append((name, n_per_class, seed))
            return [Sketch([np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])], label=str(i % 10), timed=True,
                           key=f"{name}:{i:06d}") for i in range(50)]
        return f

    fake = types.ModuleType("sketchode.data.synthetic")
    fake.digits, fake.letters = gen("digits"), gen("letters")
    monkeypatch.setitem(sys.modules, "sketchode.data.synthetic", fake)
    tr, te = D.load("digits"), D.load("digits", "test")
    assert len(tr) + len(te) == 50 and not {s.key for s in tr} & {s.key for s in te}
    assert len(D.load("letters", "all")) == 50
    assert calls == [("digits", 1000, 0), ("letters", 1000, 0)]  # cached: generated once each


# ---------------------------------------------------------------- registry
def test_registry_and_available(tmp_path):
    assert D.sha256_for("sketchrnn/omniglot.npz") == "bd5277621a8c577919491dfa729a59a8b5c216cff9e4fda9cef532db29f120c7"
    face = "ed83fe301074e39f6164428d451768f4dda1e0333710e2a4f08049ce288aa59a"
    assert D.sha256_for("quickdraw-raw/face.ndjson") == face
    assert len(D.quickdraw_categories()) == 345 and "smiley face" in D.quickdraw_categories()
    assert D.url_for("didi/diagrams_20200131.ndjson") is None
    names = D.available(root=tmp_path)
    assert {"sheep", "omniglot", "omniglot-strokes", "quickdraw-raw/face", "quickdraw/face"} <= set(names)
    assert "didi" not in names and "vectormnist" not in names
    write_qd(tmp_path, "face", 2)
    local = D.available(root=tmp_path, local=True)
    assert "quickdraw-raw/face" in local and "sheep" not in local and "quickdraw-raw/cat" not in local
    assert D.files_for("omniglot-strokes") == ["omniglot-strokes/strokes_background_small1.zip",
                                               "omniglot-strokes/strokes_background_small2.zip"]


def test_three_way_split_keeps_test_and_carves_valid_from_train():
    """omniglot-strokes' valid split (added for early stopping) comes out of the train side only: the test side is
    the same as the two-way split's, the three parts are disjoint and cover everything, valid is about 8 %."""
    from sketchode.data.sketch import Sketch
    items = [Sketch(np.zeros((3, 3), np.float32), key=f"k{i}") for i in range(4000)]
    parts = {w: D._three_way(items, w, D.OMNIGLOT_VALID) for w in ("train", "valid", "test")}
    keys = {w: {s.key for s in p} for w, p in parts.items()}
    assert keys["test"] == {s.key for s in D.split(items, "test")}
    assert keys["train"] | keys["valid"] == {s.key for s in D.split(items, "train")}
    assert not keys["train"] & keys["valid"]
    assert 0.06 < len(keys["valid"]) / len(items) < 0.10
