"""Timing one training step: SketchODE vs the LSTM baseline vs the naive composition (section 6; chapter 8).

The paper notes (section 6) that SketchODE costs "4-5x more computation time
than discrete counterparts" on a GPU.  :func:`bench` measures, in one process
and on one device, the wall time of a full training step (zero_grad, forward,
eq. 5 loss, backward, gradient clipping, AdamW step) of

* ``sketchode``: :class:`~sketchode.models.full_sequence.SketchODE` with the fused RK4 solver
  (its stage loops in C++ or Python, :func:`sketchode.numerics.fused.loops`; reported as ``loops``);
* ``rnn``: :class:`~sketchode.models.lstm.RNNAutoencoder` at the same ``d``, ``l``;
* ``naive``: the same SketchODE solved by ``torchcde.cdeint`` +
  ``torchdiffeq.odeint`` (``solver="reference"``, z in the state as in
  appendix B), the straightforward composition of the two libraries;

on the same batch of embedded digits (no data root needed).  The three are
timed in interleaved rounds (so a slow phase of the machine hits all of them)
and the median of the rounds is reported, with the 1-minute load average
before and after: other processes on the cores make every figure (and the
ratios) unreliable, and the result then carries a ``load_warning``.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

__all__ = ["bench", "time_step", "step_flops", "load_warning"]


def _load() -> list | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # no load average on this platform
        return None


def load_warning(before, after, threads: int, cpus: int) -> str | None:
    """Why a CPU measurement on ``threads`` threads is unreliable under these load averages, or ``None``.

    ``before`` and ``after`` are :func:`os.getloadavg` triples taken around
    the measurement.  It is unreliable when, by the 1-minute average, the load
    before plus its own threads exceeds the CPUs by more than half a CPU, or
    the load after it does.
    """
    if before is None or after is None:
        return None
    if before[0] + threads <= cpus + 0.5 and after[0] <= cpus + 0.5:
        return None
    return (f"load average {before[0]:.2f} before and {after[0]:.2f} after, on {cpus} CPUs with {threads} "
            f"thread(s): other processes competed for the cores, so these times and ratios are not reliable")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(model, batch, opt, clip: float | None = 0.01) -> float:
    """Seconds of one training step of ``model`` on ``batch`` (synchronised on CUDA)."""
    dev = batch.t.device
    _sync(dev)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = model.loss(batch)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    _sync(dev)
    return time.perf_counter() - t0


def step_flops(model, batch) -> float:
    """Floating-point operations of one forward + backward pass of ``model.loss(batch)`` (matrix products only).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (2 per
    multiply-add), with the fused solver's Python loops (the C++ loops run
    partly on worker threads the counter does not see).  ``nn.LSTM`` layers
    run as one oneDNN kernel that the counter does not see either, so they are
    added from their shapes: ``3 x 2 x 4 H (I + H)`` per step, sample and
    direction (forward, and backward ~2x forward).  Element-wise work
    (activations, RK4 updates) is not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from sketchode.numerics.fused import loops

    lstm = []

    def hook(mod, args, _out):
        x = args[0]
        steps, n = (x.shape[1], x.shape[0]) if mod.batch_first else (x.shape[0], x.shape[1])
        dirs = 2 if mod.bidirectional else 1
        H, size = mod.hidden_size, mod.input_size
        for _layer in range(mod.num_layers):
            lstm.append(3 * 2 * 4 * H * (size + H) * steps * n * dirs)
            size = H * dirs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    try:
        with loops("python"), FlopCounterMode(display=False) as counter:
            model.loss(batch).backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops() + sum(lstm))


def bench(d: int = 64, l: int = 48, batch: int = 64, G: int = 75, device=None, rounds: int = 7,  # noqa: E741
          warmup: int = 2, naive: bool = True, threads: int | None = None, seed: int = 0,
          loops: str | None = None) -> dict:
    """Median seconds per training step of SketchODE, the LSTM baseline and the naive composition.

    Returns a JSON-able dict with ``sketchode_s``, ``rnn_s``, ``naive_s``
    (``None`` when ``naive=False``), ``ratio`` (= sketchode / rnn),
    ``speedup_vs_naive`` (= naive / sketchode), ``sketchode_gflop`` and ``rnn_gflop``
    (arithmetic of one step, :func:`step_flops`), ``device``, ``threads``, ``loops``
    (``"cpp"`` or ``"python"``: which stage loops the fused solver ran),
    ``load_before`` / ``load_after`` (:func:`os.getloadavg`, ``None`` where
    there is none), ``cpus`` (those this process may use), ``load_warning``
    (:func:`load_warning`, ``None`` when the load was low enough) and the
    settings.  ``threads`` sets torch's CPU threads for the measurement only
    (restored afterwards; default: the current count); ``loops`` picks the
    stage loops (default: the current setting, :func:`sketchode.numerics.fused.loops`).
    The ``bench`` command also sets the allocator
    (:func:`sketchode.numerics.fused.keep_freed_memory`); this function does not.
    """
    import contextlib

    from sketchode.numerics import fused

    before = torch.get_num_threads()
    try:
        with fused.loops(loops) if loops else contextlib.nullcontext():
            return _bench(d, l, batch, G, device, rounds, warmup, naive, threads, seed)
    finally:
        torch.set_num_threads(before)


def _bench(d, l, batch, G, device, rounds, warmup, naive, threads, seed):  # noqa: E741
    from sketchode.numerics import fused
    from sketchode.models.lstm import RNNAutoencoder
    from sketchode.data.sketch import prepare
    from sketchode.data.synthetic import digits
    from sketchode.models.full_sequence import SketchODE
    from sketchode.training.fit import pick_device

    dev = pick_device(device)
    if dev.type == "cpu" and threads:
        torch.set_num_threads(int(threads))
    load_before = _load()
    n = max(1, -(-batch // 10))
    sketches = prepare(digits(n_per_class=n, seed=seed))[:batch]
    torch.manual_seed(seed)
    models = {"sketchode": SketchODE(d=d, l=l, G=G), "rnn": RNNAutoencoder(d=d, l=l, G=G)}
    if naive:
        models["naive"] = SketchODE(d=d, l=l, G=G, solver="reference")
        models["naive"].load_state_dict(models["sketchode"].state_dict())
    runs = {}
    for name, m in models.items():
        m.to(dev).train()
        b = m.collate(sketches).to(dev)
        opt = torch.optim.AdamW(m.parameters(), lr=m.default_lr)
        runs[name] = (m, b, opt)
        for _ in range(warmup):
            time_step(m, b, opt)
    gflop = {name: step_flops(runs[name][0], runs[name][1]) / 1e9 for name in ("sketchode", "rnn")}
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (m, b, opt) in runs.items():
            times[name].append(time_step(m, b, opt))
    med = {name: statistics.median(v) for name, v in times.items()}
    load_after = _load()
    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = max(1, os.cpu_count() or 1)
    n_threads = torch.get_num_threads()
    out = {
        "sketchode_s": round(med["sketchode"], 5),
        "rnn_s": round(med["rnn"], 5),
        "naive_s": round(med["naive"], 5) if naive else None,
        "ratio": round(med["sketchode"] / med["rnn"], 3),
        "speedup_vs_naive": round(med["naive"] / med["sketchode"], 3) if naive else None,
        "sketchode_gflop": float(f"{gflop['sketchode']:.4g}"),
        "rnn_gflop": float(f"{gflop['rnn']:.4g}"),
        "device": str(dev) if dev.type != "cuda" else f"cuda ({torch.cuda.get_device_name(dev)})",
        "threads": n_threads if dev.type == "cpu" else None,
        "loops": "cpp" if fused._ext_for(torch.empty(0, device=dev)) is not None else "python",
        "load_before": load_before, "load_after": load_after, "cpus": cpus,
        "load_warning": load_warning(load_before, load_after, n_threads, cpus) if dev.type == "cpu" else None,
        "d": d, "l": l, "batch": batch, "G": G, "rounds": rounds,
        "torch": torch.__version__,
    }
    return out
