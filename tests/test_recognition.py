"""Recognition CNN for the semantic reconstruction metric (paper 5.2)."""

import os
from collections import defaultdict

import numpy as np
import pytest
import torch

from sketchode.data import collate_full, load
from sketchode.evaluation.recognition import (
    DEFAULT_LINEWIDTH,
    RecognitionCNN,
    accuracy,
    load_recognizer,
    predict,
    rasterize_sketches,
    save_recognizer,
    to_images,
    train_recognizer,
)

from conftest import make_sketch


def _per_class(sketches, n):
    by = defaultdict(list)
    for s in sketches:
        if len(by[s.label]) < n:
            by[s.label].append(s)
    return [s for k in sorted(by) for s in by[k]]


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(2)
    train = _per_class(load("digits"), 100)
    test = _per_class(load("digits", split="test"), 30)
    model = train_recognizer(train, epochs=2, seed=0)
    return model, train, test


def test_model_shapes():
    m = RecognitionCNN(10)
    assert m.classes == [str(k) for k in range(10)]
    assert m.config["n_classes"] == 10 and m.config["size"] == 28
    assert m(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    m32 = RecognitionCNN(3, size=32, classes=["a", "b", "c"])
    assert m32(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError):
        m(torch.zeros(5, 1, 32, 32))
    with pytest.raises(ValueError):
        RecognitionCNN(3, classes=["a", "b"])
    with pytest.raises(ValueError):
        RecognitionCNN(1)


def test_rasterize_sketches_shapes():
    sk = [make_sketch(seed=k) for k in range(4)]
    x = rasterize_sketches(sk)
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.sum()) > 0
    xg = rasterize_sketches(sk, size=32, G=75, linewidth=DEFAULT_LINEWIDTH)
    assert xg.shape == (4, 1, 32, 32)
    # the re-sampled picture is close to the exact one
    assert float((rasterize_sketches(sk, G=200) - x).abs().mean()) < 0.05
    with pytest.raises(ValueError):
        rasterize_sketches([])
    with pytest.raises(TypeError):
        rasterize_sketches([np.zeros((3, 3))])


def test_to_images_inputs():
    seqs = torch.rand(3, 20, 3)
    seqs[..., 2] = 0.0
    assert to_images(seqs).shape == (3, 1, 28, 28)
    assert to_images(torch.rand(3, 20, 4)).shape == (3, 1, 28, 28)
    assert to_images(np.zeros((2, 28, 28))).shape == (2, 1, 28, 28)
    assert to_images([np.asarray(s) for s in seqs]).shape == (3, 1, 28, 28)
    for bad in (torch.zeros(2, 1, 20, 20), torch.zeros(2, 5, 5), torch.zeros(28, 28), torch.zeros(2, 20, 7)):
        with pytest.raises(ValueError):
            to_images(bad)


def test_small_training_beats_80_percent(small):
    model, _, test = small
    assert not model.training
    acc = accuracy(model, test)
    assert acc > 0.8
    # what decoder reconstructions look like: uniformly re-sampled sequences
    pts = collate_full(test, G=75).points
    acc75 = accuracy(model, pts, [s.label for s in test])
    assert acc75 > 0.8 and abs(acc75 - acc) < 0.05
    pred = predict(model, test)
    assert len(pred) == len(test) and set(pred) <= set(model.classes)


def test_training_is_deterministic():
    train = _per_class(load("digits"), 10)
    x = rasterize_sketches(train)
    y = [s.label for s in train]
    state = torch.random.get_rng_state()
    a = train_recognizer(x, y, epochs=1, batch_size=32, seed=3)
    b = train_recognizer(x, y, epochs=1, batch_size=32, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    c = train_recognizer(x, y, epochs=1, batch_size=32, seed=4)
    assert not torch.equal(a.head[-1].weight, c.head[-1].weight)


def test_save_load_round_trip(small, tmp_path):
    model, _, test = small
    path = tmp_path / "sub" / "rec.pt"
    assert save_recognizer(model, path) == path
    assert sorted(os.listdir(path.parent)) == ["rec.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"state_dict", "config", "classes"} and raw["classes"] == model.classes
    m2 = load_recognizer(path)
    assert m2.classes == model.classes and m2.config == model.config and not m2.training
    x = rasterize_sketches(test)
    with torch.no_grad():
        assert torch.equal(model(x), m2(x))
    assert predict(m2, x) == predict(model, x)
    # overwrite in place, still atomic and clean
    save_recognizer(m2, path)
    assert sorted(os.listdir(path.parent)) == ["rec.pt"]


def test_failed_save_leaves_no_temp(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        save_recognizer(RecognitionCNN(3), tmp_path / "x.pt")
    assert os.listdir(tmp_path) == []


def test_bad_inputs(small):
    model, _, test = small
    with pytest.raises(ValueError, match="unknown label"):
        accuracy(model, test[:3], ["0", "1", "zebra"])
    with pytest.raises(ValueError, match="labels"):
        accuracy(model, test[:3], ["0", "1"])
    with pytest.raises(ValueError, match="labels are required"):
        accuracy(model, torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="expected images"):
        predict(model, torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unknown label"):
        train_recognizer(torch.zeros(2, 1, 28, 28), ["0", "q"], classes=["0", "1"])
    with pytest.raises(ValueError):
        train_recognizer(torch.zeros(2, 1, 28, 28), ["0", "1"], epochs=0)
    with pytest.raises(ValueError, match="labels"):
        train_recognizer(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError):
        train_recognizer([make_sketch(label=None), make_sketch(seed=1, label="a")])
