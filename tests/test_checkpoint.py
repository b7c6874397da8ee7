"""Tests of sketchode.training.checkpoint: format, atomic writes, weights_only loading, mismatch messages."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import sketchode
from sketchode.training import checkpoint as ck
from sketchode.models.lstm import RNNAutoencoder
from sketchode.training.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    load_weights,
    register_model,
    save_checkpoint,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"d": 8, "l": 4, "G": 20, **kw}
    return RNNAutoencoder(**kw)


def _batch(m):
    from sketchode.data.synthetic import digits

    return m.collate([s.normalize() for s in digits(n_per_class=1)[:4]])


def _same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_roundtrip_load_model(tmp_path):
    m = _model(seed=1)
    p = save_checkpoint(tmp_path / "sub" / "m.pt", m)  # parent folders are created
    assert p == tmp_path / "sub" / "m.pt" and p.is_file()
    m2 = load_model(p)
    assert type(m2) is RNNAutoencoder and m2.config == m.config
    assert not m2.training  # eval mode
    assert _same_params(m, m2)
    b = _batch(m)
    assert torch.equal(m.eval()(b)[0], m2(b)[0])


def test_payload_and_weights_only(tmp_path):
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    m.loss(_batch(m)).backward()
    opt.step()
    sched.step()
    records = [{"lr": np.float64(0.25), "val_loss": None}]
    state = {"step": 3, "history": {"records": records}, "rng": torch.get_rng_state()}
    p = save_checkpoint(tmp_path / "m.pt", m, opt, sched, state)
    raw = torch.load(p, weights_only=True)  # no custom objects, no numpy inside
    assert raw["format"] == FORMAT and raw["format_version"] == FORMAT_VERSION
    assert raw["package_version"] == sketchode.__version__ and raw["class"] == "RNNAutoencoder"
    assert raw["config"] == m.config
    assert set(raw) == {"format", "format_version", "package_version", "class", "config", "state_dict",
                        "optimizer", "scheduler", "train_state"}  # fmt: skip
    # numpy scalars were turned into Python floats
    lr = raw["train_state"]["history"]["records"][0]["lr"]
    assert type(lr) is float and lr == 0.25
    # optimiser and scheduler states restore
    opt2 = torch.optim.AdamW(_model(seed=5).parameters(), lr=1e-3)
    opt2.load_state_dict(raw["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert raw["scheduler"]["last_epoch"] == 1


def test_refuses_unloadable_objects(tmp_path):
    m = _model()
    with pytest.raises(TypeError, match=r"train_state\['stats'\]\['mean'\].*numpy.ndarray"):
        save_checkpoint(tmp_path / "m.pt", m, train_state={"stats": {"mean": np.zeros(3)}})
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_atomic_write_survives_crash(tmp_path, monkeypatch):
    m = _model(seed=1)
    p = save_checkpoint(tmp_path / "m.pt", m)
    before = p.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *a, **kw):
        f.write(b"PARTIAL" * 100)  # half-written file
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(p, _model(seed=2))
    assert p.read_bytes() == before  # the previous checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # no temporary file left
    # a first save that crashes leaves nothing at all
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new.pt", m)
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert _same_params(load_model(p), m)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        load_checkpoint(tmp_path / "nothere.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt is not a sketchode checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match=r"other\.pt is not a sketchode checkpoint"):
        load_checkpoint(other)
    p = save_checkpoint(tmp_path / "m.pt", _model())
    raw = torch.load(p, weights_only=True)
    newer = tmp_path / "newer.pt"
    torch.save({**raw, "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(ValueError, match=r"newer\.pt has checkpoint format_version 2.*upgrade"):
        load_checkpoint(newer)
    future = tmp_path / "future.pt"
    torch.save({**raw, "package_version": "99.0.0"}, future)
    with pytest.raises(ValueError, match=r"future\.pt was written by sketchode 99\.0\.0.*newer major"):
        load_model(future)


def test_unknown_class_and_register(tmp_path, monkeypatch):
    from sketchode.models import protocol

    monkeypatch.setattr(protocol, "_REGISTERED", {})

    class MyAutoencoder(RNNAutoencoder):
        pass

    torch.manual_seed(0)
    m = MyAutoencoder(d=8, l=4, G=20)
    p = save_checkpoint(tmp_path / "mine.pt", m)
    with pytest.raises(ValueError, match=r"mine\.pt.*unknown model class 'MyAutoencoder'.*register_model"):
        load_model(p)
    assert register_model(MyAutoencoder) is MyAutoencoder
    m2 = load_model(p)
    assert type(m2) is MyAutoencoder and _same_params(m, m2)
    with pytest.raises(TypeError, match="from_config"):
        register_model(torch.nn.Linear)


def test_load_weights_mismatch_message(tmp_path):
    p = save_checkpoint(tmp_path / "m.pt", _model(seed=1, d=8, G=20))
    target = _model(seed=2, d=16, G=30)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError) as e:
        load_weights(target, p)
    msg = str(e.value)
    assert str(p) in msg
    assert "d: checkpoint 8, model 16" in msg and "G: checkpoint 20, model 30" in msg
    listed = {part.split(":")[0] for part in msg.split("does not match the model: ")[1].split("; ")}
    assert listed == {"d", "G"}  # only the differing keys
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # untouched

    class Other(RNNAutoencoder):
        pass

    with pytest.raises(ValueError, match="class: checkpoint RNNAutoencoder, model Other"):
        load_weights(Other(d=8, l=4, G=20), p)


def test_load_weights_matching(tmp_path):
    src = _model(seed=1)
    p = save_checkpoint(tmp_path / "m.pt", src)
    dst = _model(seed=2).train()
    assert not _same_params(src, dst)
    assert load_weights(dst, p) is dst
    assert _same_params(src, dst) and dst.training  # mode unchanged
