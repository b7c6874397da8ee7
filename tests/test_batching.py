"""Mini-batching with masks (paper appendix D)."""
from functools import partial

import numpy as np
import pytest
import torch

from conftest import make_sketch
from sketchode.data import Sketch
from sketchode.data.batching import collate_full, collate_strokes


@pytest.fixture
def batch_sketches():
    return [make_sketch(n_strokes=k, n=10 + 5 * k, seed=k).normalize() for k in (1, 3, 2)]


def test_full_uniform(batch_sketches):
    b = collate_full(batch_sketches, G=75, T=5.0)
    assert b.t.shape == (75,) and b.points.shape == (3, 75, 3) and b.mask.all()
    assert torch.allclose(b.t[[0, -1]], torch.tensor([0.0, 5.0]))
    assert torch.all(b.points[:, 0, :2] == 0)  # normalised: start at origin
    assert set(b.points[..., 2].unique().tolist()) <= {0.0, 1.0}
    assert b.path.shape == (3, 75, 4) and torch.equal(b.path[0, :, 0], b.t)
    assert b.labels == ["x"] * 3 and b.keys == ["test:1", "test:3", "test:2"]


def test_full_union_mask_marks_own_times(batch_sketches):
    # a fine resolution keeps every own observation exactly (the default T/1000 snaps them)
    b = collate_full(batch_sketches, grid="union", join_points=2, resolution=1e-9)
    seqs = [s.to_full_sequence(join_points=2) for s in batch_sketches]
    assert b.t.shape[0] <= sum(len(q) for q in seqs)
    assert torch.all(b.t[1:] > b.t[:-1])
    for i, q in enumerate(seqs):
        assert int(b.mask[i].sum()) == len(q)  # every own time point found exactly once
        own = b.points[i][b.mask[i]].double().numpy()
        assert np.allclose(own[:, :2], q[:, 1:3], atol=1e-6)
        assert np.array_equal(own[:, 2], q[:, 3])


def test_strokes_uniform_padding_masked(batch_sketches):
    b = collate_strokes(batch_sketches, G=30)
    assert b.points.shape == (3, 3, 30, 2)
    assert b.n_strokes.tolist() == [1, 3, 2]
    assert b.stroke_mask.tolist() == [[True, False, False], [True, True, True], [True, True, False]]
    assert torch.equal(b.mask, b.stroke_mask[:, :, None].expand_as(b.mask))
    # padded strokes are zero and masked; real strokes start at 0 relative to `start`
    assert torch.all(b.points[~b.stroke_mask] == 0)
    assert torch.all(b.points[b.stroke_mask][:, 0] == 0)
    s1 = batch_sketches[1]
    for k in range(3):
        assert torch.allclose(b.start[1, k].double(), torch.tensor(np.array(s1.strokes[k][0, :2])), atol=1e-6)
        assert torch.allclose((b.points[1, k, -1] + b.start[1, k]).double(), torch.tensor(np.array(s1.strokes[k][-1, :2])), atol=1e-6)
    assert b.end_of_sketch.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_strokes_union(batch_sketches):
    b = collate_strokes(batch_sketches, grid="union")
    per = [s.to_strokes() for s in batch_sketches]
    for i, p in enumerate(per):
        for k, st in enumerate(p):
            assert int(b.mask[i, k].sum()) == len(st)
        assert not b.mask[i, len(p):].any()


def test_batch_does_not_depend_on_other_samples(batch_sketches):
    alone = collate_strokes(batch_sketches[:1], G=20)
    together = collate_strokes(batch_sketches, G=20)
    assert torch.equal(alone.points[0, :1], together.points[0, :1])


def test_empty_batch_and_bad_items():
    with pytest.raises(ValueError, match="empty batch"):
        collate_full([])
    with pytest.raises(TypeError, match="item 1"):
        collate_full([make_sketch(), np.zeros((3, 3))])
    with pytest.raises(ValueError, match="grid"):
        collate_strokes([make_sketch()], grid="bogus")


def test_dataloader_and_to(batch_sketches):
    dl = torch.utils.data.DataLoader(batch_sketches, batch_size=2, collate_fn=partial(collate_full, G=10))
    b = next(iter(dl))
    assert b.points.shape == (2, 10, 3)
    d = b.to("cpu", dtype=torch.float64)
    assert d.points.dtype == torch.float64 and d.mask.dtype == torch.bool


def test_union_grid_of_many_drawings_is_strictly_increasing_in_float32_and_tames_the_pen_spline():
    """Regression: 32 multi-stroke digits gave union times 1e-6 apart (equal in float32) and a
    natural spline through the pen reaching 8.3; times are now snapped to T/1000."""
    import torch as _torch

    from sketchode.data import load as _load
    from sketchode.data import prepare as _prepare
    from sketchode.models.encoder import spline as _spline

    sk = _prepare([s for s in _load("digits", "test") if s.n_strokes > 1][:32])
    b = collate_full(sk, grid="union")
    gaps = b.t[1:] - b.t[:-1]
    assert float(gaps.min()) >= 5.0 / 1000 * 0.999
    assert b.mask.any(1).all() and bool(b.mask[:, 0].all()) and bool(b.mask[:, -1].all())
    X = _spline(b.path.double(), b.t.double())
    pen = X.evaluate(_torch.linspace(0, 5, 2000, dtype=_torch.float64))[..., 3]
    assert float(pen.max()) < 2.0 and float(pen.min()) > -1.0
