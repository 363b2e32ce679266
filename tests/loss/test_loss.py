"""Fused sparse soft cross-entropy (tinyvit.loss) against the dense Eq. 2 reference."""
import pytest
import torch

import tinyvit
from tinyvit.loss import _sparse_ce, dense_soft_cross_entropy, sparse_soft_cross_entropy

CUDA = torch.cuda.is_available()
REDUCTIONS = ["mean", "sum", "none"]


def make_case(b, c, k, seed=0, dtype=torch.float32, mass=0.9, idx_dtype=torch.int64,
              prob_dtype=torch.float32, scale=3.0):
    """Random logits, K distinct indices per row, probabilities summing to `mass`."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, generator=g) * scale).to(dtype)
    idx = torch.rand(b, c, generator=g).argsort(dim=1)[:, :k].to(idx_dtype)
    probs = (torch.softmax(torch.randn(b, k, generator=g) * 2, dim=1) * mass).to(prob_dtype)
    return logits, idx, probs


def reference(logits, idx, probs, reduction="mean"):
    """Dense Eq. 2 in float64: loss and d loss / d logits."""
    z = logits.detach().double().requires_grad_()
    loss = dense_soft_cross_entropy(z, idx, probs.double(), reduction)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach(), grad


def ours(logits, idx, probs, reduction="mean", grad_in_forward=False, **kw):
    """The fused loss and its gradient. ``grad_in_forward``: the op's compute_grad=True mode,
    which the public function never selects but the op schema (and the benchmarks) keep."""
    z = logits.detach().clone().requires_grad_()
    if grad_in_forward:
        loss = _sparse_ce(z, idx, probs, reduction, kw.pop("validate", True), compute_grad=True)
    else:
        loss = sparse_soft_cross_entropy(z, idx, probs, reduction, **kw)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    return loss.detach(), grad


CASES = [(c, k) for c in (10, 1000, 21841) for k in (1, 10, 100) if k < c]


@pytest.mark.parametrize("c,k", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_fp32_matches_dense_float64(c, k, reduction, grad_in_forward):
    b = 4 if c > 10000 else 16
    logits, idx, probs = make_case(b, c, k, seed=c + k)
    ref_loss, ref_grad = reference(logits, idx, probs, reduction)
    loss, grad = ours(logits, idx, probs, reduction, grad_in_forward=grad_in_forward)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    # fp32 accumulation over C terms of size ~|z| ~ 10: relative error ~1e-6.
    torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=2e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=2e-7)


@pytest.mark.parametrize("c,k", [(10, 3), (1000, 100)])
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_float64_is_exact(c, k, grad_in_forward):
    logits, idx, probs = make_case(8, c, k, seed=1, dtype=torch.float64, prob_dtype=torch.float64)
    ref_loss, ref_grad = reference(logits, idx, probs, "none")
    loss, grad = ours(logits, idx, probs, "none", grad_in_forward=grad_in_forward)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype,grad_rtol", [(torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("c,k", [(1000, 10), (21841, 100)])
def test_half_precision_inputs(dtype, grad_rtol, c, k):
    # Reference on the same (already rounded) inputs in float64. The loss is accumulated in
    # fp32 so it stays fp32-accurate; the gradient is rounded once to the logits' dtype
    # (relative 2^-11 for fp16, 2^-8 for bf16), hence the stated tolerances.
    logits, idx, probs = make_case(4, c, k, seed=3, dtype=dtype, prob_dtype=torch.float16)
    ref_loss, ref_grad = reference(logits, idx, probs, "none")
    loss, grad = ours(logits, idx, probs, "none")
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=2e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=grad_rtol, atol=1e-7)


def test_probs_summing_to_one_exactly_gives_zero_smoothing():
    logits, idx, _ = make_case(5, 50, 4, seed=4)
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125]).expand(5, 4)  # sums to 1 exactly
    loss, grad = ours(logits, idx, probs, "none")
    # Independent formula with u = 0: plain CE against the top-k only.
    logp = torch.log_softmax(logits.double(), 1)
    expected = -(probs.double() * logp.gather(1, idx)).sum(1)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), reference(logits, idx, probs, "none")[1], rtol=1e-4, atol=1e-7)


def test_probs_summing_above_one_clamp_u_at_zero():
    logits, idx, probs = make_case(6, 300, 10, seed=5, mass=1.0 + 1e-3)
    assert (probs.sum(1) > 1).all()
    loss, grad = ours(logits, idx, probs, "none")
    logp = torch.log_softmax(logits.double(), 1)
    expected = -(probs.double() * logp.gather(1, idx)).sum(1)  # u clamped to 0, not negative
    torch.testing.assert_close(loss.double(), expected, rtol=1e-6, atol=1e-6)
    # Target mass S = sum v > 1: d/dz [-sum_k v_k log softmax_{I(k)}] = S softmax - v at I(k).
    mass = probs.double().sum(1, keepdim=True)
    expected_grad = (mass * logp.exp()).scatter_add(1, idx, -probs.double())
    torch.testing.assert_close(grad.double(), expected_grad, rtol=1e-4, atol=1e-7)


def test_zero_rows_spread_mass_over_the_other_classes():
    logits, idx, probs = make_case(4, 100, 10, seed=6)
    probs[1:3] = 0
    loss, grad = ours(logits, idx, probs, "none")
    ref_loss, ref_grad = reference(logits, idx, probs, "none")
    torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)
    # Row 1 independently: u = 1 / (C - K) on the non-top-k classes, 0 on the top-k ones.
    logp = torch.log_softmax(logits[1].double(), 0)
    others = torch.ones(100, dtype=torch.bool)
    others[idx[1]] = False
    torch.testing.assert_close(loss[1].double(), -logp[others].mean(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("idx_dtype", [torch.int16, torch.uint16, torch.int32, torch.int64])
@pytest.mark.parametrize("prob_dtype", [torch.float16, torch.float32])
def test_all_index_and_prob_dtypes_without_copies(idx_dtype, prob_dtype):
    logits, idx, probs = make_case(8, 2000, 20, seed=7, idx_dtype=idx_dtype, prob_dtype=prob_dtype)
    ref_loss, ref_grad = reference(logits, idx.long(), probs, "none")
    z = logits.clone().requires_grad_()
    with torch.profiler.profile() as prof:
        loss = sparse_soft_cross_entropy(z, idx, probs, "none")
        loss.sum().backward()
    names = {e.name for e in prof.events()}
    assert not names & {"aten::_to_copy", "aten::copy_", "aten::contiguous"}, names
    torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=2e-5)
    torch.testing.assert_close(z.grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


def test_non_contiguous_inputs():
    b, c, k = 6, 700, 12
    logits, idx, probs = make_case(b, c, k, seed=8)
    ref_loss, ref_grad = reference(logits, idx, probs, "none")
    transposed = logits.t().contiguous().t()            # column stride = B
    padded = torch.zeros(b, c + 37)
    padded[:, 5:5 + c] = logits
    sliced = padded[:, 5:5 + c]                          # row stride C + 37, offset
    wide_idx = torch.zeros(b, 2 * k, dtype=torch.int32)
    wide_idx[:, ::2] = idx.int()
    wide_probs = torch.zeros(b, 2 * k)
    wide_probs[:, ::2] = probs
    for z in (transposed, sliced):
        assert not z.is_contiguous()
        for i, p in ((idx, probs), (wide_idx[:, ::2], wide_probs[:, ::2])):
            loss, grad = ours(z, i, p, "none")
            torch.testing.assert_close(loss.double(), ref_loss, rtol=2e-6, atol=2e-5)
            torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)
    for z in (transposed.bfloat16(), sliced.half()):  # strided half-precision rows too
        loss, _ = ours(z, idx, probs, "none")
        torch.testing.assert_close(loss.double(), reference(z, idx, probs, "none")[0], rtol=2e-6, atol=2e-5)


def test_gradcheck_float64():
    logits, idx, probs = make_case(3, 7, 3, seed=9, dtype=torch.float64, prob_dtype=torch.float64, scale=1.0)
    for reduction in REDUCTIONS:
        for gif in (False, True):
            z = logits.clone().requires_grad_()
            assert torch.autograd.gradcheck(
                lambda x: _sparse_ce(x, idx, probs, reduction, True, compute_grad=gif), (z,))


def test_opcheck():
    from torch.library import opcheck

    logits, idx, probs = make_case(4, 33, 5, seed=10)
    fwd = torch.ops.tinyvit.sparse_soft_ce_fwd.default
    for compute_grad in (False, True):
        opcheck(fwd, (logits.clone().requires_grad_(), idx.int(), probs.half(), compute_grad, True))
        opcheck(fwd, (logits.bfloat16(), idx, probs, compute_grad, False))
    loss, lse, u, _ = fwd(logits, idx, probs, False, True)
    opcheck(torch.ops.tinyvit.sparse_soft_ce_bwd.default, (torch.rand(4), logits, idx, probs, lse, u))


def test_torch_compile_fullgraph_no_graph_break():
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 100))
    criterion = tinyvit.SparseSoftCrossEntropy()
    x = torch.randn(8, 16)
    _, idx, probs = make_case(8, 100, 5, seed=11, idx_dtype=torch.int16, prob_dtype=torch.float16)

    def step(x, idx, probs):
        return criterion(model(x), idx, probs)

    # aot_eager traces forward + backward through the op's fake and autograd registrations
    # without the C++ code generation (cheap on CPU); fullgraph=True fails on any graph break.
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(x, idx, probs)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    eager = step(x, idx, probs)
    eager.backward()
    torch.testing.assert_close(loss, eager)
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_no_grad_and_module_wrapper():
    logits, idx, probs = make_case(5, 40, 4, seed=12)
    crit = tinyvit.SparseSoftCrossEntropy(reduction="sum")
    assert "sum" in repr(crit)
    with torch.no_grad():
        out = crit(logits.requires_grad_(), idx, probs)
    assert not out.requires_grad
    torch.testing.assert_close(out.double(), reference(logits, idx, probs, "sum")[0], rtol=2e-6, atol=2e-5)
    empty = sparse_soft_cross_entropy(torch.zeros(0, 40), idx[:0], probs[:0], "none")
    assert empty.shape == (0,)


def test_bad_inputs_raise_clear_errors():
    logits, idx, probs = make_case(4, 50, 5, seed=13)
    bad = idx.clone()
    bad[2, 3] = 50
    with pytest.raises(IndexError, match=r"topk_indices\[2, 3\] = 50 is out of range for C = 50"):
        sparse_soft_cross_entropy(logits, bad, probs)
    bad = idx.int().clone()
    bad[1, 0] = -1
    bad[3, 0] = 99
    with pytest.raises(IndexError, match=r"topk_indices\[1, 0\] = -1"):  # first bad row reported
        sparse_soft_cross_entropy(logits, bad, probs)
    dup = idx.clone()
    dup[3, 4] = dup[3, 1]
    with pytest.raises(ValueError, match=r"row 3 has duplicate class index \d+ \(positions 1 and 4\)"):
        sparse_soft_cross_entropy(logits, dup, probs)
    with pytest.raises(ValueError, match=r"K \(=50 .*\) must be < C \(=50"):
        full = torch.arange(50).expand(4, 50)
        sparse_soft_cross_entropy(logits, full, torch.full((4, 50), 0.02))
    with pytest.raises(TypeError, match="topk_indices must be int16, uint16, int32 or int64"):
        sparse_soft_cross_entropy(logits, idx.to(torch.uint8), probs)
    with pytest.raises(TypeError, match="topk_probs must be float16, float32 or float64"):
        sparse_soft_cross_entropy(logits, idx, probs.bfloat16())
    with pytest.raises(ValueError, match="same shape"):
        sparse_soft_cross_entropy(logits, idx, probs[:, :4])
    with pytest.raises(ValueError, match="logits must be 2-D"):
        sparse_soft_cross_entropy(logits[0], idx, probs)
    with pytest.raises(ValueError, match="reduction must be one of"):
        sparse_soft_cross_entropy(logits, idx, probs, "avg")
    # validate=False: invalid entries are skipped (no crash, no out-of-bounds read); other rows exact.
    bad = idx.clone()
    bad[0, 0] = 10**6
    loss = sparse_soft_cross_entropy(logits, bad, probs, "none", validate=False)
    assert torch.isfinite(loss).all()
    torch.testing.assert_close(loss[1:].double(), reference(logits[1:], idx[1:], probs[1:], "none")[0],
                               rtol=2e-6, atol=2e-5)


# ---- CUDA (skipped without a GPU) ---------------------------------------------------------

cuda_only = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("c,k", [(10, 3), (1000, 10), (21841, 100), (262144, 1000)])
@pytest.mark.parametrize("grad_in_forward", [False, True])
def test_cuda_matches_cpu(dtype, c, k, grad_in_forward):
    b = 3 if c > 100000 else 33
    logits, idx, probs = make_case(b, c, k, seed=14, dtype=dtype, idx_dtype=torch.int32,
                                   prob_dtype=torch.float16)
    cpu_loss, cpu_grad = ours(logits, idx, probs, "none")
    gpu_loss, gpu_grad = ours(logits.cuda(), idx.cuda(), probs.cuda(), "none", grad_in_forward=grad_in_forward)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5}.get(dtype, 1e-5)
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=tol, atol=tol * 10)
    gtol = {torch.float16: 2e-3, torch.bfloat16: 1e-2}.get(dtype, tol)
    torch.testing.assert_close(gpu_grad.cpu(), cpu_grad, rtol=gtol, atol=1e-6)


@cuda_only
def test_cuda_strided_and_dtypes():
    logits, idx, probs = make_case(17, 3000, 50, seed=15)
    cpu_loss, cpu_grad = ours(logits.t().contiguous().t(), idx, probs, "mean")
    for idx_dtype in (torch.int16, torch.uint16, torch.int32, torch.int64):
        z = logits.cuda().t().contiguous().t()
        loss, grad = ours(z, idx.to(idx_dtype).cuda(), probs.cuda(), "mean")
        torch.testing.assert_close(loss.cpu(), cpu_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad.cpu(), cpu_grad, rtol=1e-5, atol=1e-8)


@cuda_only
@pytest.mark.parametrize("c", [50, 400000])  # shared bitmap and the pairwise duplicate search
def test_cuda_bad_indices(c):
    logits, idx, probs = make_case(4, c, 5, seed=16)
    logits, idx, probs = logits.cuda(), idx.cuda(), probs.cuda()
    bad = idx.clone()
    bad[2, 3] = c
    with pytest.raises(IndexError, match=rf"topk_indices\[2, 3\] = {c} is out of range"):
        sparse_soft_cross_entropy(logits, bad, probs)
    loss = sparse_soft_cross_entropy(logits, bad, probs, "none", validate=False)
    torch.cuda.synchronize()
    assert torch.isfinite(loss).all()
    dup = idx.clone()
    dup[1, 4] = dup[1, 0]
    with pytest.raises(ValueError, match="row 1 has duplicate"):
        sparse_soft_cross_entropy(logits, dup, probs)
