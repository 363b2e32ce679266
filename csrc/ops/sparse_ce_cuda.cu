// Host launchers of the sparse soft cross-entropy CUDA kernels (see sparse_ce.h for the maths).
// The device code lives in the torch-free sparse_ce_kernels.cuh (so CI can compile it for sm_70
// with NVRTC); this file keeps ATen: checks, allocation, dtype dispatch, streams, error reporting.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that needs cuBLAS/cuSPARSE headers

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "ops/sparse_ce.h"
#include "ops/sparse_ce_kernels.cuh"

namespace tinyvit {
namespace sparse_ce {
namespace {

using device::bwd_kernel;
using device::fwd_kernel;
using device::kBitmapMaxClasses;
using device::TopkView;

static_assert(TINYVIT_SPARSE_CE_INT_MAX == INT_MAX, "kernel error flag encodes rows as INT_MAX - row");

// The kernels' element type for an ATen scalar type: at::Half / at::BFloat16 data are passed
// as CUDA's __half / __nv_bfloat16 (identical bit layouts), so the header needs no torch.
template <typename scalar_t>
struct DeviceType {
  using type = scalar_t;
};
template <>
struct DeviceType<at::Half> {
  using type = __half;
};
template <>
struct DeviceType<at::BFloat16> {
  using type = __nv_bfloat16;
};
static_assert(sizeof(at::Half) == sizeof(__half) && sizeof(at::BFloat16) == sizeof(__nv_bfloat16),
              "16-bit float layouts");

TopkView make_view(const at::Tensor& indices, const at::Tensor& probs) {
  TopkView t;
  t.idx = indices.data_ptr();
  t.prob = probs.data_ptr();
  t.is0 = indices.stride(0);
  t.is1 = indices.stride(1);
  t.ps0 = probs.stride(0);
  t.ps1 = probs.stride(1);
  t.idx_code = index_dtype_code(indices);
  t.prob_code = prob_dtype_code(probs);
  return t;
}

int grid_for(int64_t B) { return static_cast<int>(std::min<int64_t>(B, 65535 * 16)); }

at::ScalarType acc_dtype(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

template <typename F>
void with_block(int64_t C, F&& f) {
  if (C <= device::kSmallBlockMaxClasses) {
    f(std::integral_constant<int, device::kSmallBlock>{});
  } else {
    f(std::integral_constant<int, device::kLargeBlock>{});
  }
}

}  // namespace

FwdResult forward_cuda(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs,
                       bool compute_grad, bool validate) {
  check_inputs(logits, indices, probs);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), C = logits.size(1), K = indices.size(1);
  TORCH_CHECK_VALUE(B < INT_MAX, "sparse_soft_cross_entropy: at most ", INT_MAX - 1, " rows on CUDA");
  const auto acc_opts = logits.options().dtype(acc_dtype(logits));
  at::Tensor loss = at::empty({B}, acc_opts), lse = at::empty({B}, acc_opts), u = at::empty({B}, acc_opts);
  at::Tensor grad = compute_grad ? at::empty({B, C}, logits.options()) : at::empty({0}, logits.options());
  if (B == 0) return {loss, lse, u, grad};
  at::Tensor err;
  if (validate) err = at::zeros({2}, logits.options().dtype(at::kInt));
  const bool use_bitmap = validate && C <= kBitmapMaxClasses;
  const size_t shmem = use_bitmap ? static_cast<size_t>((C + 31) / 32) * sizeof(unsigned int) : 0;
  const TopkView tk = make_view(indices, probs);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "sparse_soft_ce_fwd_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    using dev_t = typename DeviceType<scalar_t>::type;
    with_block(C, [&](auto block) {
      constexpr int BLOCK = decltype(block)::value;
      fwd_kernel<BLOCK, dev_t, acc_t><<<grid_for(B), BLOCK, shmem, stream>>>(
          reinterpret_cast<const dev_t*>(logits.data_ptr<scalar_t>()), logits.stride(0), logits.stride(1), B, C,
          K, tk, loss.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), u.data_ptr<acc_t>(),
          compute_grad ? reinterpret_cast<dev_t*>(grad.data_ptr<scalar_t>()) : nullptr,
          validate ? err.data_ptr<int>() : nullptr, use_bitmap);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  if (validate) {
    const at::Tensor h = err.cpu();  // the one device->host sync validation costs
    const int* e = h.data_ptr<int>();
    if (e[0] != 0) {
      const int64_t row = INT_MAX - static_cast<int64_t>(e[1]);
      raise_bad_row(indices.select(0, row).cpu(), row, C);
    }
  }
  return {loss, lse, u, grad};
}

at::Tensor backward_cuda(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& indices,
                         const at::Tensor& probs, const at::Tensor& lse, const at::Tensor& u) {
  check_inputs(logits, indices, probs);
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t B = logits.size(0), C = logits.size(1), K = indices.size(1);
  const auto acc = acc_dtype(logits);
  for (const at::Tensor* t : {&grad_loss, &lse, &u})
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == B && t->scalar_type() == acc &&
                          t->device() == logits.device(),
                      "sparse_soft_ce_bwd: grad_loss, lse and u must be [", B, "] ", acc, " tensors on ",
                      logits.device(), ", got ", t->sizes(), " ", t->scalar_type(), " on ", t->device());
  at::Tensor grad = at::empty({B, C}, logits.options());
  if (B == 0) return grad;
  const TopkView tk = make_view(indices, probs);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "sparse_soft_ce_bwd_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
    using dev_t = typename DeviceType<scalar_t>::type;
    with_block(C, [&](auto block) {
      constexpr int BLOCK = decltype(block)::value;
      bwd_kernel<BLOCK, dev_t, acc_t><<<grid_for(B), BLOCK, 0, stream>>>(
          grad_loss.data_ptr<acc_t>(), grad_loss.stride(0), reinterpret_cast<const dev_t*>(logits.data_ptr<scalar_t>()),
          logits.stride(0), logits.stride(1), B, C, K, tk, lse.data_ptr<acc_t>(), lse.stride(0), u.data_ptr<acc_t>(),
          u.stride(0), reinterpret_cast<dev_t*>(grad.data_ptr<scalar_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad;
}

}  // namespace sparse_ce
}  // namespace tinyvit
