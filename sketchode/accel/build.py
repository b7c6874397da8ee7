"""Compiling and loading the C++ stage loops (``csrc/fused_rk4.cpp``): the cache, its key, the lock.

The build goes to ``<root>/<key[:16]>/`` where ``<root>`` is :func:`cache_root`
and the key is :func:`cache_key`: the sha256 of the C++ source *text*, the torch
build, the Python ABI and the compiler settings.  The checkout's path is not
part of it, and the source is copied into the build folder before compiling,
so every checkout and clone of the same source on one machine shares one build
(ninja's record of the compile commands names the copy, not the checkout).
The extension module's name is derived from the key as well
(``sketchode_accel_<key[:16]>``), so builds of different sources never clash.

A complete build leaves ``build.json`` beside the ``.so``; a later process
that finds it imports the ``.so`` directly (no compiler, no ninja, no
``torch.utils.cpp_extension``).  Processes that find no complete build take an
exclusive lock on the build folder (``fcntl.flock``) before compiling, so
concurrent first uses compile once and the others wait for that build.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import sys
import sysconfig
import threading
import time
from pathlib import Path

__all__ = ["ENV_DIR", "SOURCE", "cache_root", "cache_key", "build_dir", "module_name", "is_built", "load",
           "error"]

#: environment variable naming the cache root (default: ``$XDG_CACHE_HOME/sketchode/accel``,
#: else ``~/.cache/sketchode/accel``)
ENV_DIR = "SKETCHODE_ACCEL_DIR"
#: the C++ source of the stage loops (shipped with the package)
SOURCE = Path(__file__).with_name("csrc") / "fused_rk4.cpp"
CFLAGS = ("-O3", "-fopenmp")
LDFLAGS = ("-fopenmp",)
#: bumped when the build recipe changes in a way the key does not otherwise see
RECIPE = 1
MARKER = "build.json"
_LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"

_state = {"tried": False, "module": None, "error": None, "built": False, "seconds": None, "dir": None}
_mutex = threading.Lock()


def cache_root() -> Path:
    """The folder that holds the builds: ``$SKETCHODE_ACCEL_DIR``, else the user cache's ``sketchode/accel``."""
    env = os.environ.get(ENV_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "sketchode" / "accel"


def _torch_build() -> str:
    import torch

    abi = getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", None)
    return f"torch {torch.__version__} git {getattr(torch.version, 'git_version', '?')} cxx11abi {abi}"


def _python_abi() -> str:
    return (f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')} "
            f"{sys.platform} {platform.machine()}")


def _compiler() -> tuple:
    return (f"cxx {os.environ.get('CXX', 'c++')}", "cflags " + " ".join(CFLAGS), "ldflags " + " ".join(LDFLAGS))


def cache_key(source: bytes | str | None = None, torch_build: str | None = None, python_abi: str | None = None,
              compiler: tuple | None = None) -> str:
    """The sha256 (hex) naming a build: of the source text, the torch build, the Python ABI and the compiler settings.

    Each argument defaults to this installation's: the text of :data:`SOURCE`,
    torch's version (with its git hash and C++ ABI), the interpreter's
    extension ABI and platform, and ``$CXX`` with the compile and link flags.
    Where the source file lies (which checkout) is deliberately not part of it.
    """
    if source is None:
        source = SOURCE.read_bytes()
    if isinstance(source, str):
        source = source.encode("utf-8")
    parts = (f"recipe {RECIPE}", "source " + hashlib.sha256(source).hexdigest(),
             torch_build if torch_build is not None else _torch_build(),
             python_abi if python_abi is not None else _python_abi(),
             *(compiler if compiler is not None else _compiler()))
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8") + b"\0")
    return h.hexdigest()


def module_name(key: str | None = None) -> str:
    """The extension module's name for a key (``sketchode_accel_`` and the key's first 16 hex digits)."""
    return f"sketchode_accel_{(key or cache_key())[:16]}"


def build_dir(key: str | None = None) -> Path:
    """The build folder of a key (default: this installation's) under :func:`cache_root`."""
    return cache_root() / (key or cache_key())[:16]


def _library(key: str) -> Path:
    return build_dir(key) / f"{module_name(key)}{_LIB_EXT}"


def is_built(key: str | None = None) -> bool:
    """Whether a complete build for ``key`` (default: this installation's) is in the cache; builds nothing."""
    key = key or cache_key()
    try:
        marker = json.loads((build_dir(key) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("key") == key and _library(key).is_file()


def error() -> str | None:
    """Why the last :func:`load` in this process failed (``None`` when it did not fail or has not run)."""
    return _state["error"]


def load():
    """The compiled stage loops as a module, built into the cache first if needed; ``None`` where they cannot be built.

    Tried once per process (later calls return the same module, or ``None``
    with the reason in :func:`error`).  Nothing calls this at import: the
    fused solver calls it at the first solve that uses the C++ loops, and
    ``python -m sketchode build-accel`` calls it on purpose.
    """
    with _mutex:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["module"] = _load_or_build()
            except Exception as err:  # no compiler, no ninja, headers missing: the caller falls back
                _state["error"] = f"{type(err).__name__}: {err}"
        return _state["module"]


def _import(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _load_or_build():
    import torch  # noqa: F401  (the extension links against the libraries torch has loaded)

    source = SOURCE.read_bytes()
    key = cache_key(source)
    folder, name, lib = build_dir(key), module_name(key), _library(key)
    _state["dir"] = str(folder)
    if is_built(key):
        try:
            return _import(name, lib)
        except ImportError:  # a damaged build: made again below
            pass
    folder.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder / ".build.lock", folder):
        if is_built(key):  # another process built it while this one waited
            try:
                return _import(name, lib)
            except ImportError:
                pass
        (folder / MARKER).unlink(missing_ok=True)
        # torch's own lock file, left behind by a build that was killed, would make cx.load wait forever;
        # while this process holds the folder's lock no other build can be running, so it is stale
        (folder / "lock").unlink(missing_ok=True)
        copy = folder / SOURCE.name  # the build compiles this copy: the same path for every checkout
        if not copy.is_file() or copy.read_bytes() != source:
            tmp = copy.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(source)
            os.replace(tmp, copy)
        print(f"sketchode: compiling the C++ RK4 loops once for this machine into {folder} "
              "(SKETCHODE_LOOPS=python skips this)", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with _ninja_on_path():
            from torch.utils import cpp_extension as cx

            module = cx.load(name=name, sources=[str(copy)], extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),
                             build_directory=str(folder), verbose=False)
        seconds = time.perf_counter() - t0
        sys.modules.setdefault(name, module)
        marker = {"key": key, "module": name, "library": lib.name, "source_sha256": hashlib.sha256(source).hexdigest(),
                  "torch": _torch_build(), "python": _python_abi(), "compiler": list(_compiler()),
                  "seconds": round(seconds, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
        tmp = folder / f"{MARKER}.tmp{os.getpid()}"
        tmp.write_text(json.dumps(marker, indent=1), encoding="utf-8")
        os.replace(tmp, folder / MARKER)
        _state["built"], _state["seconds"] = True, seconds
        return module


@contextlib.contextmanager
def _file_lock(path: Path, folder: Path):
    """An exclusive lock on ``path`` for the block (``fcntl.flock``; none where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's own lock file in the build folder still serialises the compile
        yield
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"sketchode: waiting for another process that is compiling the C++ loops in {folder}",
                  file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _ninja_on_path():
    """``PATH`` with the ``ninja`` wheel's binary folder in front, for the block only (restored after it).

    torch's builder runs ``ninja`` by name from ``os.environ["PATH"]`` and has no
    option for its location; the ``ninja`` wheel (a dependency) installs its
    binary beside the interpreter, which need not be on ``PATH``.  Only a cold
    build runs this; when ``ninja`` is already on ``PATH`` nothing changes.
    """
    if shutil.which("ninja"):
        yield
        return
    try:
        import ninja

        bin_dir = ninja.BIN_DIR
    except (ImportError, AttributeError):
        yield
        return
    old = os.environ.get("PATH")
    os.environ["PATH"] = bin_dir + os.pathsep + (old or "")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old
