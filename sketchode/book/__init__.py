"""The book's wing: plumbing the chapters use and would not show (never imported by the library).

One module per chapter will live here; this package module holds what
several chapters share.
"""

from __future__ import annotations

__all__ = ["real_data"]


def real_data(name: str, split: str = "train", **load_kw) -> list:
    """``sketchode.data.load(name, split)``, or ``[]`` with a one-line note when its files are absent.

    Chapters that show real drawings call this so that they still run top to
    bottom without a data root (CI without the shared data, a reader who has
    downloaded nothing): the note names the dataset, the figures that are left
    out and the one command that fetches the files.  Nothing is downloaded
    unless ``$SKETCHODE_DOWNLOAD`` allows it (the default; the tests set it
    to ``0``).
    """
    from sketchode.data import load

    try:
        return load(name, split=split, **load_kw)
    except FileNotFoundError as e:
        first = str(e).split(". ")[0].split("; ")[0]
        cmd = f"python -m sketchode fetch '{name}'" if (" " in name or "," in name) else \
            f"python -m sketchode fetch {name}"
        print(f"[no real data] {name} ({split}) is not available here ({first}); the cells that show it are "
              f"skipped. Fetch it with: {cmd}")
        return []
