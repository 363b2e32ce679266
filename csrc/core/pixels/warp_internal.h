// Internals shared by the affine-warp translation units (warp.cpp, warp_avx2.cpp,
// warp_maps_avx2.cpp): the reference sampling formula, and the AVX2 entry points.
#pragma once

#include <cstdint>

#include "core/pixels/image.h"
#include "core/plan/plan.h"
#include "core/util/cpu_dispatch.h"

namespace tinyvit {
namespace warp_detail {

// Pillow's COORD: -1 below 0. NaN and values beyond int range map to -1 too (both are
// outside the image), so the int conversion is always defined.
inline int coord(double v) { return (v >= 0.0 && v < 2147483647.0) ? static_cast<int>(v) : -1; }
// floor without a libm call (std::floor is not inlined without SSE4.1); exact for
// the |v| < 2^31 coordinates used here.
inline int floor_int(double v) {
  const int i = static_cast<int>(v);
  return v < i ? i - 1 : i;
}

// Inverse-mapped warp. The geometry is Pillow's (sample point = matrix * pixel centre,
// fill when the sample point is outside [0, w) x [0, h), taps clamped to the edge).
// Bilinear/bicubic use fixed-point weights so results are integers, identical on every
// CPU: per tap row  r = sum_k p_k * wx_k  (wx in Q14), rounded to Q7 as (r + 64) >> 7;
// then v = (sum_j r_j * wy_j) >> 21 (wy in Q14), clamped to [0, 255]. Values can differ
// from Pillow's double evaluation by one level.
struct Taps {
  int xs[4];               // byte offsets of the tap columns
  const uint8_t* rows[4];  // tap rows
  int32_t wx[4] = {0, 0, 0, 0}, wy[4] = {0, 0, 0, 0};
  // Weights depend only on the fractional offsets; translate and shear keep them constant
  // along a row, so they are recomputed only when an offset changes (same values).
  double last_d = -1.0, last_e = -1.0;
};

// Q14 weight, round half up, without branches (all weights are > -1).
inline int32_t q14(double v) { return static_cast<int32_t>(v * 16384.0 + 16384.5) - 16384; }

// Q14 weights of the N taps at fractional offset d (columns: d, rows: e): bilinear, or
// Pillow's transform bicubic (cubic convolution with a = -1).
template <Interp F>
TINYVIT_INLINE void weights_q14(double d, int32_t* w) {
  if (F == Interp::Bilinear) {
    w[1] = q14(d);
    w[0] = 16384 - w[1];
    return;
  }
  const double d2 = d * d, d3 = d2 * d;
  w[0] = q14(-d + 2 * d2 - d3);
  w[1] = q14(1 - 2 * d2 + d3);
  w[2] = q14(d + d2 - d3);
  w[3] = q14(d3 - d2);
}

// Fills the taps for sample point (xin, yin); false when the point gets the fill colour.
template <Interp F>
TINYVIT_INLINE bool warp_taps(const ImageU8& in, double xin, double yin, Taps& t) {
  const int W = in.w, H = in.h;
  if (!(xin >= 0.0 && xin < W && yin >= 0.0 && yin < H)) return false;  // NaN too
  const double xs = xin - 0.5, ys = yin - 0.5;
  const int x0 = floor_int(xs), y0 = floor_int(ys);
  const double d = xs - x0, e = ys - y0;
  if (d != t.last_d) {
    weights_q14<F>(d, t.wx);
    t.last_d = d;
  }
  if (e != t.last_e) {
    weights_q14<F>(e, t.wy);
    t.last_e = e;
  }
  if (F == Interp::Bilinear) {
    t.xs[0] = 3 * (x0 < 0 ? 0 : x0);
    t.xs[1] = 3 * (x0 + 1 >= W ? W - 1 : x0 + 1);
    t.rows[0] = in.row(y0 < 0 ? 0 : y0);
    t.rows[1] = in.row(y0 + 1 >= H ? H - 1 : y0 + 1);
    return true;
  }
  for (int k = 0; k < 4; ++k) {
    const int xx = x0 - 1 + k, yy = y0 - 1 + k;
    t.xs[k] = 3 * (xx < 0 ? 0 : (xx >= W ? W - 1 : xx));
    t.rows[k] = in.row(yy < 0 ? 0 : (yy >= H ? H - 1 : yy));
  }
  return true;
}

// The taps of output pixel (x, y) (sample point = matrix * pixel centre); false, with the
// fill colour written to op, when the point is outside the image.
template <Interp F>
TINYVIT_INLINE bool warp_pixel_taps(const ImageU8& in, const double a[6], int x, int y, const uint8_t fill[3],
                                    Taps& t, uint8_t* op) {
  const double X = x + 0.5, Y = y + 0.5;
  const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
  if (warp_taps<F>(in, xin, yin, t)) return true;
  op[0] = fill[0]; op[1] = fill[1]; op[2] = fill[2];
  return false;
}

// The reference formula on filled taps, written to op as R, G, B. Zero row weights are
// skipped: their terms are exactly 0.
template <Interp F>
TINYVIT_INLINE void warp_combine_ref(const Taps& t, uint8_t* op) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  for (int c = 0; c < 3; ++c) {
    int32_t acc = 0;
    for (int j = 0; j < N; ++j) {
      if (t.wy[j] == 0) continue;
      int32_t r = 0;
      for (int k = 0; k < N; ++k) r += t.rows[j][t.xs[k] + c] * t.wx[k];
      acc += ((r + 64) >> 7) * t.wy[j];
    }
    const int32_t v = acc >> 21;
    op[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

// Output pixel (x, y) by the reference formula (warp_scalar's), written to op.
template <Interp F>
inline void warp_pixel_ref(const ImageU8& in, const double a[6], int x, int y, const uint8_t fill[3],
                           uint8_t* op) {
  Taps t;
  if (warp_pixel_taps<F>(in, a, x, y, fill, t, op)) warp_combine_ref<F>(t, op);
}

#ifdef TINYVIT_X86_SIMD
// Sample points of pixels x .. x+3 of row y (X = x + .5, Y = y + .5, a0 X + a1 Y + a2, ...).
struct WarpRowGeom {
  __m256d A0, A3, BX, BY, A2, A5;
  TINYVIT_AVX2 WarpRowGeom(const double a[6], int y) {
    const double Y = y + 0.5;
    A0 = _mm256_set1_pd(a[0]); A3 = _mm256_set1_pd(a[3]);
    BX = _mm256_set1_pd(a[1] * Y); BY = _mm256_set1_pd(a[4] * Y);
    A2 = _mm256_set1_pd(a[2]); A5 = _mm256_set1_pd(a[5]);
  }
  TINYVIT_AVX2 static __m256d centres(int x) {
    return _mm256_add_pd(_mm256_cvtepi32_pd(_mm_add_epi32(_mm_set1_epi32(x), _mm_setr_epi32(0, 1, 2, 3))),
                         _mm256_set1_pd(0.5));
  }
  TINYVIT_AVX2 __m256d xin(__m256d X) const {
    return _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(A0, X), BX), A2);
  }
  TINYVIT_AVX2 __m256d yin(__m256d X) const {
    return _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(A3, X), BY), A5);
  }
};

// Bilinear or bicubic only; the callers check the CPU (cpu_features().avx2) and the matrix.
// General matrices (rotate, mixed shears), warp_avx2.cpp.
void warp_general_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f);
// Column maps (a0 = 1, a3 = 0, a4 = 1, a5 = 0: translate_x, shear_x), warp_maps_avx2.cpp.
void warp_col_map_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f);
// shear_y (1 0 0 / s 1 0) via a transpose, warp_maps_avx2.cpp.
void warp_shear_y_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f);
// The row maps' combine (translate_y): out[i] = clamp((sum_j rows[j][i] * wy[j]) >> 14).
void combine_rows_avx2(const uint8_t* const* rows, const int32_t* wy, int n, int len, uint8_t* out);
#endif

}  // namespace warp_detail
}  // namespace tinyvit
