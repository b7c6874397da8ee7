"""CUDA smoke test (issue 14): one training step of each model on the GPU; the fused and reference solvers agree.

Skipped on machines without CUDA (CI has none); run it whenever a GPU is available:
``python -m pytest tests/test_cuda.py`` and ``python -m sketchode bench --device cuda --json``.
"""

import pytest
import torch

from sketchode.models.lstm import RNNAutoencoder
from sketchode.data.synthetic import digits, letters
from sketchode.models.full_sequence import SketchODE
from sketchode.models.multistroke import MultiStrokeSketchODE
from sketchode.training.fit import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("make", [
    lambda: SketchODE(d=16, l=8, G=25, n_hidden=1),
    lambda: RNNAutoencoder(d=16, l=8, G=25),
    lambda: MultiStrokeSketchODE(d=16, l=8, G=10, n_hidden=1),
], ids=["sketchode", "lstm", "multistroke"])
def test_one_training_step_on_the_gpu(make):
    torch.manual_seed(0)
    model = make()
    data = letters(n_per_class=1)[:16] if isinstance(model, MultiStrokeSketchODE) else digits(n_per_class=2)[:16]
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hist = fit(model, data, steps=1, batch_size=16, device="cuda", progress=False)
    assert next(model.parameters()).is_cuda
    assert hist.stopped == "steps" and torch.isfinite(torch.tensor(hist.last["train_loss"]))
    assert any(not torch.equal(before[k], v.cpu()) for k, v in model.state_dict().items())


def test_fused_and_reference_solvers_agree_on_the_gpu():
    torch.manual_seed(0)
    fast = SketchODE(d=16, l=8, G=25, n_hidden=1).cuda()
    ref = SketchODE(d=16, l=8, G=25, n_hidden=1, solver="reference").cuda()
    ref.load_state_dict(fast.state_dict())
    batch = fast.collate(digits(n_per_class=1)[:8]).to("cuda")
    lf, lr = fast.loss(batch), ref.loss(batch)
    torch.testing.assert_close(lf, lr, rtol=1e-4, atol=1e-5)
    gf = torch.autograd.grad(lf, list(fast.parameters()), allow_unused=True)
    gr = torch.autograd.grad(lr, list(ref.parameters()), allow_unused=True)
    for a, b in zip(gf, gr):
        if a is not None and b is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
