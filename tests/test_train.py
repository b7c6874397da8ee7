"""Tests of sketchode.training.fit: schedule, optimiser groups, clipping, augmentation, checkpoints and resumption."""

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import sketchode.training.fit as tr
from sketchode.models.lstm import RNNAutoencoder
from sketchode.training.checkpoint import load_checkpoint, load_model
from sketchode.data.sketch import prepare
from sketchode.data.synthetic import digits
from sketchode.training.fit import (
    History,
    TrainingDiverged,
    augment_batch,
    cosine_decay,
    epoch_permutation,
    evaluate,
    fit,
    make_optimizer,
    make_scheduler,
    pick_device,
    sensible_threads,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(scope="module")
def sketches():
    return digits(n_per_class=4)  # 40 drawings, keys digits:000000 ...


@pytest.fixture(scope="module")
def train_val(sketches):
    return sketches[:30], sketches[30:]


def _model(seed=0, cls=RNNAutoencoder, **kw):
    torch.manual_seed(seed)
    return cls(**{"d": 8, "l": 4, "G": 20, **kw})


def _params(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _allclose(a, b, atol=1e-6):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


FAST = dict(progress=False, threads=1, batch_size=8)


# ------------------------------------------------------------------ schedule
def test_cosine_decay_values():
    assert cosine_decay(0) == pytest.approx(1.0)
    assert cosine_decay(100) == pytest.approx(0.02)  # floor at epoch = period
    assert cosine_decay(200) == pytest.approx(0.98 / 4 + 0.02)  # back up to the 1/decay envelope
    assert cosine_decay(400) == pytest.approx(0.98 / 16 + 0.02)
    assert cosine_decay(10, period=10, decay=2.0, floor=0.1) == pytest.approx(0.1)
    assert cosine_decay(20, period=10, decay=2.0, floor=0.1) == pytest.approx(0.9 / 2 + 0.1)
    e = np.linspace(0, 100, 201)
    v = cosine_decay(e)
    assert isinstance(v, np.ndarray) and v.shape == e.shape
    assert np.all(np.diff(v) < 0)  # decreasing over the first period
    assert np.allclose(v, [cosine_decay(x) for x in e])
    w = cosine_decay(np.linspace(100, 180, 50))
    assert np.all(np.diff(w) > 0)  # the warm restart rises again (its top is a little before 2 * period)
    with pytest.raises(ValueError, match="period"):
        cosine_decay(1, period=0)
    with pytest.raises(ValueError, match="floor"):
        cosine_decay(1, floor=1.5)


def test_scheduler_follows_fractional_epochs():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=0.1)
    sched = make_scheduler(opt, steps_per_epoch=4, period=2, decay=3.0, floor=0.05)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(16):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expected = 0.1 * cosine_decay(np.arange(17) / 4, period=2, decay=3.0, floor=0.05)
    assert np.allclose(lrs, expected)
    assert lrs[8] == pytest.approx(0.1 * 0.05)  # floor after 2 epochs (8 steps)


# ---------------------------------------------------------- a protocol toy
@dataclass
class ToyBatch:
    x: torch.Tensor

    def to(self, device):
        return ToyBatch(self.x.to(device))

    def __len__(self):
        return len(self.x)


class Toy(nn.Module):
    """Protocol model whose loss has zero gradient: only weight decay moves the parameters."""

    default_lr = 0.1

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.config = {"scale": scale}
        self.dyn = nn.Parameter(torch.ones(3))
        self.head = nn.Parameter(torch.ones(3))

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def collate(self, sketches):
        return ToyBatch(torch.tensor([float(s.n_points) for s in sketches]))

    def loss(self, batch, return_parts=False):
        total = 0.0 * (self.dyn.sum() + self.head.sum()) + batch.x.mean() * 0 + 1.0
        return {"total": total} if return_parts else total

    def dynamics_parameters(self):
        return [self.dyn]


def test_param_groups_weight_decay_only_on_dynamics(train_val):
    m = _model()
    opt = make_optimizer(m)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"dynamics", "other"}
    assert groups["dynamics"]["weight_decay"] == 1e-2 and groups["other"]["weight_decay"] == 0.0
    assert all(g["lr"] == RNNAutoencoder.default_lr == 1e-4 for g in opt.param_groups)
    lstm_ids = {id(p) for p in list(m.encoder.lstm.parameters()) + list(m.decoder.lstm.parameters())}
    assert {id(p) for p in groups["dynamics"]["params"]} == lstm_ids
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in m.parameters()}
    # without dynamics_parameters every parameter gets weight decay
    lin = nn.Linear(2, 2)
    (g,) = make_optimizer(lin, lr=1e-3).param_groups
    assert g["weight_decay"] == 1e-2 and len(g["params"]) == 2

    # behaviour: with zero gradients AdamW only decays, and only the dynamics parameters
    toy = Toy()
    h = fit(toy, train_val[0], epochs=2, period=1, weight_decay=0.5, **FAST)
    spe = math.ceil(30 / 8)
    lrs = 0.1 * cosine_decay(np.arange(2 * spe) / spe, period=1)
    assert torch.allclose(toy.dyn, torch.full((3,), float(np.prod(1 - 0.5 * lrs))), atol=1e-6)
    assert torch.equal(toy.head, torch.ones(3))
    # history: the lr recorded is the scheduled one after each epoch
    assert [r["lr"] for r in h.records] == pytest.approx([0.1 * cosine_decay(e, period=1) for e in (1, 2)])


def test_loss_decreases(train_val):
    train, val = train_val
    m = _model()
    before = evaluate(m, val)["total"]
    h = fit(m, train, val=val, epochs=8, lr=1e-2, **FAST)
    assert h.stopped == "epochs" and len(h.records) == 8 and h.last["step"] == 8 * 4
    assert h.records[-1]["train_loss"] < 0.7 * h.records[0]["train_loss"]
    assert h.best_val < 0.7 * before
    assert h.last["val_loss"] == pytest.approx(evaluate(m, val)["total"], rel=1e-6)


def test_gradients_are_clipped(train_val, monkeypatch):
    norms = []
    real_step = torch.optim.AdamW.step

    def spy(self, *a, **kw):
        g = [p.grad for grp in self.param_groups for p in grp["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in g]))))
        return real_step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    fit(_model(), train_val[0], steps=3, clip=None, **FAST)
    raw = norms[:]
    assert min(raw) > 0.01  # the gradients of this model are larger than the clip
    norms.clear()
    fit(_model(), train_val[0], steps=3, clip=0.01, **FAST)
    assert max(norms) <= 0.01 * (1 + 1e-4)
    assert norms[0] == pytest.approx(0.01, rel=1e-4)  # rescaled to the clip norm, not zeroed


# ---------------------------------------------------------------- augmentation
class Recorder(RNNAutoencoder):
    """Records the drawings of every training batch it collates."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen = []

    def collate(self, sketches):
        if self.training:
            self.seen.append([(s.key, s.points.copy()) for s in sketches])
        return super().collate(sketches)


def test_validation_is_never_augmented(train_val, monkeypatch):
    train, val = train_val
    calls = []
    real = tr.perlin

    def counting(sketch, *a, **kw):
        calls.append(sketch.key)
        return real(sketch, *a, **kw)

    monkeypatch.setattr(tr, "perlin", counting)
    m = _model()
    h = fit(m, train, val=val, epochs=2, augment_sigma=0.2, **FAST)
    assert sorted(calls) == sorted([s.key for s in train] * 2)  # each training drawing once per epoch
    assert not {s.key for s in val} & set(calls)
    n = len(calls)
    assert h.last["val_loss"] == pytest.approx(evaluate(m, val)["total"], rel=1e-6)
    assert len(calls) == n  # evaluate does not augment either


def test_augmentation_differs_per_epoch_and_is_reproducible(train_val):
    train = train_val[0]
    runs = []
    for _ in range(2):
        m = _model(cls=Recorder)
        fit(m, train, epochs=2, augment_sigma=0.2, **FAST)
        runs.append(m.seen)
    a, b = runs
    assert len(a) == 2 * 4  # 4 batches per epoch (30 = 8 + 8 + 8 + 6)
    for ba, bb in zip(a, b):  # same order, same warps
        assert [k for k, _ in ba] == [k for k, _ in bb]
        assert all(np.array_equal(pa, pb) for (_, pa), (_, pb) in zip(ba, bb))
    ep0 = {k: p for batch in a[:4] for k, p in batch}
    ep1 = {k: p for batch in a[4:] for k, p in batch}
    assert set(ep0) == set(ep1) == {s.key for s in train}
    clean = {s.key: s.points for s in prepare(train)}
    for k in ep0:
        assert ep0[k].shape == ep1[k].shape == clean[k].shape
        assert not np.allclose(ep0[k][:, :2], ep1[k][:, :2])  # a new warp each epoch
        assert not np.allclose(ep0[k][:, :2], clean[k][:, :2])
        assert np.array_equal(ep0[k][:, 2], clean[k][:, 2])  # time untouched
        # re-normalised: starts at the origin, inside the unit disc
        assert np.allclose(ep0[k][0, :2], 0) and np.hypot(*ep0[k][:, :2].T).max() == pytest.approx(1)
    # the order differs between epochs; augment_batch is a pure function of (seed, epoch, index)
    assert [k for bt in a[:4] for k, _ in bt] != [k for bt in a[4:] for k, _ in bt]
    s = prepare(train[:2])
    x, y = augment_batch(s, [0, 1], 0.2, seed=0, epoch=3), augment_batch(s[::-1], [1, 0], 0.2, seed=0, epoch=3)
    assert np.array_equal(x[0].points, y[1].points)


def test_epoch_permutation():
    p0, p0b, p1 = epoch_permutation(30, 0, 0), epoch_permutation(30, 0, 0), epoch_permutation(30, 0, 1)
    assert torch.equal(p0, p0b) and not torch.equal(p0, p1)
    assert torch.equal(torch.sort(p1).values, torch.arange(30))
    assert not torch.equal(p0, epoch_permutation(30, 1, 0))


def test_odd_batch_sizes(train_val):
    train = train_val[0]
    m = _model(cls=Recorder)
    h = fit(m, train, epochs=2, **{**FAST, "batch_size": 7})
    sizes = [len(b) for b in m.seen]
    assert sizes == [7, 7, 7, 7, 2] * 2  # last partial batch kept
    for e in (0, 1):
        keys = [k for b in m.seen[5 * e : 5 * e + 5] for k, _ in b]
        assert sorted(keys) == sorted(s.key for s in train)  # every drawing exactly once per epoch
    assert [r["step"] for r in h.records] == [5, 10]
    m = _model(cls=Recorder)
    fit(m, train[:5], epochs=1, **{**FAST, "batch_size": 64})  # batch larger than the data
    assert [len(b) for b in m.seen] == [5]
    fit(_model(), train[:1], steps=2, **FAST)  # a single drawing


# ------------------------------------------------------ divergence, checkpoints
class NaNAt(RNNAutoencoder):
    """Its training loss becomes NaN at the k-th training step (1-based)."""

    nan_at = 7

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls = 0

    def loss(self, batch, return_parts=False):
        out = super().loss(batch, return_parts)
        if self.training:
            self.calls += 1
            if self.calls >= self.nan_at:
                return out * float("nan")
        return out


def test_nan_keeps_last_good_checkpoint(train_val, tmp_path):
    train, val = train_val
    path = tmp_path / "run.pt"
    m = _model(cls=NaNAt)
    with pytest.raises(TrainingDiverged) as e:
        fit(m, train, val=val, epochs=5, checkpoint=path, **FAST)  # 4 steps per epoch: NaN in epoch 2
    msg = str(e.value)
    assert "global step 7" in msg and "epoch 2" in msg and str(path) in msg and "kept" in msg
    assert "step 4, epoch 1" in msg  # the checkpoint that was kept
    assert isinstance(e.value, RuntimeError)
    kept = path.read_bytes()
    assert load_checkpoint(path)["train_state"]["step"] == 4
    assert sorted(os.listdir(tmp_path)) == ["run.pt"]
    assert all(torch.isfinite(p).all() for p in m.parameters())  # the NaN step was not applied
    # a later diverging run (resumed) does not touch the file either
    m2 = _model(cls=NaNAt)
    m2.nan_at = 2
    with pytest.raises(TrainingDiverged, match="global step 6"):
        fit(m2, train, val=val, epochs=5, checkpoint=path, resume=True, **FAST)
    assert path.read_bytes() == kept
    # without a checkpoint the message says so
    with pytest.raises(TrainingDiverged, match="no checkpoint path"):
        fit(_model(cls=NaNAt), train, epochs=3, **FAST)


def test_resume_equals_uninterrupted(train_val, tmp_path):
    train, val = train_val
    kw = dict(val=val, augment_sigma=0.1, lr=3e-3, period=1, **FAST)
    full = _model(seed=0)
    h_full = fit(full, train, epochs=2, **kw)

    path = tmp_path / "run.pt"
    first = _model(seed=0)
    h1 = fit(first, train, epochs=1, checkpoint=path, **kw)
    assert h1.stopped == "epochs" and load_checkpoint(path)["train_state"]["epoch"] == 1
    second = _model(seed=123)  # initial weights are overwritten by the checkpoint
    h2 = fit(second, train, epochs=2, checkpoint=path, resume=True, **kw)
    assert _allclose(_params(second), _params(full))
    assert [r["step"] for r in h2.records] == [4, 8]
    for a, b in zip(h2.records, h_full.records):
        for k in ("epoch", "step", "train_loss", "val_loss", "lr"):
            assert a[k] == pytest.approx(b[k], rel=1e-6)

    # stopped in the middle of an epoch (by steps), then resumed
    mid = tmp_path / "mid.pt"
    third = _model(seed=0)
    h3 = fit(third, train, steps=3, checkpoint=mid, **kw)
    assert h3.stopped == "steps" and h3.last["step"] == 3 and h3.last["complete"] is False
    assert h3.last["epoch"] == pytest.approx(0.75)
    fourth = _model(seed=7)
    h4 = fit(fourth, train, epochs=2, checkpoint=mid, resume=True, **kw)
    assert _allclose(_params(fourth), _params(full))
    assert [r["complete"] for r in h4.records] == [True, True]  # the partial record was replaced
    assert h4.records[0]["train_loss"] == pytest.approx(h_full.records[0]["train_loss"], rel=1e-6)
    # the stored model loads on its own
    assert _allclose(_params(load_model(mid)), _params(full))
    # resuming a finished run does nothing
    before = mid.read_bytes()
    h5 = fit(_model(seed=7), train, epochs=2, checkpoint=mid, resume=True, **kw)
    assert h5.stopped == "epochs" and len(h5.records) == 2 and mid.read_bytes() == before


def test_resume_refuses_other_settings(train_val, tmp_path):
    path = tmp_path / "run.pt"
    fit(_model(), train_val[0], epochs=1, checkpoint=path, **FAST)
    with pytest.raises(ValueError, match=r"run\.pt.*batch_size: checkpoint 8, now 16"):
        fit(_model(), train_val[0], epochs=2, checkpoint=path, resume=True, **{**FAST, "batch_size": 16})
    with pytest.raises(ValueError, match="d: checkpoint 8, now 12"):
        fit(_model(d=12), train_val[0], epochs=2, checkpoint=path, resume=True, **FAST)
    with pytest.raises(FileNotFoundError):
        fit(_model(), train_val[0], epochs=2, checkpoint=tmp_path / "none.pt", resume=True, **FAST)


def test_time_limit_stops_after_one_step(train_val, tmp_path):
    path = tmp_path / "run.pt"
    m = _model()
    h = fit(m, train_val[0], time_limit=1e-9, checkpoint=path, **FAST)
    assert h.stopped == "time_limit" and h.last["step"] == 1 and not h.last["complete"]
    raw = torch.load(path, weights_only=True)  # fit's checkpoints hold plain data only
    assert raw["train_state"]["settings"]["batch_size"] == 8
    ts = load_checkpoint(path)["train_state"]
    assert ts["step"] == 1 and ts["history"]["stopped"] == "time_limit"
    h2 = fit(_model(), train_val[0], epochs=1, checkpoint=path, resume=True, **FAST)
    assert h2.stopped == "epochs" and h2.last["step"] == 4
    # with an epoch budget the earlier stop wins
    h3 = fit(_model(), train_val[0], epochs=1, time_limit=3600, **FAST)
    assert h3.stopped == "epochs"


def test_checkpoint_every_and_callback(train_val, tmp_path, monkeypatch):
    saved = []
    real = tr.save_checkpoint

    def spy(path, model, optimizer=None, scheduler=None, train_state=None):
        saved.append(train_state["epoch"])
        return real(path, model, optimizer, scheduler, train_state)

    monkeypatch.setattr(tr, "save_checkpoint", spy)
    seen = []
    fit(_model(), train_val[0], epochs=5, checkpoint=tmp_path / "c.pt", checkpoint_every=2,
        callback=lambda model, rec: seen.append((model.training, rec["epoch"])), **FAST)  # fmt: skip
    assert saved == [2, 4, 5]  # every 2 epochs and at the end
    assert [e for _, e in seen] == [1, 2, 3, 4, 5]
    saved.clear()
    fit(_model(), train_val[0], epochs=2, checkpoint=tmp_path / "d.pt", **FAST)
    assert saved == [1, 2]  # default: every epoch


# ------------------------------------------------------------ small pieces
def test_evaluate_weighted_mean(train_val):
    val = train_val[1]
    m = _model().train()
    a = evaluate(m, val, batch_size=3)  # batches of 3, 3, 3, 1
    b = evaluate(m, val, batch_size=256)
    assert m.training  # mode restored
    assert a["n"] == b["n"] == 10 and set(a) == {"position", "pen", "total", "n"}
    for k in ("position", "pen", "total"):
        assert a[k] == pytest.approx(b[k], rel=1e-5)
    with torch.no_grad():
        direct = m.eval().loss(m.collate(prepare(val)), return_parts=True)
    assert b["total"] == pytest.approx(float(direct["total"]), rel=1e-6)


def test_history_and_arguments(train_val):
    h = History(records=[{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.3}, {"epoch": 3, "val_loss": 0.4}])
    assert h.best_val == 0.3 and h.last["epoch"] == 3
    assert History().last is None and History().best_val is None
    h.stopped = "epochs"
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    train = train_val[0]
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        fit(_model(), train, epochs=1, steps=2, **FAST)
    with pytest.raises(ValueError, match="exactly one of epochs or steps"):
        fit(_model(), train, **FAST)
    with pytest.raises(ValueError, match="data is empty"):
        fit(_model(), [], epochs=1, **FAST)
    with pytest.raises(TypeError, match=r"data\[1\] is a str"):
        fit(_model(), [train[0], "x"], epochs=1, **FAST)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint"):
        fit(_model(), train, epochs=1, resume=True, **FAST)
    with pytest.raises(TypeError, match="protocol.*missing config, collate, loss"):
        fit(nn.Linear(2, 2), train, epochs=1, **FAST)


def test_device_and_threads(train_val):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a device"):
        pick_device("toaster")
    n = sensible_threads()
    assert 1 <= n <= min(4, os.cpu_count())
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(n + 2)
        fit(_model(), train_val[0][:4], steps=1, progress=False)  # the library leaves the process's count alone
        assert torch.get_num_threads() == n + 2
        seen = []
        fit(_model(), train_val[0][:4], steps=1, progress=False, threads=1,
            callback=lambda model, record: seen.append(torch.get_num_threads()))
        assert seen == [1] and torch.get_num_threads() == n + 2  # threads= holds during the call, then is restored
    finally:
        torch.set_num_threads(old)


def test_rnn_autoencoder_protocol(train_val):
    m = _model(G=13, T=2.0)
    assert m.config["G"] == 13 and m.config["T"] == 2.0
    b = m.collate(prepare(train_val[1][:3]))
    assert b.points.shape == (3, 13, 3) and float(b.t[-1]) == pytest.approx(2.0) and bool(b.mask.all())
    assert RNNAutoencoder.from_config(m.config).config == m.config
    with pytest.raises(ValueError, match="G .* integer >= 1"):
        RNNAutoencoder(G=0)
    with pytest.raises(ValueError, match="T .* > 0"):
        RNNAutoencoder(T=0.0)


def test_warmup_ramps_the_learning_rate_then_follows_the_schedule():
    from sketchode.training.fit import make_scheduler

    m = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(m.parameters(), lr=1.0)
    sch = make_scheduler(opt, steps_per_epoch=10, period=100, warmup=4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[:4] == pytest.approx([0.25 * cosine_decay(0, 100), 0.5 * cosine_decay(0.1, 100),
                                     0.75 * cosine_decay(0.2, 100), 1.0 * cosine_decay(0.3, 100)])
    assert lrs[5] == pytest.approx(cosine_decay(0.5, 100))
    with pytest.raises(ValueError, match="warmup"):
        make_scheduler(opt, 10, warmup=-1)


def test_a_changed_warmup_refuses_to_resume(tmp_path, train_val):
    path = tmp_path / "w.pt"
    fit(_model(), train_val[0], steps=2, checkpoint=path, warmup=5, **FAST)
    with pytest.raises(ValueError, match="warmup"):
        fit(_model(), train_val[0], steps=3, checkpoint=path, resume=True, **FAST)
    fit(_model(), train_val[0], steps=3, checkpoint=path, resume=True, warmup=5, **FAST)
