"""Grids of training runs: reconstruction (5.2, table 1; chapter 9), data efficiency and ablations (5.3; chapter 12).

Section 5.3 claims that SketchODE learns from less data than an RNN-RNN
model of the same size, and figure 5 (middle) that periodic activations
and Perlin augmentation both help.  Testing such claims takes many runs
(several data fractions, variants and seeds), so this module describes each
run by a small record (:class:`Run`), runs it exactly as
``python -m sketchode train`` would (:func:`run_one`, which also records
that command), scores it on the **whole** test split, and appends the
result to a JSON file after every run (:func:`run_grid`), so an interrupted
grid resumes where it stopped and a finished one is never recomputed.

Budgets are in optimiser steps, not seconds, so that a run gives the same
numbers on a loaded machine; the default step counts give both models about
the same wall time on one CPU thread (the LSTM's step is about 4x cheaper:
``python -m sketchode bench``), and every record keeps the measured seconds.
The learning-rate schedule is stretched over each run (``period`` = the run's
length in epochs), so every run anneals once to the floor whatever its data
fraction.

Command line: ``python -m sketchode experiment reconstruction|data-efficiency|ablation
--out FILE``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Run", "run_one", "run_grid", "data_efficiency_runs", "ablation_runs", "reconstruction_runs",
           "RECONSTRUCTION", "RECONSTRUCTION_METRICS", "reconstruction_table", "plot_reconstruction", "summarize", "GRIDS",
           "matched_jitter_sigma", "shipped_results", "load_results", "plot_data_efficiency", "plot_ablation"]

#: Perlin strength of the ablation's augmented variants (chapter 6's choice for unit-scale drawings).
PERLIN_SIGMA = 0.15


@dataclass(frozen=True)
class Run:
    """One training run of a grid: a named config, its overrides, data fraction, seed and budget."""

    name: str  # unique within a grid, e.g. "sketchode-f0.10-s1"
    config: str  # a name of :mod:`sketchode.training.configs`
    steps: int
    seed: int = 0
    fraction: float = 1.0
    model: dict = field(default_factory=dict)  # constructor overrides, e.g. {"activation": "tanh"}
    augment_sigma: float = 0.0
    augment_kind: str = "perlin"
    batch_size: int = 64
    tags: dict = field(default_factory=dict)  # free labels for tables: model, variant, ...

    def command(self, threads: int = 1) -> str:
        """The ``python -m sketchode train`` command that performs this run."""
        parts = ["python -m sketchode train", self.config, f"--steps {self.steps}", f"--seed {self.seed}"]
        if self.fraction < 1.0:
            parts.append(f"--fraction {self.fraction:g}")
        parts.append(f"--augment {self.augment_sigma:g}")
        if self.augment_sigma > 0 and self.augment_kind != "perlin":
            parts.append(f"--augment-kind {self.augment_kind}")
        for k, v in sorted(self.model.items()):
            parts.append(f"--set {k}={v}")
        parts += ["--period auto", "--val-size 0", f"--threads {threads}"]
        return " ".join(parts)


def auto_period(steps: int, n_train: int, batch_size: int) -> float:
    """Schedule period (epochs) that makes a run of ``steps`` steps exactly one period long."""
    return steps / math.ceil(n_train / batch_size)


def matched_jitter_sigma(sketches, sigma: float = PERLIN_SIGMA, n: int = 200, seed: int = 0) -> float:
    """Per-coordinate std of Gaussian jitter whose mean RMS displacement equals Perlin's at ``sigma``.

    Chapter 6's fair comparison: both augmentations move points by the same
    amount on average, one smoothly (Perlin), one independently per point.
    Averaged over the first ``n`` drawings; jitter of std ``s`` per coordinate
    displaces a point by ``s * sqrt(2)`` in RMS.
    """
    from sketchode.data.augment import displacement_rms, perlin
    from sketchode.data.sketch import prepare

    sk = prepare(list(sketches)[:n])
    if not sk:
        raise ValueError("matched_jitter_sigma: no drawings given")
    rms = [displacement_rms(s, perlin(s, sigma=sigma, seed=seed + i)) for i, s in enumerate(sk)]
    return float(statistics.fmean(rms) / math.sqrt(2.0))


def run_one(run: Run, root=None, threads: int | None = 1, test_limit: int | None = None, progress: bool = False,
            checkpoint=None, recognition: bool = False) -> dict:
    """Train ``run`` from scratch and score it on the test split; returns the JSON-able record.

    The record holds the run's fields, ``command`` (the equivalent CLI
    call), ``n_train``, ``train_seconds``, ``seconds_per_step``, the mean
    training loss of the last epoch and the test loss parts (``test``, over
    all test drawings unless ``test_limit``).  With ``recognition`` it also
    holds ``recognition``: :func:`sketchode.evaluation.scores.evaluate_checkpoint`'s
    chamfer distance and recognition accuracy of the reconstructions
    (chapter 9), exactly what ``python -m sketchode evaluate`` prints for the
    run's checkpoint.
    """
    from sketchode.training.configs import get_config
    from sketchode.data import load, subset
    from sketchode.training.fit import evaluate, fit, seed_everything

    cfg = get_config(run.config)
    train = subset(load(cfg.dataset, "train", root=root), run.fraction, seed=run.seed)
    test = load(cfg.dataset, "test", root=root)
    if test_limit:
        test = test[:test_limit]
    seed_everything(run.seed)
    model = cfg.build(**run.model)
    kw = dict(cfg.train)
    kw.update(batch_size=run.batch_size, augment_sigma=run.augment_sigma, augment_kind=run.augment_kind,
              period=auto_period(run.steps, len(train), run.batch_size))
    t0 = time.perf_counter()
    hist = fit(model, train, steps=run.steps, seed=run.seed, threads=threads, progress=progress,
               checkpoint=checkpoint, meta={"config": run.config, "dataset": cfg.dataset, "run": run.name},
               overwrite=True, **kw)  # a run missing from the results file is unfinished: its checkpoint is redone
    seconds = time.perf_counter() - t0
    import torch

    extra = {}
    if recognition:  # the test loss is part of what evaluate_checkpoint computes: scored once
        from sketchode.evaluation.scores import evaluate_checkpoint

        extra["recognition"] = rec = evaluate_checkpoint(model, cfg.dataset, root=root, limit=test_limit)
        res = {**{k.removeprefix("loss_"): v for k, v in rec.items() if k.startswith("loss_")},
               "total": rec["loss"], "n": rec["n"]}
    else:
        res = evaluate(model, test)
    return {
        **asdict(run),
        "command": run.command(threads or 1),
        "dataset": cfg.dataset,
        "n_train": len(train),
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / run.steps, 5),
        "last_train_loss": hist.last.get("train_loss") if hist.last else None,
        "test": {k: (float(v) if k != "n" else int(v)) for k, v in res.items()},
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        **extra,
    }


def _read(path: Path) -> dict:
    if path.exists():
        with open(path) as f:
            return json.load(f)
    return {"runs": []}


def _write_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _settings(rec: dict) -> dict:
    return {k: rec.get(k) for k in Run.__dataclass_fields__ if k not in ("name", "tags")}


def run_grid(runs, out, root=None, threads: int | None = 1, meta: dict | None = None, log=print, reuse=(),
             recognition: bool = False, checkpoint_dir=None) -> dict:
    """Run every :class:`Run` not yet in the JSON file ``out``, appending each result as it finishes.

    Returns the file's content (``{"meta": ..., "runs": [record, ...]}``).
    Runs already recorded (same ``name`` and same settings) are skipped; a
    recorded run whose settings differ raises, naming it, instead of mixing
    two grids in one file.  ``reuse`` lists other results files: a run whose
    training settings (everything but ``name`` and ``tags``) equal those of a
    record there is copied from it (marked ``reused_from``) instead of being
    trained again, e.g. the ablation's ``cos+none`` variant is the
    data-efficiency grid's SketchODE on 100 % of the data.
    ``recognition`` scores every run as :func:`run_one` does;
    ``checkpoint_dir`` keeps each run's trained model there as ``<name>.pt``.
    """
    out = Path(out)
    data = _read(out)
    if meta:
        data["meta"] = {**data.get("meta", {}), **meta}
    done = {r["name"]: r for r in data["runs"]}
    others = [(str(p), r) for p in reuse for r in _read(Path(p))["runs"]]
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("run_grid: run names must be unique")
    for i, run in enumerate(runs):
        if run.name in done:
            rec = done[run.name]
            differ = [k for k, v in asdict(run).items() if rec.get(k) != v]
            if differ:
                raise ValueError(f"run_grid: {out} already holds a run {run.name!r} with different {', '.join(differ)}")
            continue
        same = [(p, r) for p, r in others if _settings(r) == _settings(asdict(run))]
        if same:
            p, r = same[0]
            rec = {**r, **asdict(run), "reused_from": f"{p}#{r['name']}"}
            if log:
                log(f"[{i + 1}/{len(runs)}] {run.name}: reused {rec['reused_from']}")
            data["runs"].append(rec)
            _write_atomic(out, data)
            continue
        if log:
            log(f"[{i + 1}/{len(runs)}] {run.name}: {run.command(threads or 1)}")
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{run.name}.pt"
        rec = run_one(run, root=root, threads=threads, recognition=recognition, checkpoint=ckpt)
        if log:
            log(f"    test loss {rec['test']['total']:.5f} in {rec['train_seconds']:.0f} s")
        data["runs"].append(rec)
        _write_atomic(out, data)
    return data


def data_efficiency_runs(fractions=(0.1, 0.25, 0.5, 1.0), seeds=(0, 1, 2), ode_steps: int = 600,
                         rnn_steps: int = 2400) -> list[Run]:
    """Section 5.3's grid: SketchODE (``digits``) and the LSTM (``digits-rnn``) on nested data fractions."""
    runs = []
    for f in fractions:
        for s in seeds:
            runs.append(Run(f"sketchode-f{f:.2f}-s{s}", "digits", ode_steps, s, f, tags={"model": "SketchODE"}))
            runs.append(Run(f"rnn-f{f:.2f}-s{s}", "digits-rnn", rnn_steps, s, f, tags={"model": "LSTM-LSTM"}))
    return runs


def ablation_runs(seeds=(0, 1, 2), steps: int = 600, jitter_sigma: float | None = None, root=None) -> list[Run]:
    """Figure 5 (middle): the digits SketchODE with Perlin augmentation, without it, with jitter, and with tanh.

    ``jitter_sigma`` defaults to :func:`matched_jitter_sigma` on the training
    digits (the same mean displacement as Perlin at ``PERLIN_SIGMA``).
    """
    if jitter_sigma is None:
        from sketchode.data import load

        jitter_sigma = round(matched_jitter_sigma(load("digits", "train", root=root)), 4)
    variants = [  # cos+none last: it equals the data-efficiency grid's 100 % runs (reusable, see run_grid)
        ("cos+perlin", {}, PERLIN_SIGMA, "perlin"),
        ("cos+jitter", {}, jitter_sigma, "jitter"),
        ("tanh+perlin", {"activation": "tanh"}, PERLIN_SIGMA, "perlin"),
        ("cos+none", {}, 0.0, "perlin"),
    ]
    return [Run(f"{v}-s{s}", "digits", steps, s, 1.0, model, sig, kind, tags={"variant": v})
            for v, model, sig, kind in variants for s in seeds]


#: Chapter 9's pairs (SketchODE config, LSTM config) and default steps per run.  The
#: steps give both models about the same wall time on one CPU thread of this
#: project's 2-core machine with two runs in parallel (measured seconds per
#: step: digits/Omniglot 0.24 vs 0.06, sheep 2.45 vs 0.46 at batch 64).
RECONSTRUCTION = {
    "digits": ("digits", "digits-rnn", 1000, 4000),
    "omniglot": ("omniglot", "omniglot-rnn", 1000, 4000),
    "sheep": ("sheep", "sheep-rnn", 200, 1000),
}


def reconstruction_runs(datasets=tuple(RECONSTRUCTION), seeds=(0, 1, 2), ode_steps: int | None = None,
                        rnn_steps: int | None = None) -> list[Run]:
    """Table 1 of the paper (section 5.2): SketchODE and the LSTM baseline per dataset and seed (chapter 9).

    Score the runs with ``run_grid(..., recognition=True)``.  Step counts
    default to :data:`RECONSTRUCTION`'s equal-wall-time budgets.
    """
    runs = []
    for ds in datasets:
        if ds not in RECONSTRUCTION:
            raise ValueError(f"reconstruction_runs: unknown dataset {ds!r}; choose from {', '.join(RECONSTRUCTION)}")
        ode, rnn, n_ode, n_rnn = RECONSTRUCTION[ds]
        for s in seeds:
            runs.append(Run(f"{ds}-sketchode-s{s}", ode, ode_steps or n_ode, s,
                            tags={"dataset": ds, "model": "SketchODE"}))
            runs.append(Run(f"{ds}-rnn-s{s}", rnn, rnn_steps or n_rnn, s, tags={"dataset": ds, "model": "LSTM-LSTM"}))
    return runs


GRIDS = {"data-efficiency": data_efficiency_runs, "ablation": ablation_runs, "reconstruction": reconstruction_runs}


def summarize(records, by=("model", "fraction"), value=("test", "total")) -> list[dict]:
    """Mean, sample std, min, max and count of ``value`` over runs grouped by ``by`` (tags or fields)."""
    groups: dict = {}
    for r in records:
        key = tuple(r.get("tags", {}).get(b, r.get(b)) for b in by)
        v = r
        for k in value:
            v = v[k]
        groups.setdefault(key, []).append(float(v))
    out = []
    for key, vs in groups.items():
        out.append({**dict(zip(by, key)), "mean": statistics.fmean(vs),
                    "std": statistics.stdev(vs) if len(vs) > 1 else 0.0, "min": min(vs), "max": max(vs), "n": len(vs)})
    return out


def shipped_results(name: str) -> Path | None:
    """The results file shipped as ``data/results/<name>.json``: the checkout's, else fetched
    (:func:`sketchode.pretrained.result`, SHA-256 checked); None when none is shipped under that name."""
    from sketchode.pretrained import result

    return result(name)


def load_results(name_or_path) -> dict:
    """A grid's results: a path, or the name of a shipped file (``"data-efficiency"``, ``"ablation"``)."""
    p = Path(name_or_path)
    if not p.suffix:
        found = shipped_results(str(name_or_path))
        if found is None:
            raise FileNotFoundError(f"load_results: no shipped results {name_or_path!r} in data/results/; "
                                    f"make them with `python -m sketchode experiment {name_or_path} --out FILE`")
        p = found
    if not p.exists():
        raise FileNotFoundError(f"load_results: {p} not found")
    return _read(p)


def plot_data_efficiency(records, ax=None, paper_note: bool = True):
    """Figure 5 (right): test loss against the fraction of training data, mean and spread over seeds per model."""
    import matplotlib.pyplot as plt

    from sketchode.plot import model_color

    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.4))
    rows = summarize(records, by=("model", "fraction"))
    for model in sorted({r["model"] for r in rows}):
        mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["fraction"])
        f = [100 * r["fraction"] for r in mine]
        eb = ax.errorbar(f, [r["mean"] for r in mine], yerr=[r["std"] for r in mine], marker="o", capsize=3,
                         label=model, color=model_color(model))
        # every seed as a faint dot: three seeds are few, show them all
        pts = [(100 * rec["fraction"], rec["test"]["total"]) for rec in records if rec.get("tags", {}).get("model") == model]
        ax.plot(*zip(*pts), ".", alpha=0.35, color=eb.lines[0].get_color())
    ax.set_xlabel("training data used (%)")
    ax.set_ylabel("test loss (eq. 5)")
    ax.set_xticks([10, 25, 50, 100])
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_ablation(records, ax=None, order=None):
    """Figure 5 (middle): test loss of each variant, mean and spread over seeds, every seed as a dot."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 3.4))
    rows = {r["variant"]: r for r in summarize(records, by=("variant",))}
    order = list(order or rows)
    for i, v in enumerate(order):
        r = rows[v]
        ax.bar(i, r["mean"], yerr=r["std"], capsize=4, alpha=0.7)
        vals = [rec["test"]["total"] for rec in records if rec.get("tags", {}).get("variant") == v]
        ax.plot([i] * len(vals), vals, "k.", alpha=0.6)
    ax.set_xticks(range(len(order)), order, rotation=20)
    ax.set_ylabel("test loss (eq. 5)")
    ax.grid(alpha=0.3, axis="y")
    return ax


#: Chapter 9's measures of a reconstruction, as paths into a reconstruction-grid record.
RECONSTRUCTION_METRICS = {"loss": ("recognition", "loss"), "position": ("recognition", "loss_position"),
                          "chamfer": ("recognition", "chamfer"), "accuracy": ("recognition", "accuracy")}


def reconstruction_table(records, metrics=tuple(RECONSTRUCTION_METRICS)) -> dict:
    """Table 1's layout from reconstruction-grid records: ``{(dataset, model): {metric: summary}}``.

    Each summary is :func:`summarize`'s mean, std, min, max and n over seeds.
    A metric a record does not hold (``position``: the multi-stroke loss has
    ``points`` instead) is left out for that row.
    """
    out: dict = {}
    for m in metrics:
        path = RECONSTRUCTION_METRICS[m]
        have = [r for r in records if _get(r, path) is not None]
        for row in summarize(have, by=("dataset", "model"), value=path):
            out.setdefault((row["dataset"], row["model"]), {})[m] = row
    return out


def _get(rec: dict, path):
    for k in path:
        if not isinstance(rec, dict) or k not in rec:
            return None
        rec = rec[k]
    return rec


def plot_reconstruction(records, metric: str = "chamfer", ax=None, datasets=None,
                        models=("SketchODE", "LSTM-LSTM")):
    """Chapter 9: one metric per dataset for both models, mean and spread over seeds, every seed as a dot."""
    import matplotlib.pyplot as plt

    from sketchode.plot import model_color

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.2))
    table = reconstruction_table(records, (metric,))
    datasets = list(datasets or dict.fromkeys(ds for ds, _ in table))
    width = 0.8 / len(models)
    for j, m in enumerate(models):
        xs, means, sds = [], [], []
        for i, ds in enumerate(datasets):
            row = table.get((ds, m), {}).get(metric)
            if row is None:
                continue
            x = i + (j - (len(models) - 1) / 2) * width
            xs.append(x), means.append(row["mean"]), sds.append(row["std"])
            vals = [_get(r, RECONSTRUCTION_METRICS[metric]) for r in records
                    if r.get("tags", {}).get("dataset") == ds and r.get("tags", {}).get("model") == m]
            ax.plot([x] * len(vals), vals, "k.", alpha=0.6)
        ax.bar(xs, means, width=width * 0.95, yerr=sds, capsize=3, alpha=0.7, label=m, color=model_color(m))
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return ax
