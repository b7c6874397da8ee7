"""Readers for the pen-trajectory file formats used by SketchODE (chapter 1).

SketchODE (Das et al., ICLR 2022) trains and evaluates on VectorMNIST, DiDi
diagrams and Quick, Draw! categories (paper section 5.1, "Datasets"); appendix D
describes the preprocessing (first point at the origin, scaling into the unit
disc, optional RDP simplification, time on ``[0, T]``), which lives in
:mod:`sketchode.data.sketch`.  This module only *reads* files: every function
here is pure (no downloads, no caching, no global state) and returns a list of
:class:`~sketchode.data.sketch.Sketch`.  Finding and downloading files is
:mod:`sketchode.data.datasets`' job.

Formats
-------
=========================  ==========================================  ======  =====
reader                     format                                      timed   y
=========================  ==========================================  ======  =====
read_quickdraw_ndjson      Quick, Draw! raw / simplified ndjson        raw     flip
read_stroke3               sketch-rnn stroke-3 rows ``(dx, dy, p)``    no      flip
read_sketchrnn_npz         ``.npz`` of stroke-3 arrays per split       no      flip
read_omniglot_strokes_zip  Omniglot ``strokes_background_small*.zip``  yes     as is
read_didi_ndjson           DiDi digital-ink diagram ndjson             yes     flip
read_vectormnist           the authors' VectorMNIST folder of pickles  no      as is
=========================  ==========================================  ======  =====

Coordinates follow the package convention (y points up): screen-space formats
(Quick, Draw!, stroke-3, DiDi) are flipped with ``y -> -y``; Omniglot stroke
files are already y-up.  Untimed formats get ``t = 0`` everywhere and
``timed=False`` (:meth:`Sketch.retime` synthesises arc-length time later).

Bad input
---------
Readers are strict by default (``errors="raise"``): a malformed record (bad
JSON, x/y/t arrays of different lengths in one stroke, a non-numeric,
NaN or infinite coordinate, a drawing with no points, a stroke-3 array of the
wrong shape) raises :class:`ValueError` naming the file and the 1-based line
(ndjson, Omniglot text files) or the 0-based index (npz, arrays).  With
``errors="skip"`` malformed records are left out, one
:class:`MalformedRecordWarning` reports how many were skipped and what the
first problem was, and every good record is returned exactly as it would be
in strict mode.

Documented rules: **empty strokes** inside an otherwise good drawing are
dropped (a drawing whose strokes are all empty is malformed); **single-point
strokes are kept** (:class:`Sketch` handles dots); blank lines in ndjson files
are ignored (they still count for line numbers).  Text files are UTF-8: a
leading byte-order mark is ignored, a line that is not valid UTF-8 is a
malformed record (never silently altered).  A file with no records at all
(empty, or only blank lines) reads as no drawings with an
:class:`EmptyFileWarning` naming it.

Damaged and unsafe files
------------------------
A truncated or corrupt archive (zip, npz) raises :class:`CorruptFileError`
(a :class:`ValueError`) naming the file and, for a damaged member (bad CRC,
bad compressed data, cut short), the member, and says to delete the file and
download it again.  In an Omniglot stroke archive a damaged member is one
malformed record: ``errors="skip"`` leaves it out and keeps every good one.
Sketch-rnn ``.npz`` files hold pickled numpy object arrays; they are read by
:func:`load_npz_array`, which unpickles numpy array reconstruction and
nothing else, so a file with any other pickled object raises
:class:`UnsafePickleError` naming the file and member instead of running its
code.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import numpy as np

from sketchode.data.sketch import Sketch

__all__ = [
    "MalformedRecordWarning",
    "EmptyFileWarning",
    "CorruptFileError",
    "UnsafePickleError",
    "load_npz_array",
    "read_quickdraw_ndjson",
    "stroke3_to_sketch",
    "read_stroke3",
    "read_sketchrnn_npz",
    "read_omniglot_strokes_zip",
    "read_didi_ndjson",
    "read_vectormnist",
    "read_pendigits",
    "read_unipen_digits",
    "PENDIGITS_ZIP_URL",
    "VECTORMNIST_URL",
    "DIDI_URLS",
]

#: Where the SketchODE authors distribute VectorMNIST (project page, "The VectorMNIST dataset" link).
VECTORMNIST_URL = "https://ayandas.me/sketchode"
#: Where the DiDi dataset (Gervais et al. 2020, arXiv:2002.09303) is published.
DIDI_URLS = (
    "https://github.com/google-research/google-research/tree/master/didi_dataset",
    "https://storage.googleapis.com/digital_ink_diagram_data/diagrams_wo_text_20200131.ndjson",
    "https://storage.googleapis.com/digital_ink_diagram_data/diagrams_20200131.ndjson",
)

ERRORS = ("raise", "skip")


class MalformedRecordWarning(UserWarning):
    """Emitted once per read with ``errors="skip"`` when records were skipped."""


class EmptyFileWarning(UserWarning):
    """Emitted when a file holds no records at all (so 0 drawings were read from it)."""


class CorruptFileError(ValueError):
    """A file or an archive member is truncated or corrupt (the message names it and says what to do)."""


class UnsafePickleError(ValueError):
    """A pickle in a data file asks for something other than numpy array reconstruction; it was not run."""


#: What to tell the reader about a damaged file.
REDOWNLOAD = "delete the file and download it again (an interrupted download or copy?)"


class _Bad(Exception):
    """Internal: one record is malformed (message without the location)."""


def _warn_empty(where: str, what: str, stacklevel: int = 3) -> None:
    """One :class:`EmptyFileWarning`: ``where`` held no records (``what`` says which kind)."""
    warnings.warn(f"{where}: {what}; read 0 drawings from it. If the file should hold data, {REDOWNLOAD}",
                  EmptyFileWarning, stacklevel=stacklevel)


class _Problems:
    """Collects malformed records: raise at once (strict) or count and warn once (skip)."""

    def __init__(self, where: str, errors: str):
        if errors not in ERRORS:
            raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
        self.where = where
        self.errors = errors
        self.count = 0
        self.first: str | None = None

    def bad(self, loc: str, msg: str, error: type = ValueError) -> None:
        text = f"{self.where}, {loc}: {msg}"
        if self.errors == "raise":
            raise error(text)
        self.count += 1
        if self.first is None:
            self.first = text

    def finish(self) -> None:
        if self.count:
            warnings.warn(
                f"{self.where}: skipped {self.count} malformed record(s); first: {self.first}",
                MalformedRecordWarning,
                stacklevel=3,
            )


def _make_sketch(strokes, label, timed, key, meta) -> Sketch:
    try:
        return Sketch(strokes, label=label, timed=timed, key=key, meta=meta)
    except ValueError as e:  # Sketch's own validation: report as a malformed record
        raise _Bad(str(e)) from None


# ---------------------------------------------------------------- ndjson ink
def _ndjson_lines(path_or_lines) -> tuple[str, Iterable]:
    """``(name for messages, iterable of lines)`` from a path, a file object or lines."""
    if isinstance(path_or_lines, (str, os.PathLike)):
        p = Path(path_or_lines)
        f = open(p, "rb")  # fail here (FileNotFoundError) rather than on first iteration

        def stream():  # line by line: DiDi files are over a gigabyte
            with f:
                yield from f

        return str(p), stream()
    if hasattr(path_or_lines, "read"):
        return str(getattr(path_or_lines, "name", "<file>")), path_or_lines
    return "<lines>", path_or_lines


def _ink_strokes(drawing: Any, flip_y: bool) -> tuple[list[np.ndarray], bool]:
    """Parse ``[[x...], [y...](, [t...])]`` strokes; return ``(strokes, timed)``.

    Rows of two lists are untimed (Quick, Draw! *simplified*: ``t = 0``, the
    second list is **y**, never time); rows of three carry time.  Empty strokes
    are dropped.  Raises :class:`_Bad` on anything malformed.
    """
    if not isinstance(drawing, list):
        raise _Bad(f"'drawing' must be a list of strokes, got {type(drawing).__name__}")
    out: list[np.ndarray] = []
    kinds = set()
    for i, s in enumerate(drawing):
        if not isinstance(s, list) or len(s) not in (2, 3) or not all(isinstance(r, list) for r in s):
            raise _Bad(f"stroke {i}: expected [[x...], [y...]] or [[x...], [y...], [t...]]")
        lens = [len(r) for r in s]
        if len(set(lens)) != 1:
            names = "x/y/t"[: 2 * len(s) - 1]
            raise _Bad(f"stroke {i}: {names} arrays have different lengths {lens}")
        kinds.add(len(s))
        if lens[0] == 0:
            continue  # documented rule: empty strokes are dropped
        try:
            a = np.array(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise _Bad(f"stroke {i}: non-numeric coordinate") from None
        if not np.isfinite(a).all():
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise _Bad(f"stroke {i}: non-finite value {a[r, c]} in {'xyt'[r]} at point {c}")
        st = np.zeros((a.shape[1], 3))
        st[:, 0] = a[0]
        st[:, 1] = -a[1] if flip_y else a[1]
        if len(s) == 3:
            st[:, 2] = a[2]
        out.append(st)
    if len(kinds) > 1:
        raise _Bad("drawing mixes timed [x, y, t] and untimed [x, y] strokes")
    if not out:
        raise _Bad("empty drawing (no points)")
    return out, kinds == {3}


def _strip_bom(line):
    """The first line of a file without its UTF-8 byte-order mark (bytes or str)."""
    if isinstance(line, bytes):
        return line[3:] if line.startswith(b"\xef\xbb\xbf") else line
    return line[1:] if line.startswith("\ufeff") else line


def _decode_utf8(line: bytes) -> str:
    """``line`` as UTF-8 text; :class:`_Bad` naming the first bad byte and its column."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1})") from None


def _read_ink_ndjson(path_or_lines, *, errors, source, flip_y, make) -> list[Sketch]:
    """One record a line; a leading BOM is ignored, a non-UTF-8 line is malformed, no records warns."""
    name, lines = _ndjson_lines(path_or_lines)
    problems = _Problems(name, errors)
    out = []
    records = 0
    for line_no, line in enumerate(lines, start=1):
        if line_no == 1:
            line = _strip_bom(line)
        if not line.strip():
            continue
        records += 1
        try:
            if isinstance(line, bytes):
                line = _decode_utf8(line)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise _Bad(f"bad JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict) or "drawing" not in rec:
                raise _Bad("expected a JSON object with a 'drawing' field")
            strokes, timed = _ink_strokes(rec["drawing"], flip_y)
            out.append(make(rec, strokes, timed, line_no, source))
        except _Bad as e:
            problems.bad(f"line {line_no}", str(e))
    if not records:
        _warn_empty(name, "no records (the file is empty or holds only blank lines)", stacklevel=4)
    problems.finish()
    return out


def _default_source(path_or_lines, fallback: str) -> str:
    if isinstance(path_or_lines, (str, os.PathLike)):
        return Path(path_or_lines).stem
    return fallback


def read_quickdraw_ndjson(path_or_lines, errors: str = "raise", source: str | None = None,
                          flip_y: bool = True) -> list[Sketch]:
    """Read a Quick, Draw! ndjson file (paper 5.1: the Quick, Draw! categories).

    One JSON object a line with ``word`` (the category), ``key_id`` and
    ``drawing``, a list of strokes:

    * **raw** files: ``[[x...], [y...], [t_ms...]]`` (screen pixels, time in ms
      since the first point) -> ``timed=True``;
    * **simplified** files: ``[[x...], [y...]]`` (no time) -> ``timed=False``
      and ``t = 0``.  The second list is y, *never* time (the reference code
      read ``stroke[-1]`` as time, which is y for simplified files).

    y is flipped (screen space is y-down).  ``label`` = ``word``;
    ``key`` = ``f"{source}:{line_no}"`` (1-based line number; ``source``
    defaults to the file stem); ``meta`` holds ``key_id``, ``countrycode``,
    ``recognized`` and ``line`` when present.

    ``path_or_lines`` is a path, an open file, or an iterable of lines (str or
    bytes).  See the module docstring for ``errors``.
    """
    src = source or _default_source(path_or_lines, "quickdraw")

    def make(rec, strokes, timed, line_no, source):
        meta = {k: rec[k] for k in ("key_id", "countrycode", "recognized") if k in rec}
        meta["line"] = line_no
        label = rec.get("word")
        return _make_sketch(strokes, None if label is None else str(label), timed, f"{source}:{line_no}", meta)

    return _read_ink_ndjson(path_or_lines, errors=errors, source=src, flip_y=flip_y, make=make)


def read_didi_ndjson(path_or_lines, errors: str = "raise", source: str | None = None,
                     flip_y: bool = True) -> list[Sketch]:
    """Read a DiDi digital-ink diagram ndjson file (Gervais et al. 2020; paper 5.1).

    One JSON object a line: ``key`` (hex id), ``label_id`` (the Graphviz prompt
    the writer redrew), ``split`` (``train``/``valid``/``test``),
    ``writing_guide`` (``{"width", "height"}`` of the canvas) and ``drawing`` =
    list of strokes ``[[x...], [y...], [t...]]`` in screen coordinates (y is
    flipped).  ``timed=True`` when strokes have the three rows (two rows read as
    untimed, ``t = 0``).  ``label`` = ``label_id`` when present;
    ``key`` = ``f"{source}:{rec['key']}"`` (else ``f"{source}:{line_no}"``);
    ``meta`` holds ``split``, ``writing_guide``, ``didi_key`` and ``line``.
    Published files: ``diagrams_wo_text_20200131.ndjson`` (used by the
    SketchODE authors' conversion script) and ``diagrams_20200131.ndjson``, see
    :data:`DIDI_URLS`.
    """
    src = source or _default_source(path_or_lines, "didi")

    def make(rec, strokes, timed, line_no, source):
        meta = {"line": line_no}
        for k in ("split", "writing_guide"):
            if k in rec:
                meta[k] = rec[k]
        if "key" in rec:
            meta["didi_key"] = rec["key"]
            key = f"{source}:{rec['key']}"
        else:
            key = f"{source}:{line_no}"
        label = rec.get("label_id")
        return _make_sketch(strokes, None if label is None else str(label), timed, key, meta)

    return _read_ink_ndjson(path_or_lines, errors=errors, source=src, flip_y=flip_y, make=make)


# ---------------------------------------------------------------- stroke-3
def _check_stroke3(a) -> np.ndarray:
    try:
        arr = np.asarray(a)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Bad("not a numeric array") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise _Bad(f"expected an (n, 3) array of dx, dy, pen; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise _Bad("empty drawing (no points)")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise _Bad(f"non-finite value {arr[r, c]} in {('dx', 'dy', 'pen')[c]} at row {r}")
    return arr


def _stroke3_batch(arrays: Sequence[np.ndarray], flip_y: bool) -> list[list[np.ndarray]]:
    """Vectorised stroke-3 -> absolute strokes for many drawings at once.

    One concatenation, one cumulative sum (restarted per drawing by
    subtracting each drawing's running total), one ``np.split`` at every
    drawing start and every row after a pen lift.
    """
    lens = np.fromiter((len(a) for a in arrays), dtype=np.intp, count=len(arrays))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    integer = all(a.dtype.kind in "iub" for a in arrays)
    A = np.concatenate(arrays).astype(np.int64 if integer else np.float64, copy=False)
    cs = np.cumsum(A[:, :2], axis=0)
    base = np.zeros((len(arrays), 2), dtype=cs.dtype)
    base[1:] = cs[starts[1:] - 1]
    pos = (cs - np.repeat(base, lens, axis=0)).astype(np.float64)
    P = np.zeros((len(A), 3))
    P[:, 0] = pos[:, 0]
    P[:, 1] = -pos[:, 1] if flip_y else pos[:, 1]
    ends = starts + lens  # one past the last row of each drawing
    lift = np.flatnonzero(A[:, 2] >= 0.5) + 1  # a new stroke starts after each lift ...
    lift = lift[~np.isin(lift, ends)]  # ... unless the drawing ends there
    cuts = np.union1d(starts[1:], lift)
    piece_starts = np.concatenate([[0], cuts]).tolist()
    piece_ends = piece_starts[1:] + [len(P)]
    pieces = [P[a:b] for a, b in zip(piece_starts, piece_ends)]  # np.split, without its overhead
    owner = np.searchsorted(starts, piece_starts, side="right") - 1
    bounds = np.searchsorted(owner, np.arange(len(arrays) + 1))
    return [pieces[bounds[i]:bounds[i + 1]] for i in range(len(arrays))]


def stroke3_to_sketch(arr, label: str | None = None, key: str | None = None, meta: dict | None = None,
                      flip_y: bool = True) -> Sketch:
    """One sketch-rnn stroke-3 array ``(n, 3)`` of ``(dx, dy, p)`` rows to a :class:`Sketch`.

    Absolute positions are the cumulative sums of the offsets; ``p = 1`` means
    the pen lifts *after* this point, so the next row starts a new stroke.
    y is flipped (stroke-3 data is screen space); ``timed=False``, ``t = 0``.
    Raises :class:`ValueError` on a malformed array.
    """
    try:
        a = _check_stroke3(arr)
        strokes = _stroke3_batch([a], flip_y)[0]
        return _make_sketch(strokes, label, False, key, dict(meta or {}))
    except _Bad as e:
        raise ValueError(f"{key or 'stroke-3 array'}: {e}") from None


def read_stroke3(array_or_list, label: str | None = None, source: str = "stroke3", errors: str = "raise",
                 flip_y: bool = True, where: str | None = None, key_prefix: str | None = None) -> list[Sketch]:
    """Many stroke-3 drawings (an object array or a list of ``(n, 3)`` arrays) to sketches.

    The sketch-rnn format (Ha & Eck 2018) used for the Quick, Draw! sketch-rnn
    files, Aaron Koblin's sheep and the sketch-rnn Omniglot set: each row is
    ``(dx, dy, p)``, ``p = 1`` lifting the pen after the row.  A single 2-D
    numeric ``(n, 3)`` array is read as one drawing.  The whole batch is
    converted with one cumulative sum and one split (see
    :func:`stroke3_to_sketch` for the per-drawing rule).  Keys are
    ``f"{key_prefix or source}:{index}"`` (0-based), ``meta["index"]`` the
    index; ``where`` names the input in error messages.
    """
    if isinstance(array_or_list, np.ndarray) and array_or_list.dtype != object and array_or_list.ndim == 2:
        items = [array_or_list]
    else:
        items = list(array_or_list)
    prefix = key_prefix or source
    problems = _Problems(where or source, errors)
    good_idx, good = [], []
    for i, a in enumerate(items):
        try:
            good.append(_check_stroke3(a))
            good_idx.append(i)
        except _Bad as e:
            problems.bad(f"index {i}", str(e))
    out = []
    if good:
        for i, strokes in zip(good_idx, _stroke3_batch(good, flip_y)):
            try:
                out.append(_make_sketch(strokes, label, False, f"{prefix}:{i}", {"index": i}))
            except _Bad as e:  # pragma: no cover - arrays were validated above
                problems.bad(f"index {i}", str(e))
    problems.finish()
    return out


# ---------------------------------------------------------------- npz without running pickles
def _reconstruct():
    core = getattr(np, "_core", None)
    return (core if core is not None else np.core).multiarray._reconstruct


#: The only globals a sketch-rnn pickle may name: numpy's array reconstruction (both module
#: spellings: numpy < 2 writes ``numpy.core``, numpy >= 2 ``numpy._core``), ndarray and dtype.
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _Refused(Exception):
    """Internal: the pickle named a global outside :data:`_ARRAY_GLOBALS`."""


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses every other global.

    A pickle runs code only through the callables it names (``GLOBAL`` /
    ``STACK_GLOBAL`` / extension codes, all resolved by :meth:`find_class`) or
    through persistent ids; here ``find_class`` admits exactly
    :data:`_ARRAY_GLOBALS` and persistent ids are refused, so what is left is
    building numpy arrays, dtypes and plain Python values.
    """

    def find_class(self, module, name):
        obj = _ARRAY_GLOBALS.get((module, name))
        if obj is None:
            raise _Refused(f"{module}.{name}")
        return obj

    def persistent_load(self, pid):
        raise _Refused(f"persistent id {str(pid)[:40]!r}")


def _npz_member(z: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
    """One ``.npy`` member of an open npz read as :func:`numpy.load` would, without running pickles.

    The ``.npy`` header is read with :func:`numpy.lib.format.read_magic` and
    ``read_array_header_1_0`` / ``_2_0``; an array without objects is read by
    :func:`numpy.lib.format.read_array` with ``allow_pickle=False``; an object
    array is unpickled by :class:`_ArrayUnpickler` (``encoding="latin1"``, as
    the Python 2 writers of the sketch-rnn files need).  The member is read to
    its end so that the zip's CRC check runs.
    """
    fmt = np.lib.format
    label = f"{where} [member {member}]"
    try:
        with z.open(member) as fp:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(fp)
            else:  # 3.0 (UTF-8 field names) is never an object array: numpy reads it, pickles off
                shape, dtype = None, None
            if dtype is not None and dtype.hasobject:
                arr = _unpickle_array(fp, tuple(shape), label)
                fp.read()  # to the end: the zip checks the member's CRC there
                return arr
        with z.open(member) as fp:
            try:
                arr = fmt.read_array(fp, allow_pickle=False)
            except ValueError as e:
                raise CorruptFileError(f"{label}: not a readable .npy array ({e}); {REDOWNLOAD}") from None
            fp.read()  # the CRC check
            return arr
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise CorruptFileError(f"{label}: the archive member is corrupt or truncated ({e}); {REDOWNLOAD}") from None


def _unpickle_array(fp, shape: tuple, label: str) -> np.ndarray:
    """The pickled object array that follows a ``.npy`` header, by :class:`_ArrayUnpickler`."""
    try:
        arr = _ArrayUnpickler(fp, encoding="latin1").load()
    except _Refused as e:
        raise UnsafePickleError(
            f"{label}: refused to unpickle: the pickle calls {e}, which is not numpy array "
            "reconstruction; a sketch-rnn file holds only numpy arrays, so this one is damaged or "
            f"not what its name says, and loading it could run code. Nothing was run; {REDOWNLOAD}"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as e:
        raise CorruptFileError(f"{label}: the pickled array is corrupt or truncated "
                               f"({type(e).__name__}: {e}); {REDOWNLOAD}") from None
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        got = f"shape {arr.shape}" if isinstance(arr, np.ndarray) else f"a {type(arr).__name__}"
        raise CorruptFileError(f"{label}: the header promises an array of shape {shape}, "
                               f"the pickle holds {got}; {REDOWNLOAD}")
    return arr


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """``zipfile.ZipFile(path)``; :class:`CorruptFileError` naming the file when it is not a readable zip."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        with open(path, "rb") as f:
            head = f.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode
            raise UnsafePickleError(f"{path}: is a Python pickle, not {what} (a zip archive); refused to load it "
                                    f"(a pickle can run code). Nothing was run; {REDOWNLOAD}") from None
        size = path.stat().st_size
        raise CorruptFileError(f"{path}: not a valid {what} ({e}; {size} bytes): the file is truncated or "
                               f"corrupt; {REDOWNLOAD}") from None


def load_npz_array(path, key: str) -> np.ndarray:
    """``numpy.load(path, allow_pickle=True, encoding="latin1")[key]``, without running arbitrary pickles.

    For ``.npz`` files whose members are pickled object arrays (the sketch-rnn
    files): only numpy array reconstruction is unpickled
    (:class:`_ArrayUnpickler`), any other pickled object raises
    :class:`UnsafePickleError` naming the file and member before anything of
    it runs.  A truncated or corrupt archive or member raises
    :class:`CorruptFileError` naming them; a missing key, :class:`KeyError`
    listing the keys there are.
    """
    p = Path(path)
    with _open_zip(p, "npz archive") as z:
        keys = {(n[:-4] if n.endswith(".npy") else n): n for n in z.namelist()}
        if key not in keys:
            raise KeyError(f"{p}: no array {key!r} (the file has {sorted(keys)})")
        return _npz_member(z, keys[key], str(p))


def read_sketchrnn_npz(path, split: str = "train", label: str | None = None, source: str | None = None,
                       errors: str = "raise", flip_y: bool = True) -> list[Sketch]:
    """Read one split of a sketch-rnn ``.npz`` (keys ``train``, ``valid``, ``test``).

    Each key holds an object array of ``int16`` stroke-3 arrays ``(n, 3)``
    (:func:`read_stroke3`); the official Quick, Draw! sketch-rnn files (70,000 /
    2,500 / 2,500 per category, paper 5.1) and the sketch-rnn-datasets sheep and
    Omniglot files use it.  The object arrays are pickles (written by Python 2):
    they are read by :func:`load_npz_array`, which rebuilds numpy arrays and
    refuses (:class:`UnsafePickleError`) any other pickled object, so a
    planted file cannot run code.  Keys are ``f"{source}:{split}:{index}"``;
    errors name the file, split and index (a damaged file or member:
    :class:`CorruptFileError` naming it).  A split with no drawings warns
    (:class:`EmptyFileWarning`).
    """
    p = Path(path)
    src = source or p.stem
    try:
        data = load_npz_array(p, split)
    except KeyError:
        with _open_zip(p, "npz archive") as z:
            have = sorted(n[:-4] if n.endswith(".npy") else n for n in z.namelist())
        raise ValueError(f"{p}: no split {split!r} (the file has {have})") from None
    if data.ndim == 1 and len(data) == 0:
        _warn_empty(f"{p} [{split}]", "the split holds no drawings")
    return read_stroke3(data, label=label, source=src, errors=errors, flip_y=flip_y,
                        where=f"{p} [{split}]", key_prefix=f"{src}:{split}")


# ---------------------------------------------------------------- Omniglot
def _omniglot_diagnose(text: str) -> str:
    """Slow path: find the first bad line of an Omniglot stroke file."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return "empty file"
    if lines[first].strip() != "START":
        return f"line {first + 1}: expected START, got {lines[first].strip()[:40]!r}"
    for i, ln in enumerate(lines[first + 1:], start=first + 2):
        s = ln.strip()
        if not s or s == "BREAK":
            continue
        parts = s.split(",")
        if len(parts) != 3:
            return f"line {i}: expected 'x,y,t', got {s[:40]!r}"
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            return f"line {i}: non-numeric value in {s[:40]!r}"
        if not all(np.isfinite(vals)):
            return f"line {i}: non-finite value in {s[:40]!r}"
    return "malformed file"


def _parse_omniglot_txt(text: str) -> list[np.ndarray]:
    """Parse ``START`` / ``x,y,t`` lines / ``BREAK`` into ``(n, 3)`` strokes.

    One C-level parse of the whole file (``BREAK`` lines become a NaN sentinel
    row); empty strokes are dropped, a final stroke without ``BREAK`` is kept.
    """
    body = text.lstrip()
    if not body.startswith("START"):
        raise _Bad(_omniglot_diagnose(text))
    body = body[5:]
    n_breaks = body.count("BREAK")
    body = body.replace("BREAK", "nan,nan,nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" on empty files
            A = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError:
        raise _Bad(_omniglot_diagnose(text)) from None
    if A.size == 0:
        raise _Bad("empty drawing (no points)")
    if A.shape[1] != 3:
        raise _Bad(_omniglot_diagnose(text))
    finite = np.isfinite(A)
    is_break = np.isnan(A).all(axis=1)
    if int(is_break.sum()) != n_breaks or not finite[~is_break].all():
        raise _Bad(_omniglot_diagnose(text))
    cuts = np.flatnonzero(is_break)
    pieces = np.split(A, cuts)
    strokes = [pieces[0]] + [p[1:] for p in pieces[1:]]  # drop the sentinel row
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        raise _Bad("empty drawing (no points)")
    return strokes


def read_omniglot_strokes_zip(path, source: str = "omniglot-strokes", errors: str = "raise") -> list[Sketch]:
    """Read an Omniglot stroke archive (``strokes_background_small1.zip`` etc., Lake et al. 2015).

    Members ``<top>/<alphabet>/<character>/<drawing>.txt`` (``__MACOSX/`` and
    ``.DS_Store`` entries and other files are ignored) hold a ``START`` line,
    then each stroke as ``x,y,t_ms`` lines closed by a ``BREAK`` line.
    Coordinates are already y-up (no flip); ``timed=True``.
    ``label`` = ``"<alphabet>/<character>"``;
    ``key`` = ``f"{source}:<alphabet>/<character>/<drawing>.txt"`` (the member
    path without the top folder, so the same drawing shipped in two archives
    gets the same key); ``meta`` holds ``archive``, ``member`` and ``drawer``
    (the two digits after the underscore of the file name).  Errors name the
    archive, the member and the line.  A damaged archive (truncated, not a zip)
    raises :class:`CorruptFileError` naming it; a damaged member (bad CRC, bad
    compressed data) is a malformed record naming the archive and member
    (``errors="skip"`` leaves it out and keeps every good member).  An archive
    with no drawing files warns (:class:`EmptyFileWarning`).
    """
    p = Path(path)
    problems = _Problems(str(p), errors)
    out = []
    drawings = 0
    with _open_zip(p, "zip archive") as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or name.startswith("__MACOSX/") or not name.endswith(".txt"):
                continue
            parts = PurePosixPath(name).parts
            if len(parts) < 3 or any(q.startswith(".") for q in parts):
                continue
            alphabet, character, fname = parts[-3], parts[-2], parts[-1]
            rel = "/".join(parts[-3:])
            drawings += 1
            try:
                data = z.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                problems.bad(name, f"the archive member is corrupt or truncated ({e}); the archive is damaged: "
                             f"{REDOWNLOAD}", CorruptFileError)
                continue
            try:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Bad("not UTF-8 text") from None
                strokes = _parse_omniglot_txt(text)
                stem = fname[:-4]
                meta = {"archive": p.name, "member": name,
                        "drawer": stem.rsplit("_", 1)[-1] if "_" in stem else None}
                out.append(_make_sketch(strokes, f"{alphabet}/{character}", True, f"{source}:{rel}", meta))
            except _Bad as e:
                problems.bad(name, str(e))
    if not drawings:
        _warn_empty(str(p), "no drawing files <top>/<alphabet>/<character>/<drawing>.txt in the archive")
    problems.finish()
    return out


# ---------------------------------------------------------------- VectorMNIST
def _vectormnist_strokes(obj, flip_y: bool, rows: bool) -> list[np.ndarray]:
    """Strokes of one VectorMNIST drawing: ``(n, 2)`` (or ``(n, 3)``) point arrays
    (pickles), or ``[[x...], [y...]]`` rows when ``rows`` (JSON files)."""
    if isinstance(obj, dict):
        obj = obj.get("strokes", obj.get("drawing"))
    if obj is None or isinstance(obj, (str, bytes)) or not hasattr(obj, "__len__"):
        raise _Bad("expected a list of strokes")
    out = []
    for i, s in enumerate(obj):
        try:
            a = np.asarray(s, dtype=np.float64)
        except (TypeError, ValueError):
            raise _Bad(f"stroke {i}: not a numeric array (x/y lists of different lengths?)") from None
        pts = a.T if rows else a
        if pts.ndim != 2 or pts.shape[1] not in (2, 3):
            want = "[[x...], [y...]]" if rows else "an (n, 2) array of x, y"
            raise _Bad(f"stroke {i}: expected {want}, got shape {a.shape}")
        if len(pts) == 0:
            continue
        if not np.isfinite(pts[:, :2]).all():
            raise _Bad(f"stroke {i}: non-finite coordinate")
        st = np.zeros((len(pts), 3))
        st[:, 0] = pts[:, 0]
        st[:, 1] = -pts[:, 1] if flip_y else pts[:, 1]
        out.append(st)
    if not out:
        raise _Bad("empty drawing (no points)")
    return out


def read_vectormnist(folder, errors: str = "raise", source: str = "vectormnist",
                     flip_y: bool = False) -> list[Sketch]:
    """Read a VectorMNIST folder (the SketchODE authors' vectorised MNIST; paper 5.1).

    Layout, as the authors' released code reads it (``data/dm.py`` and
    ``data/synth.py`` in github.com/dasayan05/sketchode): the folder is walked
    recursively for ``*.pkl`` files; each pickle holds **one drawing** as a list
    of curves, each an ``(n, 2)`` array of ``x, y`` (no time; the authors
    synthesise time from arc length, as :meth:`Sketch.retime` does).  The
    authors' loader derives no label; here ``label`` is the name of the folder
    holding the file (e.g. ``<root>/3/0042.pkl`` -> ``"3"``; ``None`` for files
    directly in the root).  As an alternative to pickles, ``*.json`` files with
    either a list of strokes or ``{"label": ..., "strokes": [...]}`` are read
    the same way, each stroke written as ``[[x...], [y...]]`` like Quick, Draw!.

    ``timed=False`` and ``t = 0``.  Coordinates are kept as stored
    (``flip_y=True`` flips them if your copy is in image coordinates).
    ``key`` = ``f"{source}:<relative path>"``.  **Pickles can run code when
    loaded: only read a copy you trust** (the authors distribute it from
    :data:`VECTORMNIST_URL`).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"VectorMNIST folder not found: {root}. VectorMNIST is distributed by the SketchODE authors "
            f"(see {VECTORMNIST_URL}, 'The VectorMNIST dataset'); unpack it so that {root} holds "
            "<digit>/<name>.pkl files (one drawing each: a list of (n, 2) x, y curves)."
        )
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in (".pkl", ".json")
                   and not any(q.startswith(".") for q in f.relative_to(root).parts))
    if not files:
        raise FileNotFoundError(
            f"{root}: no VectorMNIST drawings (*.pkl or *.json) found. Get the data from {VECTORMNIST_URL} "
            "and unpack it there as <digit>/<name>.pkl."
        )
    problems = _Problems(str(root), errors)
    out = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        try:
            try:
                if f.suffix == ".pkl":
                    with open(f, "rb") as fh:
                        obj = pickle.load(fh)
                else:
                    obj = json.loads(f.read_text())
            except Exception as e:  # unreadable file: a malformed record
                raise _Bad(f"cannot read ({type(e).__name__}: {e})") from None
            label = f.parent.name if f.parent != root else None
            if isinstance(obj, dict) and obj.get("label") is not None:
                label = str(obj["label"])
            strokes = _vectormnist_strokes(obj, flip_y, rows=f.suffix == ".json")
            out.append(_make_sketch(strokes, label, False, f"{source}:{rel}", {"file": rel}))
        except _Bad as e:
            problems.bad(rel, str(e))
    problems.finish()
    return out


# ---------------------------------------------------------------- UCI pen-based digits
#: The UCI archive that holds the pen-based digits (Alpaydin & Alimoglu 1998), CC BY 4.0.
PENDIGITS_ZIP_URL = "https://archive.ics.uci.edu/static/public/81/pen+based+recognition+of+handwritten+digits.zip"


def _text_lines(path_or_lines):
    """``(name for messages, iterable of str lines)``; bytes are decoded as UTF-8 (a
    line that is not UTF-8 comes as ``None``, to be reported with its number)."""
    where, lines = _ndjson_lines(path_or_lines)

    def decode():
        for line in lines:
            if isinstance(line, bytes):
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError:
                    line = None
            yield line

    return where, decode()


def _pendigits_row(fields: list[str]) -> np.ndarray:
    if len(fields) != 17:
        raise _Bad(f"expected 17 comma-separated integers (x1,y1,...,x8,y8,class), got {len(fields)}")
    try:
        v = np.array([int(f) for f in fields], dtype=np.int64)
    except ValueError:
        bad = next(f for f in fields if not f.strip().lstrip("-").isdigit())
        raise _Bad(f"not an integer: {bad.strip()[:20]!r}") from None
    if not (0 <= v[-1] <= 9):
        raise _Bad(f"class must be a digit 0-9, got {v[-1]}")
    return v


def _part_of(path_or_lines) -> str:
    """The split named by a file's suffix (``pendigits.tra`` -> ``"tra"``), else ``"lines"``."""
    if isinstance(path_or_lines, (str, os.PathLike)):
        return Path(path_or_lines).suffix.lstrip(".") or Path(path_or_lines).stem
    return "lines"


def read_pendigits(path_or_lines, errors: str = "raise", source: str = "pendigits",
                   split: str | None = None) -> list[Sketch]:
    """Read a UCI pen-based digits file (``pendigits.tra`` / ``pendigits.tes``; chapter 1).

    Alpaydin & Alimoglu (1998) recorded 44 writers on a pressure-sensitive
    tablet; each line is one digit: ``x1,y1,...,x8,y8,class``, integers in
    ``0..100`` with **y pointing up**.  Each digit's real pen trajectory (all
    its strokes joined) was resampled to **8 points equally spaced in arc
    length**, so the files keep the order in which the pen moved but lose the
    pen lifts and the timing.  They are read as one stroke per digit,
    ``timed=False`` (``t = 0``; :meth:`Sketch.retime` gives arc-length time,
    which for these points is uniform).  ``label`` is the class as a string,
    ``key`` ``f"{source}:{split}:{line}"`` (1-based line; ``split`` defaults
    to the file's stem), ``meta`` ``{"line": n}``.  Errors name the file and
    the line; the good lines around a bad one are kept under ``errors="skip"``.
    A UTF-8 byte-order mark is ignored.
    """
    where, lines = _text_lines(path_or_lines)
    part = split or _part_of(path_or_lines)
    problems = _Problems(where, errors)
    rows, line_nos = [], []
    records = 0
    for n, line in enumerate(lines, start=1):
        if line is None:
            records += 1
            problems.bad(f"line {n}", "not UTF-8 text")
            continue
        if n == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if not line.strip():
            continue
        records += 1
        try:
            rows.append(_pendigits_row(line.split(",")))
            line_nos.append(n)
        except _Bad as e:
            problems.bad(f"line {n}", str(e))
    out = []
    if rows:
        A = np.stack(rows)
        pts = np.zeros((len(A), 8, 3))
        pts[:, :, 0] = A[:, 0:16:2]
        pts[:, :, 1] = A[:, 1:16:2]
        for n, p, c in zip(line_nos, pts, A[:, -1]):
            out.append(Sketch((p,), label=str(int(c)), timed=False, key=f"{source}:{part}:{n}", meta={"line": n}))
    if not records:
        _warn_empty(where, "no records (the file is empty or holds only blank lines)")
    problems.finish()
    return out


def _unipen_points(line: str) -> tuple[float, float]:
    parts = line.split()
    if len(parts) < 2:
        raise _Bad(f"expected a point 'x y', got {line.strip()[:40]!r}")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise _Bad(f"expected a point 'x y', got {line.strip()[:40]!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise _Bad(f"non-finite point {line.strip()[:40]!r}")
    return x, y


def read_unipen_digits(path_or_lines, errors: str = "raise", source: str = "pendigits-orig",
                       split: str | None = None, dt_ms: float = 100.0) -> list[Sketch]:
    """Read the UNIPEN files of the pen-based digits (``pendigits-orig.tra`` / ``.tes``).

    The same UCI archive as :func:`read_pendigits` holds the full
    trajectories in the UNIPEN text format (Guyon et al. 1994)::

        .SEGMENT DIGIT 0-1 ? "4"      a new digit, its strokes and its label
        .COMMENT 4 12 224             class, writer, drawing id
        .PEN_DOWN                     a stroke begins
          267 333                     one point a line, sampled every 100 ms
        .PEN_UP
        .DT 100                       pause between strokes (ms)

    Every other directive (``.INCLUDE``, ``.LEXICON``, ``.HIERARCHY``, ...)
    is ignored.  Points are y-up (the tablet's convention; no flip).  Time is
    real: ``dt_ms`` between successive points of a stroke, plus each ``.DT``
    pause (``dt_ms`` when none is given) between strokes; ``timed=True``, in
    seconds.  ``label`` is the quoted label; ``meta`` holds ``writer`` (from
    the ``.COMMENT``, else None) and ``line`` (of the ``.SEGMENT``).  A digit
    with no points, a point outside a ``.PEN_DOWN`` block or a bad number is
    malformed: the error names the file and the line.
    """
    where, lines = _text_lines(path_or_lines)
    part = split or _part_of(path_or_lines)
    problems = _Problems(where, errors)
    out: list[Sketch] = []
    cur = None  # dict of the digit being read

    def close():
        if cur is None or cur.get("bad"):
            return
        strokes = [np.asarray(s, dtype=np.float64) for s in cur["strokes"] if s]
        if not strokes:
            problems.bad(f"line {cur['line']}", "digit with no points")
            return
        t0, timed = 0.0, []
        for s, pause in zip(strokes, cur["pauses"]):
            t = t0 + pause + dt_ms * np.arange(len(s))
            timed.append(np.column_stack([s, t / 1000.0]))
            t0 = t[-1]
        timed[0][:, 2] -= timed[0][0, 2]
        try:
            out.append(_make_sketch(timed, cur["label"], True, f"{source}:{part}:{cur['line']}",
                                    {"line": cur["line"], "writer": cur["writer"]}))
        except _Bad as e:
            problems.bad(f"line {cur['line']}", str(e))

    stroke = None
    pause = None
    records = 0
    for n, raw in enumerate(lines, start=1):
        if raw is None:
            records += 1
            problems.bad(f"line {n}", "not UTF-8 text")
            if cur is not None:
                cur["bad"] = True
            continue
        s = (raw.lstrip("\ufeff") if n == 1 else raw).strip()
        if not s:
            continue
        records += 1
        try:
            if s.startswith(".SEGMENT"):
                close()
                q = s.split('"')
                label = q[1] if len(q) >= 3 else None
                cur = {"line": n, "label": label, "writer": None, "strokes": [], "pauses": [], "bad": False}
                stroke, pause = None, None
            elif s.startswith(".COMMENT") and cur is not None and cur["writer"] is None:
                f = s.split()[1:]
                cur["writer"] = int(f[1]) if len(f) >= 2 and f[1].isdigit() else None
            elif s.startswith(".PEN_DOWN"):
                if cur is None:
                    raise _Bad(".PEN_DOWN before any .SEGMENT")
                stroke = []
                cur["strokes"].append(stroke)
                cur["pauses"].append(0.0 if len(cur["strokes"]) == 1 else (dt_ms if pause is None else pause))
                pause = None
            elif s.startswith(".PEN_UP"):
                stroke = None
            elif s.startswith(".DT"):
                f = s.split()
                try:
                    pause = float(f[1])
                except (IndexError, ValueError):
                    raise _Bad(f"bad .DT line {s[:40]!r}") from None
            elif s.startswith("."):
                continue
            else:
                if stroke is None:
                    if cur is None:
                        raise _Bad(f"a point before any .SEGMENT: {s[:40]!r}")
                    raise _Bad(f"a point outside .PEN_DOWN ... .PEN_UP: {s[:40]!r}")
                stroke.append(_unipen_points(s))
        except _Bad as e:
            problems.bad(f"line {n}", str(e))
            if cur is not None:
                cur["bad"] = True
    close()
    if not records:
        _warn_empty(where, "no records (the file is empty or holds only blank lines)")
    problems.finish()
    return out
