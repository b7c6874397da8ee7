"""Tests for sketchode.models.dynamics (paper 4.5, 5.5)."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from sketchode.models.dynamics import (
    MLP,
    Periodic,
    frequencies,
    make_activation,
    override_w,
    paper_hidden,
    periodic_layers,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall badly on a loaded machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _x(n=16, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g)


# ---------------------------------------------------------------- shapes and basics


@pytest.mark.parametrize("act", ["sin", "cos", "relu", "tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("hidden", [(), (5,), (7, 9, 4)])
def test_shapes(act, hidden):
    m = MLP(3, 4, hidden=hidden, activation=act)
    assert m(torch.randn(10, 3)).shape == (10, 4)
    assert m(torch.randn(2, 5, 3)).shape == (2, 5, 4)
    assert len(m.linears) == len(hidden) + 1
    assert [l.out_features for l in m.linears] == [*hidden, 4]


def test_default_hidden_is_paper_width():
    assert paper_hidden(64, 2) == (77, 77)
    assert paper_hidden(10, 3) == (12, 12, 12)  # 1.2 * 10 is 12, not 13
    assert paper_hidden(5, 1) == (6,)
    assert paper_hidden(4, 0) == ()
    assert MLP(2, 2).hidden == (77, 77)


def test_cos_vs_sin():
    x = torch.linspace(-3, 3, 101)
    assert torch.allclose(Periodic("cos", w=2.0)(x), torch.cos(2 * x))
    assert torch.allclose(Periodic("sin", w=2.0)(x), torch.sin(2 * x))
    torch.manual_seed(0)
    a = MLP(2, 2, hidden=(8,), activation="cos")
    torch.manual_seed(0)
    b = MLP(2, 2, hidden=(8,), activation="sin")
    x2 = _x()
    assert not torch.allclose(a(x2), b(x2))
    # Same weights: cos(u) = sin(u + pi/2), so shifting the first bias by pi/(2w) matches.
    with torch.no_grad():
        b.linears[0].bias += math.pi / 2
    assert torch.allclose(a(x2), b(x2), atol=1e-5)


def test_make_activation():
    assert isinstance(make_activation("relu"), nn.ReLU)
    assert isinstance(make_activation("tanh"), nn.Tanh)
    assert isinstance(make_activation("sigmoid"), nn.Sigmoid)
    assert isinstance(make_activation("softplus"), nn.Softplus)
    p = make_activation("COS", w=3.0, learn_w=True)
    assert isinstance(p, Periodic) and p.kind == "cos" and p.learn_w
    assert float(p.w.detach()) == pytest.approx(3.0)


# ---------------------------------------------------------------- fixed vs learned w


def test_fixed_w_is_buffer_not_parameter():
    p = Periodic("cos", w=3.0)
    assert list(p.parameters()) == []
    assert "w_raw" in dict(p.named_buffers())
    assert float(p.w) == 3.0
    m = MLP(2, 2, hidden=(4, 4), w=3.0)
    assert all(not isinstance(l.w, nn.Parameter) for l in periodic_layers(m))
    assert len(list(m.parameters())) == 6
    assert frequencies(m) == [3.0, 3.0]
    assert m.double()(_x().double()).dtype == torch.float64


@pytest.mark.parametrize("w_max", [None, 10.0])
def test_learned_w_gets_gradient_and_stays_positive(w_max):
    torch.manual_seed(0)
    m = MLP(2, 2, hidden=(6, 6), w=2.5, learn_w=True, w_max=w_max)
    layers = periodic_layers(m)
    assert len(layers) == 2 and layers[0] is not layers[1]  # one w per layer
    raws = [l.w_raw for l in layers]
    assert all(isinstance(r, nn.Parameter) for r in raws)
    assert {id(r) for r in raws} <= {id(p) for p in m.parameters()}
    assert frequencies(m) == pytest.approx([2.5, 2.5])
    m(_x()).square().sum().backward()
    assert all(r.grad is not None and r.grad.abs() > 0 for r in raws)
    # Drive the raw parameters far negative: w stays positive.
    with torch.no_grad():
        for r in raws:
            r.fill_(-50.0)
    assert all(float(l.w.detach()) > 0 for l in layers)
    if w_max is not None:
        with torch.no_grad():
            for r in raws:
                r.fill_(50.0)
        assert all(0 < float(l.w.detach()) <= w_max for l in layers)


def test_learned_w_large_initial_value_is_exact():
    assert float(Periodic("cos", w=30.0, learn_w=True).w.detach()) == pytest.approx(30.0)
    assert float(Periodic("cos", w=1e-3, learn_w=True).w.detach()) == pytest.approx(1e-3, rel=1e-4)


# ---------------------------------------------------------------- override_w


def _state(m):
    return {k: (v, v.detach().clone(), v.requires_grad) for k, v in {**dict(m.named_parameters()), **dict(m.named_buffers())}.items()}


def _assert_restored(m, before):
    after = {**dict(m.named_parameters()), **dict(m.named_buffers())}
    assert after.keys() == before.keys()
    for k, (obj, val, req) in before.items():
        assert after[k] is obj, k
        assert torch.equal(after[k].detach(), val), k
        assert after[k].requires_grad == req, k
        if isinstance(obj, nn.Parameter):
            assert after[k].is_leaf


@pytest.mark.parametrize("learn", [False, True])
def test_override_sets_and_restores(learn):
    torch.manual_seed(1)
    m = MLP(2, 2, hidden=(8, 8), w=3.0, learn_w=learn)
    x = _x()
    y0 = m(x).detach()
    before = _state(m)
    with override_w(m, w=0.5) as layers:
        assert len(layers) == 2
        assert frequencies(m) == [0.5, 0.5]
        y1 = m(x).detach()
        assert not torch.allclose(y0, y1)
        assert torch.allclose(y1, MLP_eval_with_w(m, x, 0.5))
        # The state_dict is untouched inside the block.
        assert all(torch.equal(v.detach(), before[k][1]) for k, v in m.state_dict().items())
    assert frequencies(m) == pytest.approx([3.0, 3.0])
    _assert_restored(m, before)
    assert torch.equal(m(x).detach(), y0)  # bit-identical


def MLP_eval_with_w(m, x, w):
    """Reference forward pass with explicit frequency w."""
    h = x
    lins = m.linears
    for i, lin in enumerate(lins):
        h = lin(h)
        if i < len(lins) - 1:
            h = torch.cos(w * h)
    return h


@pytest.mark.parametrize("learn", [False, True])
def test_override_restores_on_exception(learn):
    m = MLP(2, 2, hidden=(4,), w=2.0, learn_w=learn)
    before = _state(m)
    y0 = m(_x()).detach()
    with pytest.raises(RuntimeError, match="boom"):
        with override_w(m, w=7.0):
            assert frequencies(m) == [7.0]
            raise RuntimeError("boom")
    assert frequencies(m) == pytest.approx([2.0])
    _assert_restored(m, before)
    assert torch.equal(m(_x()).detach(), y0)


def test_override_restores_raw_values_changed_in_block():
    m = MLP(2, 2, hidden=(4,), w=2.0, learn_w=True)
    before = _state(m)
    raw = periodic_layers(m)[0].w_raw
    with override_w(m, scale=0.5):
        with torch.no_grad():
            raw.add_(1.0)  # e.g. an optimiser's weight decay inside the block
        raw.requires_grad_(False)
    _assert_restored(m, before)


def test_override_nesting_and_scale():
    m = MLP(2, 2, hidden=(4, 4), w=4.0, learn_w=True)
    with override_w(m, scale=0.5):
        assert frequencies(m) == pytest.approx([2.0, 2.0])
        with override_w(m, scale=0.5):
            assert frequencies(m) == pytest.approx([1.0, 1.0])
            with override_w(m, w=[3.0, 5.0]):
                assert frequencies(m) == pytest.approx([3.0, 5.0])
            assert frequencies(m) == pytest.approx([1.0, 1.0])
        assert frequencies(m) == pytest.approx([2.0, 2.0])
    assert frequencies(m) == pytest.approx([4.0, 4.0])


def test_override_no_gradient_to_w_inside():
    m = MLP(2, 2, hidden=(4,), w=2.0, learn_w=True)
    raw = periodic_layers(m)[0].w_raw
    with override_w(m, w=1.0):
        m(_x()).sum().backward()
    assert raw.grad is None
    assert m.linears[0].weight.grad is not None


def test_override_errors():
    with pytest.raises(ValueError, match="no Periodic"):
        with override_w(MLP(2, 2, hidden=(4,), activation="relu"), w=1.0):
            pass
    m = MLP(2, 2, hidden=(4, 4))
    for kwargs in ({}, {"w": 1.0, "scale": 2.0}):
        with pytest.raises(ValueError, match="exactly one"):
            with override_w(m, **kwargs):
                pass
    for kwargs in ({"w": 0.0}, {"w": -1.0}, {"scale": float("nan")}):
        with pytest.raises(ValueError, match="positive"):
            with override_w(m, **kwargs):
                pass
    with pytest.raises(ValueError, match="2 periodic layers"):
        with override_w(m, w=[1.0, 2.0, 3.0]):
            pass
    with pytest.raises(TypeError, match="positive number"):
        with override_w(m, w="3"):
            pass
    with pytest.raises(TypeError, match="nn.Module"):
        with override_w([m], w=1.0):
            pass
    assert frequencies(m) == [1.0, 1.0]


def test_periodic_layers_and_frequencies():
    m = nn.Sequential(MLP(2, 3, hidden=(4,), w=2.0), nn.ReLU(), MLP(3, 1, hidden=(5, 5), activation="sin", w=0.5))
    assert len(periodic_layers(m)) == 3
    assert frequencies(m) == [2.0, 0.5, 0.5]
    assert frequencies(nn.ReLU()) == []
    assert periodic_layers(Periodic()) != []


# ---------------------------------------------------------------- initialisation


def test_siren_init_bounds():
    torch.manual_seed(0)
    w = 5.0
    m = MLP(3, 2, hidden=(64, 32), activation="sin", w=w, init="siren")
    l0, l1, l2 = m.linears
    assert l0.weight.abs().max() <= 1 / 3
    assert l0.weight.abs().max() > 0.8 / 3  # actually spans the range
    for lin in (l1, l2):
        b = math.sqrt(6 / lin.in_features) / w
        assert lin.weight.abs().max() <= b
        assert lin.weight.abs().max() > 0.8 * b
    with pytest.raises(ValueError, match="periodic"):
        MLP(2, 2, activation="relu", init="siren")


def test_zero_last_gives_zero_output():
    m = MLP(2, 3, hidden=(8, 8), zero_last=True, init="siren", w=3.0)
    assert torch.equal(m(_x()), torch.zeros(16, 3))
    assert m.linears[0].weight.abs().sum() > 0  # only the last layer is zeroed
    m2 = MLP(2, 3, hidden=(8,), zero_last=True, final_activation="tanh")
    assert torch.equal(m2(_x()), torch.zeros(16, 3))


def test_final_activation():
    m = MLP(2, 2, hidden=(4,), final_activation="sigmoid")
    y = m(_x())
    assert ((y > 0) & (y < 1)).all()
    m = MLP(2, 2, hidden=(4,), w=2.0, learn_w=True, final_activation="cos")
    assert len(periodic_layers(m)) == 2
    m = MLP(2, 2, hidden=(4,), final_activation=nn.Tanh())
    assert isinstance(m.net[-1], nn.Tanh)
    assert len(m.linears) == 2


# ---------------------------------------------------------------- errors


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        make_activation("gelu")
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(2, 2, activation="swish")
    with pytest.raises(ValueError, match="only apply to periodic"):
        make_activation("relu", learn_w=True)
    with pytest.raises(ValueError, match="only apply to periodic"):
        MLP(2, 2, activation="tanh", w=3.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        Periodic("tan")
    with pytest.raises(ValueError, match="w must be a positive"):
        Periodic("cos", w=0.0)
    with pytest.raises(ValueError, match="w must be a positive"):
        MLP(2, 2, w=-1.0)
    with pytest.raises(ValueError, match=r"\(0, w_max\)"):
        Periodic("cos", w=5.0, learn_w=True, w_max=3.0)
    with pytest.raises(ValueError, match="learn_w=True"):
        Periodic("cos", w=1.0, w_max=3.0)
    with pytest.raises(ValueError, match="hidden"):
        MLP(2, 2, hidden=(4, 0))
    with pytest.raises(ValueError, match="hidden"):
        MLP(2, 2, hidden=4)
    with pytest.raises(ValueError, match="in_dim"):
        MLP(0, 2)
    with pytest.raises(ValueError, match="init"):
        MLP(2, 2, init="xavier")
    with pytest.raises(ValueError, match="final_activation"):
        MLP(2, 2, final_activation="elu")
    with pytest.raises(ValueError, match="d must be"):
        paper_hidden(0, 2)


# ---------------------------------------------------------------- frequency content (4.5, figure 4)


def _mean_jacobian_norm(m, pts):
    """Mean Frobenius norm of the Jacobian of m over the points (each row depends only on its input)."""
    with torch.enable_grad():
        x = pts.clone().requires_grad_(True)
        y = m(x)
        rows = [torch.autograd.grad(y[:, i].sum(), x, retain_graph=True)[0] for i in range(y.shape[1])]
    jac = torch.stack(rows, 1)  # (n, out, in)
    return jac.flatten(1).norm(dim=1).mean().item()


def test_larger_w_gives_larger_spatial_derivative():
    """A cos MLP R^2 -> R^2 with larger w induces a rougher vector field."""
    g = torch.linspace(-2, 2, 15)
    pts = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    small, large = [], []
    for seed in range(10):
        torch.manual_seed(seed)
        m = MLP(2, 2, hidden=(32, 32), activation="cos", w=0.5)
        with torch.no_grad():
            small.append(_mean_jacobian_norm(m, pts))
            with override_w(m, w=4.0):  # same weights, higher frequency
                large.append(_mean_jacobian_norm(m, pts))
            torch.manual_seed(seed)
            m2 = MLP(2, 2, hidden=(32, 32), activation="cos", w=4.0)  # built with the large w
            assert _mean_jacobian_norm(m2, pts) == pytest.approx(large[-1], rel=1e-5)
    assert sum(large) / len(large) > 3 * sum(small) / len(small)
    assert all(l > s for l, s in zip(large, small))


# ---------------------------------------------------------------- serialisation, dtype, property test


def test_state_dict_deepcopy_and_dtype():
    torch.manual_seed(0)
    a = MLP(2, 2, hidden=(4, 4), w=2.0, learn_w=True)
    b = MLP(2, 2, hidden=(4, 4), w=1.0, learn_w=True)
    b.load_state_dict(a.state_dict())
    assert frequencies(b) == pytest.approx([2.0, 2.0])
    assert torch.equal(a(_x()), b(_x()))
    c = copy.deepcopy(a)
    assert torch.equal(a(_x()), c(_x()))
    d = MLP(2, 2, hidden=(4,), w=3.0).double()
    with override_w(d, scale=0.5):
        assert d(_x().double()).dtype == torch.float64
        assert frequencies(d) == [1.5]
    assert "w_raw" in "".join(d.state_dict())
    assert not any("override" in k for k in d.state_dict())



@settings(max_examples=40, deadline=None)
@given(
    w0=st.floats(0.05, 20.0),
    learn=st.booleans(),
    new=st.one_of(st.tuples(st.just("w"), st.floats(0.01, 50.0)), st.tuples(st.just("scale"), st.floats(0.01, 10.0))),
    fail=st.booleans(),
)
def test_override_always_restores(w0, learn, new, fail):
    torch.manual_seed(0)
    m = MLP(2, 2, hidden=(3, 3), w=w0, learn_w=learn)
    before, f0, y0 = _state(m), frequencies(m), m(_x()).detach()
    try:
        with override_w(m, **{new[0]: new[1]}):
            expected = new[1] if new[0] == "w" else [f * new[1] for f in f0]
            assert frequencies(m) == pytest.approx(expected if isinstance(expected, list) else [expected] * 2, rel=1e-6)
            if fail:
                raise KeyError("x")
    except KeyError:
        assert fail
    _assert_restored(m, before)
    assert frequencies(m) == f0
    assert torch.equal(m(_x()).detach(), y0)
