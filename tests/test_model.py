"""The full-sequence SketchODE autoencoder: shapes, loss, fast == reference, training, config, decoding."""

import json

import pytest
import torch

from sketchode.data import Sketch
from sketchode.data.synthetic import digits
from sketchode.models.losses import reconstruction_loss
from sketchode.models.full_sequence import SketchODE


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(scope="module")
def sketches():
    return [s.normalize() for s in digits(n_per_class=4)[:32]]


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"d": 16, "l": 8, "G": 30, **kw}
    return SketchODE(**kw)


def _rel(a, b):
    return float((a - b).abs().max().detach() / b.abs().max().detach().clamp_min(1e-30))


def test_shapes(sketches):
    m = _model()
    b = m.collate(sketches[:6])
    assert b.path.shape == (6, 30, 4) and torch.equal(b.t, m.t)
    z = m.encode(b)
    assert z.shape == (6, 8)
    assert torch.equal(m.encode(b.path, b.t), z)
    xy, pen = m.decode(z)
    assert xy.shape == (6, 30, 2) and pen.shape == (6, 30)
    fxy, fpen, fz = m(b)
    assert torch.equal(fz, z) and torch.equal(fxy, xy) and torch.equal(fpen, pen)
    assert m.t.dtype == torch.float32 and m.t[0] == 0 and m.t[-1] == pytest.approx(m.config["T"])
    with pytest.raises(ValueError, match="give the time grid"):
        m.encode(b.path)
    with pytest.raises(TypeError, match="FullBatch"):
        m.encode([1, 2])


def test_loss_is_eq5_on_forward(sketches):
    m = _model(beta=0.5, pen_weight=2.0)
    b = m.collate(sketches[:6])
    xy, pen, _ = m(b)
    parts = m.loss(b, return_parts=True)
    ref = reconstruction_loss(xy, pen, b.points, mask=b.mask, beta=0.5, pen_weight=2.0, return_parts=True)
    for k in ("position", "pen", "total"):
        assert torch.allclose(parts[k], ref[k], rtol=1e-6, atol=0)
    assert torch.allclose(parts["total"], parts["position"] + 2.0 * parts["pen"], rtol=1e-6)
    assert torch.allclose(m.loss(b), ref["total"], rtol=1e-6)


def test_fast_equals_reference(sketches):
    """solver="fast" (fused RK4) vs "reference" (torchcde + torchdiffeq), same weights: loss and every
    gradient agree to rtol 1e-4 (float32 round-off through two 29-step solves)."""
    fast = _model(w=2.0, learn_w=True)
    ref = SketchODE.from_config({**fast.config, "solver": "reference"})
    ref.load_state_dict(fast.state_dict())
    b = fast.collate(sketches[:8])
    lf, lr = fast.loss(b), ref.loss(b)
    assert _rel(lf, lr) < 1e-5
    gf = torch.autograd.grad(lf, list(fast.parameters()))
    gr = torch.autograd.grad(lr, list(ref.parameters()))
    for (n, _), a, c in zip(fast.named_parameters(), gf, gr):
        if n == "encoder.initial.weight":  # normalised drawings start at the origin at t=0: X(t0) = 0
            assert torch.all(a == 0) and torch.all(c == 0)
            continue
        assert float(c.abs().max()) > 0, n
        assert _rel(a, c) < 1e-4, (n, _rel(a, c))


def test_reference_options():
    with pytest.raises(ValueError, match="solver must be 'fast' or 'reference'"):
        SketchODE(d=4, l=2, solver="torchcde")
    with pytest.raises(ValueError, match="adjoint=True needs solver='reference'"):
        SketchODE(d=4, l=2, adjoint=True)
    with pytest.raises(ValueError, match="G >= 2"):
        SketchODE(d=4, l=2, G=1)
    m = SketchODE(d=4, l=2, solver="reference", adjoint=True)
    assert (m.encoder.solver, m.encoder.adjoint) == ("torchcde", True)
    assert (m.decoder.solver, m.decoder.adjoint) == ("torchdiffeq", True)


def test_training_reduces_the_loss(sketches):
    """~20 AdamW steps on 32 synthetic digits (d=16, l=8, G=30) at the model's default learning rate."""
    m = _model()
    b = m.collate(sketches)
    assert len(b) == 32
    opt = torch.optim.AdamW(m.parameters(), lr=m.default_lr)
    with torch.no_grad():
        first = m.loss(b).item()
    for _ in range(20):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = m.loss(b).item()
    assert torch.isfinite(torch.tensor(last))
    assert last < 0.5 * first, (first, last)


def test_config_round_trip(sketches):
    m = _model(w=2.0, learn_w=True, readout="max", cde_final="tanh", zero_last=True, hidden=[12, 10])
    # a trained-looking state: perturb every weight, so a default init cannot pass by accident
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = json.loads(json.dumps(m.config))  # JSON-able
    m2 = SketchODE.from_config(cfg)
    assert m2.config == m.config
    m2.load_state_dict(m.state_dict())
    b = m.collate(sketches[:4])
    for a, c in zip(m(b), m2(b)):
        assert torch.equal(a, c)
    assert torch.equal(m.loss(b), m2.loss(b))
    # the architecture really comes from the config
    assert m2.decoder.F.hidden == (12, 10) and m2.encoder.readout == "max"


def test_decode_at_any_grid(sketches):
    m = _model(w=2.0)
    b = m.collate(sketches[:3])
    z = m.encode(b)
    xy30, pen30 = m.decode(z)
    for G in (2, 13, 300):
        xy, pen = m.decode(z, torch.linspace(0, 5, G))
        assert xy.shape == (3, G, 2) and pen.shape == (3, G)
        if G > 2:  # the end of the drawing is the same at any reasonable resolution
            assert torch.allclose(xy[:, -1], xy30[:, -1], atol=1e-2)
    # a non-uniform grid starting after 0, and a float64 grid (cast to z's dtype)
    t = torch.tensor([0.5, 0.6, 2.0, 4.9], dtype=torch.float64)
    xy, pen = m.decode(z, t)
    assert xy.shape == (3, 4, 2) and xy.dtype == torch.float32
    # the drawing at the shared training-grid times does not depend on the resolution
    G = 4 * 29 + 1
    xy_fine, pen_fine = m.decode(z, torch.linspace(0, 5, G))
    assert torch.allclose(xy_fine[:, ::4], xy30, atol=1e-4) and torch.allclose(pen_fine[:, ::4], pen30, atol=1e-4)
    with pytest.raises(ValueError, match="before the initial time"):
        m.decode(z, torch.tensor([-1.0, 0.0, 1.0]))


def test_reconstruct_keeps_labels_and_keys(sketches):
    m = _model(w=2.0)
    m.train()
    chunk = sketches[:5]
    out = m.reconstruct(chunk, G=40, batch_size=2)  # three chunks
    assert m.training  # mode restored
    assert len(out) == 5 and all(isinstance(s, Sketch) for s in out)
    assert [s.label for s in out] == [s.label for s in chunk]
    assert [s.key for s in out] == [s.key for s in chunk]
    # the strokes are the decoded ink points, in order
    b = m.collate(chunk)
    with torch.no_grad():
        xy, pen = m.decode(m.encode(b), torch.linspace(0, 5, 40))
    for s, x, p in zip(out, xy, pen):
        ink = torch.sigmoid(p) < 0.5
        pts = s.points
        if ink.any():
            assert len(pts) == int(ink.sum())
            assert torch.allclose(torch.as_tensor(pts[:, :2], dtype=torch.float32), x[ink], atol=1e-6)
        else:
            assert len(pts) == 1
    assert len(m.reconstruct(chunk[:1])[0].points) <= m.config["G"]


def test_batch_independence(sketches):
    """Uniform grid: every sample is resampled on the same grid, so its code (also with the max readout
    over time) does not depend on the rest of the batch."""
    m = _model(readout="max")
    b = m.collate(sketches[:6])
    z = m.encode(b)
    for i in (0, 5):
        zi = m.encode(m.collate([sketches[i]]))
        assert torch.allclose(zi[0], z[i], atol=1e-6)
    # and decoding is per sample too
    xy, _ = m.decode(z)
    assert torch.allclose(m.decode(z[2:3])[0][0], xy[2], atol=1e-6)


def test_dynamics_parameters():
    m = _model(learn_w=True, w=2.0)
    dyn = m.dynamics_parameters()
    ids = {id(p) for p in dyn}
    assert len(ids) == len(dyn)
    named = dict(m.named_parameters())
    w_raw = [n for n in named if "w_raw" in n]
    assert len(w_raw) == 4  # learned: one frequency per hidden layer of each network
    assert not any(id(named[n]) in ids for n in w_raw)
    expected = {n for n in named if n.startswith(("encoder.field.", "decoder.F.")) and "w_raw" not in n}
    assert {n for n, p in named.items() if id(p) in ids} == expected
    assert {"encoder.field.mlp.net.0.weight", "decoder.F.net.4.weight", "decoder.F.net.4.bias"} <= expected
    for n in ("encoder.initial.weight", "encoder.L_enc.weight", "decoder.L_dec.weight"):
        assert id(named[n]) not in ids


def test_pen_read_from_the_hidden_position():
    """pen="hidden": x, y stay visible state (start at 0); the pen is Linear(h(t)); both solvers agree."""
    from sketchode.data import prepare as _prep
    from sketchode.data.synthetic import digits as _digits
    from sketchode.models.full_sequence import SketchODE as _M

    torch.manual_seed(0)
    m = _M(d=8, l=4, G=12, pen="hidden")
    r = _M(d=8, l=4, G=12, pen="hidden", solver="reference")
    r.load_state_dict(m.state_dict())
    b = m.collate(_prep(_digits(n_per_class=1)))
    xy, pen, _ = m(b)
    assert m.decoder.visible == 2 and torch.all(xy[:, 0] == 0)
    assert not torch.allclose(pen[:, 0], torch.zeros_like(pen[:, 0]))  # the pen's start is learned, not fixed
    lm, lr = m.loss(b), r.loss(b)
    assert torch.isclose(lm, lr, rtol=1e-5)
    gm = torch.autograd.grad(lm, list(m.parameters()))
    gr = torch.autograd.grad(lr, list(r.parameters()))
    assert all(torch.allclose(a, c, rtol=1e-4, atol=1e-6) for a, c in zip(gm, gr))
    with pytest.raises(ValueError, match="pen must be"):
        _M(pen="nope")


def test_decoding_a_float64_code_works_like_float32_for_every_model():
    """encode casts its input to the parameters' dtype; decode failed on a float64 code (issue 14)."""
    from sketchode.models.lstm import RNNAutoencoder
    from sketchode.models.multistroke import MultiStrokeSketchODE

    torch.manual_seed(0)
    for model in (SketchODE(d=8, l=6, G=20, n_hidden=1), RNNAutoencoder(d=8, l=6, G=20)):
        z = torch.randn(3, 6, dtype=torch.float64)
        t = torch.linspace(0, 5, 20)
        a, b = model.decode(z, t), model.decode(z.float(), t)
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])
    ms = MultiStrokeSketchODE(d=8, l=6, G=10, n_hidden=1)
    z = torch.randn(2, 6, dtype=torch.float64)
    torch.testing.assert_close(ms.decode(z, n_strokes=2)["points"], ms.decode(z.float(), n_strokes=2)["points"])
