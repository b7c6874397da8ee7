"""Latent-space tools of chapter 10 (paper 5.2, 5.4): codes, paths, sampling and their measurements."""
import numpy as np
import pytest
import torch

from sketchode.data import load
from sketchode.book.ch10_latent import (conditional, cyclic_walk, decode_paths, decode_sketches, encode_sketches,
                              latent_spread, lerp, path_smoothness)
from sketchode.models.full_sequence import SketchODE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits8():
    return load("digits", "test")[:8]


@pytest.fixture(scope="module")
def model(tiny_autoencoder):  # conftest.py: a tiny SketchODE, then a tiny LSTM baseline
    return tiny_autoencoder


def test_encode_decode_shapes_and_modes(model, digits8):
    model.train()
    z = encode_sketches(model, digits8, batch_size=3)  # batched in pieces: same as one batch
    assert z.shape == (8, 6) and model.training  # mode restored
    assert torch.allclose(z, encode_sketches(model, digits8), atol=1e-5)
    xy, pen = decode_paths(model, z, G=33)
    assert xy.shape == (8, 33, 2) and pen.shape == (8, 33) and np.all((pen >= 0) & (pen <= 1))
    sk = decode_sketches(model, z, labels=[s.label for s in digits8])
    assert len(sk) == 8 and [s.label for s in sk] == [s.label for s in digits8]
    assert sk[0].points.shape[0] <= 20  # default G is the training G


def test_decode_rejects_bad_codes(model):
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        decode_paths(model, torch.zeros(2, 5))
    z = torch.zeros(3, 6)
    z[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"codes \[1\] are not finite"):
        decode_paths(model, z)


def test_lerp_endpoints_and_linearity():
    z0, z1 = torch.randn(5), torch.randn(5)
    p = lerp(z0, z1, 6)
    assert p.shape == (6, 5) and torch.allclose(p[0], z0) and torch.allclose(p[-1], z1)
    assert torch.allclose(p[1:] - p[:-1], (z1 - z0).expand(5, 5) / 5, atol=1e-6)  # even steps
    with pytest.raises(ValueError):
        lerp(z0, z1, 1)
    with pytest.raises(ValueError):
        lerp(z0, torch.randn(4))


def test_cyclic_walk_is_closed_and_passes_through_every_code():
    zs = torch.randn(4, 3)
    w = cyclic_walk(zs, steps=5)
    assert w.shape == (20, 3)
    assert torch.allclose(w[::5], zs)  # each leg starts at its code
    # the step from the last code back to the first is as even as the others
    steps = (torch.roll(w, -1, 0) - w).norm(dim=1).view(4, 5)
    assert torch.allclose(steps, steps[:, :1].expand(4, 5), atol=1e-5)
    with pytest.raises(ValueError):
        cyclic_walk(zs[:1])


def test_conditional_is_seeded_and_scaled():
    z = torch.zeros(1000)
    a, b = conditional(z, 4, 0.05, seed=3), conditional(z, 4, 0.05, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, conditional(z, 4, 0.05, seed=4))
    assert abs(float(a.std()) - 0.05) < 0.005
    assert torch.equal(conditional(z, 2, 0.0), torch.zeros(2, 1000))
    with pytest.raises(ValueError):
        conditional(torch.zeros(2, 3))


def test_latent_spread():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 3, generator=g) * torch.tensor([0.5, 1.0, 2.0])
    s = latent_spread(z)
    assert abs(s["std_min"] - 0.5) < 0.03 and abs(s["std_max"] - 2.0) < 0.1
    assert abs(s["std_mean"] - 3.5 / 3) < 0.05 and s["n"] == 4000 and s["l"] == 3


def test_path_smoothness_even_morph_and_a_jump():
    G = 10
    a = np.linspace(0, 1, 11)[:, None, None]
    base, target = np.zeros((G, 2)), np.ones((G, 2))
    even = (1 - a) * base + a * target
    s = path_smoothness(even)
    assert s["jump"] == pytest.approx(1.0) and s["detour"] == pytest.approx(1.0)
    leap = even.copy()
    leap[5:] = target  # jumps half way
    s2 = path_smoothness(leap)
    assert s2["jump"] > 5
    back_and_forth = np.concatenate([even, even[::-1], even])
    assert path_smoothness(back_and_forth)["detour"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        path_smoothness(np.zeros((2, G, 2)))


def test_decoded_paths_are_continuous_in_z_for_the_ode(digits8):
    """SketchODE's decoder is a smooth map of z: halving the latent step halves the output step."""
    torch.manual_seed(0)
    m = SketchODE(d=8, l=6, G=20, n_hidden=1)
    z = encode_sketches(m, digits8[:1])[0]
    dz = torch.randn(6) * 1e-2
    xy, _ = decode_paths(m, torch.stack([z, z + dz, z + dz / 2]))
    d1, d2 = np.abs(xy[1] - xy[0]).max(), np.abs(xy[2] - xy[0]).max()
    assert d2 == pytest.approx(d1 / 2, rel=0.05)
