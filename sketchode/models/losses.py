"""Reconstruction loss of the full-sequence format (paper eq. 5, section 5.1).

Eq. 5 sums a point-wise loss ``L`` between the decoded and the target
drawing over the time points of ``[t0, t1]``; section 5.1 chooses ``L`` to be
the Huber (smooth L1) loss.  Here the point-wise loss is

* Huber (``beta``) on ``x`` and ``y``, **summed** over the two coordinates, plus
* ``pen_weight`` times the binary cross-entropy (with logits) of the pen bit
  (target ``1`` = pen up, ``0`` = ink),

and it is averaged over the valid points (``mask`` true) of the whole batch:
``total = sum_{b,t valid} l(b,t) / #valid``.  With the uniform grid (mask all
true) this equals the per-sample time average averaged over the batch.
Masked (padded / not-own) points never contribute: their values are replaced
by zeros *before* the point-wise loss, so even NaN or inf there change neither
the loss nor the gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_REDUCTIONS = ("mean", "sum", "none")


def _target_tensor(target) -> torch.Tensor:
    # accept a FullBatch-like object (``.points``) as the target for convenience
    if not isinstance(target, torch.Tensor) and hasattr(target, "points"):
        target = target.points
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"reconstruction_loss: target must be a tensor (B, G, 3), got {type(target).__name__}")
    return target


def reconstruction_loss(
    pred_xy: torch.Tensor,
    pen_logit: torch.Tensor,
    target,
    mask: torch.Tensor | None = None,
    beta: float = 1.0,
    pen_weight: float = 1.0,
    reduction: str = "mean",
    return_parts: bool = False,
):
    """Masked Huber + pen-BCE reconstruction loss (paper eq. 5).

    Parameters
    ----------
    pred_xy : ``(B, G, 2)`` predicted absolute positions.
    pen_logit : ``(B, G)`` (or ``(B, G, 1)``) logit of "pen up".
    target : ``(B, G, 3)`` ``x, y, pen`` (e.g. ``FullBatch.points``; a
        ``FullBatch`` itself is accepted too), pen in ``[0, 1]``.
    mask : optional ``(B, G)`` bool, true at the points to count.
    beta : Huber transition point (``smooth_l1_loss`` ``beta``), ``> 0``.
    pen_weight : weight of the pen term, ``>= 0``.
    reduction : ``"mean"`` (over valid points), ``"sum"`` (over valid points)
        or ``"none"`` (``(B, G)`` per-point loss, zero at masked points).
    return_parts : if true return ``{"position", "pen", "total"}`` (each
        reduced the same way; ``total = position + pen_weight * pen``).

    Raises
    ------
    ValueError on wrong shapes, an empty batch, a mask with no true entry,
    non-finite or out-of-range targets at valid points, bad ``beta`` /
    ``pen_weight`` / ``reduction``.
    """
    target = _target_tensor(target)
    if not isinstance(pred_xy, torch.Tensor) or not isinstance(pen_logit, torch.Tensor):
        raise TypeError("reconstruction_loss: pred_xy and pen_logit must be tensors")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reconstruction_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not (beta > 0):
        raise ValueError(f"reconstruction_loss: beta must be > 0, got {beta}")
    if not (pen_weight >= 0):
        raise ValueError(f"reconstruction_loss: pen_weight must be >= 0, got {pen_weight}")
    if target.ndim != 3 or target.shape[-1] != 3:
        raise ValueError(f"reconstruction_loss: target must have shape (B, G, 3) = x, y, pen; got {tuple(target.shape)}")
    B, G = target.shape[:2]
    if B == 0 or G == 0:
        raise ValueError(f"reconstruction_loss: empty batch, target shape {tuple(target.shape)}")
    if tuple(pred_xy.shape) != (B, G, 2):
        raise ValueError(
            f"reconstruction_loss: pred_xy must have shape (B, G, 2) = ({B}, {G}, 2); got {tuple(pred_xy.shape)}"
        )
    if pen_logit.ndim == 3 and pen_logit.shape[-1] == 1:
        pen_logit = pen_logit.squeeze(-1)
    if tuple(pen_logit.shape) != (B, G):
        raise ValueError(
            f"reconstruction_loss: pen_logit must have shape (B, G) = ({B}, {G}) (or (B, G, 1)); "
            f"got {tuple(pen_logit.shape)}"
        )
    if mask is None:
        mask = torch.ones(B, G, dtype=torch.bool, device=target.device)
    else:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"reconstruction_loss: mask must be a bool tensor (B, G), got {type(mask).__name__}")
        if tuple(mask.shape) != (B, G):
            raise ValueError(f"reconstruction_loss: mask must have shape (B, G) = ({B}, {G}); got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"reconstruction_loss: mask must be a bool tensor, got dtype {mask.dtype}")
        mask = mask.to(target.device)
    n_valid = int(mask.sum())
    if n_valid == 0:
        raise ValueError("reconstruction_loss: mask has no true entry (no valid time point to average over)")

    m3 = mask.unsqueeze(-1)
    tgt = torch.where(m3, target, torch.zeros((), dtype=target.dtype, device=target.device))
    if not bool(torch.isfinite(tgt).all()):
        raise ValueError("reconstruction_loss: target has NaN/inf at valid (mask true) points")
    pen_t = tgt[..., 2]
    if bool(((pen_t < 0) | (pen_t > 1)).any()):
        raise ValueError("reconstruction_loss: target pen must lie in [0, 1] (1 = pen up, 0 = ink)")

    zero = torch.zeros((), dtype=pred_xy.dtype, device=pred_xy.device)
    pxy = torch.where(m3, pred_xy, zero)
    plg = torch.where(mask, pen_logit, zero)
    pos = F.smooth_l1_loss(pxy, tgt[..., :2].to(pxy.dtype), beta=beta, reduction="none").sum(-1)
    pen = F.binary_cross_entropy_with_logits(plg, pen_t.to(plg.dtype), reduction="none")
    fmask = mask.to(pos.dtype)
    pos = pos * fmask
    pen = pen * fmask

    if reduction == "none":
        parts = {"position": pos, "pen": pen}
    elif reduction == "sum":
        parts = {"position": pos.sum(), "pen": pen.sum()}
    else:
        parts = {"position": pos.sum() / n_valid, "pen": pen.sum() / n_valid}
    parts["total"] = parts["position"] + pen_weight * parts["pen"]
    return parts if return_parts else parts["total"]


__all__ = ["reconstruction_loss"]
