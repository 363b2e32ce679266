// Fused sparse label-smoothed soft cross-entropy (TinyViT Eq. 2) without the dense B x C target.
//
// Row i has logits z (C classes), top-K teacher classes I(k) with probabilities v_k, and
// u = max(0, (1 - sum_k v_k) / (C - K)) for every other class. With LSE = logsumexp(z) and the
// target mass S = sum_c p_c (1, or sum_k v_k when rounding made it exceed 1 and u is clamped):
//   loss_i   = S LSE - sum_k (v_k - u) z_{I(k)} - u sum_c z_c
//   dloss/dz = S softmax(z)_c - u - sum_k (v_k - u) [c = I(k)]
// (S = 1 gives the formulas of the issue; S != 1 keeps the op equal to the dense soft CE.)
//
// Ops (schemas in sparse_ce_registration.cpp):
//   sparse_soft_ce_fwd(logits[B,C], topk_indices[B,K], topk_probs[B,K], compute_grad, validate)
//       -> (loss[B], lse[B], u[B], grad)   lse = LSE - log S, so dloss/dz_c = exp(z_c - lse) - p_c;
//                                           grad = dloss_i/dz ([B,C], logits dtype) when
//                                           compute_grad, else an empty [0] tensor
//   sparse_soft_ce_bwd(grad_loss[B], logits, topk_indices, topk_probs, lse, u) -> grad[B,C]
// loss/lse/u are float64 for float64 logits, float32 otherwise (fp32 accumulation).
// Indices: int16/uint16/int32/int64; probs: float16/float32/float64; any strides.
// Invalid indices (outside [0, C)) never cause an out-of-bounds access: they are skipped.
// validate=true additionally raises IndexError (out of range) / ValueError (duplicate) naming
// the first offending row; on CUDA this costs one device->host sync per forward call.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace tinyvit {
namespace sparse_ce {

using FwdResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Shape / dtype / device checks shared by every backend (and mirrored by the fake impl).
// Returns K. Throws ValueError/TypeError naming the argument.
int64_t check_inputs(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs);

// Re-examines one row of indices on the CPU and throws the precise error for it
// (IndexError for out-of-range, ValueError for a duplicate). Called after a kernel flagged `row`.
[[noreturn]] void raise_bad_row(const at::Tensor& indices_row_cpu, int64_t row, int64_t num_classes);

// 0..3 for int16, uint16, int32, int64; 0..2 for float16, float32, float64.
int index_dtype_code(const at::Tensor& indices);
int prob_dtype_code(const at::Tensor& probs);

FwdResult forward_cpu(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs,
                      bool compute_grad, bool validate);
at::Tensor backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits,
                        const at::Tensor& indices, const at::Tensor& probs, const at::Tensor& lse,
                        const at::Tensor& u);

#ifdef TINYVIT_WITH_CUDA
FwdResult forward_cuda(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs,
                       bool compute_grad, bool validate);
at::Tensor backward_cuda(const at::Tensor& grad_loss, const at::Tensor& logits,
                         const at::Tensor& indices, const at::Tensor& probs, const at::Tensor& lse,
                         const at::Tensor& u);
#endif

}  // namespace sparse_ce
}  // namespace tinyvit
