"""Shipped checkpoints and results, in a checkout or an installed wheel (chapter 0, "How to run").

The repository ships trained checkpoints (``data/checkpoints/<name>.pt`` with
the run log ``<name>.json`` beside each) and experiment results
(``data/results/<name>.json``).  A checkout (or an editable install) has them
in its ``data/`` folder and uses them as they are, with no network access.
An installed wheel has no ``data/`` folder: there :func:`fetch` downloads the
file from the repository (:data:`BASE_URL`, the ``repository`` of
``_config.yml``) into the user cache (:func:`cache_dir`), with a SHA-256
check against the registry that ships with the package
(``sketchode/data/registry/artifacts.txt``, one line per file under
``data/checkpoints`` and ``data/results``), saying what it downloads.

With ``SKETCHODE_DOWNLOAD=0`` (:func:`sketchode.settings.downloads_allowed`;
the test suite sets it) a file that is neither in the checkout nor in the
cache raises :class:`FileNotFoundError` naming the file, its URL and the
command that fetches it.

Whoever adds, retrains or removes a shipped file regenerates the registry::

    python -c "from sketchode.pretrained import write_registry; write_registry()"

(``tests/test_artifacts.py`` fails while the registry and ``data/`` disagree.)
"""

from __future__ import annotations

import functools
import os
import sys
import urllib.parse
from importlib import resources
from pathlib import Path

from sketchode.settings import downloads_allowed

__all__ = ["REPOSITORY_URL", "BRANCH", "BASE_URL", "KINDS", "checkout_data_dir", "cache_dir", "registry",
           "url_for", "find", "fetch", "checkpoint", "result", "registry_lines", "write_registry"]

#: ``repository.url`` and ``repository.branch`` of ``_config.yml`` (a test checks they agree)
REPOSITORY_URL = "https://github.com/sketchode-book/sketchode-book"
BRANCH = "main"
#: the shipped files are downloaded from ``BASE_URL + "checkpoints/digits.pt"`` and so on
BASE_URL = f"{REPOSITORY_URL}/raw/{BRANCH}/data/"
#: the folders of ``data/`` that hold shipped artifacts
KINDS = ("checkpoints", "results")
REGISTRY = "registry/artifacts.txt"
_FETCH = "python -c \"from sketchode.pretrained import fetch; fetch('{rel}')\""


def checkout_data_dir() -> Path:
    """The ``data/`` folder of the checkout this package runs from (absent in an installed wheel)."""
    return Path(__file__).resolve().parents[1] / "data"


def cache_dir() -> Path:
    """Where downloaded artifacts go: ``$SKETCHODE_CACHE/artifacts``, else the user cache's (``~/.cache/sketchode/artifacts``)."""
    env = os.environ.get("SKETCHODE_CACHE")
    if env:
        return Path(env).expanduser() / "artifacts"
    from sketchode.settings import default_cache

    return default_cache() / "artifacts"


def _normalise(rel) -> str:
    rel = str(rel).replace(os.sep, "/").removeprefix("data/")
    parts = rel.split("/")
    if rel.startswith("/") or ".." in parts or len(parts) != 2 or parts[0] not in KINDS:
        raise ValueError(f"expected a shipped artifact as 'checkpoints/NAME.pt', 'checkpoints/NAME.json' or "
                         f"'results/NAME.json', got {rel!r}")
    return rel


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, tuple[str, int]]:
    """``{"checkpoints/digits.pt": (sha256, size in bytes), ...}``: every shipped artifact, read from the package."""
    text = resources.files("sketchode.data").joinpath(REGISTRY).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, size, rel = line.split(None, 2)
        out[rel] = (digest.lower(), int(size))
    return out


def url_for(rel) -> str:
    """The download URL of a shipped artifact (``"checkpoints/digits.pt"``)."""
    return BASE_URL + urllib.parse.quote(_normalise(rel))


def _sha256(path: Path) -> str:
    from sketchode.data.datasets import _sha256_file

    return _sha256_file(path)


#: cached files whose sha256 matched the registry: (path, size, mtime_ns)
_VERIFIED: set[tuple[str, int, int]] = set()


def _cached_ok(path: Path, digest: str) -> bool:
    if not path.is_file():
        return False
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return True
    if _sha256(path) != digest:
        return False
    _VERIFIED.add(key)
    return True


def find(rel) -> Path | None:
    """The local copy of a shipped artifact, or None; never downloads.

    The checkout's ``data/<rel>`` when present (used as it is), else the
    user cache's copy when its SHA-256 matches the registry.
    """
    rel = _normalise(rel)
    local = checkout_data_dir() / rel
    if local.is_file():
        return local
    known = registry().get(rel)
    if known is not None and _cached_ok(cache_dir() / rel, known[0]):
        return cache_dir() / rel
    return None


def fetch(rel, download: bool | None = None) -> Path:
    """Path of a shipped artifact: the checkout's, the cached one, or downloaded into the cache.

    ``rel`` is relative to ``data/`` (``"checkpoints/digits.pt"``,
    ``"results/ablation.json"``; a leading ``data/`` is accepted).  A
    checkpoint's run log (``.json`` beside the ``.pt``) is fetched with it.
    ``download`` None follows ``$SKETCHODE_DOWNLOAD``; False never downloads.
    Raises :class:`FileNotFoundError` for a file that is not shipped, and for
    a shipped one that is not here while downloads are off (naming its URL and
    the command that fetches it); :class:`ValueError` when the downloaded file
    does not have the registry's SHA-256.
    """
    rel = _normalise(rel)
    got = _fetch_one(rel, download)
    if rel.endswith(".pt"):
        log = rel[: -len(".pt")] + ".json"
        if log in registry() and find(log) is None:
            _fetch_one(log, download)
    return got


def _fetch_one(rel: str, download: bool | None) -> Path:
    found = find(rel)
    if found is not None:
        return found
    known = registry().get(rel)
    if known is None:
        raise FileNotFoundError(f"{rel}: no such shipped file (not in {checkout_data_dir()}, not in the registry "
                                f"sketchode/data/{REGISTRY})")
    digest, size = known
    url = url_for(rel)
    dest = cache_dir() / rel
    allowed = downloads_allowed() if download is None else bool(download)
    if not allowed:
        why = "downloads are off (SKETCHODE_DOWNLOAD=0)" if download is None else "download=False"
        raise FileNotFoundError(
            f"{rel} is shipped with the repository but is not in this installation ({checkout_data_dir()} has no "
            f"such file) nor in the cache {dest.parent}, and {why}. Fetch it with: SKETCHODE_DOWNLOAD=1 "
            f"{_FETCH.format(rel=rel)}  (or download {url} to {dest}, sha256 {digest})")
    from sketchode.data.datasets import fetch_url

    print(f"sketchode: {rel} is not in this installation; downloading it ({size / 1e6:.1f} MB) from {url} "
          f"into {dest.parent}", file=sys.stderr)
    try:
        path = fetch_url(url, dest, digest)
    except ValueError as e:  # pooch: the file on the branch is not the one this version of the package knows
        raise ValueError(f"{url} does not have the sha256 {digest} that this version of sketchode ships for {rel} "
                         f"(the file on {BRANCH!r} changed since): use the sketchode release that matches it, or a "
                         f"checkout of the repository. ({e})") from None
    st = path.stat()
    _VERIFIED.add((str(path), st.st_size, st.st_mtime_ns))
    return path


def _shipped(rel: str, download: bool | None) -> Path | None:
    if (checkout_data_dir() / rel).is_file() or rel in registry():
        return fetch(rel, download)
    return None


def checkpoint(name: str, download: bool | None = None) -> Path | None:
    """The shipped ``checkpoints/<name>.pt`` (with its run log), fetched as :func:`fetch` does; None when none is shipped.

    The checkout's ``data/checkpoints/<name>.pt``; in an installed wheel, which
    has no ``data/``, the copy in the user cache, downloaded (SHA-256 checked,
    with a message saying what) when missing.  A shipped checkpoint that cannot
    be had because downloads are off (``SKETCHODE_DOWNLOAD=0``, or
    ``download=False``) raises :class:`FileNotFoundError` naming the file, its
    URL and the command that fetches it.
    """
    return _shipped(f"checkpoints/{name}.pt", download)


def result(name: str, download: bool | None = None) -> Path | None:
    """The shipped ``results/<name>.json``, fetched as :func:`fetch` does; None when none is shipped."""
    return _shipped(f"results/{name}.json", download)


# ---------------------------------------------------------------- the registry
def registry_lines(data_dir=None) -> list[str]:
    """The registry of ``data_dir`` (default: the checkout's ``data/``): ``sha256  size  kind/name`` for every
    file under ``checkpoints/`` and ``results/`` (hidden and temporary files left out), sorted, with a header."""
    data_dir = Path(data_dir) if data_dir is not None else checkout_data_dir()
    lines = ["# sha256  bytes  path under data/ -- shipped checkpoints and results (sketchode.pretrained);",
             "# regenerate: python -c \"from sketchode.pretrained import write_registry; write_registry()\""]
    for kind in KINDS:
        folder = data_dir / kind
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".part")):
                lines.append(f"{_sha256(p)}  {p.stat().st_size}  {kind}/{p.name}")
    return lines


def write_registry(data_dir=None, out=None) -> Path:
    """Rewrite the registry (default: ``sketchode/data/registry/artifacts.txt`` of the checkout) from ``data_dir``."""
    out = Path(out) if out is not None else Path(__file__).resolve().parent / "data" / REGISTRY
    out.write_text("\n".join(registry_lines(data_dir)) + "\n", encoding="utf-8")
    registry.cache_clear()
    return out


#: The name the chapters and :func:`sketchode.book.budget.load_or_train` use (chapter 8).
shipped_checkpoint = checkpoint
