// CPU kernels of the sparse soft cross-entropy (see sparse_ce.h for the maths).
// at::parallel_for over rows; per row one pass for max, one fused pass for sum-exp and sum z,
// K gathers, and (when a gradient is written) one pass writing it. The only B x C tensor is
// the gradient; per-thread scratch is O(C) (fp32 copy of a non-fp32 or strided row).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/util/cpu_dispatch.h"
#include "ops/sparse_ce.h"

namespace tinyvit {
namespace sparse_ce {
namespace {

#define TINYVIT_VEC_BYTES 16
namespace base {
#include "ops/sparse_ce_cpu_rows.inc"
}  // namespace base
#undef TINYVIT_VEC_BYTES

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TINYVIT_SPARSE_CE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// The project builds with -ffp-contract=off for the bit-exact augmentation decoder; the loss has
// no such contract, and FMA-contracting the exp polynomial makes it markedly cheaper.
#pragma GCC optimize("fp-contract=fast")
#define TINYVIT_VEC_BYTES 32
namespace avx2 {
#include "ops/sparse_ce_cpu_rows.inc"
}  // namespace avx2
#undef TINYVIT_VEC_BYTES
#pragma GCC pop_options
#endif

struct Prims {
  float (*max)(const float*, int64_t);
  void (*expsum)(const float*, int64_t, float, float*, float*, float*);
  void (*max_expsum)(const float*, int64_t, float*, float*, float*);
  void (*grad)(const float*, int64_t, float, float, float, float*);
  void (*grad_from_exp)(const float*, int64_t, float, float, float*);
  void (*bf16_to_float)(const uint16_t*, int64_t, int64_t, float*);
  void (*float_to_bf16)(const float*, int64_t, uint16_t*);
  void (*strided_copy)(const float*, int64_t, int64_t, float*);
};

#define TINYVIT_PRIMS(ns)                                                                  \
  Prims {                                                                                  \
    &ns::row_max, &ns::row_expsum, &ns::row_max_expsum, &ns::row_grad, &ns::row_grad_from_exp, &ns::bf16_to_float, \
        &ns::float_to_bf16, &ns::strided_float_copy                                        \
  }

const Prims& prims() {
  static const Prims p = [] {
#ifdef TINYVIT_SPARSE_CE_AVX2
    if (cpu_features().avx2 && cpu_features().fma) return TINYVIT_PRIMS(avx2);
#endif
    return TINYVIT_PRIMS(base);
  }();
  return p;
}

// Scalar float64 versions (float64 is for gradcheck / reference use, not speed).
double exp_d(double x) { return std::exp(x); }

// Reads row `row` of indices / probs (any supported dtype, any strides) into idx / v.
template <typename acc_t>
void load_topk(const at::Tensor& indices, const at::Tensor& probs, int64_t row, int64_t K,
               int64_t* idx, acc_t* v) {
  const int64_t is0 = indices.stride(0), is1 = indices.stride(1);
  const int64_t ps0 = probs.stride(0), ps1 = probs.stride(1);
  const char* ip = static_cast<const char*>(indices.data_ptr());
  const char* pp = static_cast<const char*>(probs.data_ptr());
  switch (indices.scalar_type()) {
    case at::kShort: {
      auto p = reinterpret_cast<const int16_t*>(ip) + row * is0;
      for (int64_t k = 0; k < K; ++k) idx[k] = p[k * is1];
      break;
    }
    case at::kUInt16: {
      auto p = reinterpret_cast<const uint16_t*>(ip) + row * is0;
      for (int64_t k = 0; k < K; ++k) idx[k] = p[k * is1];
      break;
    }
    case at::kInt: {
      auto p = reinterpret_cast<const int32_t*>(ip) + row * is0;
      for (int64_t k = 0; k < K; ++k) idx[k] = p[k * is1];
      break;
    }
    default: {
      auto p = reinterpret_cast<const int64_t*>(ip) + row * is0;
      for (int64_t k = 0; k < K; ++k) idx[k] = p[k * is1];
    }
  }
  switch (probs.scalar_type()) {
    case at::kHalf: {
      auto p = reinterpret_cast<const c10::Half*>(pp) + row * ps0;
      for (int64_t k = 0; k < K; ++k) v[k] = static_cast<acc_t>(static_cast<float>(p[k * ps1]));
      break;
    }
    case at::kFloat: {
      auto p = reinterpret_cast<const float*>(pp) + row * ps0;
      for (int64_t k = 0; k < K; ++k) v[k] = static_cast<acc_t>(p[k * ps1]);
      break;
    }
    default: {
      auto p = reinterpret_cast<const double*>(pp) + row * ps0;
      for (int64_t k = 0; k < K; ++k) v[k] = static_cast<acc_t>(p[k * ps1]);
    }
  }
}

// Per-thread scratch, sized once per parallel chunk.
template <typename acc_t>
struct Scratch {
  std::vector<int64_t> idx;
  std::vector<acc_t> v;
  std::vector<float> zf, ef, gf;  // fp32 copy of the row, exp(z - max), fp32 gradient row
  std::vector<uint8_t> mark;      // duplicate detection, all-zero between rows
};

// Returns a pointer to row `row` of logits as contiguous acc_t values, converting or
// gathering into `buf` only when needed (non-fp32 dtype or column stride != 1).
template <typename scalar_t, typename acc_t>
const acc_t* row_values(const scalar_t* base, int64_t row, int64_t s0, int64_t s1, int64_t C,
                        std::vector<acc_t>& buf) {
  const scalar_t* p = base + row * s0;
  if constexpr (std::is_same<scalar_t, acc_t>::value) {
    if (s1 == 1) return p;
    if constexpr (std::is_same<acc_t, float>::value) {
      prims().strided_copy(p, s1, C, buf.data());
      return buf.data();
    }
  }
  if constexpr (std::is_same<scalar_t, c10::BFloat16>::value) {
    prims().bf16_to_float(reinterpret_cast<const uint16_t*>(p), s1, C, buf.data());
    return buf.data();
  }
  for (int64_t c = 0; c < C; ++c) buf[c] = static_cast<acc_t>(p[c * s1]);
  return buf.data();
}

// Writes the acc_t gradient row `g` into the scalar_t output row.
template <typename scalar_t, typename acc_t>
void store_row(const acc_t* g, int64_t C, scalar_t* out) {
  if constexpr (std::is_same<scalar_t, acc_t>::value) {
    if (g != out) std::memcpy(out, g, C * sizeof(acc_t));
  } else if constexpr (std::is_same<scalar_t, c10::BFloat16>::value) {
    prims().float_to_bf16(g, C, reinterpret_cast<uint16_t*>(out));
  } else {
    for (int64_t c = 0; c < C; ++c) out[c] = static_cast<scalar_t>(g[c]);
  }
}

// Marks the row bad if any index is out of range (always checked: memory safety) or, when
// `check_dups`, repeated. Invalid indices are then skipped by the maths.
bool row_is_bad(const int64_t* idx, int64_t K, int64_t C, bool check_dups, uint8_t* mark) {
  bool bad = false;
  for (int64_t k = 0; k < K; ++k) bad |= idx[k] < 0 || idx[k] >= C;
  if (bad || !check_dups) return bad;
  for (int64_t k = 0; k < K; ++k) {
    bad |= mark[idx[k]] != 0;
    mark[idx[k]] = 1;
  }
  for (int64_t k = 0; k < K; ++k) mark[idx[k]] = 0;
  return bad;
}

int64_t grain_rows(int64_t C) { return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(C, 1)); }

template <typename scalar_t>
void forward_impl(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs,
                  bool validate, at::Tensor& loss, at::Tensor& lse_t, at::Tensor& u_t, at::Tensor* grad) {
  using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
  const int64_t B = logits.size(0), C = logits.size(1), K = indices.size(1);
  const int64_t s0 = logits.stride(0), s1 = logits.stride(1);
  const scalar_t* zbase = logits.data_ptr<scalar_t>();
  acc_t* loss_p = loss.data_ptr<acc_t>();
  acc_t* lse_p = lse_t.data_ptr<acc_t>();
  acc_t* u_p = u_t.data_ptr<acc_t>();
  scalar_t* gbase = grad != nullptr ? grad->data_ptr<scalar_t>() : nullptr;
  std::atomic<int64_t> first_bad{B};

  at::parallel_for(0, B, grain_rows(C), [&](int64_t begin, int64_t end) {
    Scratch<acc_t> sc;
    sc.idx.resize(K);
    sc.v.resize(K);
    std::vector<acc_t> zbuf(C), ebuf, gbuf;
    if (validate) sc.mark.assign(C, 0);
    constexpr bool is_f32_acc = std::is_same<acc_t, float>::value;
    // fp32 output rows are written in place; other dtypes go through an fp32/acc_t buffer.
    if (gbase != nullptr) {
      if constexpr (is_f32_acc) ebuf.resize(C);
      if constexpr (!std::is_same<scalar_t, acc_t>::value) gbuf.resize(C);
    }
    for (int64_t row = begin; row < end; ++row) {
      load_topk<acc_t>(indices, probs, row, K, sc.idx.data(), sc.v.data());
      const bool bad = row_is_bad(sc.idx.data(), K, C, validate, sc.mark.data());
      if (bad && validate) {
        int64_t cur = first_bad.load();
        while (row < cur && !first_bad.compare_exchange_weak(cur, row)) {
        }
        continue;
      }
      const acc_t* z = row_values<scalar_t, acc_t>(zbase, row, s0, s1, C, zbuf);
      acc_t m, s, sz;
      float* e = nullptr;
      if constexpr (is_f32_acc) {
        if (gbase != nullptr) {  // exp values kept for the gradient: two passes over the row
          e = ebuf.data();
          m = prims().max(z, C);
          prims().expsum(z, C, m, e, &s, &sz);
        } else {
          prims().max_expsum(z, C, &m, &s, &sz);
        }
      } else {
        m = -std::numeric_limits<acc_t>::infinity();
        for (int64_t c = 0; c < C; ++c) m = std::max(m, z[c]);
        s = 0;
        sz = 0;
        for (int64_t c = 0; c < C; ++c) {
          s += exp_d(z[c] - m);
          sz += z[c];
        }
      }
      acc_t sv = 0, svz = 0, szi = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = sc.idx[k];
        if (c < 0 || c >= C) continue;  // only reachable with validate=false
        sv += sc.v[k];
        svz += sc.v[k] * z[c];
        szi += z[c];
      }
      const acc_t u_raw = (1 - sv) / static_cast<acc_t>(C - K);
      const acc_t u = std::max<acc_t>(0, u_raw);
      // Target mass sum_c p_c: 1, unless rounding pushed sum v above 1 (then u = 0 and the
      // target is v as stored, exactly what the dense path computes).
      const acc_t mass = u_raw > 0 ? acc_t(1) : sv;
      const acc_t lse_z = m + std::log(s);
      loss_p[row] = mass * lse_z - (svz - u * szi) - u * sz;
      // dloss/dz_c = mass * softmax_c - p_c = exp(z_c - lse) - p_c with this shifted lse.
      const acc_t lse = lse_z - std::log(mass);
      lse_p[row] = lse;
      u_p[row] = u;
      if (gbase == nullptr) continue;
      scalar_t* out = gbase + row * C;
      acc_t* g;
      if constexpr (std::is_same<scalar_t, acc_t>::value) g = out; else g = gbuf.data();
      if constexpr (is_f32_acc) {
        prims().grad_from_exp(e, C, mass / s, u, g);
      } else {
        for (int64_t c = 0; c < C; ++c) g[c] = exp_d(z[c] - lse) - u;
      }
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = sc.idx[k];
        if (c >= 0 && c < C) g[c] = std::exp(z[c] - lse) - sc.v[k];
      }
      store_row<scalar_t, acc_t>(g, C, out);
    }
  });
  if (first_bad.load() < B) {
    const int64_t row = first_bad.load();
    raise_bad_row(indices.select(0, row), row, C);
  }
}

template <typename scalar_t>
void backward_impl(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& indices,
                   const at::Tensor& probs, const at::Tensor& lse_t, const at::Tensor& u_t,
                   at::Tensor& grad) {
  using acc_t = std::conditional_t<std::is_same<scalar_t, double>::value, double, float>;
  const int64_t B = logits.size(0), C = logits.size(1), K = indices.size(1);
  const int64_t s0 = logits.stride(0), s1 = logits.stride(1);
  const scalar_t* zbase = logits.data_ptr<scalar_t>();
  const acc_t* gl = grad_loss.data_ptr<acc_t>();
  const int64_t gls = grad_loss.stride(0);
  const acc_t* lse_p = lse_t.data_ptr<acc_t>();
  const acc_t* u_p = u_t.data_ptr<acc_t>();
  const int64_t lss = lse_t.stride(0), us = u_t.stride(0);
  scalar_t* gbase = grad.data_ptr<scalar_t>();

  at::parallel_for(0, B, grain_rows(C), [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(K);
    std::vector<acc_t> v(K), zbuf(C), gbuf;
    if constexpr (!std::is_same<scalar_t, acc_t>::value) gbuf.resize(C);
    for (int64_t row = begin; row < end; ++row) {
      load_topk<acc_t>(indices, probs, row, K, idx.data(), v.data());
      const acc_t* z = row_values<scalar_t, acc_t>(zbase, row, s0, s1, C, zbuf);
      const acc_t scale = gl[row * gls], lse = lse_p[row * lss], u = u_p[row * us];
      scalar_t* out = gbase + row * C;
      acc_t* g;
      if constexpr (std::is_same<scalar_t, acc_t>::value) g = out; else g = gbuf.data();
      if constexpr (std::is_same<acc_t, float>::value) {
        prims().grad(z, C, lse, scale, u, g);
      } else {
        for (int64_t c = 0; c < C; ++c) g[c] = scale * (exp_d(z[c] - lse) - u);
      }
      for (int64_t k = 0; k < K; ++k) {
        const int64_t c = idx[k];
        if (c >= 0 && c < C) g[c] = scale * (std::exp(z[c] - lse) - v[k]);
      }
      store_row<scalar_t, acc_t>(g, C, out);
    }
  });
}

at::ScalarType acc_dtype(const at::Tensor& logits) {
  return logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

}  // namespace

FwdResult forward_cpu(const at::Tensor& logits, const at::Tensor& indices, const at::Tensor& probs,
                      bool compute_grad, bool validate) {
  check_inputs(logits, indices, probs);
  const int64_t B = logits.size(0), C = logits.size(1);
  const auto acc_opts = logits.options().dtype(acc_dtype(logits));
  at::Tensor loss = at::empty({B}, acc_opts), lse = at::empty({B}, acc_opts), u = at::empty({B}, acc_opts);
  at::Tensor grad = compute_grad ? at::empty({B, C}, logits.options()) : at::empty({0}, logits.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "sparse_soft_ce_fwd", [&] {
    forward_impl<scalar_t>(logits, indices, probs, validate, loss, lse, u, compute_grad ? &grad : nullptr);
  });
  return {loss, lse, u, grad};
}

at::Tensor backward_cpu(const at::Tensor& grad_loss, const at::Tensor& logits, const at::Tensor& indices,
                        const at::Tensor& probs, const at::Tensor& lse, const at::Tensor& u) {
  check_inputs(logits, indices, probs);
  const int64_t B = logits.size(0), C = logits.size(1);
  const auto acc = acc_dtype(logits);
  for (const at::Tensor* t : {&grad_loss, &lse, &u})
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == B && t->scalar_type() == acc && t->device().is_cpu(),
                      "sparse_soft_ce_bwd: grad_loss, lse and u must be [", B, "] ", acc,
                      " CPU tensors, got ", t->sizes(), " ", t->scalar_type());
  at::Tensor grad = at::empty({B, C}, logits.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, logits.scalar_type(), "sparse_soft_ce_bwd", [&] {
    backward_impl<scalar_t>(grad_loss, logits, indices, probs, lse, u, grad);
  });
  return grad;
}

}  // namespace sparse_ce
}  // namespace tinyvit
