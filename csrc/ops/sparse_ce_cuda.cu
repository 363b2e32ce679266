// CUDA kernels of the sparse soft cross-entropy (see sparse_ce.h for the maths).
//
// One thread block per row (grid-stride over rows). Forward: each thread keeps an online
// (max, sum-exp) pair and sum z over a strided slice of the row (coalesced reads, one pass over
// the logits), then the block merges them with warp shuffles; K gathers give sum v, sum v z and
// sum z_I. Backward: one streaming pass reading z and writing the gradient, then the K top-k
// positions are overwritten after a __syncthreads (so no atomics on the gradient).
// fp32 accumulation (fp64 for fp64 logits). Only sm_70-era features: warp shuffles, shared
// memory atomicOr / global atomicOr / atomicMax on int; no bf16 atomics, no cp.async.
//
// Index safety: an index outside [0, C) is never dereferenced, it is skipped. With validate,
// a shared-memory bitmap (C / 8 bytes, for C <= kBitmapMaxClasses; pairwise search above that)
// detects duplicates, and the first bad row is reported through a 2-int device flag that the
// host reads after the kernel (one sync) to raise the same error as the CPU path.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that needs cuBLAS/cuSPARSE headers

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "ops/sparse_ce.h"

namespace tinyvit {
namespace sparse_ce {
namespace {

constexpr int64_t kBitmapMaxClasses = 32 * 10240;  // 40 KiB of shared memory

struct TopkView {
  const void* idx;
  const void* prob;
  int64_t is0, is1, ps0, ps1;
  int idx_code, prob_code;
};

__device__ __forceinline__ int64_t load_index(const TopkView& t, int64_t row, int64_t k) {
  const int64_t off = row * t.is0 + k * t.is1;
  switch (t.idx_code) {
    case 0: return static_cast<const int16_t*>(t.idx)[off];
    case 1: return static_cast<const uint16_t*>(t.idx)[off];
    case 2: return static_cast<const int32_t*>(t.idx)[off];
    default: return static_cast<const int64_t*>(t.idx)[off];
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t load_prob(const TopkView& t, int64_t row, int64_t k) {
  const int64_t off = row * t.ps0 + k * t.ps1;
  switch (t.prob_code) {
    case 0: return static_cast<acc_t>(static_cast<float>(static_cast<const at::Half*>(t.prob)[off]));
    case 1: return static_cast<acc_t>(static_cast<const float*>(t.prob)[off]);
    default: return static_cast<acc_t>(static_cast<const double*>(t.prob)[off]);
  }
}

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(float x) { return logf(x); }
__device__ __forceinline__ double dlog(double x) { return log(x); }

template <typename acc_t>
__device__ __forceinline__ acc_t neg_inf() {
  return -std::numeric_limits<acc_t>::infinity();
}

// Merge of two online (max, sum exp(x - max)) states; safe when either max is -inf.
template <typename acc_t>
__device__ __forceinline__ void merge_ms(acc_t& m, acc_t& s, acc_t m2, acc_t s2) {
  const acc_t mn = m > m2 ? m : m2;
  if (mn == neg_inf<acc_t>()) {
    s = s + s2;
  } else {
    s = (m == neg_inf<acc_t>() ? acc_t(0) : s * dexp(m - mn)) +
        (m2 == neg_inf<acc_t>() ? acc_t(0) : s2 * dexp(m2 - mn));
  }
  m = mn;
}

// Block-wide reductions through warp shuffles and one shared slot per warp.
template <int BLOCK, typename acc_t>
__device__ void block_reduce_ms(acc_t& m, acc_t& s, acc_t* sh_m, acc_t* sh_s) {
  constexpr int kWarps = BLOCK / 32;
  for (int o = 16; o > 0; o >>= 1) {
    const acc_t m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const acc_t s2 = __shfl_xor_sync(0xffffffffu, s, o);
    merge_ms(m, s, m2, s2);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sh_m[warp] = m;
    sh_s[warp] = s;
  }
  __syncthreads();
  m = sh_m[0];
  s = sh_s[0];
  for (int w = 1; w < kWarps; ++w) merge_ms(m, s, sh_m[w], sh_s[w]);
  __syncthreads();
}

template <int BLOCK, typename acc_t, int N>
__device__ void block_reduce_sum(acc_t (&v)[N], acc_t (*sh)[N]) {
  constexpr int kWarps = BLOCK / 32;
  for (int o = 16; o > 0; o >>= 1)
    for (int j = 0; j < N; ++j) v[j] += __shfl_xor_sync(0xffffffffu, v[j], o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0)
    for (int j = 0; j < N; ++j) sh[warp][j] = v[j];
  __syncthreads();
  for (int j = 0; j < N; ++j) {
    acc_t t = 0;
    for (int w = 0; w < kWarps; ++w) t += sh[w][j];
    v[j] = t;
  }
  __syncthreads();
}

// Writes grad[row, c] = scale * (exp(z_c - lse) - u) for all c, then scale * (exp(z_c - lse) - v_k)
// at the (valid) top-k positions.
template <int BLOCK, typename scalar_t, typename acc_t>
__device__ void write_grad_row(const scalar_t* __restrict__ zr, int64_t zs1, int64_t C, int64_t K,
                               const TopkView& tk, int64_t row, acc_t lse, acc_t u, acc_t scale,
                               scalar_t* __restrict__ gr) {
  for (int64_t c = threadIdx.x; c < C; c += BLOCK) {
    const acc_t x = static_cast<acc_t>(zr[c * zs1]);
    gr[c] = static_cast<scalar_t>(scale * (dexp(x - lse) - u));
  }
  __syncthreads();  // the dense writes above must land before the top-k overwrites below
  for (int64_t k = threadIdx.x; k < K; k += BLOCK) {
    const int64_t c = load_index(tk, row, k);
    if (c < 0 || c >= C) continue;
    const acc_t x = static_cast<acc_t>(zr[c * zs1]);
    gr[c] = static_cast<scalar_t>(scale * (dexp(x - lse) - load_prob<acc_t>(tk, row, k)));
  }
}

template <int BLOCK, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(BLOCK)
    fwd_kernel(const scalar_t* __restrict__ z, int64_t zs0, int64_t zs1, int64_t B, int64_t C, int64_t K,
               TopkView tk, acc_t* __restrict__ loss, acc_t* __restrict__ lse_out, acc_t* __restrict__ u_out,
               scalar_t* __restrict__ grad, int* __restrict__ err, bool use_bitmap) {
  extern __shared__ unsigned int bitmap[];
  __shared__ acc_t sh_m[BLOCK / 32], sh_s[BLOCK / 32];
  __shared__ acc_t sh_sum[BLOCK / 32][4];
  const bool validate = err != nullptr;
  const int64_t words = (C + 31) / 32;
  for (int64_t row = blockIdx.x; row < B; row += gridDim.x) {
    const scalar_t* zr = z + row * zs0;
    acc_t m = neg_inf<acc_t>(), s = 0, sz = 0;
    for (int64_t c = threadIdx.x; c < C; c += BLOCK) {
      const acc_t x = static_cast<acc_t>(zr[c * zs1]);
      if (x > m) {
        s = (m == neg_inf<acc_t>() ? acc_t(0) : s * dexp(m - x)) + acc_t(1);
        m = x;
      } else if (x != neg_inf<acc_t>()) {
        s += dexp(x - m);
      }
      sz += x;
    }
    if (validate && use_bitmap) {
      for (int64_t w = threadIdx.x; w < words; w += BLOCK) bitmap[w] = 0u;
      __syncthreads();
    }
    acc_t acc[4] = {0, 0, 0, sz};  // sum v, sum v z_I, sum z_I, sum z
    int bad = 0;
    for (int64_t k = threadIdx.x; k < K; k += BLOCK) {
      const int64_t c = load_index(tk, row, k);
      if (c < 0 || c >= C) {
        bad |= 1;
        continue;
      }
      if (validate) {
        if (use_bitmap) {
          const unsigned int bit = 1u << (c & 31);
          if (atomicOr(&bitmap[c >> 5], bit) & bit) bad |= 2;
        } else {
          for (int64_t j = 0; j < k; ++j) bad |= (load_index(tk, row, j) == c) ? 2 : 0;
        }
      }
      const acc_t v = load_prob<acc_t>(tk, row, k);
      const acc_t x = static_cast<acc_t>(zr[c * zs1]);
      acc[0] += v;
      acc[1] += v * x;
      acc[2] += x;
    }
    block_reduce_ms<BLOCK>(m, s, sh_m, sh_s);
    block_reduce_sum<BLOCK>(acc, sh_sum);
    const acc_t u_raw = (acc_t(1) - acc[0]) / static_cast<acc_t>(C - K);
    const acc_t u = u_raw > acc_t(0) ? u_raw : acc_t(0);
    const acc_t mass = u_raw > acc_t(0) ? acc_t(1) : acc[0];  // sum_c p_c (see the CPU kernel)
    const acc_t lse_z = m + dlog(s);
    const acc_t lse = lse_z - dlog(mass);  // so that dloss/dz_c = exp(z_c - lse) - p_c
    if (threadIdx.x == 0) {
      loss[row] = mass * lse_z - (acc[1] - u * acc[2]) - u * acc[3];
      lse_out[row] = lse;
      u_out[row] = u;
    }
    if (validate && bad != 0) {
      atomicOr(err, bad);
      atomicMax(err + 1, static_cast<int>(INT_MAX - row));  // max of INT_MAX - row = first row
    }
    if (grad != nullptr) write_grad_row<BLOCK>(zr, zs1, C, K, tk, row, lse, u, acc_t(1), grad + row * C);
    __syncthreads();  // shared bitmap / reduction slots are reused by the next row
  }
}

template <int BLOCK, typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(BLOCK)
    bwd_kernel(const acc_t* __restrict__ grad_loss, int64_t gls, const scalar_t* __restrict__ z, int64_t zs0,
               int64_t zs1, int64_t B, int64_t C, int64_t K, TopkView tk, const acc_t* __restrict__ lse,
               int64_t lss, const acc_t* __restrict__ u, int64_t us, scalar_t* __restrict__ grad) {
  for (int64_t row = blockIdx.x; row < B; row += gridDim.x) {
    write_grad_row<BLOCK>(z + row * zs0, zs1, C, K, tk, row, lse[row * lss], u[row * us],
                          grad_loss[row * gls], grad + row * C);
    __syncthreads();
  }
}

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

// Small rows waste threads in a big block; large rows want many loads in flight per row.
template <typename F>
void with_block(int64_t C, F&& f) {
  if (C <= 2048) {
    f(std::integral_constant<int, 128>{});
  } else {
    f(std::integral_constant<int, 512>{});
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
    with_block(C, [&](auto block) {
      constexpr int BLOCK = decltype(block)::value;
      fwd_kernel<BLOCK, scalar_t, acc_t><<<grid_for(B), BLOCK, shmem, stream>>>(
          logits.data_ptr<scalar_t>(), logits.stride(0), logits.stride(1), B, C, K, tk,
          loss.data_ptr<acc_t>(), lse.data_ptr<acc_t>(), u.data_ptr<acc_t>(),
          compute_grad ? grad.data_ptr<scalar_t>() : nullptr, validate ? err.data_ptr<int>() : nullptr,
          use_bitmap);
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
    with_block(C, [&](auto block) {
      constexpr int BLOCK = decltype(block)::value;
      bwd_kernel<BLOCK, scalar_t, acc_t><<<grid_for(B), BLOCK, 0, stream>>>(
          grad_loss.data_ptr<acc_t>(), grad_loss.stride(0), logits.data_ptr<scalar_t>(), logits.stride(0),
          logits.stride(1), B, C, K, tk, lse.data_ptr<acc_t>(), lse.stride(0), u.data_ptr<acc_t>(), u.stride(0),
          grad.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return grad;
}

}  // namespace sparse_ce
}  // namespace tinyvit
