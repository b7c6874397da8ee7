"""The book's wing: plumbing the chapters use and would not show (never imported by the library).

One module per chapter will live here; this package module holds what
several chapters share: reading real datasets so that a chapter still runs
without them (:func:`real_data`, :func:`have`), the embedded stand-in for
many-stroke doodles (:func:`letter_rows`) and paths fit to print
(:func:`repo_path`).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["real_data", "have", "fetch_command", "letter_rows", "repo_path"]

#: Datasets whose absence :func:`real_data` has already reported (one note per dataset and kernel).
_reported: set[str] = set()


def fetch_command(*names: str) -> str:
    """The shell command that downloads the files of the named datasets into the data root."""
    quoted = [f"'{n}'" if (" " in n or "," in n) else n for n in names]
    return "python -m sketchode fetch " + " ".join(quoted)


def real_data(name: str, split: str = "train", instead=None, **load_kw) -> list:
    """``load(name, split)``, or a stand-in and a one-line note when its files are absent.

    Chapters that show real drawings call this so that they still run top to
    bottom without a data root (CI without the shared data, a reader who has
    downloaded nothing).  Without the files it returns ``instead``'s drawings
    (an embedded dataset name such as ``"letters"``, or a function of the
    split such as :func:`letter_rows`), else ``[]``; the note (printed once
    per dataset) names the dataset, what takes its place and the one command
    that fetches it.  Nothing is downloaded unless ``$SKETCHODE_DOWNLOAD``
    allows it (the default; the tests set it to ``0``).
    """
    from sketchode.data import load

    try:
        return load(name, split=split, **load_kw)
    except FileNotFoundError as e:
        first = re.split(r"\. |; ", str(e))[0]
        if instead is None:
            fallback, what = [], "what needs it is left out"
        elif isinstance(instead, str):
            fallback, what = load(instead, split=split), f"the embedded {instead} stand in for it"
        else:
            fallback = instead(split)
            label = getattr(instead, "__name__", "a stand-in").replace("_", " ")
            what = f"{label} (embedded) stand in for it"
        if name not in _reported:
            _reported.add(name)
            print(f"[no real data] {name} is not available here ({first}); {what}. "
                  f"Fetch it with: {fetch_command(name)}")
        return fallback


def have(*names: str, shows: str = "") -> bool:
    """Whether the files of every named dataset are here; if not, a note says what is skipped.

    A chapter guards a cell that needs real data with ``if have("sheep",
    shows="..."):``.  Files are fetched as :func:`sketchode.data.load` would
    (downloaded only where ``$SKETCHODE_DOWNLOAD`` allows it); when one is
    missing the note names ``shows`` (what the cell would have shown) and the
    command that fetches the datasets.
    """
    from sketchode.data.datasets import fetch, files_for

    missing = []
    for name in names:
        try:
            for rel in files_for(name):
                fetch(rel)
        except FileNotFoundError:
            missing.append(name)
    if missing:
        print(f"[no real data] not shown here: {shows or 'this cell'} "
              f"(needs {', '.join(missing)}). "
              f"Fetch with: {fetch_command(*missing)}")
    return not missing


def letter_rows(split: str = "train", seed: int = 0) -> list:
    """Embedded stand-in for many-stroke doodles: rows of 2 to 6 embedded letters, left to right.

    Each row joins consecutive drawings of ``load("letters", split)``, one
    letter width apart, in time one after the other (300 ms between letters):
    2 to 24 strokes per drawing, where a letter has 1 to 4.  Chapter 14 uses
    them in place of the sheep when the data root is absent.  Labelled by
    their letters (``"ABD"``); deterministic.
    """
    import numpy as np

    from sketchode.data import Sketch, load

    letters = load("letters", split=split)
    rng = np.random.default_rng(seed)
    rows, i = [], 0
    while True:
        k = int(rng.integers(2, 7))
        group = letters[i: i + k]
        if len(group) < k:
            return rows
        i += k
        strokes, t0 = [], 0.0
        for j, letter in enumerate(group):
            strokes += [st + np.array([1.0 * j, 0.0, t0]) for st in letter.strokes]
            t0 = strokes[-1][-1, 2] + 300.0
        rows.append(Sketch(strokes, label="".join(s.label for s in group), timed=True,
                           key=f"letter-rows:{split}:{len(rows)}"))


def repo_path(path) -> str:
    """``path`` relative to the repository (``data/checkpoints/digits.pt``), to print.

    Anything outside the repository, or not a path (``"trained"``), is returned as given.
    """
    import sketchode

    root = Path(sketchode.__file__).resolve().parents[1]
    if not Path(path).exists():
        return str(path)
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)
