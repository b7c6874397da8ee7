"""Named datasets: find (or download) the files, read them, split them (chapter 1).

SketchODE (Das et al., ICLR 2022) is evaluated on VectorMNIST, DiDi and
Quick, Draw! (paper section 5.1); appendix D gives the preprocessing applied
after loading (:func:`sketchode.data.sketch.prepare`).  :func:`load` returns
plain lists of :class:`~sketchode.data.sketch.Sketch`:

==========================  =====================================================  ==================
name                        what (file under the data root)                        splits
==========================  =====================================================  ==================
``digits``, ``letters``     synthetic glyphs, :mod:`sketchode.data.synthetic`      train/test/all
                            (1000 per class, seed 0)
``digits-wide``             the same digits' widened style (``style="wide"``)      train/test/all
``quickdraw-raw/<cat>``     Quick, Draw! raw ndjson with timing                    train/test/all
                            (``quickdraw-raw/<cat>.ndjson``, a small public sample);
                            ``quickdraw-raw/face,fish,flower`` joins categories
``quickdraw/<cat>``         official sketch-rnn npz (``quickdraw/<cat>.npz``)      train/valid/test/all
``sheep``                   Aaron Koblin's sheep (``sketchrnn/aaron_sheep.npz``)   train/valid/test/all
``omniglot``                sketch-rnn Omniglot (``sketchrnn/omniglot.npz``)       train/valid/test/all
``omniglot-strokes``        Omniglot pen strokes with timing (both                 train/valid/test/all
                            ``omniglot-strokes/strokes_background_small{1,2}.zip``);
                            valid is the last tenth of the 80 % train side
``didi``                    DiDi diagrams (``didi/diagrams_wo_text_20200131.ndjson``  the file's own
                            or ``didi/diagrams_20200131.ndjson``; no download)      ``split`` field
``vectormnist``             the authors' VectorMNIST (folder ``vectormnist/``;      train/test/all
                            no download)
``pendigits``               UCI pen-based digits, real handwriting of 44 writers   train/valid/test/all
                            (``pendigits/pendigits.tra`` and ``.tes``, extracted
                            from the UCI zip); 8 points per digit, untimed
``pendigits-orig``          the same digits' full UNIPEN trajectories with pen     train/valid/test/all
                            lifts and 100 ms timing (``pendigits/pendigits-orig.tra``
                            and ``.tes``, decompressed from the same zip by hand)
==========================  =====================================================  ==================

Files are looked up under :func:`sketchode.settings.data_root` (argument, else
``$SKETCHODE_DATA``, else the user cache) at the same relative path as in
their public source.  Every file with a sha256 in ``registry/sha256.txt`` is
checked against it, whether it was just downloaded or already present (a
present file is hashed once per process while its size and modification time
stay the same, :func:`verify`); a mismatch raises :class:`ValueError` saying
to delete the file and download it again (nothing is ever deleted for you).
A missing file with a known public URL is downloaded with
:func:`pooch.retrieve`; a missing one without a URL raises
:class:`FileNotFoundError` saying where to get it.

Splits.  The sketch-rnn npz files and DiDi carry their own train/valid/test
split, which is used as is (``load("sheep")`` is the 7,400 training drawings).
Everything else is split 80/20 by hashing each sketch's ``key``
(:func:`split_of`), so the split never depends on file order, and augmented
copies (which keep their key) always fall on the same side as their source.

Parsed files are cached in memory (keyed on the resolved path, its size and
modification time, the split and ``errors``); every call returns a fresh list
of the same immutable sketches, and warnings from ``errors="skip"`` are
repeated on every call.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import os
import urllib.parse
import warnings
from importlib import resources
from pathlib import Path

from sketchode.settings import data_root, downloads_allowed
from sketchode.data import formats
from sketchode.data.sketch import Sketch

__all__ = [
    "load",
    "fetch",
    "verify",
    "available",
    "split_of",
    "split",
    "subset",
    "url_for",
    "sha256_for",
    "files_for",
    "quickdraw_categories",
    "clear_cache",
    "NAMES",
]

#: Names accepted by :func:`load` (``<cat>`` is a Quick, Draw! category, see :func:`quickdraw_categories`).
NAMES = ("digits", "letters", "digits-wide", "pendigits", "pendigits-orig", "quickdraw-raw/<category>",
         "quickdraw/<category>", "sheep", "omniglot", "omniglot-strokes", "didi", "vectormnist")

QUICKDRAW_RAW_URL = "https://raw.githubusercontent.com/borismus/exupery/master/public/sketches/{}.ndjson"
QUICKDRAW_NPZ_URL = "https://storage.googleapis.com/quickdraw_dataset/sketchrnn/{}.npz"
_SKETCHRNN = "https://raw.githubusercontent.com/hardmaru/sketch-rnn-datasets/master/"
_OMNIGLOT = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
_FIXED_URLS = {
    "sketchrnn/aaron_sheep.npz": _SKETCHRNN + "aaron_sheep/aaron_sheep.npz",
    "sketchrnn/omniglot.npz": _SKETCHRNN + "omniglot/omniglot.npz",
    "omniglot-strokes/strokes_background_small1.zip": _OMNIGLOT + "strokes_background_small1.zip",
    "omniglot-strokes/strokes_background_small2.zip": _OMNIGLOT + "strokes_background_small2.zip",
}
PENDIGITS_FILES = ("pendigits/pendigits.tra", "pendigits/pendigits.tes")
PENDIGITS_ORIG_FILES = ("pendigits/pendigits-orig.tra", "pendigits/pendigits-orig.tes")
#: The UCI zip, saved beside the files extracted from it.
PENDIGITS_ZIP = "pendigits/pen+based+recognition+of+handwritten+digits.zip"
#: Files that are members of a downloadable archive: relpath -> (archive relpath, archive URL, member name).
_ARCHIVE_MEMBERS = {rel: (PENDIGITS_ZIP, formats.PENDIGITS_ZIP_URL, rel.split("/")[-1]) for rel in PENDIGITS_FILES}
#: Share of the official pen-digits training file held out for validation (by key hash).
PENDIGITS_VALID = 0.1
#: Share of the omniglot-strokes train side (80 % by key hash) held out for validation; test is unchanged.
OMNIGLOT_VALID = 0.1
DIDI_FILES = ("didi/diagrams_wo_text_20200131.ndjson", "didi/diagrams_20200131.ndjson")
OMNIGLOT_STROKES_FILES = ("omniglot-strokes/strokes_background_small1.zip",
                          "omniglot-strokes/strokes_background_small2.zip")
SPLITS = ("train", "test", "all")
NPZ_SPLITS = ("train", "valid", "test", "all")


# ---------------------------------------------------------------- registry
@functools.lru_cache(maxsize=1)
def _sha256_table() -> dict[str, str]:
    text = resources.files("sketchode.data").joinpath("registry/sha256.txt").read_text(encoding="utf-8")
    table = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, rel = line.split(None, 1)
        table[rel.strip().lstrip("*")] = digest.lower()
    return table


def sha256_for(relpath: str) -> str | None:
    """The known sha256 of a file (path relative to the data root), or None."""
    return _sha256_table().get(relpath)


@functools.lru_cache(maxsize=1)
def _categories() -> tuple[str, ...]:
    return tuple(sorted(r[len("quickdraw-raw/"):-len(".ndjson")] for r in _sha256_table()
                        if r.startswith("quickdraw-raw/")))


def quickdraw_categories() -> list[str]:
    """The 345 Quick, Draw! categories (from the checksum registry)."""
    return list(_categories())


def url_for(relpath: str) -> str | None:
    """The public URL a file can be downloaded from, or None when none is known."""
    if relpath in _FIXED_URLS:
        return _FIXED_URLS[relpath]
    if relpath in _ARCHIVE_MEMBERS:
        return _ARCHIVE_MEMBERS[relpath][1]
    head, _, tail = relpath.partition("/")
    if head == "quickdraw-raw" and tail.endswith(".ndjson") and relpath in _sha256_table():
        return QUICKDRAW_RAW_URL.format(urllib.parse.quote(tail[: -len(".ndjson")]))
    if head == "quickdraw" and tail.endswith(".npz") and "/" not in tail:
        return QUICKDRAW_NPZ_URL.format(urllib.parse.quote(tail[: -len(".npz")]))
    return None


def _where_to_get(relpath: str) -> str:
    if relpath.startswith("didi/"):
        return ("DiDi (Gervais et al. 2020) is published by Google Research: see "
                f"{formats.DIDI_URLS[0]}; download {formats.DIDI_URLS[1]} "
                f"(or {formats.DIDI_URLS[2]}) and put it there")
    if relpath.startswith("vectormnist"):
        return (f"VectorMNIST is distributed by the SketchODE authors from {formats.VECTORMNIST_URL} "
                "('The VectorMNIST dataset'); unpack it there as <digit>/<name>.pkl")
    if relpath in PENDIGITS_ORIG_FILES:
        return (f"it is in the UCI archive {formats.PENDIGITS_ZIP_URL} as a compressed file: unzip it, "
                f"decompress {relpath.split('/')[-1]} (e.g. with `gzip -d` or `uncompress`) and put it there")
    return "no public URL is known for it; put the file there yourself"


#: Files whose sha256 was checked: (resolved path, size, mtime_ns) -> the sha256 it matched.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def _identity(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path, relpath: str | None = None, digest: str | None = None) -> Path:
    """Check a data file against its known sha256; returns ``path``.

    ``digest`` defaults to the registry's sha256 of ``relpath`` (a file with
    no known sha256 is not checked).  The result is cached on the file's
    resolved path, size and modification time, so repeated loads do not
    rehash it; a changed file is hashed again.  A mismatch raises
    :class:`ValueError` naming the file, the expected and the actual sha256,
    and saying to delete it and download it again; the file is left in place.
    """
    path = Path(path)
    digest = digest or (sha256_for(relpath) if relpath is not None else None)
    if digest is None:
        return path
    key = _identity(path)
    if _VERIFIED.get(key) == digest:
        return path
    got = _sha256_file(path)
    if got != digest:
        rel = relpath or path.name
        again = (f"python -m sketchode fetch {_name_of(rel)}" if url_for(rel) else
                 "get the published file again")
        raise ValueError(
            f"{path} has sha256 {got}, but the published {rel} has sha256 {digest}: the file is corrupt, "
            f"truncated or not the published one. Delete it and download it again ({again}); "
            "it was left in place"
        )
    _VERIFIED[key] = digest
    return path


def fetch(relpath: str, root=None, download: bool | None = None) -> Path:
    """Path of a data file, downloading it if it is missing and a URL is known.

    ``relpath`` is relative to the data root (``"sketchrnn/aaron_sheep.npz"``,
    ``"quickdraw-raw/face.ndjson"``).  A present file is checked against the
    registry's sha256 when one is known (:func:`verify`: hashed once while
    its size and modification time are unchanged; a mismatch is a
    :class:`ValueError`, the file is not deleted), with no network access.
    A missing one is downloaded with ``pooch.retrieve`` into the same place
    (verified against the registry's sha256 when known); without a URL (or
    with ``download=False``, or when ``download`` is None and
    ``$SKETCHODE_DOWNLOAD`` is ``0``) :class:`FileNotFoundError` names the
    expected path and where to get it.
    """
    rel = str(relpath).replace(os.sep, "/")
    if rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError(f"fetch: expected a path relative to the data root, got {relpath!r}")
    base = data_root(root)
    path = base / rel
    if path.is_file():
        return verify(path, rel)
    url = url_for(rel)
    if url is None:
        raise FileNotFoundError(f"{path} not found (data root {base}). {_where_to_get(rel)}.")
    if download is None and not downloads_allowed():
        raise FileNotFoundError(f"{path} not found (data root {base}), and downloads are off "
                                f"(SKETCHODE_DOWNLOAD=0); fetch it with: python -m sketchode fetch {_name_of(rel)}")
    if not download and download is not None:
        raise FileNotFoundError(f"{path} not found (data root {base}); download it from {url}")
    if rel in _ARCHIVE_MEMBERS:
        return _fetch_member(rel, base)
    digest = sha256_for(rel)
    got = fetch_url(url, path, digest)
    if digest is not None:  # pooch checked it: remember, so that the next load does not rehash
        _VERIFIED[_identity(got)] = digest
    return got


def _name_of(rel: str) -> str:
    """The dataset name whose files include ``rel`` (for messages), else ``rel`` itself."""
    for name in ("pendigits", "pendigits-orig", "sheep", "omniglot", "omniglot-strokes"):
        if rel in files_for(name):
            return name
    head, _, tail = rel.partition("/")
    if head in ("quickdraw-raw", "quickdraw") and "." in tail:
        return f"'{head}/{tail.rsplit('.', 1)[0]}'" if " " in tail else f"{head}/{tail.rsplit('.', 1)[0]}"
    return rel


def _fetch_member(rel: str, base: Path) -> Path:
    """Download the archive that holds ``rel`` (unless present), extract that member, check its sha256."""
    import zipfile

    archive_rel, url, member = _ARCHIVE_MEMBERS[rel]
    archive = base / archive_rel
    if not archive.is_file():
        print(f"sketchode: downloading {url} into {archive.parent} (to extract {member})")
        fetch_url(url, archive, None)
    path = base / rel
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == member]
            if not names:
                raise FileNotFoundError(f"{archive} holds no member {member!r}; delete the archive and try again")
            data = z.read(names[0])
    except zipfile.BadZipFile as e:
        raise ValueError(f"{archive} is not a valid zip archive ({e}); delete it and try again") from None
    digest = sha256_for(rel)
    got = hashlib.sha256(data).hexdigest()
    if digest is not None and got != digest:
        raise ValueError(f"{member} extracted from {archive} has sha256 {got}, expected {digest}: the archive is not "
                         "the one this package knows; delete it and try again")
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    if digest is not None:
        _VERIFIED[_identity(path)] = digest
    return path


def fetch_url(url: str, path: Path, digest: str | None) -> Path:
    """Download ``url`` to ``path`` with pooch (checked against ``digest`` when given)."""
    import pooch

    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    try:
        got = pooch.retrieve(url, known_hash=f"sha256:{digest}" if digest else None, path=path.parent,
                             fname=path.name, progressbar=_progressbar())
    except Exception as e:
        for d in made:  # leave no empty folders behind a failed download
            try:
                d.rmdir()
            except OSError:
                pass
        if isinstance(e, ValueError):  # checksum mismatch: pooch's message says which
            raise
        raise FileNotFoundError(
            f"{path} not found and downloading {url} failed ({type(e).__name__}: {e}). "
            f"Download it yourself and put it at {path}, or set $SKETCHODE_DATA to a folder that has it."
        ) from e
    return Path(got)


def _progressbar() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- splits
@functools.lru_cache(maxsize=1 << 17)
def _key_fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_of(key: str, frac: float = 0.8) -> str:
    """``"train"`` or ``"test"`` for a sketch key: sha256(key) read as a fraction in
    ``[0, 1)``, train when below ``frac``.  Deterministic across runs, machines and
    file orders; augmented copies keep their key and so their side."""
    if key is None:
        raise ValueError("split_of: the sketch has no key; a deterministic split needs one")
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"split_of: frac must be in [0, 1], got {frac}")
    return "train" if _key_fraction(str(key)) < frac else "test"


def split(sketches, which: str, frac: float = 0.8) -> list[Sketch]:
    """The ``"train"`` / ``"test"`` part (by :func:`split_of` on each key) or ``"all"``."""
    if which == "all":
        return list(sketches)
    if which not in ("train", "test"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {which!r}")
    return [s for s in sketches if split_of(s.key, frac) == which]


def subset(sketches, fraction: float, seed: int = 0) -> list[Sketch]:
    """About ``fraction`` of ``sketches``, chosen by key: the data-efficiency subsets of section 5.3.

    A drawing is kept when ``sha256("subset:<seed>:<key>")`` read as a fraction
    in ``[0, 1)`` is below ``fraction``.  So subsets are deterministic,
    independent of file order and of the train/test split, and *nested*: with
    the same ``seed`` the 10 % subset lies inside the 25 % one, and so on; a
    different ``seed`` draws a different subset.  Order is kept.
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"subset: fraction must be in (0, 1], got {fraction!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"subset: seed must be an integer >= 0, got {seed!r}")
    out = []
    for i, s in enumerate(sketches):
        if s.key is None:
            raise ValueError(f"subset: drawing {i} has no key; a deterministic subset needs one")
        if fraction >= 1.0 or _key_fraction(f"subset:{int(seed)}:{s.key}") < fraction:
            out.append(s)
    return out


# ---------------------------------------------------------------- loading
def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _replaying(fn):
    """Cache ``fn`` and replay the warnings it emitted on every call."""
    cached = functools.lru_cache(maxsize=64)(_recording(fn))

    @functools.wraps(fn)
    def wrapper(*args):
        result, caught = cached(*args)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result

    wrapper.cache_clear = cached.cache_clear
    return wrapper


def _recording(fn):
    def inner(*args):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(*args)
        return result, tuple(caught)

    inner.__name__ = fn.__name__
    return inner


@_replaying
def _read(kind: str, paths: tuple[str, ...], stamps: tuple, part: str, errors: str, source: str,
          label: str | None) -> tuple[Sketch, ...]:
    """Parse files (cached; ``stamps`` makes a changed file re-parse)."""
    if kind == "npz":
        return tuple(formats.read_sketchrnn_npz(paths[0], part, label=label, source=source, errors=errors))
    if kind == "quickdraw-raw":
        return tuple(formats.read_quickdraw_ndjson(paths[0], errors=errors, source=source))
    if kind == "didi":
        return tuple(formats.read_didi_ndjson(paths[0], errors=errors, source=source))
    if kind == "vectormnist":
        return tuple(formats.read_vectormnist(paths[0], errors=errors, source=source))
    if kind == "omniglot-strokes":
        return _omniglot_strokes(paths, errors, source)
    if kind in ("pendigits", "pendigits-orig"):
        reader = formats.read_pendigits if kind == "pendigits" else formats.read_unipen_digits
        return tuple(reader(paths[0], errors=errors, source=source, split=part))
    raise AssertionError(kind)  # pragma: no cover


def _omniglot_strokes(paths, errors, source) -> tuple[Sketch, ...]:
    """Both Omniglot stroke archives, de-duplicated.

    ``strokes_background_small1.zip`` (2,720 drawings) and ``...small2.zip``
    (3,120) both contain the Greek and Latin alphabets: 1,000 drawings are
    shipped twice, byte-identical, at the same ``<alphabet>/<character>/<file>``
    path.  Sketch keys are that path, so the first copy of each key is kept
    (4,840 distinct drawings).  Should two copies ever differ, the first is kept
    and a warning says how many differed.
    """
    seen: dict[str, Sketch] = {}
    differ = 0
    for p in paths:
        for s in formats.read_omniglot_strokes_zip(p, source=source, errors=errors):
            first = seen.get(s.key)
            if first is None:
                seen[s.key] = s
            elif len(first.strokes) != len(s.strokes) or not all(
                    a.shape == b.shape and (a == b).all() for a, b in zip(first.strokes, s.strokes)):
                differ += 1
    if differ:
        warnings.warn(f"omniglot-strokes: {differ} drawing(s) appear in both archives with different "
                      "content; kept the copy from the first archive", stacklevel=2)
    return tuple(seen.values())


@functools.lru_cache(maxsize=8)
def _synthetic(name: str) -> tuple[Sketch, ...]:
    module = importlib.import_module("sketchode.data.synthetic")
    return tuple(getattr(module, name.replace("-", "_"))(n_per_class=1000, seed=0))


def clear_cache() -> None:
    """Forget every parsed file (the next :func:`load` reads from disk again).

    Checksums already verified stay verified while the file's size and
    modification time are unchanged (:func:`verify`).
    """
    _read.cache_clear()
    _synthetic.cache_clear()
    _split_cached.cache_clear()
    _three_way_cached.cache_clear()
    _pendigits_part.cache_clear()


@functools.lru_cache(maxsize=64)
def _split_cached(items: tuple[Sketch, ...], which: str) -> tuple[Sketch, ...]:
    return tuple(split(items, which))


def _check_category(cat: str, name: str, prefix: str) -> None:
    if not cat or "/" in cat or cat in (".", ".."):
        raise ValueError(f"load: bad dataset name {name!r}; expected '{prefix}/<category>'")


def _unknown_category(cat: str, relpath: str, base: Path) -> FileNotFoundError:
    close = difflib.get_close_matches(cat, _categories(), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return FileNotFoundError(f"{base / relpath} not found and {cat!r} is not a Quick, Draw! category.{hint}")


def _joined(cat: str, name: str) -> list[str]:
    """The categories of ``quickdraw-raw/a,b,c`` (one or more, no repeats)."""
    if "," not in cat:
        return [cat]  # one category: _check_category judges it
    cats = cat.split(",")
    if any(not c for c in cats) or len(set(cats)) != len(cats):
        raise ValueError(f"load: {name!r} must name distinct categories separated by commas, e.g. "
                         f"'quickdraw-raw/face,fish,flower'")
    return cats


def files_for(name: str) -> list[str]:
    """Relative paths (under the data root) of the files a dataset reads; [] for synthetic ones."""
    if name in ("digits", "letters", "digits-wide"):
        return []
    if name == "sheep":
        return ["sketchrnn/aaron_sheep.npz"]
    if name == "omniglot":
        return ["sketchrnn/omniglot.npz"]
    if name == "omniglot-strokes":
        return list(OMNIGLOT_STROKES_FILES)
    if name == "didi":
        return list(DIDI_FILES)
    if name == "vectormnist":
        return ["vectormnist"]
    if name == "pendigits":
        return list(PENDIGITS_FILES)
    if name == "pendigits-orig":
        return list(PENDIGITS_ORIG_FILES)
    prefix, _, cat = name.partition("/")
    if prefix == "quickdraw-raw":
        cats = _joined(cat, name)
        for c in cats:
            _check_category(c, name, prefix)
        return [f"quickdraw-raw/{c}.ndjson" for c in cats]
    if prefix == "quickdraw":
        _check_category(cat, name, prefix)
        return [f"quickdraw/{cat}.npz"]
    raise ValueError(f"load: unknown dataset {name!r}.{_did_you_mean(name)} Known: {', '.join(NAMES)}")


def _did_you_mean(name: str) -> str:
    """``" Did you mean 'sheep'?"`` for a misspelt dataset name (difflib over the names), else ``""``."""
    fixed = [n for n in NAMES if "<" not in n]
    prefix, slash, rest = str(name).partition("/")
    if slash:  # 'quickdraw-rw/face' -> 'quickdraw-raw/face'
        close = [f"{p}/{rest}" for p in difflib.get_close_matches(prefix, ["quickdraw-raw", "quickdraw"], n=2)]
    else:
        close = difflib.get_close_matches(str(name), fixed, n=3)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def load(name: str, split: str = "train", root=None, errors: str = "raise") -> list[Sketch]:
    """Load a named dataset as a list of sketches (see the module docstring for names).

    Parameters
    ----------
    name
        ``"digits"``, ``"letters"``, ``"pendigits"``, ``"pendigits-orig"``, ``"quickdraw-raw/<category>"``,
        ``"quickdraw/<category>"``, ``"sheep"``, ``"omniglot"``,
        ``"omniglot-strokes"``, ``"didi"`` or ``"vectormnist"``.
    split
        ``"train"``, ``"test"`` or ``"all"``; ``"valid"`` too for the npz sets,
        DiDi (their own splits) and the pen-based digits (10 % of the official
        training file, by key hash).  Hash-split sets: :func:`split_of`, 80/20.
    root
        Data root (default: ``$SKETCHODE_DATA``, else the user cache).
    errors
        ``"raise"`` (default) or ``"skip"`` malformed records (:mod:`.formats`).

    Returns a new list on every call; parsing is cached in memory.
    """
    if errors not in formats.ERRORS:
        raise ValueError(f"load: errors must be one of {formats.ERRORS}, got {errors!r}")
    rels = files_for(name)
    if name in ("digits", "letters", "digits-wide"):
        _check_split(name, split, SPLITS)
        return list(_split_cached(_synthetic(name), split))

    base = data_root(root)
    prefix, _, cat = name.partition("/")
    if name in ("sheep", "omniglot") or prefix == "quickdraw":
        _check_split(name, split, NPZ_SPLITS)
        if prefix == "quickdraw" and not (base / rels[0]).is_file() and cat not in _categories():
            raise _unknown_category(cat, rels[0], base)
        path = fetch(rels[0], base)
        label = {"sheep": "sheep", "omniglot": None}.get(name, cat)
        parts = ("train", "valid", "test") if split == "all" else (split,)
        out: list[Sketch] = []
        for part in parts:
            out.extend(_read("npz", (str(path.resolve()),), _stamp(path), part, errors, name, label))
        return out

    if prefix == "quickdraw-raw" and len(rels) > 1:
        # several categories (chapter 14's face, fish and flower): each read and split on its own
        return [s for c in _joined(cat, name) for s in load(f"quickdraw-raw/{c}", split, root, errors)]
    if prefix == "quickdraw-raw":
        _check_split(name, split, SPLITS)
        if not (base / rels[0]).is_file() and cat not in _categories():
            raise _unknown_category(cat, rels[0], base)
        path = fetch(rels[0], base)
        items = _read("quickdraw-raw", (str(path.resolve()),), _stamp(path), "all", errors, name, None)
        return list(_split_cached(items, split))

    if name == "omniglot-strokes":
        _check_split(name, split, NPZ_SPLITS)
        paths = [fetch(r, base) for r in rels]
        items = _read("omniglot-strokes", tuple(str(p.resolve()) for p in paths),
                      tuple(_stamp(p) for p in paths), "all", errors, name, None)
        return list(_three_way_cached(items, split, OMNIGLOT_VALID))

    if name in ("pendigits", "pendigits-orig"):
        _check_split(name, split, NPZ_SPLITS)
        tra, tes = rels
        out = []
        if split in ("train", "valid", "all"):
            path = fetch(tra, base)
            items = _read(name, (str(path.resolve()),), _stamp(path), "train", errors, name, None)
            for part in (("train", "valid") if split == "all" else (split,)):
                out.extend(_pendigits_part(items, part))
        if split in ("test", "all"):
            path = fetch(tes, base)
            out.extend(_read(name, (str(path.resolve()),), _stamp(path), "test", errors, name, None))
        return out

    if name == "didi":
        found = [base / r for r in rels if (base / r).is_file()]
        if not found:
            raise FileNotFoundError(f"DiDi not found: expected {base / rels[0]} (or {base / rels[1]}). "
                                    f"{_where_to_get(rels[0])}.")
        path = found[0]
        items = _read("didi", (str(path.resolve()),), _stamp(path), "all", errors, "didi", None)
        own = all(s.meta.get("split") in ("train", "valid", "test") for s in items)
        if own:
            _check_split(name, split, NPZ_SPLITS)
            return [s for s in items if split == "all" or s.meta["split"] == split]
        _check_split(name, split, SPLITS)
        return list(_split_cached(items, split))

    if name == "vectormnist":
        _check_split(name, split, SPLITS)
        folder = base / rels[0]
        if not folder.is_dir():
            raise FileNotFoundError(f"VectorMNIST not found: expected the folder {folder}. "
                                    f"{_where_to_get('vectormnist')}.")
        stamp = max((_stamp(f) for f in folder.rglob("*") if f.is_file()), default=(0, 0))
        items = _read("vectormnist", (str(folder.resolve()),), stamp, "all", errors, "vectormnist", None)
        return list(_split_cached(items, split))

    raise AssertionError(name)  # pragma: no cover - files_for rejects unknown names


@functools.lru_cache(maxsize=8)
def _pendigits_part(items: tuple[Sketch, ...], part: str) -> tuple[Sketch, ...]:
    """The official training file split into train and valid (``PENDIGITS_VALID`` of it, by key hash).

    The 16-attribute files do not record the writer of each line, so the
    validation drawings share writers with the training ones; the test file
    (14 other writers) stays untouched.
    """
    valid = [split_of(s.key, 1.0 - PENDIGITS_VALID) == "test" for s in items]
    return tuple(s for s, v in zip(items, valid) if v == (part == "valid"))


def _three_way(items, which: str, valid: float, frac: float = 0.8) -> list[Sketch]:
    """Train / valid / test by key hash: test is :func:`split`'s test side (hash >= ``frac``);
    valid is the top ``valid`` share of the train side (``frac * (1 - valid) <= hash < frac``)."""
    if which in ("all", "test"):
        return split(items, which, frac)
    cut = frac * (1.0 - valid)
    h = [_key_fraction(str(s.key)) for s in items]
    if which == "train":
        return [s for s, f in zip(items, h) if f < cut]
    return [s for s, f in zip(items, h) if cut <= f < frac]


@functools.lru_cache(maxsize=64)
def _three_way_cached(items: tuple[Sketch, ...], which: str, valid: float) -> tuple[Sketch, ...]:
    return tuple(_three_way(items, which, valid))


def _check_split(name: str, which: str, allowed: tuple[str, ...]) -> None:
    if which not in allowed:
        raise ValueError(f"load({name!r}): split must be one of {allowed}, got {which!r}")


def available(root=None, local: bool = False) -> list[str]:
    """Dataset names :func:`load` accepts.

    With ``local=False`` (default): every name that can be loaded here or
    downloaded (all 345 ``quickdraw-raw/<cat>`` and ``quickdraw/<cat>``), plus
    ``didi`` / ``vectormnist`` when their files are present.  With
    ``local=True``: only names whose files are all present under the data
    root (and the synthetic sets when :mod:`sketchode.data.synthetic` imports).
    """
    base = data_root(root)
    names = []
    try:
        importlib.import_module("sketchode.data.synthetic")
        names += ["digits", "digits-wide", "letters"]
    except ImportError:
        pass
    fixed = ["pendigits", "pendigits-orig", "sheep", "omniglot", "omniglot-strokes", "didi", "vectormnist"]
    cats = list(_categories())
    for n in fixed:
        rels = files_for(n)
        present = any((base / r).exists() for r in rels) if n == "didi" else all((base / r).exists() for r in rels)
        downloadable = all(url_for(r) for r in rels)
        if present or (downloadable and not local):
            names.append(n)
    for prefix, ext in (("quickdraw-raw", "ndjson"), ("quickdraw", "npz")):
        folder = base / prefix
        local_cats = sorted(p.name[: -len(ext) - 1] for p in folder.glob(f"*.{ext}")) if folder.is_dir() else []
        chosen = local_cats if local else sorted(set(cats) | set(local_cats))
        names += [f"{prefix}/{c}" for c in chosen]
    return names
