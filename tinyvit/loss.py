"""Sparse label-smoothed soft cross-entropy for TinyViT distillation (paper Eq. 2).

The teacher keeps only its top-K classes per sample: indices ``I`` and probabilities ``v``.
Eq. 2 spreads the remaining mass uniformly, ``u = (1 - sum_k v_k) / (C - K)`` (clamped at 0
when rounding makes ``sum_k v_k > 1``). The official code materialises that dense ``B x C``
target and calls a soft-target CE (:func:`dense_soft_cross_entropy` here); the fused op
(:func:`sparse_soft_cross_entropy`) never builds it::

    loss_i   = S LSE(z) - sum_k (v_k - u) z_{I(k)} - u sum_c z_c
    dloss/dz = S softmax(z) - u - sum_k (v_k - u) [c = I(k)]

where ``S = sum_c p_c`` is 1, except when ``sum_k v_k > 1`` (u clamped to 0, ``S = sum_k v_k``):
both functions then compute the same soft CE against the stored ``v``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._ext import _C  # noqa: F401  (registers the torch.ops.tinyvit ops)

__all__ = ["SparseSoftCrossEntropy", "dense_soft_cross_entropy", "soft_cross_entropy",
           "sparse_soft_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")
_INDEX_DTYPES = (torch.int16, torch.uint16, torch.int32, torch.int64)
_PROB_DTYPES = (torch.float16, torch.float32, torch.float64)
_LOGIT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

# The gradient is computed by a separate backward kernel, on every device and dtype: measured on
# CPU (benchmarks/results/loss_cpu.json, ours vs ours_gif; docs/loss.md "Gradient in the forward
# pass"), writing it during the forward (the op's compute_grad=True) is slower for fp32 at
# C=21841 and for bf16 at B=1024, and holds a second B x C gradient. The op schema keeps
# compute_grad (csrc/ops/sparse_ce_registration.cpp; the benchmarks measure that path through
# _sparse_ce); the public functions pass False.


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# c10's ScalarType names, so the Python check's messages are the C++ check's, word for word
_C10_NAMES = {torch.float32: "Float", torch.float16: "Half", torch.bfloat16: "BFloat16",
              torch.float64: "Double", torch.int8: "Char", torch.uint8: "Byte", torch.int16: "Short",
              torch.uint16: "UInt16", torch.int32: "Int", torch.int64: "Long", torch.bool: "Bool",
              torch.complex64: "ComplexFloat", torch.complex128: "ComplexDouble"}


def _dt(t: torch.Tensor) -> str:
    return _C10_NAMES.get(t.dtype, str(t.dtype))


def _check_inputs(logits, topk_indices, topk_probs) -> None:
    """The one input check of the loss (public functions, dense reference, fake kernels): the
    checks and messages of the op's C++ ``check_inputs`` (csrc/ops/sparse_ce_registration.cpp;
    tests/loss/test_loss_api.py pins them equal), in its order, plus non-tensors first. Plain
    conditions, so Dynamo traces it without a graph break; on fake tensors with symbolic sizes
    the size comparisons become guards on the input shapes (valid inputs satisfy them)."""
    for name, t in (("logits", logits), ("topk_indices", topk_indices), ("topk_probs", topk_probs)):
        if not isinstance(t, torch.Tensor):
            hint = " (convert with torch.as_tensor)" if hasattr(t, "__array__") or isinstance(
                t, (list, tuple)) else ""
            raise TypeError(f"sparse_soft_cross_entropy: {name} must be a torch.Tensor, got "
                            f"{type(t).__module__}.{type(t).__name__}{hint}")
    p = "sparse_soft_cross_entropy: "
    if logits.dim() != 2:
        raise ValueError(f"{p}logits must be 2-D [B, C], got {logits.dim()}-D shape {list(logits.shape)}")
    if logits.dtype not in _LOGIT_DTYPES:
        raise TypeError(f"{p}logits must be float32, float16, bfloat16 or float64, got {_dt(logits)}")
    if topk_indices.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{p}topk_indices must be int16, uint16, int32 or int64, got {_dt(topk_indices)}")
    if topk_probs.dtype not in _PROB_DTYPES:
        raise TypeError(f"{p}topk_probs must be float16, float32 or float64, got {_dt(topk_probs)}")
    if topk_indices.dim() != 2 or topk_probs.dim() != 2:
        raise ValueError(f"{p}topk_indices and topk_probs must be 2-D [B, K], got "
                         f"{list(topk_indices.shape)} and {list(topk_probs.shape)}")
    if topk_indices.shape != topk_probs.shape:
        raise ValueError(f"{p}topk_indices {list(topk_indices.shape)} and topk_probs "
                         f"{list(topk_probs.shape)} must have the same shape")
    (b, k), c = topk_indices.shape, logits.shape[1]
    if b != logits.shape[0]:
        raise ValueError(f"{p}topk_indices has {b} rows but logits has {logits.shape[0]}")
    if k >= c:
        raise ValueError(f"{p}K (={k} top-k entries per row) must be < C (={c} classes)")
    if not (logits.device == topk_indices.device == topk_probs.device):
        raise ValueError(f"{p}logits ({logits.device}), topk_indices ({topk_indices.device}) and "
                         f"topk_probs ({topk_probs.device}) must be on the same device")


def _check_probs(topk_probs) -> None:
    """``validate``: probabilities outside [0, 1] -- the contract of a stored top-K (each value a
    probability; only their sum may exceed 1 by rounding, see the module docstring). Python
    only: the kernels never read a probability as anything but a weight."""
    if (topk_probs.numel() and not torch.compiler.is_compiling()
            and topk_probs.device.type != "meta"):
        # min/max only (no converted copy of the probs), one host sync; NaN fails both tests
        lo, hi = torch.stack(torch.aminmax(topk_probs)).tolist()
        if not (lo >= 0 and hi <= 1):
            bad = ~((topk_probs >= 0) & (topk_probs <= 1))
            row, col = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"sparse_soft_cross_entropy: topk_probs[{row}, {col}] = "
                             f"{float(topk_probs[row, col])} is not a probability in [0, 1]")


def _sparse_ce(logits, topk_indices, topk_probs, reduction: str, validate: bool,
               compute_grad: bool) -> torch.Tensor:
    """The fused loss; ``compute_grad``: the op's gradient-in-forward mode (only the benchmarks
    and tests pass True; see the comment above ``_check_reduction``)."""
    _check_reduction(reduction)
    _check_inputs(logits, topk_indices, topk_probs)
    if validate:
        _check_probs(topk_probs)
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _, _, _ = torch.ops.tinyvit.sparse_soft_ce_fwd(
        logits, topk_indices, topk_probs, bool(need_grad and compute_grad), bool(validate))
    return _reduce(loss, reduction)


def sparse_soft_cross_entropy(logits: torch.Tensor, topk_indices: torch.Tensor, topk_probs: torch.Tensor,
                              reduction: str = "mean", *, validate: bool = True) -> torch.Tensor:
    """Fused soft cross-entropy against the sparse top-K teacher target of Eq. 2.

    Args:
        logits: ``[B, C]`` float32 / float16 / bfloat16 (float64 also accepted), any strides.
        topk_indices: ``[B, K]`` int16 / uint16 / int32 / int64 class indices, ``K < C``,
            distinct within a row. Used as stored: no conversion copy.
        topk_probs: ``[B, K]`` float16 / float32 (or float64) teacher probabilities.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per-row ``[B]``).
        validate: raise ``IndexError`` for an index outside ``[0, C)`` and ``ValueError`` for a
            duplicate, naming the first bad row. On CUDA this costs one device-to-host sync per
            call; with ``validate=False`` bad indices are skipped (never read out of bounds) and
            duplicates are not detected.
            ``validate`` also refuses probabilities outside ``[0, 1]`` (one min/max pass).

    Returns the loss in float32 (float64 for float64 logits); the gradient w.r.t. ``logits``
    has the logits' dtype. ``topk_probs`` is treated as a constant (no gradient).
    """
    return _sparse_ce(logits, topk_indices, topk_probs, reduction, validate, compute_grad=False)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Dense soft-target cross-entropy ``sum_c -target_c log_softmax(logits)_c`` per row, the one
    definition (hard labels with smoothing / Mixup, an online teacher's softmax, and the dense
    Eq. 2 reference below). Computed in the promoted dtype of ``logits`` and ``target``: float32
    targets give float32 math for half-precision logits (what ``tinyvit train`` passes)."""
    _check_reduction(reduction)
    dt = torch.promote_types(logits.dtype, target.dtype)
    loss = torch.sum(-target.to(dt) * torch.log_softmax(logits.to(dt), dim=-1), dim=-1)
    return _reduce(loss, reduction)


def dense_soft_cross_entropy(logits: torch.Tensor, topk_indices: torch.Tensor, topk_probs: torch.Tensor,
                             reduction: str = "mean") -> torch.Tensor:
    """Reference: the official way. Materialises the dense Eq. 2 target ``p`` ([B, C], filled with
    ``u`` and scattered with ``v`` at the top-K indices, in the logits' dtype) and computes
    :func:`soft_cross_entropy` against it. Same signature, input checks and semantics as the
    fused op (``u`` clamped at 0); costs several ``B x C`` temporaries."""
    _check_reduction(reduction)
    _check_inputs(logits, topk_indices, topk_probs)
    num_classes, k = logits.shape[1], topk_indices.shape[1]
    probs = topk_probs.to(logits.dtype)
    u = ((1 - probs.sum(-1, keepdim=True)) / (num_classes - k)).clamp_min(0)
    target = u.expand(-1, num_classes).clone()
    target.scatter_(1, topk_indices.long(), probs)
    return soft_cross_entropy(logits, target, reduction)


class SparseSoftCrossEntropy(nn.Module):
    """``nn.Module`` wrapper of :func:`sparse_soft_cross_entropy`: ``criterion(logits, targets)``
    with the loader's ``SparseTargets`` (or any ``(indices, probs)`` pair) -- the
    ``criterion(output, target)`` shape timm's ``ClassificationTask`` and most loops call --
    or ``criterion(logits, topk_indices, topk_probs)``."""

    def __init__(self, reduction: str = "mean", validate: bool = True):
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction
        self.validate = validate

    def forward(self, logits: torch.Tensor, target, topk_probs: torch.Tensor | None = None) -> torch.Tensor:
        if topk_probs is None:
            if not (isinstance(target, (tuple, list)) and len(target) == 2):
                raise TypeError(
                    "SparseSoftCrossEntropy expects criterion(logits, SparseTargets) or "
                    "criterion(logits, topk_indices, topk_probs), got a single "
                    f"{type(target).__name__}" + (" (class labels? those need a dense loss such "
                                                  "as torch.nn.CrossEntropyLoss)"
                                                  if isinstance(target, torch.Tensor) else ""))
            topk_indices, topk_probs = target
        else:
            topk_indices = target
        return sparse_soft_cross_entropy(logits, topk_indices, topk_probs, self.reduction, validate=self.validate)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, validate={self.validate}"


# ---- torch.library registration: fake (meta) kernels and autograd ---------------------------

def _acc_dtype(logits: torch.Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


@torch.library.register_fake("tinyvit::sparse_soft_ce_fwd")
def _fwd_fake(logits, topk_indices, topk_probs, compute_grad, validate):
    _check_inputs(logits, topk_indices, topk_probs)
    b = logits.shape[0]
    acc = _acc_dtype(logits)
    grad = logits.new_empty(logits.shape) if compute_grad else logits.new_empty((0,))
    return (logits.new_empty((b,), dtype=acc), logits.new_empty((b,), dtype=acc),
            logits.new_empty((b,), dtype=acc), grad)


@torch.library.register_fake("tinyvit::sparse_soft_ce_bwd")
def _bwd_fake(grad_loss, logits, topk_indices, topk_probs, lse, u):
    _check_inputs(logits, topk_indices, topk_probs)
    return logits.new_empty(logits.shape)


def _setup_context(ctx, inputs, output):
    logits, topk_indices, topk_probs, compute_grad, _validate = inputs
    _loss, lse, u, grad = output
    ctx.grad_in_forward = compute_grad
    if compute_grad:
        ctx.save_for_backward(grad)
    else:
        ctx.save_for_backward(logits, topk_indices, topk_probs, lse, u)
    ctx.mark_non_differentiable(lse, u, grad)


def _backward(ctx, grad_loss, _grad_lse, _grad_u, _grad_grad):
    if ctx.grad_in_forward:
        (grad,) = ctx.saved_tensors
        grad_logits = grad * grad_loss.unsqueeze(1).to(grad.dtype)
    else:
        logits, topk_indices, topk_probs, lse, u = ctx.saved_tensors
        grad_logits = torch.ops.tinyvit.sparse_soft_ce_bwd(grad_loss, logits, topk_indices, topk_probs, lse, u)
    return grad_logits, None, None, None, None


torch.library.register_autograd("tinyvit::sparse_soft_ce_fwd", _backward, setup_context=_setup_context)
