// Fixed-point filter coefficients of the resampler, PIL's semantics (see resize.h): the
// scalar reference and its AVX2 form with identical doubles.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "core/pixels/resize_internal.h"
#include "core/util/cpu_dispatch.h"

namespace tinyvit {
namespace resize_detail {

namespace {

double bilinear_w(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubic_w(double x) {  // Keys cubic, a = -0.5 (PIL's BICUBIC resize filter)
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The steps both forms below share, PIL's: the axis geometry, each output's tap window and
// the weights' total with the degenerate-window fallback. Always inlined, so each form
// computes the same doubles as if written out.
struct Axis {
  double scale;    // input pixels per output pixel
  double support;  // filter half-width in input pixels (widened when downsampling)
  double ss;       // 1 / filterscale: input offsets to filter coordinates
  Coeffs table;    // ksize taps per output, zero weights
};

TINYVIT_INLINE Axis axis_of(double fsupport, double in0, double in1, int out_size) {
  Axis a;
  a.scale = (in1 - in0) / out_size;
  const double filterscale = a.scale < 1.0 ? 1.0 : a.scale;
  a.support = fsupport * filterscale;
  a.ss = 1.0 / filterscale;
  Coeffs& c = a.table;
  c.ksize = static_cast<int>(std::ceil(a.support)) * 2 + 1;
  c.start.resize(out_size);
  c.count.resize(out_size);
  c.w.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  return a;
}

// Output i's centre in input coordinates and its taps [*lo, *lo + *n).
TINYVIT_INLINE double tap_window(const Axis& a, double in0, int in_size, int i, int* lo, int* n) {
  const double center = in0 + (i + 0.5) * a.scale;
  *lo = static_cast<int>(center - a.support + 0.5);  // truncation, as PIL
  if (*lo < 0) *lo = 0;
  int hi = static_cast<int>(center + a.support + 0.5);
  if (hi > in_size) hi = in_size;
  *n = hi - *lo;
  if (*n > a.table.ksize) *n = a.table.ksize;
  return center;
}

// The total of output i's *n raw weights tmp, its window then recorded; a degenerate window
// (no taps, or weights summing to 0) becomes the nearest pixel with weight 1.
TINYVIT_INLINE double window_total(Axis& a, int in_size, int i, double center, int* lo, int* n, double* tmp) {
  double total = 0.0;
  for (int k = 0; k < *n; ++k) total += tmp[k];  // in order, as PIL
  if (*n <= 0 || total == 0.0) {
    *lo = std::min(std::max(static_cast<int>(center), 0), in_size - 1);
    *n = 1;
    tmp[0] = total = 1.0;
  }
  a.table.start[i] = *lo;
  a.table.count[i] = *n;
  return total;
}

// The filter is a template parameter so its weight function inlines (same operations in
// the same order as a call: identical doubles).
template <Interp F>
TINYVIT_INLINE Coeffs precompute_impl(int in_size, double in0, double in1, int out_size) {
  double (*const fn)(double) = F == Interp::Bilinear ? bilinear_w : bicubic_w;
  Axis a = axis_of(F == Interp::Bilinear ? 1.0 : 2.0, in0, in1, out_size);
  Coeffs& c = a.table;
  std::vector<double> tmp(c.ksize);
  for (int i = 0; i < out_size; ++i) {
    int lo, n;
    const double center = tap_window(a, in0, in_size, i, &lo, &n);
    for (int k = 0; k < n; ++k) tmp[k] = fn((k + lo - center + 0.5) * a.ss);
    const double total = window_total(a, in_size, i, center, &lo, &n, tmp.data());
    int32_t* wk = &c.w[static_cast<size_t>(i) * c.ksize];
    for (int k = 0; k < n; ++k) {
      const double v = tmp[k] / total * (1 << kPrecisionBits);
      wk[k] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
  }
  return std::move(a.table);
}

#ifdef TINYVIT_X86_SIMD
// precompute_impl four taps at a time: every lane runs the scalar code's operations in the
// same order (|x| by the same select, both polynomials then a select, IEEE division by
// the total, round half away from zero by the same select, truncation), so the doubles and
// the weights are identical; only the total stays a scalar in-order sum.
template <Interp F>
TINYVIT_AVX2 Coeffs precompute_avx2(int in_size, double in0, double in1, int out_size) {
  Axis a = axis_of(F == Interp::Bilinear ? 1.0 : 2.0, in0, in1, out_size);
  Coeffs& c = a.table;
  const int kpad = (c.ksize + 3) & ~3;
  std::vector<double> tmp(kpad);
  std::vector<int32_t> wbuf(kpad);
  const __m256d zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0), halfd = _mm256_set1_pd(0.5);
  const __m256d vss = _mm256_set1_pd(a.ss), sign = _mm256_set1_pd(-0.0);
  const __m256d fixed = _mm256_set1_pd(static_cast<double>(1 << kPrecisionBits));
  const __m128i step = _mm_setr_epi32(0, 1, 2, 3);
  for (int i = 0; i < out_size; ++i) {
    int lo, n;
    const double center = tap_window(a, in0, in_size, i, &lo, &n);
    const __m256d vc = _mm256_set1_pd(center);
    for (int k = 0; k < n; k += 4) {
      // (k + lo - center + 0.5) * a.ss: the int sum converts exactly.
      const __m128i kl = _mm_add_epi32(_mm_set1_epi32(k + lo), step);
      __m256d x = _mm256_mul_pd(_mm256_add_pd(_mm256_sub_pd(_mm256_cvtepi32_pd(kl), vc), halfd), vss);
      x = _mm256_blendv_pd(x, _mm256_xor_pd(x, sign), _mm256_cmp_pd(x, zero, _CMP_LT_OQ));
      __m256d v;
      if (F == Interp::Bilinear) {
        v = _mm256_and_pd(_mm256_sub_pd(one, x), _mm256_cmp_pd(x, one, _CMP_LT_OQ));
      } else {
        constexpr double a = -0.5;
        const __m256d p1 = _mm256_add_pd(
            _mm256_mul_pd(_mm256_mul_pd(_mm256_sub_pd(_mm256_mul_pd(_mm256_set1_pd(a + 2.0), x), _mm256_set1_pd(a + 3.0)), x), x),
            one);
        const __m256d p2 = _mm256_mul_pd(
            _mm256_sub_pd(
                _mm256_mul_pd(_mm256_add_pd(_mm256_mul_pd(_mm256_sub_pd(x, _mm256_set1_pd(5.0)), x), _mm256_set1_pd(8.0)), x),
                _mm256_set1_pd(4.0)),
            _mm256_set1_pd(a));
        v = _mm256_and_pd(_mm256_blendv_pd(p2, p1, _mm256_cmp_pd(x, one, _CMP_LT_OQ)),
                          _mm256_cmp_pd(x, _mm256_set1_pd(2.0), _CMP_LT_OQ));
      }
      _mm256_storeu_pd(&tmp[k], v);
    }
    const double total = window_total(a, in_size, i, center, &lo, &n, tmp.data());
    const __m256d vt = _mm256_set1_pd(total);
    for (int k = 0; k < n; k += 4) {
      const __m256d v = _mm256_mul_pd(_mm256_div_pd(_mm256_loadu_pd(&tmp[k]), vt), fixed);
      const __m256d r = _mm256_blendv_pd(_mm256_add_pd(v, halfd), _mm256_sub_pd(v, halfd), _mm256_cmp_pd(v, zero, _CMP_LT_OQ));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(&wbuf[k]), _mm256_cvttpd_epi32(r));
    }
    std::memcpy(&c.w[static_cast<size_t>(i) * c.ksize], wbuf.data(), static_cast<size_t>(n) * sizeof(int32_t));
  }
  return std::move(a.table);
}
#endif

}  // namespace

Coeffs precompute_scalar(int in_size, double in0, double in1, int out_size, Interp filter) {
  return filter == Interp::Bilinear ? precompute_impl<Interp::Bilinear>(in_size, in0, in1, out_size)
                                    : precompute_impl<Interp::Bicubic>(in_size, in0, in1, out_size);
}

Coeffs precompute(int in_size, double in0, double in1, int out_size, Interp filter) {
#ifdef TINYVIT_X86_SIMD
  if (cpu_features().avx2)
    return filter == Interp::Bilinear ? precompute_avx2<Interp::Bilinear>(in_size, in0, in1, out_size)
                                      : precompute_avx2<Interp::Bicubic>(in_size, in0, in1, out_size);
#endif
  return precompute_scalar(in_size, in0, in1, out_size, filter);
}

}  // namespace resize_detail
}  // namespace tinyvit
