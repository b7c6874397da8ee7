"""Checkpoints: save and restore models and training state (the library's own contract).

No paper section prescribes a file format; this module fixes the one used by
:func:`sketchode.training.fit.fit`, the command line and the book (chapter 8).  A
checkpoint is one file written by :func:`torch.save` holding a plain dict

==================  ======================================================
``format``          ``"sketchode-checkpoint"``
``format_version``  ``1`` (:data:`FORMAT_VERSION`); readers refuse newer ones
``package_version`` ``sketchode.__version__`` of the writer
``class``           the model's class name (``"RNNAutoencoder"``, ...)
``config``          ``model.config``: JSON-able constructor arguments
``state_dict``      ``model.state_dict()``
``optimizer``       ``optimizer.state_dict()`` or ``None``
``scheduler``       ``scheduler.state_dict()`` or ``None``
``train_state``     a dict of plain values (step, epoch, history, ...) or ``{}``
==================  ======================================================

Design rules
------------
* **Loadable with** ``torch.load(path, weights_only=True)``: the file holds
  only tensors, dicts, lists, tuples, strings, numbers, booleans and ``None``
  (checked before writing; numpy scalars are turned into Python numbers, any
  other object is refused with the place where it was found).  Loading never
  runs pickled code.
* **Atomic writes**: the file is written to a temporary file in the same
  folder, flushed and ``fsync``-ed, then moved over the target with
  :func:`os.replace`.  A crash while writing leaves the previous checkpoint
  intact and removes the temporary file.  A process killed outright
  (``kill -9``, power loss) cannot clean up: its temporary file
  ``.NAME.<host>-<pid>.XXXX.tmp`` (host tag and process id in the name) is
  removed by the next save to the same path once its writer is dead (or its
  pid has been reused), or after an hour without writes when the writer
  cannot be checked (another host, a name without a pid); a live writer's
  temporary file is never touched (:func:`stale_temp_files`).
* **Clear failures**: :func:`load_checkpoint` says what went wrong: an empty,
  truncated or corrupt file (zip CRCs are checked, torch does not), CUDA
  asked for on a machine without it, a file torch did not write, pickled
  objects, a newer format.
* **Rebuilding a model** needs no pickled class: ``class`` is looked up in a
  registry of names (built-in models are imported lazily, user classes are
  added with :func:`register_model`) and the model is rebuilt with
  ``cls.from_config(config)``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import socket
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketchode._version import __version__
from sketchode.models.protocol import model_class, register_model  # noqa: F401  (the one registry, re-exported)

FORMAT = "sketchode-checkpoint"
FORMAT_VERSION = 1

# ------------------------------------------------------------ plain payload
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy scalars turned into Python numbers; TypeError for anything not weights_only-safe."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(
                    f"save_checkpoint: {where} has a key {k!r} of type {type(k).__name__}; use str or int keys"
                )
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(
        f"save_checkpoint: {where} is a {type(obj).__module__}.{type(obj).__name__}, which "
        "torch.load(weights_only=True) cannot read; store tensors, numbers, strings, lists or dicts"
    )


def _major(version: str) -> int | None:
    m = re.match(r"\s*(\d+)", str(version))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------- save
#: A temporary file older than this (seconds since its last write) whose writer cannot be checked is stale.
STALE_AFTER_S = 3600.0


def _host_tag() -> str:
    """8 hex digits naming this machine in temporary-file names (pids are only meaningful per host)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when that cannot be told)."""
    if pid <= 0:
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: exists, another user's
        return True
    return True


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, to about a second), where ``/proc`` tells; else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])  # field 22, starttime (clock ticks after boot)
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


_TEMP_NEW = re.compile(r"([0-9a-f]{8})-(\d+)\.[A-Za-z0-9_]+")  # <host>-<pid>.<random>
_TEMP_OLD = re.compile(r"[a-z0-9_]{8}")  # tempfile's random part alone (files of older versions)


def stale_temp_files(path, now: float | None = None) -> list[Path]:
    """Temporary files of earlier :func:`atomic_save` calls to ``path`` that no live writer owns.

    Candidates are ``.NAME.<host>-<pid>.<random>.tmp`` (and, from older
    versions, ``.NAME.<random>.tmp``) beside ``path``; temporary files of
    other paths never match.  One is stale when

    * it was written on this host by a process that no longer exists;
    * it was last written more than :data:`STALE_AFTER_S` seconds ago and
      its writer cannot be checked (another host, no pid in the name);
    * it was last written more than :data:`STALE_AFTER_S` seconds ago and
      the process now holding its pid started after that (the pid was
      reused, e.g. by a restarted container; Linux ``/proc`` only).

    The temporary file of a live writer on this host (this process included)
    is never stale.
    """
    path = Path(path)
    head, tail = f".{path.name}.", ".tmp"
    now = time.time() if now is None else now
    host = _host_tag()
    out = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return out
    for e in entries:
        name = e.name
        if not (name.startswith(head) and name.endswith(tail)) or len(name) <= len(head) + len(tail):
            continue
        middle = name[len(head):-len(tail)]
        m = _TEMP_NEW.fullmatch(middle)
        if m is None and not _TEMP_OLD.fullmatch(middle):
            continue
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if m is not None and m.group(1) == host:
            pid = int(m.group(2))
            alive = pid == os.getpid() or _pid_alive(pid)
            if alive and age > STALE_AFTER_S:
                started = _start_time(pid)
                alive = started is None or started <= now - age + 2.0  # else: not the writer, a reused pid
            if not alive:
                out.append(Path(e.path))
        elif age > STALE_AFTER_S:
            out.append(Path(e.path))
    return sorted(out)


def _remove_stale_temps(path: Path) -> None:
    for f in stale_temp_files(path):
        try:
            os.unlink(f)
        except OSError:  # gone already, or not ours to remove: leave it
            pass


def atomic_save(payload, path) -> Path:
    """``torch.save(payload)`` to ``path`` atomically (:func:`atomic_write`).

    Used for checkpoints and for recognizers (:mod:`sketchode.evaluation.recognition`).
    """
    return atomic_write(path, lambda f: torch.save(payload, f))


def atomic_write(path, write, binary: bool = True) -> Path:
    """Write ``path`` atomically: ``write(file)`` into a temp file in the same folder, fsync, ``os.replace``.

    A crash mid-write leaves the previous file intact and no temp file behind.
    The temp file is ``.NAME.<host>-<pid>.XXXX.tmp``; before writing, the
    temp files of earlier saves to ``path`` whose writer was killed are
    removed (:func:`stale_temp_files`; a live writer's are kept).  Used for
    checkpoints, recognizers and run logs (:mod:`sketchode.training.runlog`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_host_tag()}-{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # make the rename itself durable where the platform allows it
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    train_state: dict | None = None,
) -> Path:
    """Write ``model`` (and optionally optimiser, scheduler, training state) to ``path`` atomically.

    The payload is the dict described in the module docstring.  It is checked
    to be readable with ``torch.load(weights_only=True)``, written to a
    temporary file next to ``path``, flushed and ``fsync``-ed, and moved over
    ``path`` with :func:`os.replace`: readers see either the old file or the
    complete new one, never a partial file, and a failure while writing
    removes the temporary file and leaves the old checkpoint untouched.
    Missing parent folders are created.  Returns the path.
    """
    path = Path(path)
    if not hasattr(model, "config"):
        raise TypeError(f"save_checkpoint({path}): {type(model).__name__} has no .config (constructor arguments)")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "class": type(model).__name__,
        "config": _plain(dict(model.config), "model.config"),
        "state_dict": _plain(dict(model.state_dict()), "model.state_dict()"),
        "optimizer": None if optimizer is None else _plain(optimizer.state_dict(), "optimizer.state_dict()"),
        "scheduler": None if scheduler is None else _plain(scheduler.state_dict(), "scheduler.state_dict()"),
        "train_state": _plain(dict(train_state or {}), "train_state"),
    }
    return atomic_save(payload, path)


# --------------------------------------------------------------------- load
def _zip_problem(path: Path) -> str | None:
    """What is wrong with a torch zip-format file (truncated, bad CRC) as a sentence, or None when it is sound."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        what = f"is truncated or corrupt ({size} bytes, not a readable zip archive: {e})"
    else:
        if bad is None:
            return None
        what = f"is corrupt: its record {bad!r} fails the CRC check ({size} bytes)"
    return f"{what}; an interrupted save or copy, or a failing disk? It cannot be trusted: use another checkpoint"


def _why_unreadable(path: Path, error: Exception, map_location) -> str:
    """A sentence saying why ``torch.load(path, weights_only=True)`` raised ``error``."""
    msg = str(error)
    if path.stat().st_size == 0:
        return "is empty (0 bytes): the save or copy that made it was interrupted; it holds no checkpoint"
    with open(path, "rb") as f:
        head = f.read(4)
    zipped = head == b"PK\x03\x04"  # torch's format since 1.6
    problem = _zip_problem(path) if zipped else None
    if problem is not None:
        return problem
    first = msg.strip().splitlines()[0][:300] if msg.strip() else type(error).__name__
    if "CUDA" in msg:
        if not torch.cuda.is_available():
            sound = "the file is intact (its CRCs check), but " if zipped else ""
            return (f"could not be loaded with map_location={map_location!r}: {sound}CUDA is not available on "
                    "this machine (torch.cuda.is_available() is False). Load it with map_location=\"cpu\" "
                    "(on the command line: --device cpu)")
        return (f"could not be put on the device map_location={map_location!r} asks for ({first}); "
                "choose a device this machine has, or map_location=\"cpu\" (--device cpu)")
    if zipped:
        if "version" in msg and any(w in msg for w in ("newer", "maximum supported", "too old")):
            return f"was written by a newer PyTorch than this one ({torch.__version__}); upgrade torch ({first})"
        if isinstance(error, pickle.UnpicklingError):
            m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
            what = f" (it names {m.group(1)})" if m else ""
            return ("is not a sketchode checkpoint: it holds pickled Python objects that "
                    f"torch.load(weights_only=True) refuses to run{what}; a sketchode checkpoint holds only "
                    "tensors and plain values")
        return f"is a torch file that could not be read ({type(error).__name__}: {first})"
    if head[:1] == b"\x80":  # a pickle: torch's legacy format, or a plain pickle
        if isinstance(error, EOFError) or any(w in msg for w in ("truncated", "EOF", "corrupted")):
            return (f"is truncated ({path.stat().st_size} bytes: the pickle ends early); an interrupted save or "
                    "copy? It cannot be recovered: use another checkpoint")
        return ("is not a sketchode checkpoint: a pickle (torch's legacy format or plain Python) that "
                f"torch.load(weights_only=True) cannot read ({type(error).__name__}: {first})")
    return (f"is not a sketchode checkpoint: it was not written by torch.save (it starts with {head!r}; "
            "a sketchode checkpoint is a zip archive, starting with b'PK\\x03\\x04')")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read and validate a checkpoint with ``torch.load(weights_only=True)``; returns the payload dict.

    Raises FileNotFoundError when ``path`` does not exist, and ValueError
    naming ``path`` and saying what failed: the file is empty, truncated or
    corrupt (the zip records' CRCs are checked, which ``torch.load`` does
    not do), CUDA was asked for where it is not available (use
    ``map_location="cpu"``, ``--device cpu``), the file was not written by
    ``torch.save`` or holds something other than a sketchode checkpoint,
    it has a newer ``format_version`` than this library reads, or it was
    written by a newer major version of the package.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for foreign files
        raise ValueError(f"load_checkpoint: {path} {_why_unreadable(path, e, map_location)}") from e
    with open(path, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    problem = _zip_problem(path) if zipped else None  # torch.load does not check the CRCs
    if problem is not None:
        raise ValueError(f"load_checkpoint: {path} {problem}")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = f"format {ckpt.get('format')!r}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise ValueError(
            f"load_checkpoint: {path} is not a sketchode checkpoint (it holds {what}, expected format {FORMAT!r})"
        )
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"load_checkpoint: {path} has checkpoint format_version {version!r}, but sketchode "
            f"{__version__} reads format_version <= {FORMAT_VERSION}; upgrade sketchode"
        )
    theirs, ours = _major(ckpt.get("package_version", "")), _major(__version__)
    if theirs is not None and ours is not None and theirs > ours:
        raise ValueError(
            f"load_checkpoint: {path} was written by sketchode {ckpt['package_version']}, a newer major "
            f"version than this one ({__version__}); upgrade sketchode"
        )
    missing = [k for k in ("class", "config", "state_dict") if k not in ckpt]
    if missing:
        raise ValueError(f"load_checkpoint: {path} is a damaged sketchode checkpoint: missing {missing}")
    return ckpt


def load_model(path: str | os.PathLike, map_location="cpu") -> torch.nn.Module:
    """Rebuild the model stored at ``path`` (``cls.from_config(config)`` + weights), in eval mode.

    The class is looked up by name (:func:`model_class`): built-in models
    and classes added with :func:`register_model`.  The model is moved to
    ``map_location`` when it names a device.
    """
    ckpt = load_checkpoint(path, map_location=map_location)
    try:
        cls = model_class(ckpt["class"])
    except (ValueError, ImportError) as e:
        raise type(e)(f"load_model: {path}: {e}") from e
    model = cls.from_config(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()


def config_differences(a: dict, b: dict, names: tuple[str, str] = ("checkpoint", "model")) -> list[str]:
    """Lines ``"key: <names[0]> va, <names[1]> vb"`` for every key whose values differ (sorted by key)."""
    absent = "<absent>"
    out = []
    for k in sorted(set(a) | set(b), key=str):
        va, vb = a.get(k, absent), b.get(k, absent)
        if va != vb:
            out.append(f"{k}: {names[0]} {va!r}, {names[1]} {vb!r}")
    return out


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load the weights stored at ``path`` into the existing ``model``; returns ``model``.

    Refuses (ValueError naming ``path``) a checkpoint of another class or
    with another ``config``, listing every differing key with both values
    (``"d: checkpoint 64, model 96"``), before any weight is touched.  The
    model's train/eval mode and device are unchanged.
    """
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    ckpt = load_checkpoint(path, map_location=device)
    problems = []
    if ckpt["class"] != type(model).__name__:
        problems.append(f"class: checkpoint {ckpt['class']}, model {type(model).__name__}")
    problems += config_differences(ckpt["config"], dict(getattr(model, "config", {})))
    if problems:
        raise ValueError(f"load_weights: {path} does not match the model: " + "; ".join(problems))
    model.load_state_dict(ckpt["state_dict"])
    return model


__all__ = [
    "atomic_save",
    "stale_temp_files",
    "STALE_AFTER_S",
    "FORMAT",
    "FORMAT_VERSION",
    "register_model",
    "model_class",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "config_differences",
]
