"""No code from data files, no lost drawings: unsafe pickles, damaged archives, checksums, text quirks.

Each test reproduces a defect of the data readers (sketchode.data.formats) and loaders
(sketchode.data.datasets): a planted pickle that ran on load, present files never checked
against their known sha256, damaged zips reported as a bare ``BadZipFile``, a byte-order
mark that lost the first record, a non-UTF-8 byte that changed a label silently, empty
files that read as nothing without a word.
"""

import hashlib
import json
import os
import pickle
import shlex
import zipfile

import numpy as np
import pooch
import pytest

from sketchode.data import datasets as D
from sketchode.data import formats as F
from sketchode.data.formats import CorruptFileError, EmptyFileWarning, MalformedRecordWarning, UnsafePickleError


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.delenv("SKETCHODE_DATA", raising=False)
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")

    def refuse(*a, **k):
        raise AssertionError("pooch.retrieve must not be called")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    D.clear_cache()
    D._VERIFIED.clear()
    yield
    D.clear_cache()
    D._VERIFIED.clear()


def drawings(n=3):
    a = np.empty(n, dtype=object)
    for i in range(n):
        a[i] = np.array([[i + 1, 2, 0], [3, 4, 1], [1234, -5678, 1]], dtype=np.int16)
    return a


class Planted:
    """What an attacker pickles: unpickling calls ``os.system`` (here: touch a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


# ---------------------------------------------------------------- 1. npz pickles run no code
def test_npz_member_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    a = drawings(3)
    a[1] = Planted(marker)
    p = tmp_path / "quickdraw" / "cat.npz"
    p.parent.mkdir()
    np.savez(p, train=a, valid=drawings(1), test=drawings(1))
    with pytest.raises(UnsafePickleError) as e:
        F.read_sketchrnn_npz(p, "train")
    msg = str(e.value)
    assert str(p) in msg and "train.npy" in msg and "system" in msg and "Nothing was run" in msg
    assert not marker.exists()
    with pytest.raises(UnsafePickleError, match=r"cat\.npz \[member train\.npy\]"):
        D.load("quickdraw/cat", root=tmp_path)  # no known sha256 for quickdraw/<cat>.npz: the reader must refuse
    assert not marker.exists()
    assert len(F.read_sketchrnn_npz(p, "valid")) == 1  # the clean members of the same file still read
    np.load(p, allow_pickle=True)["train"]  # what the old reader did: the pickle runs
    assert marker.exists()


def test_plain_pickle_named_npz_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    p = tmp_path / "sheep.npz"
    p.write_bytes(pickle.dumps({"train": Planted(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"sheep\.npz: is a Python pickle, not npz archive"):
        F.read_sketchrnn_npz(p, "train")
    assert not marker.exists()


def test_load_npz_array_reads_plain_and_object_arrays_like_numpy(tmp_path):
    p = tmp_path / "mix.npz"
    obj = drawings(4)
    np.savez(p, obj=obj, plain=np.arange(12.0).reshape(3, 4), fortran=np.asfortranarray(np.ones((2, 3), np.int16)))
    ref = np.load(p, allow_pickle=True)
    for k in ("plain", "fortran"):
        got = F.load_npz_array(p, k)
        assert got.dtype == ref[k].dtype and np.array_equal(got, ref[k])
    got = F.load_npz_array(p, "obj")
    assert got.dtype == object and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(got, ref["obj"]))
    with pytest.raises(KeyError, match="no array 'nope'"):
        F.load_npz_array(p, "nope")


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["sketchrnn/aaron_sheep.npz", "sketchrnn/omniglot.npz"])
def test_real_sketchrnn_files_load_as_numpy_loads_them(data_root, rel):
    p = data_root / rel
    with np.load(p, allow_pickle=True, encoding="latin1") as z:
        ref = {k: z[k] for k in z.files}
    assert sorted(ref) == ["test", "train", "valid"]
    for split, want in ref.items():
        got = F.load_npz_array(p, split)
        assert got.dtype == want.dtype == object and got.shape == want.shape
        assert all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y) for x, y in zip(got, want))
    sk = F.read_sketchrnn_npz(p, "valid", source="s")
    old = F.read_stroke3(ref["valid"], source="s", key_prefix="s:valid")
    assert [s.key for s in sk] == [s.key for s in old]
    assert all(len(a.strokes) == len(b.strokes) and all(np.array_equal(x, y) for x, y in zip(a.strokes, b.strokes))
               for a, b in zip(sk, old))


# ---------------------------------------------------------------- 3. damaged archives
def corrupt_member(path, member):
    """Flip one byte in the middle of ``member``'s stored data (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    raw[start + info.compress_size // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_truncated_npz_names_the_file(tmp_path):
    p = tmp_path / "aaron_sheep.npz"
    np.savez(p, train=drawings(50), valid=drawings(2), test=drawings(2))
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CorruptFileError) as e:
        F.read_sketchrnn_npz(p, "train")
    assert str(p) in str(e.value) and "truncated or corrupt" in str(e.value) and "download it again" in str(e.value)


def test_npz_member_with_bad_crc_names_file_and_member(tmp_path):
    p = tmp_path / "cat.npz"
    np.savez(p, train=drawings(50), valid=drawings(2), test=drawings(2))
    raw = bytearray(p.read_bytes())
    i = raw.find(np.array([1234, -5678], dtype=np.int16).tobytes())  # inside an int16 payload of the pickle:
    raw[i] ^= 0x01  # still a valid pickle, but no longer the bytes the CRC was computed on
    p.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError) as e:
        F.read_sketchrnn_npz(p, "train")
    msg = str(e.value)
    assert str(p) in msg and "train.npy" in msg and "CRC" in msg and "download it again" in msg
    assert len(F.read_sketchrnn_npz(p, "valid")) == 2  # the good members are still readable


def omni_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, text in members.items():
            z.writestr(f"strokes_background_small1/{name}", text)


OMNI = {f"Greek/character0{i}/039{i}_01.txt": "START\n" + "\n".join(f"{j}.5,{-j}.25,{10 * j}" for j in range(40))
        + "\nBREAK\n" for i in range(1, 4)}


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_omniglot_bad_member_named_and_skipped_keeping_the_good_ones(tmp_path, compression):
    p = tmp_path / "strokes_background_small1.zip"
    omni_zip(p, OMNI, compression)
    bad = "strokes_background_small1/Greek/character02/0392_01.txt"
    corrupt_member(p, bad)
    with pytest.raises(CorruptFileError) as e:
        F.read_omniglot_strokes_zip(p)
    msg = str(e.value)
    assert str(p) in msg and bad in msg and "download it again" in msg
    with pytest.warns(MalformedRecordWarning, match=r"skipped 1 .*character02/0392_01.txt.*corrupt"):
        out = F.read_omniglot_strokes_zip(p, errors="skip")
    assert [s.label for s in out] == ["Greek/character01", "Greek/character03"]


def test_truncated_zip_names_the_archive(tmp_path):
    p = tmp_path / "strokes_background_small2.zip"
    omni_zip(p, OMNI)
    p.write_bytes(p.read_bytes()[:-40])  # the central directory is gone
    for errors in ("raise", "skip"):
        with pytest.raises(CorruptFileError, match=r"strokes_background_small2\.zip: not a valid zip archive.*"
                                                   r"truncated or corrupt.*download it again"):
            F.read_omniglot_strokes_zip(p, errors=errors)


# ---------------------------------------------------------------- 6. BOM, non-UTF-8, empty files
def ink_line(word, key):
    return json.dumps({"word": word, "key_id": key, "key": key, "label_id": word,
                       "drawing": [[[0, 1, 2], [0, 1, 0], [0, 5, 9]]]}, ensure_ascii=False)


@pytest.mark.parametrize("reader", [F.read_quickdraw_ndjson, F.read_didi_ndjson])
def test_bom_keeps_the_first_record(tmp_path, reader):
    p = tmp_path / "face.ndjson"
    p.write_bytes(b"\xef\xbb\xbf" + (ink_line("face", "a") + "\n" + ink_line("face", "b") + "\n").encode())
    out = reader(p)
    assert len(out) == 2 and out[0].label == "face" and out[0].meta["line"] == 1
    with open(p, encoding="utf-8") as f:  # a text-mode file keeps the BOM as U+FEFF
        assert len(reader(f)) == 2


@pytest.mark.parametrize("reader", [F.read_quickdraw_ndjson, F.read_didi_ndjson])
def test_non_utf8_byte_is_a_malformed_record_not_a_changed_label(tmp_path, reader):
    p = tmp_path / "cafe.ndjson"
    lines = [ink_line("tea", "a").encode(), ink_line("caf\u00e9", "b").encode("latin-1"), ink_line("tea", "c").encode()]
    p.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ValueError, match=r"cafe\.ndjson, line 2: not UTF-8 text \(byte 0xe9 at column \d+\)"):
        reader(p)
    with pytest.warns(MalformedRecordWarning, match="skipped 1"):
        out = reader(p, errors="skip")
    assert [s.label for s in out] == ["tea", "tea"] and [s.meta["line"] for s in out] == [1, 3]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("reader", [F.read_quickdraw_ndjson, F.read_didi_ndjson, F.read_pendigits,
                                    F.read_unipen_digits])
def test_empty_file_warns_naming_it(tmp_path, reader, content):
    p = tmp_path / "nothing.ndjson"
    p.write_bytes(content)
    with pytest.warns(EmptyFileWarning, match=r"nothing\.ndjson: no records"):
        assert reader(p) == []


def test_empty_archive_and_split_warn(tmp_path):
    z = tmp_path / "strokes.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("strokes_background_small1/README.txt", "no drawings")
    with pytest.warns(EmptyFileWarning, match=r"strokes\.zip: no drawing files"):
        assert F.read_omniglot_strokes_zip(z) == []
    n = tmp_path / "x.npz"
    np.savez(n, train=np.empty(0, dtype=object), valid=drawings(1), test=drawings(1))
    with pytest.warns(EmptyFileWarning, match=r"x\.npz \[train\]: the split holds no drawings"):
        assert F.read_sketchrnn_npz(n, "train") == []


def test_good_file_does_not_warn(tmp_path, recwarn):
    p = tmp_path / "face.ndjson"
    p.write_text(ink_line("face", "a") + "\n")
    assert len(F.read_quickdraw_ndjson(p)) == 1
    assert not [w for w in recwarn if issubclass(w.category, (EmptyFileWarning, MalformedRecordWarning))]


# ---------------------------------------------------------------- 2. present files are verified
def write_sheep(root, n=3):
    p = root / "sketchrnn" / "aaron_sheep.npz"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, train=drawings(n), valid=drawings(1), test=drawings(1))
    return p


def test_present_file_with_wrong_sha256_is_refused_and_kept(tmp_path):
    p = write_sheep(tmp_path)
    got = hashlib.sha256(p.read_bytes()).hexdigest()
    want = D.sha256_for("sketchrnn/aaron_sheep.npz")
    with pytest.raises(ValueError) as e:
        D.load("sheep", root=tmp_path)
    msg = str(e.value)
    assert str(p) in msg and want in msg and got in msg
    assert "Delete it and download it again" in msg and "python -m sketchode fetch sheep" in msg
    assert p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == got  # nothing deleted or changed
    with pytest.raises(ValueError, match="Delete it"):
        D.fetch("sketchrnn/aaron_sheep.npz", root=tmp_path, download=True)  # `sketchode fetch` says the same
    assert p.is_file()


def test_verification_is_cached_on_path_size_and_mtime(tmp_path, monkeypatch):
    p = write_sheep(tmp_path)
    monkeypatch.setattr(D, "sha256_for", lambda rel: hashlib.sha256(p.read_bytes()).hexdigest()
                        if rel == "sketchrnn/aaron_sheep.npz" else None)
    hashed = []
    real = D._sha256_file
    monkeypatch.setattr(D, "_sha256_file", lambda path: hashed.append(path) or real(path))
    for _ in range(3):
        assert len(D.load("sheep", root=tmp_path)) == 3
        D.clear_cache()  # parsing again does not hash again
    assert len(hashed) == 1
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, new mtime: hashed again
    assert len(D.load("sheep", root=tmp_path)) == 3 and len(hashed) == 2
    write_sheep(tmp_path, n=4)  # other bytes: hashed again, and now refused
    monkeypatch.setattr(D, "sha256_for", lambda rel: "0" * 64 if rel == "sketchrnn/aaron_sheep.npz" else None)
    with pytest.raises(ValueError, match="0{64}"):
        D.load("sheep", root=tmp_path)
    assert len(hashed) == 3


def test_file_without_known_sha256_is_not_hashed(tmp_path, monkeypatch):
    p = tmp_path / "quickdraw" / "cat.npz"
    p.parent.mkdir()
    np.savez(p, train=drawings(2), valid=drawings(1), test=drawings(1))
    monkeypatch.setattr(D, "_sha256_file", lambda path: (_ for _ in ()).throw(AssertionError("hashed")))
    assert len(D.load("quickdraw/cat", root=tmp_path)) == 2


# ---------------------------------------------------------------- 6. did you mean
@pytest.mark.parametrize("name, hint", [("sheeep", "'sheep'"), ("omniglot-stroke", "'omniglot-strokes'"),
                                        ("pendigit", "'pendigits'"), ("quickdraw-rw/face", "'quickdraw-raw/face'")])
def test_misspelt_dataset_name_suggests(tmp_path, name, hint):
    with pytest.raises(ValueError, match=rf"unknown dataset '{name}'\. Did you mean {hint}"):
        D.load(name, root=tmp_path)
