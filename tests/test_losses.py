import pytest
import torch
import torch.nn.functional as F

from sketchode.models.losses import reconstruction_loss


def _data(B=3, G=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.randn(B, G, 2, generator=g)
    logit = torch.randn(B, G, generator=g)
    tgt = torch.cat([torch.randn(B, G, 2, generator=g), (torch.rand(B, G, 1, generator=g) > 0.5).float()], -1)
    return xy, logit, tgt


def test_matches_reference_unmasked():
    xy, logit, tgt = _data()
    beta = 0.5
    ref_pos = F.smooth_l1_loss(xy, tgt[..., :2], beta=beta, reduction="none").sum(-1).mean()
    ref_pen = F.binary_cross_entropy_with_logits(logit, tgt[..., 2])
    parts = reconstruction_loss(xy, logit, tgt, beta=beta, pen_weight=2.0, return_parts=True)
    assert set(parts) == {"position", "pen", "total"}
    assert torch.allclose(parts["position"], ref_pos)
    assert torch.allclose(parts["pen"], ref_pen)
    assert torch.allclose(parts["total"], ref_pos + 2.0 * ref_pen)
    assert torch.allclose(reconstruction_loss(xy, logit, tgt, beta=beta, pen_weight=2.0), parts["total"])
    # (B, G, 1) logits accepted
    assert torch.allclose(reconstruction_loss(xy, logit.unsqueeze(-1), tgt, beta=beta, pen_weight=2.0), parts["total"])


def test_reductions():
    xy, logit, tgt = _data()
    mask = torch.rand(3, 10, generator=torch.Generator().manual_seed(1)) > 0.3
    none = reconstruction_loss(xy, logit, tgt, mask=mask, reduction="none")
    assert none.shape == (3, 10)
    assert (none[~mask] == 0).all()
    s = reconstruction_loss(xy, logit, tgt, mask=mask, reduction="sum")
    m = reconstruction_loss(xy, logit, tgt, mask=mask)
    assert torch.allclose(s, none.sum())
    assert torch.allclose(m, none.sum() / mask.sum())


def test_masked_values_ignored_and_grad_finite():
    xy, logit, tgt = _data()
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 6:] = False
    mask[2, :3] = False
    xy.requires_grad_(True)
    base = reconstruction_loss(xy, logit, tgt, mask=mask)
    xy2, logit2, tgt2 = xy.detach().clone(), logit.clone(), tgt.clone()
    xy2[~mask] = 1e6
    logit2[~mask] = float("nan")
    tgt2[~mask] = float("nan")
    xy2.requires_grad_(True)
    other = reconstruction_loss(xy2, logit2, tgt2, mask=mask)
    assert torch.allclose(base, other)
    other.backward()
    assert torch.isfinite(xy2.grad).all()
    assert (xy2.grad[~mask] == 0).all()
    # equals the loss over only the valid points
    ref = reconstruction_loss(xy[mask][None].detach(), logit[mask][None], tgt[mask][None])
    assert torch.allclose(base, ref)


def test_all_false_mask_raises():
    xy, logit, tgt = _data()
    with pytest.raises(ValueError, match="no true entry"):
        reconstruction_loss(xy, logit, tgt, mask=torch.zeros(3, 10, dtype=torch.bool))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda xy, lg, tg, m: (xy[..., :1], lg, tg, m), r"pred_xy must have shape \(B, G, 2\)"),
        (lambda xy, lg, tg, m: (xy, lg[:, :5], tg, m), r"pen_logit must have shape \(B, G\)"),
        (lambda xy, lg, tg, m: (xy, lg, tg[..., :2], m), r"target must have shape \(B, G, 3\)"),
        (lambda xy, lg, tg, m: (xy, lg, tg, m[:, :4]), r"mask must have shape \(B, G\)"),
        (lambda xy, lg, tg, m: (xy, lg, tg, m.float()), "bool"),
        (lambda xy, lg, tg, m: (xy[:0], lg[:0], tg[:0], None), "empty"),
    ],
)
def test_bad_shapes(change, match):
    xy, logit, tgt = _data()
    mask = torch.ones(3, 10, dtype=torch.bool)
    a = change(xy, logit, tgt, mask)
    with pytest.raises(ValueError, match=match):
        reconstruction_loss(*a[:3], mask=a[3])


def test_bad_values_and_options():
    xy, logit, tgt = _data()
    bad = tgt.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        reconstruction_loss(xy, logit, bad)
    bad = tgt.clone()
    bad[0, 0, 2] = 2.0
    with pytest.raises(ValueError, match="pen"):
        reconstruction_loss(xy, logit, bad)
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_loss(xy, logit, tgt, reduction="max")
    with pytest.raises(ValueError, match="beta"):
        reconstruction_loss(xy, logit, tgt, beta=0.0)
