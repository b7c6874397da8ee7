"""The book's budget switch and its load-or-train (plumbing every training chapter shares).

``SKETCHODE_FAST``
    The budget switch of the book's chapters.  ``1`` (set by the test suite,
    hence by CI and nbval): every chapter trains and measures with a small
    budget and runs in seconds to a minute on a CPU.  Unset or ``0``: the
    full budget that made the figures and numbers of the rendered book.  Read
    once, at import, into :data:`FAST`; use :func:`budget` to pick a value.
"""

from __future__ import annotations

import os
from pathlib import Path

FAST_ENV = "SKETCHODE_FAST"

#: True when ``SKETCHODE_FAST`` is set to anything but ``""``, ``"0"``, ``"false"``, ``"no"`` (read once).
FAST: bool = os.environ.get(FAST_ENV, "").strip().lower() not in ("", "0", "false", "no")


def budget(fast, full):
    """``fast`` under the small budget (:data:`FAST`), else ``full``: ``steps = budget(20, 3000)``."""
    return fast if FAST else full


def load_or_train(name: str, checkpoint=None, *, train_if_missing: bool | None = None, fast_steps: int = 40,
                  fast_train: int = 512, full_time_limit: float = 900.0, data_root=None, device=None,
                  progress: bool = False, **fit_kw):
    """A trained model of the named config: loaded when a matching checkpoint exists, else trained only when allowed (chapter 8).

    Looks for ``checkpoint`` (default: :func:`shipped_checkpoint`, which
    downloads the shipped one into the user cache when this installation has
    no ``data/``); if it holds the same class and config as
    :func:`sketchode.training.configs.build_model` gives, the model is loaded from it.

    Otherwise ``train_if_missing`` decides, and nothing trains silently: a
    message on stderr says why and for how long it trains.

    * ``None`` (default): train only under the small budget
      (:data:`FAST`, set by the tests and nbval), where the
      chapters train tiny models by design: ``fast_steps`` steps on
      ``fast_train`` drawings.  Under the full budget raise
      :class:`FileNotFoundError` saying why there is no usable checkpoint and
      how to get or train one, rather than start a long run unasked.
    * ``True``: train in either budget (full: ``full_time_limit`` seconds on
      the whole training split, on the GPU when there is one).
    * ``False``: never train; raise :class:`FileNotFoundError`.

    Returns ``(model, history, source)``: ``source`` is the checkpoint path
    loaded from, or ``"trained"``.
    """
    import sys

    from sketchode.training.checkpoint import config_differences, load_checkpoint, load_model
    from sketchode.training.configs import get_config
    from sketchode.data import load
    from sketchode.pretrained import shipped_checkpoint
    from sketchode.training.fit import History, fit, pick_device

    cfg = get_config(name)
    fresh = cfg.build()
    why = None
    if checkpoint is not None:
        path = Path(checkpoint)
    else:
        try:
            path = shipped_checkpoint(name)
        except FileNotFoundError as e:  # shipped, but not in this installation and not downloadable now
            path, why = None, str(e)
    if path is not None and path.exists():
        ck = load_checkpoint(path)
        diffs = [] if ck["class"] != type(fresh).__name__ else config_differences(ck["config"], dict(fresh.config))
        if ck["class"] == type(fresh).__name__ and not diffs:
            model = load_model(path, map_location=pick_device(device))
            hist = History.from_dict((ck.get("train_state") or {}).get("history") or {"records": []})
            return model, hist, str(path)
        why = (f"{path} holds a {ck['class']}, not a {type(fresh).__name__}" if not diffs else
               f"{path} holds another config of {name!r} ({'; '.join(diffs[:3])})")
    elif why is None:
        why = f"{path} not found" if path is not None else f"no checkpoint is shipped for {name!r}"
    train_it = FAST if train_if_missing is None else bool(train_if_missing)
    if not train_it:
        raise FileNotFoundError(
            f"load_or_train({name!r}): no usable checkpoint: {why}. Train one with "
            f"`python -m sketchode train {name} --out FILE` and pass checkpoint=FILE, or call "
            f"load_or_train({name!r}, train_if_missing=True) to train here ({full_time_limit:.0f} s under the "
            f"full budget)")
    kw = {**cfg.train, **fit_kw}
    if FAST:
        kw.setdefault("steps", fast_steps)
        how = f"{kw['steps']} steps on {fast_train} drawings (the small budget, SKETCHODE_FAST=1)"
    else:
        kw.setdefault("time_limit", full_time_limit)
        how = (f"up to {kw['time_limit']:.0f} s" + (f" or {kw['steps']} steps" if kw.get("steps") else "")
               + " on the whole training split")
    print(f"sketchode: load_or_train({name!r}): {why}; training it for {how}", file=sys.stderr)
    train = load(cfg.dataset, "train", root=data_root)
    val = load(cfg.dataset, "test", root=data_root)[: 256 if not FAST else 64]
    if FAST:
        train = train[:fast_train]
    hist = fit(fresh, train, val=val, device=device, progress=progress, **kw)
    fresh.eval()
    return fresh, hist, "trained"


__all__ = ["FAST", "FAST_ENV", "budget", "load_or_train"]
