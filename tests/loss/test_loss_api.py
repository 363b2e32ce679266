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
    with pytest.raises(ValueError, match=r"logits \(cpu\), topk_indices \(.*\) and topk_probs \(.*\) must be on the same device"):
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


# ---- one input check, one message set ----------------------------------------------------------
def _bad_inputs():
    """(name, logits, topk_indices, topk_probs): each breaks one rule of the op's contract."""
    logits, idx, probs = case()
    return [
        ("3-D logits", logits[None], idx, probs),
        ("int logits", logits.int(), idx, probs),
        ("uint8 indices", logits, idx.to(torch.uint8), probs),
        ("bf16 probs", logits, idx, probs.bfloat16()),
        ("1-D indices", logits, idx[0], probs[0]),
        ("shape differs", logits, idx, probs[:, :4]),
        ("rows differ", logits[:5], idx, probs),
        ("K >= C", logits[:, :5], idx, probs),
        ("device differs", logits, idx.to("meta"), probs),
    ]


def _error(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type and text are what is compared
        return type(exc), str(exc).splitlines()[0]
    raise AssertionError("no error")


@pytest.mark.parametrize("i", range(9))
def test_python_check_and_cpp_op_say_the_same(i):
    """The Python check (what every public caller meets first) and the op's C++ check
    (csrc/ops/sparse_ce_registration.cpp, for direct torch.ops callers) raise the same type with
    the same message; so do the dense reference and the fake (meta) kernel."""
    from tinyvit.loss import _check_inputs, dense_soft_cross_entropy

    name, logits, idx, probs = _bad_inputs()[i]
    py = _error(_check_inputs, logits, idx, probs)
    assert py[1].startswith("sparse_soft_cross_entropy: "), name
    if name != "device differs":  # the C++ op cannot be dispatched across cpu and meta at all
        op = _error(torch.ops.tinyvit.sparse_soft_ce_fwd, logits, idx, probs, False, False)
        assert op == py, name
    assert _error(sparse_soft_cross_entropy, logits, idx, probs) == py, name
    assert _error(dense_soft_cross_entropy, logits, idx, probs) == py, name
    if name != "device differs":
        meta = [t.to("meta") for t in (logits, idx, probs)]
        assert _error(torch.ops.tinyvit.sparse_soft_ce_fwd, *meta, False, False) == py, name


def test_good_inputs_pass_the_check_for_every_dtype():
    from tinyvit.loss import _check_inputs

    logits, idx, probs = case()
    for lt in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for it in (torch.int16, torch.uint16, torch.int32, torch.int64):
            for pt in (torch.float16, torch.float32, torch.float64):
                _check_inputs(logits.to(lt), idx.to(it), probs.to(pt))


# ---- one dense soft CE ---------------------------------------------------------------------------
def test_soft_cross_entropy_is_the_training_loops_formula():
    """tinyvit.jobs.train uses tinyvit.loss.soft_cross_entropy; for its float32 targets it is
    bit-identical to the loop's former ``sum(-t * log_softmax(z.float()))`` for every logits dtype."""
    from tinyvit.jobs import train as train_mod
    from tinyvit.loss import soft_cross_entropy

    assert train_mod.soft_cross_entropy is soft_cross_entropy
    g = torch.Generator().manual_seed(3)
    target = torch.rand(8, 30, generator=g).softmax(-1)
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        z = (torch.randn(8, 30, generator=g) * 4).to(dt)
        want = torch.sum(-target * torch.nn.functional.log_softmax(z.float(), -1), -1)
        got = soft_cross_entropy(z, target, "none")
        assert got.dtype == torch.float32 and torch.equal(got, want), dt
        assert torch.equal(soft_cross_entropy(z, target), want.mean())
    with pytest.raises(ValueError, match="reduction must be one of"):
        soft_cross_entropy(z, target, "avg")


def test_dense_reference_is_soft_ce_of_the_dense_target():
    from tinyvit.loss import dense_soft_cross_entropy, soft_cross_entropy

    logits, idx, probs = case()
    u = (1 - probs.sum(-1, keepdim=True)) / (logits.shape[1] - idx.shape[1])
    target = u.expand(-1, logits.shape[1]).clone().scatter_(1, idx, probs)
    for r in ("none", "mean", "sum"):
        assert torch.equal(dense_soft_cross_entropy(logits, idx, probs, r), soft_cross_entropy(logits, target, r))


def test_no_per_device_gradient_in_forward_switch():
    """The gradient-in-forward default table (which no device selected) is gone; the public
    function has no switch for it."""
    import tinyvit.loss as L

    assert not hasattr(L, "GRAD_IN_FORWARD") and not hasattr(L, "_grad_in_forward_default")
    logits, idx, probs = case()
    with pytest.raises(TypeError, match="grad_in_forward"):
        sparse_soft_cross_entropy(logits, idx, probs, grad_in_forward=True)


def test_compiled_with_dynamic_batch_is_one_graph_and_checks_still_refuse():
    """The one check runs under Dynamo (public path) and in the fake kernels with symbolic
    sizes: one graph serves three batch sizes, equal to eager; a row mismatch still fails."""
    torch._dynamo.reset()
    # reset() leaves the global counters alone: graphs compiled by earlier tests of the same
    # session would count here (2 == 1 in a full run, 1 == 1 alone)
    torch._dynamo.utils.counters.clear()
    crit = SparseSoftCrossEntropy()
    lin = torch.nn.Linear(16, 50)

    def step(x, idx, probs):
        return crit(lin(x), idx, probs)

    compiled = torch.compile(step, fullgraph=True, dynamic=True, backend="aot_eager")
    for b in (8, 12, 20):
        _, idx, probs = case(b=b, seed=b)
        x = torch.randn(b, 16)
        torch.testing.assert_close(compiled(x, idx, probs), step(x, idx, probs))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    with pytest.raises(Exception, match="7 rows but logits has 8|rows but logits"):
        compiled(torch.randn(8, 16), idx[:7], probs[:7])
