"""Command line: ``python -m sketchode`` (or the ``sketchode`` script); defined here, started by ``sketchode.__main__``.

Subcommands
-----------
``info``
    the package version, the data root in use and which datasets are present there.
``campaign --out-dir DIR [--device cuda] [--minutes 10]``
    train the real-drawings models (:data:`sketchode.cli.campaign.DEFAULT_JOBS`)
    for an equal share of a time budget each at a large batch: one command to
    run whenever a GPU is lent; checkpoints, run logs and one JSON report.
``curve RUN.json [--limit N] [--out FILE]``
    score every weight snapshot a training run kept (chamfer, retrieval,
    recognition) against the run's CPU hours: the learning curves of chapter 9.
``fetch NAME [NAME ...]``
    download the files of named datasets into the data root (with their
    sha256 checked); the one command a chapter names when it lacks real data.
``data NAME [--split S] [--svg PATH]``
    load a dataset, print its size, classes and a summary; optionally export
    the first drawing as SVG.

``train CONFIG [--steps N | --epochs N | --time-limit S] [--out PATH] [--device D] [--data-root DIR]``
    train a named configuration (:mod:`sketchode.training.configs`) with
    :func:`sketchode.training.fit.fit`, writing an atomic checkpoint to ``--out``
    (resumable with ``--resume``); ``--fraction F`` trains on a nested subset,
    ``--set KEY=VALUE`` overrides the model, ``--augment-kind jitter`` swaps
    Perlin warps for point jitter, ``--period auto`` fits one schedule period.
``experiment reconstruction|data-efficiency|ablation --out FILE``
    the grids of runs of table 1 (section 5.2, chapter 9), section 5.3 and
    figure 5 (:mod:`sketchode.book.ch09_reconstruction`), one JSON record per run,
    resumable; ``--checkpoint-dir DIR`` keeps every trained model.
``evaluate CHECKPOINT [--dataset NAME] [--json]``
    test reconstruction loss, the chamfer distance of reconstructions to their
    drawings and, when a recognition CNN is available for the dataset
    (``--recognizer PATH``, ``data/checkpoints/recognizer-<dataset>.pt``, or
    trained once and cached for the embedded ``digits``/``letters``), the
    recognition accuracy of rasterised reconstructions (section 5.2).
``finetune CHECKPOINT --classes ABD [--steps 1000] --out PATH``
    one-shot fine-tuning on one drawing of each new class (section 5.4,
    :mod:`sketchode.book.ch13_one_shot`).
``recognizer DATASET --out PATH [--epochs 3]``
    train and save the recognition CNN used by ``evaluate`` (a single-class
    dataset such as ``sheep`` is learned against Quick, Draw! doodles of
    other categories: :func:`sketchode.evaluation.scores.recognition_set`).
``bench [--json]``
    seconds per training step of SketchODE, the LSTM baseline and the naive
    torchcde/torchdiffeq composition (:func:`sketchode.cli.bench.bench`), with
    the load average it ran under (and a warning when other processes held the cores).
``build-accel [--json]``
    compile the C++ stage loops (:mod:`sketchode.accel`) into their cache now
    (otherwise the first fused solve that uses them does) and say where they are.

Process-wide settings are made here, by the commands that train or measure
(``train``, ``finetune``, ``experiment``, ``campaign``, ``bench``), not by
library calls: torch's thread count (``--threads``, else :func:`cli_threads`)
and glibc's allocator thresholds
(:func:`sketchode.numerics.fused.keep_freed_memory`).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cli_threads(requested: int | None = None) -> int:
    """The torch thread count a training or measuring command runs with.

    ``requested`` (``--threads``) when given.  Otherwise the current count
    (which honours ``OMP_NUM_THREADS``), lowered to
    :func:`sketchode.training.fit.sensible_threads` and to the CPUs that other
    processes leave free by the 1-minute load average (at least one): torch's
    OpenMP workers spin-wait for each other, so a thread that shares a core
    with another busy process stalls all of them, and one thread is then
    faster than two.
    """
    import torch

    from sketchode.training.fit import sensible_threads

    if requested is not None:
        if int(requested) != requested or requested < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {requested!r}")
        return int(requested)
    n = min(torch.get_num_threads(), sensible_threads())
    try:
        free = _usable_cpus() - os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average on this platform
        return max(1, n)
    return max(1, min(n, int(free + 0.5)))


def _process_settings(threads: int | None = None) -> int:
    """Set torch's thread count (:func:`cli_threads`) and keep freed memory in the heap; returns the thread count."""
    import torch

    from sketchode.numerics.fused import keep_freed_memory

    n = cli_threads(threads)
    torch.set_num_threads(n)
    keep_freed_memory()
    return n


def _info(args) -> int:
    import sketchode
    from sketchode.settings import DATA_ENV, data_root
    from sketchode.data.datasets import available

    root = data_root(args.data_root)
    local = available(root, local=True)
    qd = [n for n in local if n.startswith("quickdraw")]
    out = {
        "version": sketchode.__version__,
        "data_root": str(root),
        "data_root_from": "--data-root" if args.data_root else (DATA_ENV if DATA_ENV in __import__("os").environ else "user cache"),
        "datasets_present": [n for n in local if not n.startswith("quickdraw")],
        "quickdraw_categories_present": len(qd),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:30s} {v}")
    return 0


def _data(args) -> int:
    from sketchode.data import load

    sk = load(args.name, split=args.split, root=args.data_root)
    labels = collections.Counter(s.label for s in sk)
    pts = [s.n_points for s in sk]
    strokes = [s.n_strokes for s in sk]
    out = {
        "name": args.name,
        "split": args.split,
        "drawings": len(sk),
        "classes": len(labels),
        "timed": sum(s.timed for s in sk),
        "points_mean": round(sum(pts) / max(len(pts), 1), 1),
        "strokes_mean": round(sum(strokes) / max(len(strokes), 1), 2),
    }
    if args.svg and sk:
        from sketchode.plot import save_svg

        save_svg(sk[0].normalize(), args.svg)
        out["svg"] = args.svg
    print(json.dumps(out) if args.json else "\n".join(f"{k:14s} {v}" for k, v in out.items()))
    return 0


def _fetch(args) -> int:
    from sketchode.data.datasets import fetch, files_for

    for name in args.names:
        rels = files_for(name)
        if not rels:
            print(f"{name}: embedded in the package, nothing to fetch")
        for rel in rels:
            path = fetch(rel, args.data_root, download=True)
            print(f"{name}: {path}")
    return 0


def _campaign(args) -> int:
    from sketchode.cli.campaign import DEFAULT_JOBS, run_campaign

    _process_settings()
    rep = run_campaign(args.out_dir, minutes=args.minutes, jobs=args.jobs or DEFAULT_JOBS, device=args.device,
                       batch_size=args.batch_size, root=args.data_root, limit_train=args.limit_train,
                       progress=not args.json)
    if args.json:
        print(json.dumps(rep))
    else:
        for j in rep["jobs"]:
            print(f"{j['job']:18s} {j['steps']:>6} steps  {j['step_s'] * 1000:8.1f} ms/step  "
                  f"val {j['val_loss']}  -> {j['checkpoint']}")
    return 0


def _curve(args) -> int:
    from pathlib import Path

    from sketchode.evaluation.curves import quality_curve
    from sketchode.training.runlog import _write_json

    points = quality_curve(args.log, dataset=args.dataset, limit=args.limit, root=args.data_root,
                           recognizer=args.recognizer, device=args.device)
    log = json.loads(Path(args.log).read_text(encoding="utf-8"))
    res = {"log": Path(args.log).name, "dataset": args.dataset or log.get("dataset"), "config": log.get("config"),
           "limit": args.limit, "total_cpu_h": round(float(log.get("total_cpu_s", 0.0)) / 3600, 4),
           "commands": [" ".join(c["argv"]) for c in log.get("commands", [])], "points": points}
    if args.out:
        _write_json(Path(args.out), res)
    if args.json:
        print(json.dumps(res))
    else:
        for p in points:
            print(f"epoch {p['epoch']:>5}  cpu_h {p['cpu_h']:.3f}  chamfer {p['chamfer']:.4f}  "
                  f"retrieval {p['retrieval_top1']:.3f}  accuracy {p['accuracy']}")
    return 0


def _overrides(items) -> dict:
    """``["activation=tanh", "d=32"]`` -> ``{"activation": "tanh", "d": 32}`` (JSON values, else strings)."""
    out = {}
    for i, item in enumerate(items or []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set #{i + 1}: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _validation(dataset: str, root, size: int):
    """The held-out drawings scored after each epoch: the dataset's ``valid`` split when it has one, else the
    first ``size`` test drawings (``None`` when ``size`` is 0 or the dataset has neither)."""
    from sketchode.data import load

    if not size:
        return None, None
    for part in ("valid", "test"):
        try:
            return load(dataset, split=part, root=root)[:size], part
        except ValueError:
            continue
    return None, None


def _train(args) -> int:
    import time
    from pathlib import Path

    from sketchode.training.configs import get_config
    from sketchode.data import load
    from sketchode.training.runlog import RunLog
    from sketchode.training.fit import fit, seed_everything

    cfg = get_config(args.config)
    if sum(x is not None for x in (args.steps, args.epochs)) > 1:
        raise ValueError("give at most one of --steps and --epochs")
    if args.steps is None and args.epochs is None and args.time_limit is None:
        raise ValueError("give --steps, --epochs or --time-limit")
    if not 0.0 < args.fraction <= 1.0:
        raise ValueError(f"--fraction must lie in (0, 1], got {args.fraction}")
    out = Path(args.out or f"checkpoints/{cfg.name}.pt")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give the path of a checkpoint file (e.g. {out / cfg.name}.pt)")
    resume = bool(args.resume)
    if resume and not out.exists():
        print(f"sketchode train: {out} does not exist yet: starting a new run there", file=sys.stderr)
        resume = False
    elif out.exists() and not resume:
        raise ValueError(f"{out} exists (a run already written there); pass --resume to continue it, "
                         "or --out to write the new run elsewhere (nothing was changed)")
    _process_settings(args.threads)
    seed_everything(args.seed)
    dataset = args.dataset or cfg.dataset
    train = load(dataset, split="train", root=args.data_root)
    if args.fraction < 1.0:
        from sketchode.data import subset

        train = subset(train, args.fraction, seed=args.seed)
    val, val_split = _validation(dataset, args.data_root, args.val_size)
    model = cfg.build(**_overrides(args.set))
    kw = dict(cfg.train)
    if args.lr is not None:
        kw["lr"] = args.lr
    if args.augment is not None:
        kw["augment_sigma"] = args.augment
    if args.augment_kind is not None:
        kw["augment_kind"] = args.augment_kind
    if args.period == "auto":
        if args.steps is None:
            raise ValueError("--period auto needs --steps (it makes the run one schedule period long)")
        from sketchode.book.ch09_reconstruction import auto_period

        kw["period"] = auto_period(args.steps, len(train), kw.get("batch_size", 64))
    elif args.period is not None:
        kw["period"] = float(args.period)
    if args.warmup is not None:
        kw["warmup"] = args.warmup
    step_from = 0
    if resume:
        from sketchode.training.checkpoint import load_checkpoint

        step_from = int((load_checkpoint(out).get("train_state") or {}).get("step", 0))
    log = RunLog(out, argv=["python", "-m", "sketchode", *args.argv], resume=resume, step_from=step_from,
                 facts={"config": cfg.name, "dataset": dataset, "validation": val_split})
    hist = fit(model, train, val=val, epochs=args.epochs, steps=args.steps, time_limit=args.time_limit,
               device=args.device, threads=args.threads, seed=args.seed, checkpoint=out, resume=resume,
               progress=not args.json, meta={"config": cfg.name, "dataset": dataset}, callback=log.update,
               patience=args.patience, checkpoint_steps=args.checkpoint_every,
               **({"skip_spikes": args.skip_spikes} if args.skip_spikes is not None else {}), **kw)
    log.update(model, hist.last or {})
    if hist.stopped == "interrupted":
        print(f"sketchode train: interrupted; {out} holds step {(hist.last or {}).get('step')}: "
              "continue with the same command and --resume", file=sys.stderr)
    res = {"config": cfg.name, "dataset": dataset, "checkpoint": str(out), "stopped": hist.stopped,
           "last": hist.last, "best_val": hist.best_val, "validation": val_split, "log": str(log.path)}
    print(json.dumps(res) if args.json else "\n".join(f"{k:12s} {v}" for k, v in res.items()))
    return 130 if hist.stopped == "interrupted" else 0


def _evaluate(args) -> int:
    from sketchode.training.checkpoint import load_checkpoint, load_model
    from sketchode.evaluation.scores import evaluate_checkpoint

    ck = load_checkpoint(args.checkpoint)
    model = load_model(args.checkpoint, map_location=args.device or "cpu")
    meta = (ck.get("train_state") or {}).get("meta") or {}
    res = evaluate_checkpoint(model, dataset=args.dataset or meta.get("dataset"), split=args.split, root=args.data_root,
                              recognizer=args.recognizer, limit=args.limit, device=args.device,
                              classes=args.classes or meta.get("classes"))
    res["checkpoint"] = str(args.checkpoint)
    res["class"] = ck["class"]
    print(json.dumps(res) if args.json else "\n".join(f"{k:22s} {v}" for k, v in res.items()))
    return 0


def _finetune(args) -> int:
    import time

    from sketchode.training.checkpoint import load_checkpoint, load_model
    from sketchode.book.ch13_one_shot import finetune, held_out, one_shot_set
    from sketchode.training.fit import evaluate, seed_everything

    from pathlib import Path

    if Path(args.out).exists():
        raise ValueError(f"{args.out} exists; choose another --out or delete it first (nothing was changed)")
    _process_settings(args.threads)
    ck = load_checkpoint(args.checkpoint)
    base_meta = (ck.get("train_state") or {}).get("meta") or {}
    model = load_model(args.checkpoint, map_location="cpu")
    shots = one_shot_set(args.classes, per_class=args.per_class, index=args.index, dataset=args.dataset,
                         root=args.data_root)
    seed_everything(args.seed)
    meta = {"config": base_meta.get("config"), "dataset": args.dataset, "classes": args.classes,
            "finetuned_from": str(args.checkpoint), "shots": [s.key for s in shots]}
    t0 = time.perf_counter()
    finetune(model, shots, steps=args.steps, seed=args.seed, threads=args.threads, progress=not args.json,
             checkpoint=args.out, meta=meta)
    seconds = time.perf_counter() - t0
    test = held_out(args.classes, per_class=args.held_out, dataset=args.dataset, root=args.data_root)
    res = {"checkpoint": args.out, "classes": args.classes, "shots": meta["shots"], "steps": args.steps,
           "seconds": round(seconds, 1), "loss_shots": evaluate(model, shots)["total"],
           "loss_held_out": evaluate(model, test)["total"], "n_held_out": len(test)}
    print(json.dumps(res) if args.json else "\n".join(f"{k:14s} {v}" for k, v in res.items()))
    return 0


def _recognizer(args) -> int:
    import time

    from sketchode.evaluation.scores import OTHER, recognition_set
    from sketchode.evaluation.recognition import accuracy, save_recognizer, train_recognizer

    t0 = time.perf_counter()
    train = recognition_set(args.dataset, "train", root=args.data_root)
    model = train_recognizer(train, epochs=args.epochs, seed=args.seed)
    seconds = time.perf_counter() - t0
    save_recognizer(model, args.out)
    test = recognition_set(args.dataset, "test", root=args.data_root)
    res = {"dataset": args.dataset, "out": args.out, "epochs": args.epochs, "seconds": round(seconds, 1),
           "classes": len(model.classes), "n_train": len(train), "n_test": len(test),
           "test_accuracy": accuracy(model, test, [s.label for s in test])}
    own = [s for s in test if s.label != OTHER]
    if len(own) < len(test):  # a single-class dataset, scored against doodles of other categories
        res["test_accuracy_own"] = accuracy(model, own, [s.label for s in own])
    print(json.dumps(res) if args.json else "\n".join(f"{k:14s} {v}" for k, v in res.items()))
    return 0


def _bench(args) -> int:
    from sketchode.cli.bench import bench

    _process_settings(args.threads)
    res = bench(d=args.d, l=args.l, batch=args.batch, G=args.G, device=args.device, rounds=args.rounds,
                naive=not args.no_naive, threads=args.threads, loops=args.loops)
    if res.get("load_warning"):
        print(f"sketchode bench: warning: {res['load_warning']}", file=sys.stderr)
    print(json.dumps(res) if args.json else "\n".join(f"{k:18s} {v}" for k, v in res.items()))
    return 0


def _build_accel(args) -> int:
    import time

    from sketchode import accel

    was_built = accel.is_built()
    t0 = time.perf_counter()
    ext = accel.load()
    res = {"built_now": ext is not None and not was_built, "seconds": round(time.perf_counter() - t0, 2),
           "build_dir": str(accel.build_dir()), "module": getattr(ext, "__file__", None), "key": accel.cache_key(),
           "error": accel.error()}
    print(json.dumps(res) if args.json else "\n".join(f"{k:12s} {v}" for k, v in res.items()))
    if ext is None:
        print(f"sketchode build-accel: the C++ loops could not be built: {accel.error()}", file=sys.stderr)
        return 1
    return 0


def _experiment(args) -> int:
    from sketchode.book.ch09_reconstruction import GRIDS, run_grid, summarize

    kw = {}
    if args.seeds:
        kw["seeds"] = tuple(args.seeds)
    if args.grid == "reconstruction":
        if args.datasets:
            kw["datasets"] = tuple(args.datasets)
        if args.steps is not None:
            kw["ode_steps"] = args.steps
        if args.rnn_steps is not None:
            kw["rnn_steps"] = args.rnn_steps
        by = ("dataset", "model")
    elif args.grid == "data-efficiency":
        if args.steps is not None:
            kw["ode_steps"] = args.steps
        if args.rnn_steps is not None:
            kw["rnn_steps"] = args.rnn_steps
        by = ("model", "fraction")
    else:
        if args.steps is not None:
            kw["steps"] = args.steps
        kw["root"] = args.data_root
        by = ("variant",)
    runs = GRIDS[args.grid](**kw)
    _process_settings(args.threads)
    data = run_grid(runs, args.out, root=args.data_root, threads=args.threads,
                    log=lambda msg: print(msg, file=sys.stderr, flush=True), reuse=args.reuse,
                    recognition=args.grid == "reconstruction", checkpoint_dir=args.checkpoint_dir,
                    meta={"grid": args.grid, "command": "python -m sketchode " + " ".join(args.argv)})
    rows = summarize(data["runs"], by=by)
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print("  ".join(f"{k}={v:.5f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sketchode", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("info", help="version, data root and the datasets present there")
    pi.add_argument("--data-root", default=None)
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(func=_info)
    pd = sub.add_parser("data", help="load a dataset and summarise it")
    pd.add_argument("name")
    pd.add_argument("--split", default="train")
    pd.add_argument("--data-root", default=None)
    pd.add_argument("--svg", default=None, help="write the first drawing as SVG here")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(func=_data)
    pg = sub.add_parser("campaign", help="train the real-drawings models within a time budget (a GPU's minutes)")
    pg.add_argument("--out-dir", required=True)
    pg.add_argument("--minutes", type=float, default=10.0)
    pg.add_argument("--jobs", nargs="*", default=None, metavar="CONFIG[:SEED]")
    pg.add_argument("--device", default=None)
    pg.add_argument("--batch-size", type=int, default=None, help="default: 512 on CUDA, else the config's")
    pg.add_argument("--limit-train", type=int, default=None, help="train on the first N drawings only (tests)")
    pg.add_argument("--data-root", default=None)
    pg.add_argument("--json", action="store_true")
    pg.set_defaults(func=_campaign)
    pc = sub.add_parser("curve", help="score every snapshot of a training run (quality against CPU hours)")
    pc.add_argument("log", help="the run log beside a checkpoint (CHECKPOINT.json, written by train)")
    pc.add_argument("--dataset", default=None, help="default: the dataset the run trained on")
    pc.add_argument("--limit", type=int, default=1000, help="test drawings scored per snapshot")
    pc.add_argument("--recognizer", default=None)
    pc.add_argument("--out", default=None, help="write the curve as JSON here")
    pc.add_argument("--device", default=None)
    pc.add_argument("--data-root", default=None)
    pc.add_argument("--json", action="store_true")
    pc.set_defaults(func=_curve)
    pfe = sub.add_parser("fetch", help="download the files of datasets into the data root (checked by sha256)")
    pfe.add_argument("names", nargs="+", metavar="NAME")
    pfe.add_argument("--data-root", default=None)
    pfe.set_defaults(func=_fetch)
    pt = sub.add_parser("train", help="train a named configuration (sketchode.training.configs)")
    pt.add_argument("config")
    g = pt.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--epochs", type=int, default=None)
    pt.add_argument("--time-limit", type=float, default=None, help="seconds of training")
    pt.add_argument("--out", default=None, help="checkpoint path (default checkpoints/CONFIG.pt)")
    pt.add_argument("--resume", action="store_true", help="continue the run at --out (start it when absent)")
    pt.add_argument("--dataset", default=None, help="override the config's dataset")
    pt.add_argument("--device", default=None)
    pt.add_argument("--threads", type=int, default=None)
    pt.add_argument("--data-root", default=None)
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--lr", type=float, default=None)
    pt.add_argument("--augment", type=float, default=None, help="augmentation strength sigma (0 disables)")
    pt.add_argument("--augment-kind", choices=("perlin", "jitter"), default=None,
                    help="Perlin warps (default) or Gaussian point jitter")
    pt.add_argument("--fraction", type=float, default=1.0, help="train on this fraction of the training split "
                    "(nested subsets chosen by key and --seed; section 5.3)")
    pt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a model constructor argument, e.g. --set activation=tanh (repeatable)")
    pt.add_argument("--period", default=None, help="schedule period in epochs, or 'auto' (the run's length)")
    pt.add_argument("--val-size", type=int, default=512,
                    help="validation drawings scored after each epoch: the dataset's valid split, else its test "
                         "split (0: none)")
    pt.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                    help="also write the checkpoint every STEPS optimiser steps (default: every epoch)")
    pt.add_argument("--warmup", type=int, default=None, metavar="STEPS",
                    help="linear learning-rate warm-up over the first STEPS steps (default: the config's, else 0)")
    pt.add_argument("--skip-spikes", type=float, default=None, metavar="FACTOR",
                    help="skip updates whose gradient norm exceeds FACTOR x the recent median (or is not finite)")
    pt.add_argument("--patience", type=int, default=None,
                    help="stop once the validation loss has not improved for this many epochs")
    pt.add_argument("--json", action="store_true")
    pt.set_defaults(func=_train)
    px = sub.add_parser("experiment", help="a grid of runs: reconstruction (5.2), data-efficiency or ablation (5.3)")
    px.add_argument("grid", choices=("reconstruction", "data-efficiency", "ablation"))
    px.add_argument("--out", required=True, help="JSON file of results (appended run by run; resumes)")
    px.add_argument("--seeds", type=int, nargs="*", default=None)
    px.add_argument("--steps", type=int, default=None, help="SketchODE steps per run")
    px.add_argument("--rnn-steps", type=int, default=None, help="LSTM steps per run (data-efficiency)")
    px.add_argument("--reuse", action="append", default=[], metavar="FILE",
                    help="copy runs with identical settings from this results file instead of retraining")
    px.add_argument("--datasets", nargs="*", default=None, help="reconstruction: digits, omniglot, sheep")
    px.add_argument("--checkpoint-dir", default=None, help="keep every run's model here as <run name>.pt")
    px.add_argument("--threads", type=int, default=1)
    px.add_argument("--data-root", default=None)
    px.add_argument("--json", action="store_true")
    px.set_defaults(func=_experiment)
    pe = sub.add_parser("evaluate", help="test loss and recognition accuracy of a checkpoint")
    pe.add_argument("checkpoint")
    pe.add_argument("--dataset", default=None, help="default: the dataset of the checkpoint's config")
    pe.add_argument("--split", default="test")
    pe.add_argument("--classes", default=None, help="only test drawings of these labels, e.g. ABD "
                    "(default: the classes a fine-tuned checkpoint was made for)")
    pe.add_argument("--recognizer", default=None, help="a saved recognition CNN (sketchode.evaluation.recognition)")
    pe.add_argument("--limit", type=int, default=None, help="evaluate the first N drawings only")
    pe.add_argument("--device", default=None)
    pe.add_argument("--data-root", default=None)
    pe.add_argument("--json", action="store_true")
    pe.set_defaults(func=_evaluate)
    pf = sub.add_parser("finetune", help="one-shot fine-tuning on new classes (section 5.4)")
    pf.add_argument("checkpoint")
    pf.add_argument("--classes", default="ABD", help="labels to learn, one drawing each (default ABD)")
    pf.add_argument("--dataset", default="letters")
    pf.add_argument("--per-class", type=int, default=1)
    pf.add_argument("--index", type=int, default=0, help="which drawing of each class (0: the first)")
    pf.add_argument("--steps", type=int, default=1000)
    pf.add_argument("--seed", type=int, default=0)
    pf.add_argument("--held-out", type=int, default=50, help="test drawings per class scored afterwards")
    pf.add_argument("--out", required=True)
    pf.add_argument("--threads", type=int, default=None)
    pf.add_argument("--data-root", default=None)
    pf.add_argument("--json", action="store_true")
    pf.set_defaults(func=_finetune)
    pr = sub.add_parser("recognizer", help="train the recognition CNN of a dataset (section 5.2's metric)")
    pr.add_argument("dataset")
    pr.add_argument("--out", required=True)
    pr.add_argument("--epochs", type=int, default=3)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--data-root", default=None)
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_recognizer)
    pb = sub.add_parser("bench", help="seconds per training step: SketchODE vs LSTM vs naive composition")
    pb.add_argument("--d", type=int, default=64)
    pb.add_argument("--l", type=int, default=48)
    pb.add_argument("--batch", type=int, default=64)
    pb.add_argument("--G", type=int, default=75)
    pb.add_argument("--rounds", type=int, default=7)
    pb.add_argument("--threads", type=int, default=None)
    pb.add_argument("--device", default=None)
    pb.add_argument("--no-naive", action="store_true")
    pb.add_argument("--loops", choices=["auto", "cpp", "python"], default=None,
                    help="the fused solver's stage loops (default: SKETCHODE_LOOPS, else auto)")
    pb.add_argument("--json", action="store_true")
    pb.set_defaults(func=_bench)
    pa = sub.add_parser("build-accel", help="compile the C++ stage loops into their cache now (once per machine)")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(func=_build_accel)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return _run(args)


def _run(args) -> int:
    """Run a subcommand; expected failures end with one clear line on stderr and a non-zero exit."""
    import errno
    import zipfile

    from sketchode.training.fit import TrainingDiverged

    def fail(msg: str, code: int = 2) -> int:
        print(f"sketchode {args.cmd}: {msg}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except TrainingDiverged as e:
        return fail(str(e), 3)
    except zipfile.BadZipFile as e:
        return fail(f"a corrupt archive: {e}; delete it and download it again")
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        return fail(str(e))
    except PermissionError as e:
        return fail(f"permission denied: {e.filename or e}")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            return fail(f"no space left on the device ({e.filename or 'while writing'}); free some and resume")
        return fail(f"{type(e).__name__}: {e}")
    except TypeError as e:  # e.g. an unknown --set key reaches a model's constructor
        if "unexpected keyword argument" in str(e):
            return fail(f"unknown setting: {e}")
        raise
    except (RuntimeError, AssertionError) as e:
        text = str(e)
        if "CUDA" in text or "cuda" in text:
            return fail(f"CUDA is not usable here ({text.splitlines()[0][:200]}); use --device cpu")
        if "another process is training" in text:
            return fail(text)
        raise


if __name__ == "__main__":
    sys.exit(main())
