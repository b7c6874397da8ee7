"""Tests of sketchode.models.multistroke: the multi-stroke SketchODE (paper 4.4, appendix C)."""

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from conftest import make_sketch
from sketchode.training.checkpoint import load_model, save_checkpoint
from sketchode.data.sketch import Sketch, prepare
from sketchode.data.synthetic import digits
from sketchode.models import multistroke
from sketchode.models.multistroke import MultiStrokeSketchODE
from sketchode.training.fit import fit

SMALL = dict(d=8, l=6, G=8)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def _model(**kw):
    torch.manual_seed(0)
    return MultiStrokeSketchODE(**{**SMALL, **kw})


@pytest.fixture(scope="module")
def sketches():
    """Drawings with 1 to 4 strokes: digits (1-2 strokes) and random 3- and 4-stroke sketches."""
    dg = digits(2)
    one = next(s for s in dg if s.n_strokes == 1)
    two = next(s for s in dg if s.n_strokes == 2)
    return prepare([one, two, make_sketch(3, seed=1), make_sketch(4, seed=2)])


def _replace(batch, **kw):
    return dataclasses.replace(batch, **kw)


def _pad_garbage(batch, value=float("nan")):
    """``batch`` with every padded stroke's points and start replaced by ``value``."""
    pad = ~batch.stroke_mask
    pts = batch.points.clone()
    pts[pad] = value
    start = batch.start.clone()
    start[pad] = value
    return _replace(batch, points=pts, start=start)


# ------------------------------------------------------------------ shapes
def test_shapes_config_and_protocol(sketches):
    m = _model()
    assert m.format == "strokes" and m.default_lr == 3e-3
    json.dumps(m.config)
    assert MultiStrokeSketchODE.from_config(m.config).config == m.config
    b = m.collate(sketches)
    B, K, M = len(sketches), 4, SMALL["G"]
    assert tuple(b.points.shape) == (B, K, M, 2)
    out = m(b)
    assert tuple(out["points"].shape) == (B, K, M, 2)
    assert tuple(out["start"].shape) == (B, K, 2)
    assert tuple(out["end_logit"].shape) == (B, K)
    assert tuple(out["z"].shape) == (B, SMALL["l"])
    assert torch.equal(out["points"][:, :, 0], torch.zeros(B, K, 2))  # every stroke starts at its start point
    parts = m.loss(b, return_parts=True)
    assert set(parts) == {"points", "start", "end", "total"}
    c = m.config
    assert torch.allclose(parts["total"], parts["points"] + c["start_weight"] * parts["start"]
                          + c["end_weight"] * parts["end"])
    assert torch.equal(m.loss(b), parts["total"])
    # max_strokes truncates in collate
    assert _model(max_strokes=2).collate(sketches).points.shape[1] == 2


def test_dynamics_parameters():
    m = _model(learn_w=True)
    dyn = {id(p) for p in m.dynamics_parameters()}
    names = {n for n, p in m.named_parameters() if id(p) in dyn}
    assert names and all(n.startswith(("encoder.field.", "decoder.F.")) for n in names)
    assert not any("w_raw" in n for n in names)
    assert any(n.startswith("encoder.field.") for n in names) and any(n.startswith("decoder.F.") for n in names)
    assert not any(n.startswith("encoder.initial") for n, _ in m.named_parameters())  # removed: g0 from the chain


def test_decode_grid_and_lengths(sketches):
    m = _model()
    z = m.encode(m.collate(sketches))
    out = m.decode(z, n_strokes=3)
    assert tuple(out["points"].shape) == (4, 3, SMALL["G"], 2)
    assert out["stroke_mask"].all() and out["n_strokes"].tolist() == [3] * 4
    out = m.decode(z, n_strokes=torch.tensor([1, 2, 3, 2]))
    assert out["points"].shape[1] == 3
    assert out["stroke_mask"].tolist() == [[True, False, False], [True, True, False], [True] * 3, [True, True, False]]
    # any grid inside [0, T]; each stroke is still integrated over the whole [0, T]
    fine = torch.linspace(0, m.config["T"], 15)
    a = m.decode(z, n_strokes=2, t=fine)
    b = m.decode(z, n_strokes=2, t=fine[3:11])  # 0 and T added for the solve, then dropped
    assert tuple(b["points"].shape) == (4, 2, 8, 2)
    # equal up to RK4's discretisation error (the solve grids differ); chaining from the state at
    # t[-1] instead of T would move stroke 2 by far more
    assert torch.allclose(a["points"][:, :, 3:11], b["points"], atol=1e-3)
    assert torch.allclose(a["start"], b["start"], atol=1e-3)
    assert torch.allclose(a["end_logit"], b["end_logit"], atol=1e-3)


# -------------------------------------------------- masking and independence
def test_encoder_latent_independent_of_batch(sketches):
    """The reference code's bug: padded strokes entered the pooling, so z depended on the rest of the batch."""
    m = _model()
    one = sketches[0]  # a single stroke, padded to 4 in the batch
    assert one.n_strokes == 1
    alone = m.encode(m.collate([one]))
    for others in ([sketches[3]], sketches[1:], [sketches[2], sketches[3], sketches[1]]):
        z = m.encode(m.collate([*others, one]))
        assert torch.allclose(z[-1], alone[0], atol=1e-5)
    z2 = m.encode(m.collate([sketches[1]]))
    assert torch.allclose(m.encode(m.collate(sketches))[1], z2[0], atol=1e-5)


def test_padded_values_change_nothing(sketches):
    m = _model()
    b = m.collate(sketches)
    assert not b.stroke_mask.all()
    z = m.encode(b)
    for value in (float("nan"), 1e3):
        bg = _pad_garbage(b, value)
        assert torch.equal(m.encode(bg), z)
        m.zero_grad()
        loss = m.loss(b)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters()}
        m.zero_grad()
        loss_g = m.loss(bg)
        loss_g.backward()
        assert torch.equal(loss_g, loss)
        for n, p in m.named_parameters():
            assert torch.isfinite(p.grad).all(), n
            assert torch.equal(p.grad, grads[n]), n
    # the points term counts exactly the valid points of real strokes
    mask = b.mask.clone()
    mask[2, 1, 3:] = False
    bm = _replace(b, mask=mask)
    out = m(bm)
    valid = mask & b.stroke_mask[..., None]
    want = nn.functional.smooth_l1_loss(out["points"][valid], b.points[valid], reduction="none").sum(-1).mean()
    assert torch.allclose(m.loss(bm, return_parts=True)["points"], want, atol=1e-6)


def test_decoder_independent_of_batch(sketches):
    m = _model()
    z = m.encode(m.collate(sketches))
    full = m.decode(z, n_strokes=torch.tensor([1, 2, 3, 4]))
    for i in range(4):
        alone = m.decode(z[i:i + 1], n_strokes=i + 1)
        assert torch.allclose(alone["points"][0], full["points"][i, : i + 1], atol=1e-5)
        assert torch.allclose(alone["start"][0], full["start"][i, : i + 1], atol=1e-5)
        assert torch.allclose(alone["end_logit"][0], full["end_logit"][i, : i + 1], atol=1e-5)


def test_forward_of_sample_alone_equals_its_share(sketches):
    """A sample's outputs on its real strokes do not depend on the padding or the rest of the batch."""
    m = _model()
    one = sketches[1]
    K = one.n_strokes
    ref = m(m.collate([one]))
    out = m(m.collate([sketches[3], one, sketches[0]]))
    for key in ("points", "start", "end_logit"):
        assert torch.allclose(out[key][1, :K], ref[key][0, :K], atol=1e-5), key
    assert torch.allclose(out["z"][1], ref["z"][0], atol=1e-5)


# --------------------------------------------------- end flag and stop rule
def test_end_of_sketch_target_and_loss(sketches):
    m = _model()
    b = m.collate(sketches)
    assert b.n_strokes.tolist() == [1, 2, 3, 4]
    target = b.end_of_sketch
    assert target.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    out = m(b)
    real = b.stroke_mask
    expected = nn.functional.binary_cross_entropy_with_logits(out["end_logit"][real], target[real])
    assert torch.allclose(m.loss(b, return_parts=True)["end"], expected, atol=1e-6)


class _ScriptedEnd(nn.Module):
    """A stand-in for R: the logit of stroke k (k-th call) is ``+5`` for samples whose end is ``<= k``.

    The chain only solves the samples still drawing, so call k sees the rows of
    the samples that have not ended before stroke k (in batch order).
    """

    def __init__(self, ends):
        super().__init__()
        self.ends, self.calls = torch.tensor(ends), 0
        self.alive = torch.arange(len(ends))

    def forward(self, final):
        self.calls += 1
        ends = self.ends[self.alive]
        assert final.shape[0] == len(ends), "the chain solved a sample that had already ended"
        self.alive = self.alive[ends > self.calls]
        return torch.where(ends <= self.calls, 5.0, -5.0).to(final.dtype).unsqueeze(-1) + 0 * final[:, :1]


def test_stop_rule(sketches):
    m = _model()
    z = m.encode(m.collate(sketches))
    m.R = _ScriptedEnd([2, 3, 1, 99])  # the last sample never ends: stopped by max_strokes
    out = m.decode(z, max_strokes=5)
    assert out["n_strokes"].tolist() == [2, 3, 1, 5]
    assert out["points"].shape[1] == 5
    assert out["stroke_mask"].sum(1).tolist() == [2, 3, 1, 5]
    assert (torch.sigmoid(out["end_logit"][0, :2]) > 0.5).tolist() == [False, True]
    # the chain stops once every sample has ended
    m.R = _ScriptedEnd([2, 3, 1, 2])
    out = m.decode(z, max_strokes=6)
    assert out["n_strokes"].tolist() == [2, 3, 1, 2] and out["points"].shape[1] == 3 and m.R.calls == 3
    # the config's max_strokes is the default bound
    m2 = _model(max_strokes=2)
    m2.R = _ScriptedEnd([9, 9, 9, 9])
    assert m2.decode(z)["n_strokes"].tolist() == [2] * 4


# ----------------------------------------------------------- start positions
def test_start_positions_enter_encoder_and_reconstruction(sketches):
    m = _model()
    b = m.collate(sketches)
    z = m.encode(b)
    # the encoder reads the start of strokes 2..n (relative strokes alone would lose them)
    start = b.start.clone()
    start[3, 2] += 0.5
    z2 = m.encode(_replace(b, start=start))
    assert not torch.allclose(z2[3], z[3]) and torch.equal(z2[:3], z[:3])
    # the reconstruction is start + relative points
    rec = m.reconstruct(sketches, true_strokes=True)
    dec = m.decode(z, n_strokes=b.n_strokes)
    for i, r in enumerate(rec):
        assert isinstance(r, Sketch) and r.n_strokes == sketches[i].n_strokes and not r.timed
        for k, st in enumerate(r.strokes):
            assert st.shape == (SMALL["G"], 3)
            want = (dec["points"][i, k] + dec["start"][i, k]).double()
            assert torch.allclose(torch.tensor(st[:, :2]), want, atol=1e-6)
            assert torch.allclose(torch.tensor(st[0, :2]), dec["start"][i, k].double(), atol=1e-6)
            assert st[0, 2] == 0 and abs(st[-1, 2] - m.config["T"]) < 1e-6
    # shifting the start head shifts every stroke of the reconstruction, and nothing else
    base = m.reconstruct(sketches[:2], true_strokes=True, G=5)
    with torch.no_grad():
        m.P.bias += torch.tensor([0.25, -0.5])
    moved = m.reconstruct(sketches[:2], true_strokes=True, G=5)
    for r0, r1 in zip(base, moved):
        for s0, s1 in zip(r0.strokes, r1.strokes):
            assert s0.shape == s1.shape == (5, 3)
            shift = torch.tensor(s1[:, :2] - s0[:, :2])
            assert torch.allclose(shift, torch.tensor([0.25, -0.5], dtype=shift.dtype).expand_as(shift), atol=1e-6)
    # predicted number of strokes: at least one per drawing
    assert all(1 <= r.n_strokes for r in m.reconstruct(sketches, max_strokes=3))


# ----------------------------------------------------------------- training
def test_loss_decreases(sketches):
    m = _model()
    b = m.collate(sketches)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    with torch.no_grad():
        first = float(m.loss(b))
    for _ in range(30):
        opt.zero_grad()
        loss = m.loss(b)
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(m.loss(b)) < 0.7 * first


def test_fast_and_reference_agree(sketches):
    fast = _model()
    ref = _model(solver="reference")
    ref.load_state_dict(fast.state_dict())
    assert ref.encoder.solver == "torchcde" and ref.decoder.solver == "torchdiffeq"
    b = fast.collate(sketches)
    lf, lr = fast.loss(b, return_parts=True), ref.loss(b, return_parts=True)
    for k in lf:
        assert torch.allclose(lf[k], lr[k], atol=1e-5, rtol=1e-5), k
    lf["total"].backward()
    lr["total"].backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-3), n


def test_adjoint_gradients(sketches):
    """adjoint=True (reference solvers only) gives the direct gradients up to the adjoint's own RK4 error."""
    direct = _model(solver="reference")
    adj = _model(solver="reference", adjoint=True)
    adj.load_state_dict(direct.state_dict())
    b = direct.collate([sketches[0], sketches[2]])
    ld, la = direct.loss(b), adj.loss(b)
    assert torch.allclose(ld, la, atol=1e-6)
    ld.backward()
    la.backward()
    for (n, p), q in zip(direct.named_parameters(), adj.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=2e-3, rtol=1e-2), n


def test_union_grid(sketches):
    m = _model()
    b = m.collate(sketches[:3], grid="union")
    assert not b.mask[b.stroke_mask].all()  # some union times are not a stroke's own observations
    parts = m.loss(b, return_parts=True)
    assert all(torch.isfinite(v) for v in parts.values())


def test_checkpoint_roundtrip(tmp_path, sketches):
    m = _model(max_strokes=3)
    p = save_checkpoint(tmp_path / "ms.pt", m)
    m2 = load_model(p)
    assert type(m2) is MultiStrokeSketchODE and m2.config == m.config and not m2.training
    b = m.collate(sketches)
    assert torch.equal(m.loss(b), m2.loss(b))


def test_fit_one_epoch(tmp_path, sketches):
    m = _model()
    h = fit(m, sketches, val=sketches[:2], epochs=1, progress=False, threads=1, batch_size=2,
            checkpoint=tmp_path / "fit.pt")
    assert h.stopped == "epochs" and h.last["step"] == 2
    assert h.last["val_loss"] is not None and math.isfinite(h.last["val_loss"])
    assert isinstance(load_model(tmp_path / "fit.pt"), MultiStrokeSketchODE)


# ------------------------------------------------------------- bad inputs
def test_bad_constructor_arguments():
    for kw in (dict(solver="rk45"), dict(adjoint=True), dict(G=1), dict(T=0.0), dict(max_strokes=0),
               dict(beta=0.0), dict(start_weight=-1.0)):
        with pytest.raises(ValueError):
            _model(**kw)


def test_bad_batches(sketches):
    m = _model()
    b = m.collate(sketches)
    nan_pts = b.points.clone()
    nan_pts[2, 1, 4, 0] = float("nan")
    nan_start = b.start.clone()
    nan_start[3, 3, 1] = float("inf")
    zero_n = b.n_strokes.clone()
    zero_n[0] = 0
    cases = {
        "shape": _replace(b, points=b.points[..., :1]),
        "empty batch": _replace(b, points=b.points[:0], start=b.start[:0], mask=b.mask[:0],
                                stroke_mask=b.stroke_mask[:0], n_strokes=b.n_strokes[:0]),
        "sample 2, stroke 1, time index 4": _replace(b, points=nan_pts),
        "batch.start at sample 3, stroke 3": _replace(b, start=nan_start),
        "sample 0 has 0 strokes": _replace(b, n_strokes=zero_n, stroke_mask=b.stroke_mask & (zero_n[:, None] > 0)),
        "stroke_mask": _replace(b, stroke_mask=~b.stroke_mask),
        "batch.mask must have shape": _replace(b, mask=b.mask[:, :, :-1]),
        "bool": _replace(b, mask=b.mask.float()),
        "time points": _replace(b, t=b.t[:-1]),
    }
    for match, bad in cases.items():
        for call in (m.encode, m.loss, m):
            with pytest.raises(ValueError, match=match):
                call(bad)
    with pytest.raises(TypeError):
        m.encode(torch.zeros(2, 3, 8, 2))


def test_bad_decode_arguments(sketches):
    m = _model()
    z = m.encode(m.collate(sketches))
    with pytest.raises(ValueError):
        m.decode(z[:, :3])
    with pytest.raises(ValueError):
        m.decode(z[:0])
    with pytest.raises(ValueError):
        m.decode(z, n_strokes=0)
    with pytest.raises(ValueError):
        m.decode(z, n_strokes=torch.tensor([1, 2]))
    with pytest.raises(TypeError):
        m.decode(z, n_strokes=2.5)
    with pytest.raises(ValueError):
        m.decode(z, max_strokes=0)
    with pytest.raises(ValueError, match="inside|lie in"):
        m.decode(z, t=torch.linspace(0, 2 * m.config["T"], 5))
    with pytest.raises(ValueError):
        m.decode(z, t=torch.tensor([1.0, 0.5]))


def test_chain_norm_keeps_long_stroke_chains_bounded():
    """Bug found on Quick, Draw! sheep: unnormalised chain states grow geometrically along the strokes."""
    sk = [make_sketch(n_strokes=30, n=12, seed=s).normalize() for s in range(2)]
    res = {}
    for cn in (True, False):
        torch.manual_seed(0)
        m = MultiStrokeSketchODE(d=48, l=16, G=10, chain_norm=cn)
        b = m.collate(sk)
        with torch.no_grad():
            parts = m.loss(b, return_parts=True)
            start = m(b)["start"]
        res[cn] = (float(parts["total"]), float(start[:, -5:].abs().max()), float(start[:, :3].abs().max()))
    total, late, early = res[True]
    assert total < 10 and late < 5 * max(early, 0.1)  # the 26th-30th strokes are no larger than the first
    assert res[False][1] > 20 * res[False][2]  # the behaviour chain_norm fixes
    assert MultiStrokeSketchODE(d=8, l=4, G=5).config["chain_norm"] is True


def test_only_samples_still_drawing_are_solved(monkeypatch):
    """Padded strokes are skipped, not solved and masked: same outputs and gradients, fewer solves."""
    sk = [make_sketch(n_strokes=n, n=10, seed=n).normalize() for n in (1, 4, 2, 6)]
    torch.manual_seed(0)
    m = MultiStrokeSketchODE(d=12, l=6, G=8)
    b = m.collate(sk)
    for fast in (True, False):  # the batched chains and the per-stroke reference loops
        m.fast_chain = fast
        sizes = []
        real_solve = type(m.decoder).solve
        real_fused = multistroke.rk4_mlp

        def counting(self, z, *a, **kw):
            sizes.append(z.shape[0])
            return real_solve(self, z, *a, **kw)

        def counting_fused(y0, *a, **kw):
            if y0.shape[1] == m.decoder.n:  # the decoder's velocity (the encoder's state has d values)
                sizes.append(y0.shape[0])
            return real_fused(y0, *a, **kw)

        monkeypatch.setattr(type(m.decoder), "solve", counting)
        monkeypatch.setattr(multistroke, "rk4_mlp", counting_fused)
        loss = m.loss(b)
        assert sizes == [4, 3, 2, 2, 1, 1]  # samples with at least 1, 2, ... 6 strokes
        monkeypatch.undo()
    m.fast_chain = True
    grads = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)
    # each sample alone gives the same z and the same per-stroke points as in the batch
    out = m(b)
    for i, s in enumerate(sk):
        alone = m(m.collate([s]))
        n = s.n_strokes
        assert torch.allclose(alone["z"][0], out["z"][i], atol=1e-5)
        assert torch.allclose(alone["points"][0, :n], out["points"][i, :n], atol=1e-5)
        assert torch.all(out["points"][i, n:] == 0) and torch.all(out["end_logit"][i, n:] == 0)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
