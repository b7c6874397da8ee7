"""The library's settings read from the environment: the data root and downloads (chapter 0, "How to run").

``SKETCHODE_DATA``
    The data root: the folder under which dataset files are looked up, in the
    same relative layout as their public sources (``quickdraw-raw/face.ndjson``,
    ``sketchrnn/aaron_sheep.npz``, ...).  When unset, a per-user cache folder is
    used (``pooch.os_cache("sketchode")``, e.g. ``~/.cache/sketchode`` on Linux)
    and missing files with a known public URL are downloaded there.

``SKETCHODE_DOWNLOAD``
    ``0`` turns automatic downloads off: a missing dataset file raises
    :class:`FileNotFoundError` naming the command that fetches it
    (``python -m sketchode fetch NAME``) instead of downloading.  The test
    suite sets it, so running the tests never downloads anything.  Read at
    every call (:func:`downloads_allowed`).

The book's budget switch ``SKETCHODE_FAST`` is read by :mod:`sketchode.book.budget`.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SKETCHODE_DATA"
DOWNLOAD_ENV = "SKETCHODE_DOWNLOAD"

def downloads_allowed() -> bool:
    """False when ``SKETCHODE_DOWNLOAD`` is ``0``, ``false`` or ``no`` (read now, not at import)."""
    return os.environ.get(DOWNLOAD_ENV, "1").strip().lower() not in ("0", "false", "no")


def default_cache() -> Path:
    """The per-user cache folder used when no data root is given."""
    import pooch

    return Path(pooch.os_cache("sketchode"))


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: the argument, else ``$SKETCHODE_DATA``, else the user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return default_cache()
