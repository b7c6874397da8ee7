"""Learning curves: quality against CPU hours, from a run's own log (chapter 9).

A training run writes a run log beside its checkpoint
(:mod:`sketchode.training.runlog`): a loss curve per epoch and weight snapshots at
doubling epochs.  :func:`quality_curve` scores every snapshot the way
chapter 9 scores a finished model (:func:`~sketchode.evaluation.scores.chamfer`,
:func:`~sketchode.evaluation.scores.retrieval_top1` and the recognition accuracy
of reconstructions) on a fixed set of test drawings, and puts the run's
CPU hours at that snapshot beside them: time-to-quality, the comparison of
SketchODE and the LSTM baseline a reader needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["load_snapshot", "quality_curve", "time_to"]


def load_snapshot(path, map_location="cpu") -> torch.nn.Module:
    """The model stored in a run-log snapshot (``class``, ``config``, ``state_dict``), in eval mode."""
    from sketchode.training.checkpoint import model_class

    blob = torch.load(path, map_location=map_location, weights_only=True)
    model = model_class(blob["class"]).from_config(blob["config"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def quality_curve(run_log, dataset: str | None = None, split: str = "test", limit: int | None = 1000,
                  root=None, recognizer=None, device=None) -> list[dict]:
    """Score every snapshot of the run whose log is ``run_log`` (the ``<checkpoint>.json`` file).

    Each point: ``epoch``, ``step``, ``cpu_h`` (the run's CPU hours when the
    snapshot was taken), ``val_loss`` and, on the first ``limit`` drawings of
    ``split``, ``chamfer``, ``chamfer_random``, ``retrieval_top1`` and
    ``accuracy`` / ``accuracy_data`` (with a recognizer for the dataset).
    ``dataset`` defaults to the one the log records.
    """
    from sketchode.evaluation.scores import evaluate_checkpoint, recognizer_for

    log_path = Path(run_log)
    log = json.loads(log_path.read_text(encoding="utf-8"))
    dataset = dataset or log.get("dataset")
    if not dataset:
        raise ValueError(f"quality_curve: {log_path} records no dataset; pass dataset=")
    folder = log_path.with_name(Path(log.get("checkpoint", log_path.stem + ".pt")).stem + ".snapshots")
    rec = recognizer if recognizer is not None else recognizer_for(dataset, root=root, train_if_missing=False)
    points = []
    for snap in sorted(log.get("snapshots", []), key=lambda s: s["epoch"]):
        path = folder / snap["file"]
        if not path.exists():
            raise FileNotFoundError(f"quality_curve: snapshot {path} listed in {log_path} is missing")
        model = load_snapshot(path)
        res = evaluate_checkpoint(model, dataset=dataset, split=split, root=root, recognizer=rec, limit=limit,
                                  device=device)
        points.append({"epoch": snap["epoch"], "step": snap["step"], "cpu_h": snap["cpu_h"],
                       "val_loss": snap.get("val_loss"), "n": res["n"], "loss": res["loss"],
                       "chamfer": res["chamfer"], "chamfer_random": res["chamfer_random"],
                       "retrieval_top1": res["retrieval_top1"], "accuracy": res.get("accuracy"),
                       "accuracy_data": res.get("accuracy_data")})
    return points


def time_to(points: list[dict], key: str, target: float, higher_is_better: bool = True) -> float | None:
    """CPU hours at the first point of a :func:`quality_curve` that reaches ``target`` on ``key`` (None if never)."""
    for p in sorted(points, key=lambda q: q["cpu_h"]):
        v = p.get(key)
        if v is not None and (v >= target if higher_is_better else v <= target):
            return p["cpu_h"]
    return None
