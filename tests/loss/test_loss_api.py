"""The loss as trainers call it: criterion(output, target) with SparseTargets (timm's
ClassificationTask unchanged), and bad input refused with a typed error, never garbage."""
import numpy as np
import pytest
import torch

import tinyvit
from tinyvit import SparseSoftCrossEntropy, SparseTargets, sparse_soft_cross_entropy


def case(b=6, c=50, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g)
    idx = torch.stack([torch.randperm(c, generator=g)[:k] for _ in range(b)])
    probs = torch.rand(b, k, generator=g).softmax(-1) * 0.9
    return logits, idx, probs


def test_module_accepts_sparse_targets_and_pairs():
    logits, idx, probs = case()
    crit = SparseSoftCrossEntropy()
    want = sparse_soft_cross_entropy(logits, idx, probs)
    assert torch.equal(crit(logits, SparseTargets(idx, probs)), want)
    assert torch.equal(crit(logits, (idx, probs)), want)
    assert torch.equal(crit(logits, idx, probs), want)
    # independent reference: the dense Eq. 2 target
    torch.testing.assert_close(want, tinyvit.loss.dense_soft_cross_entropy(logits.double(), idx, probs.double()).float())


def test_module_refuses_class_labels_clearly():
    logits, _, _ = case()
    with pytest.raises(TypeError, match="class labels"):
        SparseSoftCrossEntropy()(logits, torch.zeros(6, dtype=torch.long))


def test_under_timm_classification_task():
    task_mod = pytest.importorskip("timm.task")
    logits, idx, probs = case(b=4, c=10, k=3)
    model = torch.nn.Linear(8, 10)
    x = torch.randn(4, 8)
    task = task_mod.ClassificationTask(model, criterion=SparseSoftCrossEntropy(), verbose=False)
    out = task(x, SparseTargets(idx, probs))
    want = sparse_soft_cross_entropy(model(x), idx, probs)
    torch.testing.assert_close(out["loss"], want, rtol=0, atol=0)
    out["loss"].backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("kind", ["numpy", "list"])
def test_non_tensor_inputs_are_a_type_error(which, kind):
    args = list(case())
    args[which] = args[which].numpy() if kind == "numpy" else args[which].tolist()
    name = ("logits", "topk_indices", "topk_probs")[which]
    with pytest.raises(TypeError, match=f"{name} must be a torch.Tensor"):
        sparse_soft_cross_entropy(*args)


@pytest.mark.parametrize("which", [1, 2])
def test_mixed_devices_are_refused(which):
    # 'meta' stands in for another device on a CPU-only box: the check is device equality
    args = list(case())
    args[which] = args[which].to("meta")
    with pytest.raises(ValueError, match="on one device"):
        sparse_soft_cross_entropy(*args)


@pytest.mark.parametrize("bad", [-0.25, 1.5, float("nan")])
def test_probabilities_outside_0_1_are_refused(bad):
    logits, idx, probs = case()
    probs[3, 2] = bad
    with pytest.raises(ValueError, match=r"topk_probs\[3, 2\]"):
        sparse_soft_cross_entropy(logits, idx, probs)
    with pytest.raises(ValueError, match=r"topk_probs\[3, 2\]"):
        SparseSoftCrossEntropy()(logits, SparseTargets(idx, probs))
    sparse_soft_cross_entropy(logits, idx, probs, validate=False)  # opted out: no check


def test_sum_above_one_by_rounding_is_still_accepted():
    logits, idx, probs = case()
    probs = (probs / probs.sum(-1, keepdim=True)).half()  # fp16 sum may exceed 1
    probs[0] = torch.tensor([1.0, 0.0005, 0.0, 0.0, 0.0], dtype=torch.half)
    loss = sparse_soft_cross_entropy(logits, idx, probs)
    assert torch.isfinite(loss)
