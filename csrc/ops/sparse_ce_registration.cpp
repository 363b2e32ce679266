// Schemas and backend registration of the sparse soft cross-entropy ops, plus the input checks
// and error messages every backend shares. Fake (meta) kernels and autograd are registered
// from Python in tinyvit/loss.py (torch.library.register_fake / register_autograd).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>
#include <unordered_map>

#include "ops/sparse_ce.h"

namespace tinyvit {
namespace sparse_ce {

int index_dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kShort: return 0;
    case at::kUInt16: return 1;
    case at::kInt: return 2;
    case at::kLong: return 3;
    default:
      TORCH_CHECK_TYPE(false, "sparse_soft_cross_entropy: topk_indices must be int16, uint16, int32 or "
                       "int64, got ", t.scalar_type());
  }
}

int prob_dtype_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf: return 0;
    case at::kFloat: return 1;
    case at::kDouble: return 2;
    default:
      TORCH_CHECK_TYPE(false, "sparse_soft_cross_entropy: topk_probs must be float16, float32 or "
                       "float64, got ", t.scalar_type());
  }
}

int64_t check_inputs(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs) {
  TORCH_CHECK_VALUE(logits.dim() == 2, "sparse_soft_cross_entropy: logits must be 2-D [B, C], got ",
                    logits.dim(), "-D shape ", logits.sizes());
  const auto st = logits.scalar_type();
  TORCH_CHECK_TYPE(st == at::kFloat || st == at::kHalf || st == at::kBFloat16 || st == at::kDouble,
                   "sparse_soft_cross_entropy: logits must be float32, float16, bfloat16 or float64, got ",
                   st);
  index_dtype_code(indices);
  prob_dtype_code(probs);
  TORCH_CHECK_VALUE(indices.dim() == 2 && probs.dim() == 2,
                    "sparse_soft_cross_entropy: topk_indices and topk_probs must be 2-D [B, K], got ",
                    indices.sizes(), " and ", probs.sizes());
  TORCH_CHECK_VALUE(indices.sizes() == probs.sizes(),
                    "sparse_soft_cross_entropy: topk_indices ", indices.sizes(),
                    " and topk_probs ", probs.sizes(), " must have the same shape");
  TORCH_CHECK_VALUE(indices.size(0) == logits.size(0), "sparse_soft_cross_entropy: topk_indices has ",
                    indices.size(0), " rows but logits has ", logits.size(0));
  const int64_t C = logits.size(1), K = indices.size(1);
  TORCH_CHECK_VALUE(K < C, "sparse_soft_cross_entropy: K (=", K, " top-k entries per row) must be < C (=",
                    C, " classes)");
  TORCH_CHECK_VALUE(logits.device() == indices.device() && logits.device() == probs.device(),
                    "sparse_soft_cross_entropy: logits (", logits.device(), "), topk_indices (",
                    indices.device(), ") and topk_probs (", probs.device(),
                    ") must be on the same device");
  return K;
}

void raise_bad_row(const at::Tensor& row_cpu, int64_t row, int64_t C) {
  const at::Tensor idx = row_cpu.to(at::kLong).contiguous();
  const int64_t* p = idx.data_ptr<int64_t>();
  const int64_t K = idx.numel();
  for (int64_t k = 0; k < K; ++k)
    TORCH_CHECK_INDEX(p[k] >= 0 && p[k] < C, "sparse_soft_cross_entropy: topk_indices[", row, ", ", k,
                      "] = ", p[k], " is out of range for C = ", C, " classes");
  std::unordered_map<int64_t, int64_t> seen;
  for (int64_t k = 0; k < K; ++k) {
    auto it = seen.find(p[k]);
    TORCH_CHECK_VALUE(it == seen.end(), "sparse_soft_cross_entropy: topk_indices row ", row,
                      " has duplicate class index ", p[k], " (positions ",
                      it == seen.end() ? -1 : it->second, " and ", k, ")");
    seen.emplace(p[k], k);
  }
  TORCH_CHECK(false, "sparse_soft_cross_entropy: the kernel flagged topk_indices row ", row,
              " as invalid but it re-checks clean (was it modified concurrently?)");
}

}  // namespace sparse_ce
}  // namespace tinyvit

TORCH_LIBRARY_FRAGMENT(tinyvit, m) {
  m.def(
      "sparse_soft_ce_fwd(Tensor logits, Tensor topk_indices, Tensor topk_probs, bool compute_grad, "
      "bool validate) -> (Tensor loss, Tensor lse, Tensor u, Tensor grad)");
  m.def(
      "sparse_soft_ce_bwd(Tensor grad_loss, Tensor logits, Tensor topk_indices, Tensor topk_probs, "
      "Tensor lse, Tensor u) -> Tensor");
}

TORCH_LIBRARY_IMPL(tinyvit, CPU, m) {
  m.impl("sparse_soft_ce_fwd", &tinyvit::sparse_ce::forward_cpu);
  m.impl("sparse_soft_ce_bwd", &tinyvit::sparse_ce::backward_cpu);
}

#ifdef TINYVIT_WITH_CUDA
TORCH_LIBRARY_IMPL(tinyvit, CUDA, m) {
  m.impl("sparse_soft_ce_fwd", &tinyvit::sparse_ce::forward_cuda);
  m.impl("sparse_soft_ce_bwd", &tinyvit::sparse_ce::backward_cuda);
}
#endif
