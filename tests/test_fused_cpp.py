"""The C++ stage loops of :mod:`sketchode.numerics.fused` (``accel/csrc/fused_rk4.cpp``) against the Python ones.

The two compute the same stages in the same order but through different
kernels (the C++ loops call the BLAS and their own element-wise loops), so
they agree to rounding: ~1e-15 relative in float64, ~1e-7 in float32.  On
several threads the C++ loops split the batch into blocks of rows, and every
sample must still get its own solution.

The extension is loaded (built into the accelerator's cache when it is not
there yet) by the ``cpp_loops`` fixture, when the first test that needs it
runs: never while the tests are collected.
"""

import os

import pytest
import torch

from sketchode.accel import build as accel_build
from sketchode.numerics import fused
from sketchode.numerics.fused import cpp_extension, loops, rk4_mlp
from test_fused import _problem


needs_cpp = pytest.mark.usefixtures("cpp_loops")


def _solve_and_grads(p, kind, stages=False):
    """Values (and stages) of one fused solve and the gradients of every input, with the given loops."""
    p = {k: v for k, v in p.items()}
    with loops(kind):
        out = rk4_mlp(**p, stages=stages)
        Y, K = (out if stages else (out, None))
        loss = (Y * torch.linspace(-1, 1, Y.shape[-1], dtype=Y.dtype)).sum() + (Y ** 2).sum()
        if K is not None:
            loss = loss + (K * 0.3).sum()
    leaves = [v for v in [p["y0"], p["bias1"], p["out_bias"], p["W1"], p["Wlast"], p["dx"]] if v is not None]
    leaves += [t for m in p["mids"] for t in m]
    grads = torch.autograd.grad(loss, leaves)
    return [Y] + ([K] if K is not None else []) + list(grads)


def _float(p, dtype):
    """The problem in another dtype, still requiring grad."""
    conv = lambda t: None if t is None else t.detach().to(dtype).requires_grad_()  # noqa: E731
    q = {k: conv(v) if isinstance(v, torch.Tensor) else v for k, v in p.items() if k != "mids"}
    q["mids"] = [(conv(W), conv(b)) for W, b in p["mids"]]
    return q


TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=2e-6)}


@needs_cpp
@pytest.mark.parametrize("controlled", [False, True])
@pytest.mark.parametrize("stages", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_cpp_loops_equal_python_loops(one_thread, controlled, stages, dtype, layers):
    acts = ["sin", "cos", "sin"] if layers == 3 else None
    p = _float(_problem(layers=layers, controlled=controlled, B=5, n=6, H=(6, 5, 7), acts=acts), dtype)
    a = _solve_and_grads(p, "python", stages)
    b = _solve_and_grads(p, "cpp", stages)
    for x, y in zip(a, b):
        assert y.dtype == dtype
        torch.testing.assert_close(y, x, **TOL[dtype])


@needs_cpp
@pytest.mark.parametrize("controlled", [False, True])
def test_products_through_torch_when_no_blas(one_thread, controlled):
    """Where torch exports no BLAS symbols the C++ loops multiply through torch: same numbers."""
    ext = cpp_extension()  # (loaded by the cpp_loops fixture)
    p = _problem(layers=2, controlled=controlled, B=4, n=4, seed=5)
    ref = _solve_and_grads(p, "python", stages=True)
    old = ext.set_use_blas(False)
    try:
        assert not ext.uses_blas()
        got = _solve_and_grads(p, "cpp", stages=True)
    finally:
        ext.set_use_blas(old)
    for x, y in zip(ref, got):
        torch.testing.assert_close(y, x, **TOL[torch.float64])


@needs_cpp
@pytest.mark.parametrize("controlled", [False, True])
def test_blocks_of_rows_on_two_threads(controlled):
    """B = 21 on two threads: blocks of 11 and 10 rows; each sample's values and gradients are its own."""
    p = _problem(layers=2, controlled=controlled, B=21, n=5, seed=3)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = _solve_and_grads(p, "python", stages=True)
        torch.set_num_threads(2)
        got = _solve_and_grads(p, "cpp", stages=True)  # weights require grad: the worker threads must not record
    finally:
        torch.set_num_threads(old)
    for x, y in zip(ref, got):
        torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)


@needs_cpp
def test_whole_model_equal(one_thread):
    """SketchODE's loss and every parameter gradient are the same with either loops."""
    from sketchode.data.sketch import prepare
    from sketchode.data.synthetic import digits
    from sketchode.models.full_sequence import SketchODE

    torch.manual_seed(0)
    m = SketchODE(d=16, l=8, G=20)
    batch = m.collate(prepare(digits(n_per_class=1, seed=0)))
    res = {}
    for kind in ("python", "cpp"):
        m.zero_grad()
        with loops(kind):
            loss = m.loss(batch)
        loss.backward()
        res[kind] = [loss.detach()] + [q.grad.clone() for q in m.parameters()]
    for a, b in zip(res["python"], res["cpp"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_loops_context_restores_and_rejects_bad_kinds():
    before = fused._mode()
    with pytest.raises(ZeroDivisionError):
        with loops("python"):
            assert fused._mode() == "python"
            1 / 0
    assert fused._mode() == before
    with pytest.raises(ValueError, match="kind must be one of"):
        with loops("fortran"):
            pass


def test_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("SKETCHODE_LOOPS", "fast")
    monkeypatch.setitem(fused._state, "loops", None)
    with pytest.raises(ValueError, match="SKETCHODE_LOOPS"):
        fused._mode()


def test_failed_build_falls_back_or_fails_clearly(monkeypatch, one_thread):
    """No compiler: ``auto`` warns once and gives the Python loops' results; ``cpp`` raises with the reason."""
    monkeypatch.setitem(accel_build._state, "tried", True)
    monkeypatch.setitem(accel_build._state, "module", None)
    monkeypatch.setitem(accel_build._state, "error", "CalledProcessError: c++ not found")
    monkeypatch.setitem(fused._state, "warned", False)
    p = _problem(B=3, n=3)
    with pytest.warns(RuntimeWarning, match="c\\+\\+ not found"):
        a = _solve_and_grads(p, "auto")
    b = _solve_and_grads(p, "python")
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(RuntimeError, match="could not be built .*c\\+\\+ not found"):
        _solve_and_grads(p, "cpp")


def test_source_ships_with_the_package():
    assert accel_build.SOURCE.is_file() and accel_build.SOURCE.suffix == ".cpp"
    assert accel_build.SOURCE.parent.parent.name == "accel"
    assert '"accel/csrc/*.cpp"' in open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")).read()


@needs_cpp
def test_sincos_kernel_accuracy():
    """The float32 sin/cos of the C++ loops: within 2 ulp for |x| <= 50, 1e-7 absolute up to 8192."""
    ext = cpp_extension()
    x = torch.cat([torch.linspace(-50, 50, 400_001), torch.tensor([0.0, -0.0, 1e-30, 3.1415927, -1.5707964])])
    s, c, bad = ext.sincos(x)
    assert int(bad) == 0
    for got, ref in ((s, torch.sin(x.double())), (c, torch.cos(x.double()))):
        r32 = ref.abs().float()
        ulp = (torch.nextafter(r32, torch.tensor(float("inf"))) - r32).double()  # float32 spacing at the value
        assert float(((got.double() - ref).abs() / ulp).max()) <= 2.0
    big = torch.linspace(-8192, 8192, 200_001)
    s, c, bad = ext.sincos(big)
    assert int(bad) == 0
    assert float((s.double() - torch.sin(big.double())).abs().max()) < 1e-7
    assert float((c.double() - torch.cos(big.double())).abs().max()) < 1e-7
    assert int(ext.sincos(torch.tensor([1.0, 9000.0]))[2]) == 1
    assert int(ext.sincos(torch.tensor([float("nan")]))[2]) == 1


@needs_cpp
@pytest.mark.parametrize("scale", [1e4, float("nan")])
def test_out_of_range_preactivations_use_torch(one_thread, scale):
    """Pre-activations beyond the kernel's range (or NaN) are recomputed by torch: same as the Python loops."""
    p = _float(_problem(layers=2, B=4, n=3, seed=7), torch.float32)
    with torch.no_grad():
        p["bias1"][5, 1, 2] = scale  # one entry of one stage of one sample
    with torch.no_grad(), loops("python"):
        ref = rk4_mlp(**p)
    with torch.no_grad(), loops("cpp"):
        got = rk4_mlp(**p)
    torch.testing.assert_close(got, ref, rtol=2e-5, atol=2e-6, equal_nan=True)
    if scale != scale:  # NaN reaches the sample it was put in, and only that one
        assert torch.isnan(got[-1, 1]).all() and not torch.isnan(got[-1, [0, 2, 3]]).any()


@needs_cpp
def test_backward_uses_the_forwards_loops(one_thread):
    """Changing the loops between forward and backward must not matter (the backward keeps the forward's)."""
    p = _problem(controlled=True, B=3, n=4, seed=11)
    ref = _solve_and_grads(p, "python")
    with loops("cpp"):
        Y = rk4_mlp(**p)
    loss = (Y * torch.linspace(-1, 1, Y.shape[-1], dtype=Y.dtype)).sum() + (Y ** 2).sum()
    leaves = [p["y0"], p["bias1"], p["out_bias"], p["W1"], p["Wlast"], p["dx"]] + [t for m in p["mids"] for t in m]
    with loops("python"):
        grads = torch.autograd.grad(loss, leaves)
    for x, y in zip(ref, [Y, *grads]):
        torch.testing.assert_close(y, x, **TOL[torch.float64])


def test_inference_keeps_no_outer_products():
    """Without gradients the Python loops reuse one stage's outer-product buffer and keep nothing for a backward."""
    from sketchode.numerics.fused import FusedSpec, _forward_loop

    p = _problem(controlled=True, B=3, n=4, seed=2)
    args = (p["y0"], p["bias1"], p["out_bias"], p["dx"], p["W1"], p["mids"], p["Wlast"])
    with torch.no_grad():
        Y0, *_, O0 = _forward_loop(FusedSpec(tuple(p["hs"]), tuple(p["acts"]), True, False, False), *args)
        Y1, *_, O1 = _forward_loop(FusedSpec(tuple(p["hs"]), tuple(p["acts"]), True, False, True), *args)
    assert O0 is None and O1.shape[0] == 4 * 4
    assert torch.equal(Y0, Y1)
