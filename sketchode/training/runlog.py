"""The run log beside a checkpoint: every command of a run, its CPU time, its hardware, its curve (chapter 9).

A long training run is made of several commands (``train ... --resume``
after an interruption, a longer schedule, another machine).  Its checkpoint
holds the weights and the exact training state; the run log,
``<checkpoint>.json`` beside it, holds what a reader needs to judge the run:

``commands``
    one entry per invocation: the command line, when it started, the
    hardware (:func:`hardware`), its wall and CPU seconds and the steps it
    went from and to;
``total_cpu_s``, ``total_wall_s``
    summed over the commands (CPU time is the process's, all threads);
``curve``
    one point per epoch: epoch, step, training and validation loss and the
    run's CPU hours so far (the x axis of the learning curves of chapter 9);
``snapshots``
    weights kept at doubling epochs (1, 2, 4, ...) and every
    ``snapshot_every`` epochs, as ``<checkpoint>.snapshots/epoch-NNNNN.pt``
    (state dicts only, a few MB each), so quality measures that are too
    dear to compute during training (retrieval, recognition) can be drawn
    against CPU hours afterwards.  They are not meant to be committed.

The log is rewritten atomically after every epoch, so a run killed at any
point leaves a log that agrees with its last checkpoint up to one epoch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

__all__ = ["RunLog", "hardware", "log_path"]


def log_path(checkpoint) -> Path:
    """``runs/x.pt`` -> ``runs/x.json``."""
    return Path(checkpoint).with_suffix(".json")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """What ran the command: CPU model and count, the GPU when one is used, torch and its thread count."""
    import torch

    out = {"machine": platform.machine(), "cpu": _cpu_model(), "cpus": os.cpu_count(),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON, written atomically (:func:`sketchode.training.checkpoint.atomic_write`)."""
    from sketchode.training.checkpoint import atomic_write

    def write(f):
        json.dump(data, f, indent=1)
        f.write("\n")

    atomic_write(path, write, binary=False)


class RunLog:
    """The run log of the checkpoint ``checkpoint`` (see the module docstring).

    ``resume=True`` appends this command to the existing log (a missing or
    unreadable one starts afresh, saying so in ``note``); ``False`` starts a
    new log.  Call :meth:`update` after every epoch (it is a
    :func:`sketchode.training.fit.fit` callback).
    """

    def __init__(self, checkpoint, argv, resume: bool, facts: dict | None = None, snapshot_every: int = 25,
                 step_from: int = 0):
        self.checkpoint = Path(checkpoint)
        self.path = log_path(checkpoint)
        self.snapshot_dir = self.checkpoint.with_name(self.checkpoint.stem + ".snapshots")
        self.snapshot_every = int(snapshot_every)
        data = None
        if resume and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(data, dict) or not isinstance(data.get("commands"), list):
                    data = None
            except (OSError, ValueError):
                data = None
        if data is None:
            data = {"checkpoint": self.checkpoint.name, "commands": [], "curve": [], "snapshots": [],
                    "total_cpu_s": 0.0, "total_wall_s": 0.0}
            if resume:
                data["note"] = "the log of the earlier commands was missing or unreadable"
        data.update(facts or {})
        self.data = data
        self._cpu_before = float(data.get("total_cpu_s", 0.0))
        self._wall_before = float(data.get("total_wall_s", 0.0))
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        self.command = {"argv": [str(a) for a in argv],
                        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                        "hardware": hardware(), "cpu_s": 0.0, "wall_s": 0.0,
                        "step_from": int(step_from), "step_to": None}
        data["commands"].append(self.command)

    def cpu_hours(self) -> float:
        return (self._cpu_before + time.process_time() - self._cpu0) / 3600.0

    def update(self, model, record: dict) -> None:
        """Record this command's time so far and, for a finished epoch, a curve point (and maybe a snapshot)."""
        cpu = time.process_time() - self._cpu0
        wall = time.perf_counter() - self._wall0
        c = self.command
        c["cpu_s"], c["wall_s"] = round(cpu, 2), round(wall, 2)
        c["hardware"]["threads"] = _threads()
        step = record.get("step")
        if step is not None:
            c["step_to"] = int(step)
        self.data["total_cpu_s"] = round(self._cpu_before + cpu, 2)
        self.data["total_wall_s"] = round(self._wall_before + wall, 2)
        epoch = record.get("epoch")
        if record.get("complete") and epoch is not None:
            point = {"epoch": epoch, "step": step, "train_loss": record.get("train_loss"),
                     "val_loss": record.get("val_loss"), "cpu_h": round(self.cpu_hours(), 5)}
            self.data["curve"] = [p for p in self.data["curve"] if p["epoch"] < epoch] + [point]
            e = int(epoch)
            if model is not None and ((e & (e - 1)) == 0 or e % self.snapshot_every == 0):
                self._snapshot(model, point)
        _write_json(self.path, self.data)

    def _snapshot(self, model, point: dict) -> None:
        from sketchode.training.checkpoint import atomic_save

        name = f"epoch-{int(point['epoch']):05d}.pt"
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_save({"class": type(model).__name__, "config": dict(model.config), "state_dict": state,
                     "point": point}, self.snapshot_dir / name)
        self.data["snapshots"] = [s for s in self.data["snapshots"] if s["file"] != name]
        self.data["snapshots"].append({"file": name, **point})
