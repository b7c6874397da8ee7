"""The C++ stage loops of :mod:`sketchode.fused` (``sketchode/csrc/fused_rk4.cpp``) against the Python ones.

On one thread the two run the same ATen operations in the same order, so
they must agree bit for bit; on several threads the C++ loops split the batch
into blocks of rows, and every sample must still get its own solution.
"""

import os

import pytest
import torch

from sketchode import fused
from sketchode.fused import cpp_extension, loops, rk4_mlp
from test_fused import _problem

needs_cpp = pytest.mark.skipif(cpp_extension() is None, reason=f"C++ loops not built: {cpp_extension.error}")


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


@needs_cpp
@pytest.mark.parametrize("controlled", [False, True])
@pytest.mark.parametrize("stages", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_thread_bitwise_equal(one_thread, controlled, stages, dtype):
    p = _float(_problem(layers=2, controlled=controlled, B=5, n=6), dtype)
    a = _solve_and_grads(p, "python", stages)
    b = _solve_and_grads(p, "cpp", stages)
    for x, y in zip(a, b):
        assert x.dtype == dtype and torch.equal(x, y)


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
    from sketchode.model import SketchODE

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
    assert all(torch.equal(a, b) for a, b in zip(res["python"], res["cpp"]))


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
    monkeypatch.setitem(fused._state, "tried", True)
    monkeypatch.setitem(fused._state, "ext", None)
    monkeypatch.setitem(fused._state, "error", "CalledProcessError: c++ not found")
    monkeypatch.setitem(fused._state, "warned", False)
    p = _problem(B=3, n=3)
    with pytest.warns(RuntimeWarning, match="c\\+\\+ not found"):
        a = _solve_and_grads(p, "auto")
    b = _solve_and_grads(p, "python")
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(RuntimeError, match="could not be built .*c\\+\\+ not found"):
        _solve_and_grads(p, "cpp")


def test_source_ships_with_the_package():
    assert fused._SOURCE.is_file() and fused._SOURCE.suffix == ".cpp"
    assert "csrc/*.cpp" in open(os.path.join(os.path.dirname(__file__), "..", "pyproject.toml")).read()
