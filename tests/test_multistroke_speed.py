"""The multi-stroke training step's fast path: same numbers as before, fewer and cheaper operations.

:class:`~sketchode.models.multistroke.MultiStrokeSketchODE` runs its two chains
batched (``_encode_chain``, ``_decode_chain``: splines and control
derivatives of all strokes at once, folded weights built once per pass, one
fused solve per stroke); the per-stroke loops through ``CDEEncoder.solve``
and ``ODEDecoder.solve`` stay as the reference (``fast_chain = False``).  The
fused solver flushes subnormal numbers to zero in its C++ loops and weight
products (gradients that travel back through a long chain of strokes reach
that range, where every x86 core slows down several-fold) and sums the weight
gradients inside its backward loop.

Checked here: the loss and every gradient equal

* the numbers of the implementation before these changes (stored below:
  loss parts, and per parameter the gradient's norm and its dot product with
  a fixed random vector), to float32 rounding;
* the per-stroke reference loops, on several configurations, with the C++
  and the Python stage loops;
* a real Quick, Draw! batch of sheep at the paper's size (``realdata``).
"""

import pytest
import torch

from conftest import make_sketch
from sketchode.models import multistroke
from sketchode.numerics import fused
from sketchode.data.batching import collate_strokes
from sketchode.data.sketch import prepare
from sketchode.numerics.fused import cpp_extension, loops, rk4_mlp
from sketchode.models.multistroke import MultiStrokeSketchODE

pytestmark = pytest.mark.usefixtures("one_thread")

needs_cpp = pytest.mark.usefixtures("cpp_loops")

# Computed with the implementation before the batched chains (as of commit a55a2c3: per-stroke
# CDEEncoder.solve / ODEDecoder.solve, C++ loops with A @ B^T products, no subnormal flush),
# on _problem() below: loss parts, and per parameter (gradient norm, dot product with a seeded
# random vector, that vector's norm) as in test_loss_and_gradients_equal_the_stored_values.
GOLDEN = {
    "loss": {"points": 1.2690247297286987, "start": 0.2996879816055298, "end": 0.7385052442550659,
             "total": 2.307218074798584},
    "grads": {
        "encoder.field.mlp.net.0.weight": (3.0956836269338277, -6.698686777106698, 16.67506600986962),
        "encoder.field.mlp.net.0.bias": (0.494262992318688, 1.0081637950752669, 6.358546419110175),
        "encoder.field.mlp.net.2.weight": (4.878549885116745, -8.328073636785575, 30.504755124512204),
        "encoder.field.mlp.net.2.bias": (1.3105952716136071, 0.3673428585281253, 5.992602592584783),
        "encoder.L_enc.weight": (5.989639433754672, -2.750127257740351, 11.916516895053368),
        "encoder.L_enc.bias": (0.5853230760531096, -0.6525792180497284, 3.1583290651545526),
        "decoder.L_dec.weight": (2.359502442009767, 2.86402579156072, 15.965803829009078),
        "decoder.L_dec.bias": (0.41658789000344654, -0.08726064669336314, 5.536565186037267),
        "decoder.F.net.0.weight": (13.03672288715959, 23.6463261772778, 24.221314008469044),
        "decoder.F.net.0.bias": (1.9724198585877881, 1.6906209357868311, 4.053692865490938),
        "decoder.F.net.2.weight": (15.4984616831556, 8.380868039768806, 19.273800749828943),
        "decoder.F.net.2.bias": (4.984220282403749, -2.1448352395271724, 4.188247222906817),
        "U.0.weight": (1.2244166276200827, 0.6577361673928838, 17.127666287509868),
        "U.0.bias": (0.3057885230335124, -0.6824247922522633, 4.258658270183387),
        "V.0.weight": (3.025799134082441, 3.759224367464228, 34.36742934762251),
        "V.0.bias": (0.5761043634254577, -0.42205896379968855, 5.539080444748068),
        "P.weight": (1.558535674932754, -0.8387917206084559, 8.383695007969342),
        "P.bias": (0.04587455837899752, 0.0009302250805423972, 0.689961897690585),
        "R.weight": (1.5146267618663105, -2.0961206923727413, 4.666460822781871),
        "R.bias": (0.28665152192115784, 0.31408167385662555, 1.0956916319565617),
    },
}


def _problem(**kw):
    """8 drawings of 1 to 9 strokes (padded to 9) and a small model with every parameter off its initial value."""
    sk = prepare([make_sketch(n_strokes=n, n=12, seed=10 + i) for i, n in enumerate([1, 3, 7, 2, 5, 4, 9, 1])])
    torch.manual_seed(0)
    m = MultiStrokeSketchODE(**{**dict(d=16, l=8, G=10, zero_last=False), **kw})
    with torch.no_grad():  # a zero last layer or zero biases would hide gradients
        g = torch.Generator().manual_seed(1)
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m, collate_strokes(sk, G=kw.get("G", 10))


def _loss_and_grads(m, batch):
    m.zero_grad()
    parts = m.loss(batch, return_parts=True)
    parts["total"].backward()
    return {k: v.detach() for k, v in parts.items()}, {n: p.grad.clone() for n, p in m.named_parameters()}


def _assert_same(a, b, rtol=1e-5):
    """Loss parts and gradients equal to float32 rounding (each gradient relative to its own scale)."""
    (la, ga), (lb, gb) = a, b
    for k in la:
        torch.testing.assert_close(lb[k], la[k], rtol=rtol, atol=0)
    assert ga.keys() == gb.keys()
    for n in ga:
        scale = float(ga[n].abs().max())
        torch.testing.assert_close(gb[n], ga[n], rtol=rtol, atol=rtol * scale, msg=lambda s: f"{n}: {s}")


def test_loss_and_gradients_equal_the_stored_values():
    m, b = _problem()
    assert m._chain_fusable()
    parts, grads = _loss_and_grads(m, b)
    for k, v in GOLDEN["loss"].items():
        assert float(parts[k]) == pytest.approx(v, rel=1e-5), k
    g = torch.Generator().manual_seed(2)
    for n, p in m.named_parameters():
        norm, dot, rnorm = GOLDEN["grads"][n]
        r = torch.randn(p.shape, generator=g, dtype=torch.float64)
        gd = grads[n].double()
        assert float(gd.norm()) == pytest.approx(norm, rel=1e-5), n
        assert abs(float((gd * r).sum()) - dot) <= 1e-5 * norm * rnorm, n


CONFIGS = [{}, dict(n_hidden=2), dict(learn_w=True, activation="sin"), dict(zero_last=True), dict(chain_norm=False)]


@pytest.mark.parametrize("kind", ["cpp", "python"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", CONFIGS)
def test_batched_chains_equal_the_per_stroke_loops(kind, dtype, kw):
    """float64: equal to 1e-10 (the same arithmetic); float32: to rounding, 1e-5.

    Without ``chain_norm`` the states grow along the chain and float32
    rounding is amplified (the old code and the loops differ by ~1e-4 there,
    the float64 results by 2e-13), so that configuration is compared in
    float64 only.
    """
    if kind == "cpp" and cpp_extension() is None:
        pytest.skip("C++ loops not built")
    if dtype == torch.float32 and not kw.get("chain_norm", True):
        pytest.skip("ill-conditioned in float32: compared in float64")
    m, b = _problem(**kw)
    m, b = m.to(dtype), b.to(torch.device("cpu"), dtype)
    assert m._chain_fusable()
    with loops(kind):
        fast = _loss_and_grads(m, b)
        m.fast_chain = False
        assert not m._chain_fusable()
        ref = _loss_and_grads(m, b)
    _assert_same(ref, fast, rtol=1e-5 if dtype == torch.float32 else 1e-10)


def test_encode_and_decode_equal_the_loops():
    m, b = _problem()
    z = m.encode(b)
    n = b.n_strokes.flip(0)  # any numbers of strokes, in any order of the samples
    out = m.decode(z, n_strokes=n)
    fine = torch.linspace(0.5, m.config["T"] - 0.5, 7)  # a grid without 0 and T
    out_t = m.decode(z, n_strokes=3, t=fine)
    m.fast_chain = False
    torch.testing.assert_close(z, m.encode(b), rtol=1e-5, atol=1e-6)
    for got, ref in ((out, m.decode(z, n_strokes=n)), (out_t, m.decode(z, n_strokes=3, t=fine))):
        for key in ("points", "start", "end_logit"):
            torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6, msg=key)
        assert torch.equal(got["stroke_mask"], ref["stroke_mask"])


def test_unfusable_dynamics_take_the_loops():
    """A CDE field with a final tanh, or non-periodic activations, has no fused solve: the loops run."""
    for kw in (dict(cde_final="tanh"), dict(activation="tanh")):
        m, b = _problem(**kw)
        assert not m._chain_fusable()
        m.loss(b).backward()
    m, _ = _problem(solver="reference")
    assert not m._chain_fusable()


def test_one_fused_solve_per_stroke_on_the_samples_still_drawing(monkeypatch):
    m, b = _problem()
    sizes = []

    def counting(y0, *a, **kw):
        sizes.append((y0.shape[1], y0.shape[0]))
        return rk4_mlp(y0, *a, **kw)

    monkeypatch.setattr(multistroke, "rk4_mlp", counting)
    m.loss(b).backward()
    n = b.n_strokes
    counts = [int((n > k).sum()) for k in range(int(n.max()))]  # [8, 6, 5, 4, 3, 2, 2, 1, 1]
    d = m.config["d"]
    assert [s for w, s in sizes if w == d] == counts  # the encoder chain
    assert [s for w, s in sizes if w == d + 2] == counts  # the decoder chain


@needs_cpp
def test_subnormals_are_flushed_in_the_cpp_loops():
    """Gradients in the subnormal range: the C++ loops flush them.

    Each flushed operand or result moves by less than 1.2e-38; sums of them,
    here by at most a few 1e-38.
    """
    ext = cpp_extension()
    from test_fused import _problem as fused_problem
    from test_fused_cpp import _float

    p = _float(fused_problem(layers=1, controlled=True, B=6, n=5, seed=4), torch.float32)
    res = {}
    for flush in (True, False):
        old = ext.set_flush(flush)
        try:
            with loops("cpp"):
                Y = rk4_mlp(**p)
                loss = (Y * 1e-37).sum()  # gradients of order 1e-37 and below: subnormal inside the solve
                leaves = [p["y0"], p["bias1"], p["out_bias"], p["W1"], p["Wlast"]]
                res[flush] = [Y.detach()] + list(torch.autograd.grad(loss, leaves))
        finally:
            ext.set_flush(old)
    tiny = torch.finfo(torch.float32).tiny
    assert any(bool(((g != 0) & (g.abs() < tiny)).any()) for g in res[False][1:])  # the problem has subnormals
    assert not any(bool(((g != 0) & (g.abs() < tiny)).any()) for g in res[True][1:])  # ... and they are gone
    assert torch.equal(res[True][0], res[False][0])  # the solution itself is far from that range
    for a, b in zip(res[True][1:], res[False][1:]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-36)
    assert ext.set_flush(True) is True  # the default is on


def test_weight_products_of_the_python_loops():
    """``_at_b``: ``a^T b``, computed in the orientation the BLAS runs faster."""
    a, b = torch.randn(50, 7), torch.randn(50, 3)
    for x, y in ((a, b), (b, a)):
        torch.testing.assert_close(fused._at_b(x, y), x.t() @ y)


@pytest.mark.realdata
def test_real_sheep_batch_at_the_papers_size(data_root):
    """16 Quick, Draw! sheep, the ``sheep`` config (d = 144, l = 96, G = 30): batched chains = loops."""
    from sketchode import data
    from sketchode.training.configs import build_model

    sheep = prepare(data.load("sheep", root=data_root)[:16])
    torch.manual_seed(0)
    m = build_model("sheep")
    b = m.collate(sheep)
    assert int(b.n_strokes.max()) > 5
    fast = _loss_and_grads(m, b)
    m.fast_chain = False
    _assert_same(_loss_and_grads(m, b), fast)
