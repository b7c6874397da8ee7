import pytest
import torch

from sketchode.models.lstm import BiLSTMEncoder, LSTMDecoder, RNNAutoencoder
from sketchode.data import load
from sketchode.data.batching import FullBatch, collate_full


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(scope="module")
def batch():
    sk = [s.normalize() for s in load("digits")[:8]]
    return collate_full(sk, G=40)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return RNNAutoencoder(**kw)


def test_shapes_and_config(batch):
    m = _model(d=16, l=8)
    xy, pen, z = m(batch)
    assert xy.shape == (8, 40, 2) and pen.shape == (8, 40) and z.shape == (8, 8)
    assert m.encode(batch).shape == (8, 8)
    assert m.encode(batch.path).shape == (8, 8)
    assert m.config["d"] == 16 and m.config["l"] == 8
    m2 = RNNAutoencoder.from_config(m.config)
    m2.load_state_dict(m.state_dict())
    assert torch.allclose(m2(batch)[0], xy)
    parts = m.loss(batch, return_parts=True)
    assert set(parts) == {"position", "pen", "total"} and parts["total"].ndim == 0
    # in_dim=3 encodes batch.points
    m3 = _model(d=16, l=8, in_dim=3)
    assert m3(batch)[2].shape == (8, 8)


def test_decode_other_grid(batch):
    m = _model(d=16, l=8)
    z = m.encode(batch)
    for G in (1, 13, 120):
        t = torch.linspace(0, 5, G)
        xy, pen = m.decode(z, t)
        assert xy.shape == (8, G, 2) and pen.shape == (8, G)
    xy, pen = m.decode(z, torch.linspace(0, 5, 7).expand(8, 7))
    assert xy.shape == (8, 7, 2)
    # decoding from z alone (e.g. an interpolated code)
    zi = 0.5 * (z[:1] + z[1:2])
    assert m.decode(zi, batch.t)[0].shape == (1, 40, 2)


def test_overfit_tiny_batch(batch):
    m = _model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = m.loss(batch)
        loss.backward()
        opt.step()
        if first is None:
            first = loss.item()
    assert torch.isfinite(loss)
    assert m.loss(batch).item() < 0.5 * first


def test_encoder_padding_invariance():
    torch.manual_seed(0)
    enc = BiLSTMEncoder(in_dim=4, hidden=16, latent=8)
    x = torch.randn(3, 20, 4)
    z = enc(x)
    # append 7 padded (masked) steps full of garbage
    pad = torch.cat([x, torch.full((3, 7, 4), float("nan"))], 1)
    mask = torch.ones(3, 27, dtype=torch.bool)
    mask[:, 20:] = False
    assert torch.allclose(enc(pad, mask), z, atol=1e-6)
    # different lengths in one batch: each sample as if encoded alone
    mask2 = torch.ones(3, 20, dtype=torch.bool)
    mask2[1, 12:] = False
    mask2[2, 5:] = False
    zb = enc(x, mask2)
    assert torch.allclose(zb[0], z[0], atol=1e-6)
    assert torch.allclose(zb[1], enc(x[1:2, :12])[0], atol=1e-6)
    assert torch.allclose(zb[2], enc(x[2:3, :5])[0], atol=1e-6)
    # holes (union grid): only the true entries, in order, are read
    mask3 = torch.ones(3, 20, dtype=torch.bool)
    mask3[0, [3, 7, 8]] = False
    keep = mask3[0]
    assert torch.allclose(enc(x, mask3)[0], enc(x[0:1, keep])[0], atol=1e-6)


def test_model_mask_from_batch(batch):
    m = _model(d=16, l=8)
    z = m.encode(batch)
    B, G = batch.points.shape[:2]
    padded = FullBatch(
        t=torch.cat([batch.t, torch.linspace(5.1, 6, 5)]),
        points=torch.cat([batch.points, torch.randn(B, 5, 3)], 1),
        mask=torch.cat([batch.mask, torch.zeros(B, 5, dtype=torch.bool)], 1),
        labels=batch.labels,
        keys=batch.keys,
    )
    assert torch.allclose(m.encode(padded), z, atol=1e-6)
    # the loss ignores the padded points too
    assert torch.allclose(m.loss(padded), m.loss(batch), atol=1e-6)


def test_deterministic(batch):
    a, b = _model(seed=3, d=16, l=8), _model(seed=3, d=16, l=8)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    xa, pa, za = a(batch)
    xb, pb, zb = b(batch)
    assert torch.equal(xa, xb) and torch.equal(pa, pb) and torch.equal(za, zb)
    # the model itself has no randomness
    assert torch.equal(a(batch)[0], xa)


def test_bad_inputs(batch):
    m = _model(d=16, l=8)
    with pytest.raises(ValueError, match=r"\(B, G, 4\)"):
        m.encode(torch.randn(2, 10, 3))
    with pytest.raises(ValueError, match=r"\(B, G, 4\)"):
        m.encode(torch.randn(10, 4))
    with pytest.raises(ValueError, match="empty"):
        m.encode(torch.randn(0, 10, 4))
    with pytest.raises(ValueError, match="empty"):
        m.encode(torch.randn(2, 0, 4))
    x = torch.randn(2, 10, 4)
    x[1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m.encode(x)
    with pytest.raises(ValueError, match="mask"):
        m.encode(torch.randn(2, 10, 4), torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one"):
        m.encode(torch.randn(2, 10, 4), torch.tensor([[True] * 10, [False] * 10]))
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        m.decode(torch.randn(2, 7), batch.t)
    with pytest.raises(ValueError, match="empty"):
        m.decode(torch.randn(0, 8), batch.t)
    with pytest.raises(ValueError, match="t must have shape"):
        m.decode(torch.randn(2, 8), torch.zeros(3, 4, 5))
    with pytest.raises(ValueError, match="NaN"):
        m.decode(torch.full((2, 8), float("nan")), batch.t)
    with pytest.raises(ValueError, match="in_dim"):
        RNNAutoencoder(in_dim=5)
    with pytest.raises(TypeError):
        m.encode([1, 2, 3])
    with pytest.raises(ValueError):
        LSTMDecoder(latent=0)
