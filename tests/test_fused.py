"""The fused RK4 solve of :mod:`sketchode.numerics.fused`: values and every gradient equal plain autograd."""

import pytest
import torch

from sketchode.numerics.fused import cpp_extension, loops, rk4_mlp

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


@pytest.fixture(autouse=True, params=["cpp", "python"])
def stage_loops(request):
    """Every test here runs with both implementations of the stage loops (tests/test_fused_cpp.py compares them)."""
    if request.param == "cpp" and cpp_extension() is None:
        pytest.skip(f"the C++ loops could not be built here: {cpp_extension.error}")
    with loops(request.param):
        yield request.param


def _problem(layers=2, controlled=False, B=3, D=4, H=(6, 5), C=3, n=7, seed=0, acts=None):
    """Random inputs of one fused solve (float64, all requiring grad), with non-uniform steps."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: (torch.randn(*s, generator=g, dtype=DT) * scale).requires_grad_()  # noqa: E731
    H = H[:layers]
    S = 4 * n
    p = dict(
        y0=r(B, D),
        hs=(0.05 + 0.2 * torch.rand(n, generator=g, dtype=DT)).tolist(),
        acts=acts or (["cos", "sin"][:layers] if layers <= 2 else ["cos"] * layers),
        bias1=r(S, B, H[0]),
        out_bias=r(S, B, D, scale=0.3),
        W1=r(H[0], D, scale=0.7),
        mids=[(r(H[j + 1], H[j], scale=0.6), r(H[j + 1])) for j in range(layers - 1)],
    )
    if controlled:
        p["Wlast"] = r(C * H[-1], D, scale=0.4)
        p["dx"] = r(S, B, C, scale=0.3)
    else:
        p["Wlast"] = r(D, H[-1], scale=0.4)
        p["dx"] = None
    return p


def _reference(y0, hs, acts, bias1, out_bias, W1, mids, Wlast, dx=None):
    """The same solve written as plain autograd operations: ``Y`` and the stages ``K (3, n, B, D)``."""
    fn = {"cos": torch.cos, "sin": torch.sin}

    def f(s, x):
        z = fn[acts[0]](x @ W1.t() + bias1[s])
        for j, (W, b) in enumerate(mids):
            z = fn[acts[j + 1]](z @ W.t() + b)
        if dx is None:
            return z @ Wlast.t() + out_bias[s]
        B = z.shape[0]
        return (dx[s].unsqueeze(-1) * z.unsqueeze(-2)).reshape(B, -1) @ Wlast + out_bias[s]

    y, ys, ks = y0, [y0], []
    for i, h in enumerate(hs):
        s = 4 * i
        k1 = f(s, y)
        k2 = f(s + 1, y + h * k1 / 3)
        k3 = f(s + 2, y + h * (k2 - k1 / 3))
        k4 = f(s + 3, y + h * (k1 - k2 + k3))
        y = y + h * (k1 + 3 * (k2 + k3) + k4) / 8
        ys.append(y)
        ks.append(torch.stack([k1, k2, k3]))
    return torch.stack(ys), torch.stack(ks, 1)


def _leaves(p):
    out = [p["y0"], p["bias1"], p["out_bias"], p["W1"], *[t for m in p["mids"] for t in m], p["Wlast"]]
    return out + ([p["dx"]] if p["dx"] is not None else [])


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("controlled", [False, True])
@pytest.mark.parametrize("acts", ["cos", "sin", "mixed"])
@pytest.mark.parametrize("stages", [False, True])
def test_values_and_all_gradients_equal_autograd(layers, controlled, acts, stages):
    a = {"cos": ["cos"] * layers, "sin": ["sin"] * layers, "mixed": ["sin", "cos"][:layers]}[acts]
    p = _problem(layers=layers, controlled=controlled, acts=a)
    out = rk4_mlp(**p, stages=stages)
    Yr, Kr = _reference(**p)
    Y, K = out if stages else (out, None)
    assert Y.shape == Yr.shape == (len(p["hs"]) + 1, *p["y0"].shape)
    assert torch.allclose(Y, Yr, rtol=0, atol=1e-12)
    assert (Y[-1] - Y[0]).abs().max() > 0.05  # a solve that moves
    if stages:
        assert K.shape == (3, len(p["hs"]), *p["y0"].shape)
        assert torch.allclose(K, Kr, rtol=0, atol=1e-12)
    # random cotangents on every output (also on K: the decoder's positions are built from it)
    g = torch.Generator().manual_seed(5)
    gY = torch.randn(Y.shape, generator=g, dtype=DT)
    loss = (Y * gY).sum()
    loss_r = (Yr * gY).sum()
    if stages:
        gK = torch.randn(K.shape, generator=g, dtype=DT)
        loss, loss_r = loss + (K * gK).sum(), loss_r + (Kr * gK).sum()
    leaves = _leaves(p)
    got = torch.autograd.grad(loss, leaves)
    want = torch.autograd.grad(loss_r, leaves)
    names = ["y0", "bias1", "out_bias", "W1"] + [f"mid{j}" for j in range(2 * (layers - 1))] + ["Wlast", "dx"]
    for name, a_, b_ in zip(names, got, want):
        assert a_.shape == b_.shape, name
        assert float(b_.abs().max()) > 0, name  # every gradient is non-trivial
        assert torch.allclose(a_, b_, rtol=1e-10, atol=1e-10), (name, float((a_ - b_).abs().max()))


def test_three_hidden_layers():
    p = _problem(layers=3, H=(5, 4, 6), acts=["cos", "sin", "cos"])
    Y = rk4_mlp(**p)
    Yr, _ = _reference(**p)
    assert torch.allclose(Y, Yr, atol=1e-12)
    leaves = _leaves(p)
    for a_, b_ in zip(torch.autograd.grad(Y.sum(), leaves), torch.autograd.grad(Yr.sum(), leaves)):
        assert torch.allclose(a_, b_, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("controlled", [False, True])
def test_gradcheck(controlled):
    p = _problem(layers=2, controlled=controlled, B=2, D=2, H=(3, 2), C=2, n=3, seed=1)
    leaves = _leaves(p)
    nm = len(p["mids"])

    def fn(y0, bias1, out_bias, W1, *rest):
        mids = [(rest[2 * j], rest[2 * j + 1]) for j in range(nm)]
        rest = rest[2 * nm:]
        Y, K = rk4_mlp(y0, p["hs"], p["acts"], bias1, out_bias, W1, mids, rest[0],
                       dx=rest[1] if controlled else None, stages=True)
        return Y, K

    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_expanded_bias_views():
    """bias1 / out_bias given as expanded views of per-batch tensors (how the encoder and decoder call it)."""
    p = _problem(layers=2, controlled=False)
    S, B, H = p["bias1"].shape
    D = p["y0"].shape[1]
    g = torch.Generator().manual_seed(7)
    b1 = torch.randn(B, H, generator=g, dtype=DT, requires_grad=True)
    ob = torch.randn(D, generator=g, dtype=DT, requires_grad=True)
    p.update(bias1=b1.expand(S, B, H), out_bias=ob.expand(S, B, D))
    assert p["bias1"].stride(0) == 0 and p["out_bias"].stride(0) == 0
    Y = rk4_mlp(**p)
    q = dict(p, bias1=b1.unsqueeze(0).repeat(S, 1, 1), out_bias=ob.repeat(S, B, 1))
    Yr, _ = _reference(**q)
    assert torch.allclose(Y, Yr, atol=1e-12)
    ga = torch.autograd.grad(Y.square().sum(), [b1, ob, p["y0"]])
    gb = torch.autograd.grad(Yr.square().sum(), [b1, ob, p["y0"]])
    for a_, b_ in zip(ga, gb):
        assert a_.shape == b_.shape
        assert torch.allclose(a_, b_, rtol=1e-10, atol=1e-10)


def test_only_some_inputs_need_grad():
    """Weights frozen, only y0 learned (and vice versa): gradients still flow where asked."""
    p = _problem(layers=1)
    y0 = p["y0"]
    frozen = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in p.items() if k != "mids"}
    frozen["mids"] = []
    frozen["y0"] = y0
    g = torch.autograd.grad(rk4_mlp(**frozen)[-1].sum(), y0)[0]
    ref = torch.autograd.grad(_reference(**frozen)[0][-1].sum(), y0)[0]
    assert torch.allclose(g, ref, atol=1e-10)


def test_bad_activation_or_layer_count():
    p = _problem(layers=2)
    with pytest.raises(ValueError, match="'cos' or 'sin'"):
        rk4_mlp(**dict(p, acts=["cos", "relu"]))
    with pytest.raises(ValueError, match="2 hidden layers"):
        rk4_mlp(**dict(p, acts=["cos"]))


def test_inference_without_grad_gives_the_same_solution():
    """Under no_grad the fused solve skips act' (no backward needed) but must return the same values."""
    from sketchode.models.decoder import ODEDecoder

    torch.manual_seed(0)
    dec = ODEDecoder(latent=4, d=6, visible=3, hidden=(7, 7), w=2.0)
    z, t = torch.randn(3, 4), torch.linspace(0, 5, 20)
    with torch.no_grad():
        a = dec(z, t)
    b = dec(z, t)
    assert b.requires_grad and torch.equal(a, b.detach())
