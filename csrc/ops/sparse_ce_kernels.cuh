// Device code of the sparse soft cross-entropy (see sparse_ce.h for the maths), torch-free.
//
// Torch-free on purpose: CI compiles this header alone with NVRTC 12.x for sm_70 (V100), which
// the CUDA 13 nvcc that builds the extension can no longer target (tests/gpu/test_sm70_build.py).
// Only CUDA headers (cuda_fp16.h, cuda_bf16.h) and builtins; under NVRTC (__CUDACC_RTC__) not
// even the C++ standard library. The host launchers (sparse_ce_cuda.cu) keep ATen and pass
// at::Half / at::BFloat16 data as __half / __nv_bfloat16 (same 16-bit layouts).
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
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#ifdef __CUDACC_RTC__
// NVRTC has no <cstdint>. int64_t is `long` as in glibc's LP64 <cstdint>, so that the kernels'
// mangled names under NVRTC are exactly those nvcc gives the launchers' instantiations.
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef long int64_t;
static_assert(sizeof(long) == 8, "LP64 target expected");
#else
#include <cstdint>
#endif

#define TINYVIT_SPARSE_CE_INT_MAX 2147483647

namespace tinyvit {
namespace sparse_ce {
namespace device {

constexpr int64_t kBitmapMaxClasses = 32 * 10240;  // 40 KiB of shared memory
// Block sizes: small rows waste threads in a big block; large rows want many loads in flight.
constexpr int kSmallBlock = 128;
constexpr int kLargeBlock = 512;
constexpr int64_t kSmallBlockMaxClasses = 2048;

// Every kernel instantiation the launchers use: X(BLOCK, scalar_t, acc_t). The sm_70 CI check
// compiles exactly this list; sparse_ce_cuda.cu dispatches over the same types and blocks.
#define TINYVIT_SPARSE_CE_FOR_EACH_BLOCK_TYPE(X, BLOCK) \
  X(BLOCK, float, float)                                \
  X(BLOCK, double, double)                              \
  X(BLOCK, __half, float)                               \
  X(BLOCK, __nv_bfloat16, float)
#define TINYVIT_SPARSE_CE_FOR_EACH_INSTANCE(X)                                \
  TINYVIT_SPARSE_CE_FOR_EACH_BLOCK_TYPE(X, ::tinyvit::sparse_ce::device::kSmallBlock) \
  TINYVIT_SPARSE_CE_FOR_EACH_BLOCK_TYPE(X, ::tinyvit::sparse_ce::device::kLargeBlock)

// Top-k targets of any supported dtype and strides. idx_code 0..3: int16, uint16, int32,
// int64; prob_code 0..2: float16, float32, float64 (sparse_ce.h's dtype codes).
struct TopkView {
  const void* idx;
  const void* prob;
  int64_t is0, is1, ps0, ps1;
  int idx_code, prob_code;
};

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename scalar_t>
struct FromAcc;
template <>
struct FromAcc<float> {
  __device__ __forceinline__ static float cast(float x) { return x; }
};
template <>
struct FromAcc<double> {
  __device__ __forceinline__ static double cast(double x) { return x; }
};
template <>
struct FromAcc<__half> {
  __device__ __forceinline__ static __half cast(float x) { return __float2half_rn(x); }
};
template <>
struct FromAcc<__nv_bfloat16> {
  __device__ __forceinline__ static __nv_bfloat16 cast(float x) { return __float2bfloat16_rn(x); }
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
    case 0: return static_cast<acc_t>(__half2float(static_cast<const __half*>(t.prob)[off]));
    case 1: return static_cast<acc_t>(static_cast<const float*>(t.prob)[off]);
    default: return static_cast<acc_t>(static_cast<const double*>(t.prob)[off]);
  }
}

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog(float x) { return logf(x); }
__device__ __forceinline__ double dlog(double x) { return log(x); }

// -inf from its bit pattern: no <limits> / INFINITY under NVRTC.
__device__ __forceinline__ void set_neg_inf(float& x) { x = __int_as_float(0xff800000u); }
__device__ __forceinline__ void set_neg_inf(double& x) { x = __longlong_as_double(0xfff0000000000000ull); }
template <typename acc_t>
__device__ __forceinline__ acc_t neg_inf() {
  acc_t x;
  set_neg_inf(x);
  return x;
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
    const acc_t x = to_acc(zr[c * zs1]);
    gr[c] = FromAcc<scalar_t>::cast(scale * (dexp(x - lse) - u));
  }
  __syncthreads();  // the dense writes above must land before the top-k overwrites below
  for (int64_t k = threadIdx.x; k < K; k += BLOCK) {
    const int64_t c = load_index(tk, row, k);
    if (c < 0 || c >= C) continue;
    const acc_t x = to_acc(zr[c * zs1]);
    gr[c] = FromAcc<scalar_t>::cast(scale * (dexp(x - lse) - load_prob<acc_t>(tk, row, k)));
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
      const acc_t x = to_acc(zr[c * zs1]);
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
      const acc_t x = to_acc(zr[c * zs1]);
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
      // max of INT_MAX - row = first row (B < INT_MAX is checked by the launcher)
      atomicMax(err + 1, static_cast<int>(TINYVIT_SPARSE_CE_INT_MAX - row));
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

}  // namespace device
}  // namespace sparse_ce
}  // namespace tinyvit
