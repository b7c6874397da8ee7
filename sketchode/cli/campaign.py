"""One command that trains the real-drawings models within a time budget, for a borrowed GPU (chapter 9).

``python -m sketchode campaign --device cuda --minutes 10 --out-dir runs/gpu``
trains every job (a named config and a seed) for an equal share of the
budget at a large batch, writes each model's checkpoint (with its run log,
:mod:`sketchode.training.runlog`) into ``--out-dir`` and one JSON report: per job the
steps done, the median seconds per training step, the last training and
validation losses, the device and the hardware.  The checkpoints are scored
afterwards, on any machine, with ``python -m sketchode evaluate``.

The same command runs on a CPU at a tiny size (``--jobs tiny:0 --minutes
0.05``); the tests do exactly that.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["DEFAULT_JOBS", "parse_jobs", "run_campaign"]

#: The issue's models: real digits, Omniglot and sheep, SketchODE and the LSTM baseline, seed 0.
DEFAULT_JOBS = ("pendigits:0", "pendigits-rnn:0", "omniglot:0", "omniglot-rnn:0", "sheep:0", "sheep-rnn:0")


def parse_jobs(items) -> list[tuple[str, int]]:
    """``["pendigits:0", "sheep"]`` -> ``[("pendigits", 0), ("sheep", 0)]`` (configs checked)."""
    from sketchode.training.configs import get_config

    out = []
    for item in items:
        name, _, seed = str(item).partition(":")
        get_config(name)
        if seed and not seed.isdigit():
            raise ValueError(f"campaign: job {item!r}: the seed after ':' must be an integer >= 0")
        out.append((name, int(seed or 0)))
    if not out:
        raise ValueError("campaign: no jobs given")
    return out


def run_campaign(out_dir, minutes: float = 10.0, jobs=DEFAULT_JOBS, device=None, batch_size: int | None = None,
                 root=None, limit_train: int | None = None, val_size: int = 256, progress: bool = False) -> dict:
    """Train each job for ``minutes / len(jobs)`` minutes; returns (and writes) the report.

    ``batch_size`` defaults to 512 on CUDA and to each config's own batch
    elsewhere (the learning rate and schedule are the config's; the schedule
    period is one period over the job's share of time, estimated from its
    first steps).  ``limit_train`` keeps the first drawings only (tests).
    Jobs whose checkpoint exists are resumed for another share of time.
    """
    from sketchode.training.checkpoint import load_checkpoint
    from sketchode.training.configs import get_config
    from sketchode.data import load
    from sketchode.training.runlog import RunLog, _write_json, hardware
    from sketchode.training.fit import fit, pick_device, seed_everything

    if not minutes > 0:
        raise ValueError(f"campaign: minutes must be > 0, got {minutes!r}")
    jobs = parse_jobs(jobs)
    dev = pick_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    share = 60.0 * minutes / len(jobs)
    report = {"device": str(dev), "minutes": minutes, "hardware": hardware(), "jobs": []}
    for name, seed in jobs:
        cfg = get_config(name)
        seed_everything(seed)
        train = load(cfg.dataset, "train", root=root)
        if limit_train:
            train = train[: int(limit_train)]
        try:
            val = load(cfg.dataset, "valid", root=root)[:val_size]
        except ValueError:
            val = load(cfg.dataset, "test", root=root)[:val_size]
        kw = dict(cfg.train)
        kw["batch_size"] = int(batch_size or (512 if dev.type == "cuda" else kw.get("batch_size", 64)))
        ckpt = out / f"{name}-s{seed}.pt"
        resume = ckpt.exists()
        model = cfg.build()
        log = RunLog(ckpt, argv=["campaign", f"{name}:{seed}", f"--device {dev}", f"--minutes {minutes}"],
                     resume=resume, facts={"config": name, "dataset": cfg.dataset},
                     step_from=int(load_checkpoint(ckpt)["train_state"]["step"]) if resume else 0)
        steps_per_epoch = max(1, -(-len(train) // kw["batch_size"]))
        t0 = time.perf_counter()
        hist = fit(model, train, val=val, time_limit=share, device=dev, seed=seed, checkpoint=ckpt, resume=resume,
                   overwrite=not resume, progress=progress, callback=log.update, meta={"config": name, "dataset": cfg.dataset},
                   **kw)
        seconds = time.perf_counter() - t0
        done = [r for r in hist.records if r.get("step")]
        steps = done[-1]["step"] if done else 0
        first = int(log.command["step_from"])
        log.update(model, hist.last or {})
        report["jobs"].append({
            "job": f"{name}:{seed}", "config": name, "dataset": cfg.dataset, "checkpoint": ckpt.name,
            "batch_size": kw["batch_size"], "n_train": len(train), "steps": steps, "steps_this_run": steps - first,
            "epochs": round((steps) / steps_per_epoch, 3), "seconds": round(seconds, 2),
            "step_s": round(seconds / max(1, steps - first), 5), "train_loss": (hist.last or {}).get("train_loss"),
            "val_loss": (hist.last or {}).get("val_loss"), "stopped": hist.stopped,
        })
        _write_json(out / "campaign.json", report)
    return report

