"""Chapter 8 writes section 5.1's training loop in cells and asserts that its steps are `fit`'s.

The same loop, written as plainly as the chapter writes it, is checked here on the small `tiny`
config, so that a change to `fit` (which parameters are clipped, by norm or by value, the schedule's
step, the batch order, the weight-decay groups) fails a fast test that names the chapter, not only
the chapter's nbval run.
"""
import math

import numpy as np
import pytest
import torch

from sketchode.data import load, prepare
from sketchode.training.configs import build_model, get_config
from sketchode.training.fit import cosine_decay, epoch_permutation, fit


def schedule(epoch, period=100, decay=4.0, floor=0.02):
    w = math.pi * epoch / (2 * period)
    return (1 - floor) * math.exp(-math.log(decay) / math.pi * w) * math.cos(w) ** 2 + floor


def chapter_loop(model, data, steps, lr, weight_decay, clip, batch_size, period, decay, seed=0):
    """Chapter 8's loop: schedule per step, AdamW (decay on the dynamics networks), norm clipping."""
    dynamics = [p for net in (model.encoder.field, model.decoder.F)
                for name, p in net.named_parameters() if "w_raw" not in name]
    ids = {id(p) for p in dynamics}
    rest = [p for p in model.parameters() if id(p) not in ids]
    optimizer = torch.optim.AdamW([{"params": dynamics, "weight_decay": weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    losses, step, epoch = [], 0, 0
    while step < steps:
        for idx in epoch_permutation(len(data), seed, epoch).split(batch_size)[: steps - step]:
            for group in optimizer.param_groups:
                group["lr"] = lr * schedule(step / steps_per_epoch, period, decay)
            loss = model.loss(model.collate([data[i] for i in idx.tolist()]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            for g in grads:
                g.mul_((clip / (norm + 1e-6)).clamp(max=1.0))
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
        epoch += 1
    return losses


def test_the_chapters_schedule_is_cosine_decay():
    for e in [0, 0.37, 10, 50, 99.9, 100, 150, 186, 200, 333.3]:
        for kw in ({}, {"period": 40}, {"period": 7, "decay": 2.0, "floor": 0.1}):
            assert math.isclose(schedule(e, **kw), cosine_decay(e, **kw), rel_tol=1e-12), (e, kw)


@pytest.mark.parametrize("steps", [1, 5])   # 5 steps on 200 drawings: a short last batch, then epoch 1
def test_the_chapters_loop_takes_fits_steps(steps, one_thread):
    recipe = dict(get_config("tiny").train)
    assert recipe["augment_sigma"] == 0          # the loop has no augmentation branch here
    recipe.pop("augment_sigma")
    data = prepare(load("digits")[:200])
    torch.manual_seed(0)
    start = build_model("tiny").state_dict()
    by_loop, by_fit = build_model("tiny"), build_model("tiny")
    by_loop.load_state_dict(start)
    by_fit.load_state_dict(start)
    losses = chapter_loop(by_loop, data, steps, **recipe)
    history = fit(by_fit, data, steps=steps, seed=0, device="cpu", progress=False, augment_sigma=0.0, **recipe)
    a, b = by_loop.state_dict(), by_fit.state_dict()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-6, f"chapter 8's loop and fit differ by {diff:.2e} after {steps} steps"
    assert max(float((b[k] - start[k]).abs().max()) for k in b) > 1e-4   # the step did move the weights
    # the loss fit records for the partial epoch is the mean of that epoch's batch losses
    spe = math.ceil(len(data) / recipe["batch_size"])
    sizes = [len(i) for i in epoch_permutation(len(data), 0, 0).split(recipe["batch_size"])]
    done = steps % spe or spe                    # batches of the last (partial) epoch
    last = history.records[-1]
    expected = np.average(losses[-done:], weights=sizes[:done])
    assert math.isclose(last["train_loss"], expected, rel_tol=1e-6)
    assert math.isclose(last["lr"], recipe["lr"] * schedule(steps / spe, recipe["period"], recipe["decay"]),
                        rel_tol=1e-9)
