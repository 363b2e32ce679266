// Affine warps (RandAugment rotate / shear / translate): the integer sampling formula and
// its fast forms. Every path below computes the same integers as warp_scalar; the SIMD
// ones only organise the work differently (see the comments at each).
#include "core/pixels/warp.h"

#include "core/util/cpu_dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TINYVIT_NO_DISPATCH)
#include <immintrin.h>
#define TINYVIT_WARP_SIMD 1
#endif

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace tinyvit {

namespace {

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

// Fills the taps for sample point (xin, yin); false when the point gets the fill colour.
template <Interp F>
TINYVIT_INLINE bool warp_taps(const ImageU8& in, double xin, double yin, Taps& t) {
  const int W = in.w, H = in.h;
  if (!(xin >= 0.0 && xin < W && yin >= 0.0 && yin < H)) return false;  // NaN too
  const double xs = xin - 0.5, ys = yin - 0.5;
  const int x0 = floor_int(xs), y0 = floor_int(ys);
  const double d = xs - x0, e = ys - y0;
  if (F == Interp::Bilinear) {
    if (d != t.last_d) {
      t.wx[1] = q14(d);
      t.wx[0] = 16384 - t.wx[1];
      t.last_d = d;
    }
    if (e != t.last_e) {
      t.wy[1] = q14(e);
      t.wy[0] = 16384 - t.wy[1];
      t.last_e = e;
    }
    t.xs[0] = 3 * (x0 < 0 ? 0 : x0);
    t.xs[1] = 3 * (x0 + 1 >= W ? W - 1 : x0 + 1);
    t.rows[0] = in.row(y0 < 0 ? 0 : y0);
    t.rows[1] = in.row(y0 + 1 >= H ? H - 1 : y0 + 1);
    return true;
  }
  // Pillow's transform bicubic: cubic convolution with a = -1.
  if (d != t.last_d) {
    const double d2 = d * d, d3 = d2 * d;
    t.wx[0] = q14(-d + 2 * d2 - d3);
    t.wx[1] = q14(1 - 2 * d2 + d3);
    t.wx[2] = q14(d + d2 - d3);
    t.wx[3] = q14(d3 - d2);
    t.last_d = d;
  }
  if (e != t.last_e) {
    const double e2 = e * e, e3 = e2 * e;
    t.wy[0] = q14(-e + 2 * e2 - e3);
    t.wy[1] = q14(1 - 2 * e2 + e3);
    t.wy[2] = q14(e + e2 - e3);
    t.wy[3] = q14(e3 - e2);
    t.last_e = e;
  }
  for (int k = 0; k < 4; ++k) {
    const int xx = x0 - 1 + k, yy = y0 - 1 + k;
    t.xs[k] = 3 * (xx < 0 ? 0 : (xx >= W ? W - 1 : xx));
    t.rows[k] = in.row(yy < 0 ? 0 : (yy >= H ? H - 1 : yy));
  }
  return true;
}

template <Interp F>
void warp_scalar(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  for (int y = 0; y < in.h; ++y) {
    uint8_t* o = out.row(y);
    const double Y = y + 0.5;
    Taps t;
    for (int x = 0; x < in.w; ++x, o += 3) {
      const double X = x + 0.5;
      const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
      if (F == Interp::Nearest) {
        const int xi = coord(xin), yi = coord(yin);
        const uint8_t* p = (xi < 0 || xi >= in.w || yi < 0 || yi >= in.h) ? fill : in.row(yi) + 3 * xi;
        o[0] = p[0]; o[1] = p[1]; o[2] = p[2];
        continue;
      }
      if (!warp_taps<F>(in, xin, yin, t)) {
        o[0] = fill[0]; o[1] = fill[1]; o[2] = fill[2];
        continue;
      }
      for (int c = 0; c < 3; ++c) {
        int32_t acc = 0;
        for (int j = 0; j < N; ++j) {
          if (t.wy[j] == 0) continue;  // zero terms: skipping them changes nothing
          int32_t r = 0;
          for (int k = 0; k < N; ++k) r += t.rows[j][t.xs[k] + c] * t.wx[k];
          acc += ((r + 64) >> 7) * t.wy[j];
        }
        const int32_t v = acc >> 21;
        o[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
      }
    }
  }
}

// Output pixel (x, y) by the reference formula (warp_scalar's), written to op.
template <Interp F>
inline void warp_pixel_ref(const ImageU8& in, const double a[6], int x, int y, const uint8_t fill[3],
                           uint8_t* op) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  const double X = x + 0.5, Y = y + 0.5;
  const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
  Taps t;
  if (!warp_taps<F>(in, xin, yin, t)) {
    op[0] = fill[0]; op[1] = fill[1]; op[2] = fill[2];
    return;
  }
  for (int c = 0; c < 3; ++c) {
    int32_t acc = 0;
    for (int j = 0; j < N; ++j) {
      int32_t s = 0;
      for (int k = 0; k < N; ++k) s += t.rows[j][t.xs[k] + c] * t.wx[k];
      acc += ((s + 64) >> 7) * t.wy[j];
    }
    const int32_t v = acc >> 21;
    op[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

#ifdef TINYVIT_WARP_SIMD
// Shared steps of the SIMD warps, the same integer arithmetic as warp_scalar with R, G, B
// (+ a spare byte) in four int32 lanes.
// One tap row's horizontal sum, tap by tap (zero-weight taps skipped: their terms are 0).
template <int N>
__attribute__((target("sse4.1"))) inline __m128i warp_tap_row_sse(const Taps& t, int j) {
  __m128i r = _mm_setzero_si128();
  for (int k = 0; k < N; ++k) {
    if (t.wx[k] == 0) continue;
    int32_t four;
    std::memcpy(&four, t.rows[j] + t.xs[k], 4);
    r = _mm_add_epi32(r, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)),
                                         _mm_set1_epi32(t.wx[k])));
  }
  return r;
}

// acc + ((r + 64) >> 7) * wy: the vertical step.
__attribute__((target("sse4.1"))) inline __m128i warp_add_row_sse(__m128i acc, __m128i r,
                                                                  int32_t wy) {
  r = _mm_srai_epi32(_mm_add_epi32(r, _mm_set1_epi32(64)), 7);
  return _mm_add_epi32(acc, _mm_mullo_epi32(r, _mm_set1_epi32(wy)));
}

// clamp(acc >> 21, 0, 255) written as R, G, B.
__attribute__((target("sse4.1"))) inline void warp_store_rgb_sse(uint8_t* o, __m128i acc) {
  acc = _mm_min_epi32(_mm_max_epi32(_mm_srai_epi32(acc, 21), _mm_setzero_si128()),
                      _mm_set1_epi32(255));
  o[0] = static_cast<uint8_t>(_mm_cvtsi128_si32(acc));
  o[1] = static_cast<uint8_t>(_mm_extract_epi32(acc, 1));
  o[2] = static_cast<uint8_t>(_mm_extract_epi32(acc, 2));
}

// The same integer arithmetic with R, G, B (+ a spare byte) in four int32 lanes. Reads 4
// bytes per tap (one past the pixel): affine_warp pads the source buffer by 4 bytes.
template <Interp F>
__attribute__((target("sse4.1"))) void warp_sse(const ImageU8& in, ImageU8& out, const double a[6],
                                                 const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  for (int y = 0; y < in.h; ++y) {
    uint8_t* o = out.row(y);
    const double Y = y + 0.5;
    Taps t;
    for (int x = 0; x < in.w; ++x, o += 3) {
      const double X = x + 0.5;
      const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
      if (!warp_taps<F>(in, xin, yin, t)) {
        o[0] = fill[0]; o[1] = fill[1]; o[2] = fill[2];
        continue;
      }
      // Zero weights are skipped (their terms are exactly 0): shear and translate have
      // an integer offset along one axis, leaving 4 of the 16 bicubic taps.
      __m128i acc = _mm_setzero_si128();
      for (int j = 0; j < N; ++j) {
        if (t.wy[j] == 0) continue;
        acc = warp_add_row_sse(acc, warp_tap_row_sse<N>(t, j), t.wy[j]);
      }
      warp_store_rgb_sse(o, acc);
    }
  }
}

#endif

#ifdef TINYVIT_WARP_SIMD
// AVX2 warps. Per output row, the per-pixel geometry (sample point, inside test, floor,
// fractional offsets d, e and their Q14 weights) is computed four pixels at a time in
// doubles with exactly the scalar operations in the scalar order (separate multiplies and
// adds: the build has no FMA contraction; truncating conversion as static_cast), so every
// value equals warp_taps'. The tap sums then use 16-bit multiply-adds: Q14 weights and
// bytes fit int16, products and sums are exact in int32, so each integer is the same.

// Per output pixel of one row; arrays padded to a multiple of 4 pixels.
struct WarpRow {
  std::vector<int32_t> x0, y0, wy;  // wy: 4 per pixel
  std::vector<int16_t> wx;          // 4 per pixel
  std::vector<uint8_t> inside;
  void resize(int w) {
    const size_t n = (static_cast<size_t>(w) + 3) & ~size_t{3};
    x0.resize(n); y0.resize(n); wy.resize(4 * n); wx.resize(4 * n); inside.resize(n);
  }
};

// q14() on four doubles.
__attribute__((target("avx2"))) inline __m128i q14_avx2(__m256d v) {
  const __m256d t = _mm256_add_pd(_mm256_mul_pd(v, _mm256_set1_pd(16384.0)), _mm256_set1_pd(16384.5));
  return _mm_sub_epi32(_mm256_cvttpd_epi32(t), _mm_set1_epi32(16384));
}

// q14_avx2 of vs / 16384 (vs already scaled).
__attribute__((target("avx2"))) inline __m128i q14s_avx2(__m256d vs) {
  return _mm_sub_epi32(_mm256_cvttpd_epi32(_mm256_add_pd(vs, _mm256_set1_pd(16384.5))), _mm_set1_epi32(16384));
}

// warp_taps' weights for four offsets. The bicubic polynomials run on 16384 d: scaling by
// a power of two commutes with every rounding (no overflow; |d| is 0 or >= 2^-60, far
// from subnormal, for any pixel that is not the fill), so each sum is 16384 times the
// scalar one and q14's v * 16384 is already done: 3 multiplies fewer, the same integers.
template <Interp F>
__attribute__((target("avx2"))) inline void weights_avx2(__m256d d, __m128i w[4]) {
  if (F == Interp::Bilinear) {
    w[1] = q14_avx2(d);
    w[0] = _mm_sub_epi32(_mm_set1_epi32(16384), w[1]);
    w[2] = w[3] = _mm_setzero_si128();
    return;
  }
  const __m256d ds = _mm256_mul_pd(d, _mm256_set1_pd(16384.0));
  const __m256d d2 = _mm256_mul_pd(d, ds), d3 = _mm256_mul_pd(d2, d);  // 16384 d2, 16384 d3
  const __m256d two_d2 = _mm256_add_pd(d2, d2);
  const __m256d neg_d = _mm256_xor_pd(ds, _mm256_set1_pd(-0.0));
  w[0] = q14s_avx2(_mm256_sub_pd(_mm256_add_pd(neg_d, two_d2), d3));                    // -d + 2 d2 - d3
  w[1] = q14s_avx2(_mm256_add_pd(_mm256_sub_pd(_mm256_set1_pd(16384.0), two_d2), d3));  // 1 - 2 d2 + d3
  w[2] = q14s_avx2(_mm256_sub_pd(_mm256_add_pd(ds, d2), d3));                           // d + d2 - d3
  w[3] = q14s_avx2(_mm256_sub_pd(d3, d2));                                              // d3 - d2
}

// Sample points of pixels x .. x+3 of row y (X = x + .5, Y = y + .5, a0 X + a1 Y + a2, ...).
struct WarpRowGeom {
  __m256d A0, A3, BX, BY, A2, A5;
  __attribute__((target("avx2"))) WarpRowGeom(const double a[6], int y) {
    const double Y = y + 0.5;
    A0 = _mm256_set1_pd(a[0]); A3 = _mm256_set1_pd(a[3]);
    BX = _mm256_set1_pd(a[1] * Y); BY = _mm256_set1_pd(a[4] * Y);
    A2 = _mm256_set1_pd(a[2]); A5 = _mm256_set1_pd(a[5]);
  }
  __attribute__((target("avx2"))) static __m256d centres(int x) {
    return _mm256_add_pd(_mm256_cvtepi32_pd(_mm_add_epi32(_mm_set1_epi32(x), _mm_setr_epi32(0, 1, 2, 3))),
                         _mm256_set1_pd(0.5));
  }
  __attribute__((target("avx2"))) __m256d xin(__m256d X) const {
    return _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(A0, X), BX), A2);
  }
  __attribute__((target("avx2"))) __m256d yin(__m256d X) const {
    return _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(A3, X), BY), A5);
  }
};

// Everything warp_taps computes, for pixels x .. x+3 of row y (in registers).
struct WarpGroup {
  __m256d xs, ys, fx, fy;
  __m128i x0, y0;
  int inside;  // bit k: pixel x + k gets a sample (not the fill)
  int fast;    // bit k: also all taps unclamped and the tap loads (16 bytes bicubic, 8
               // bilinear, from each tap row start) inside the image
};

template <Interp F>
__attribute__((target("avx2"))) inline void warp_group(const WarpRowGeom& g, int x, int W, int H, WarpGroup& q) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kOff = N == 4 ? 1 : 0;
  // A tap row load reads 16 (8) bytes from column xa: it stays in the row if xa <= W - 6 (W - 3).
  constexpr int kLoadSlack = N == 4 ? 6 : 3;
  const __m256d half = _mm256_set1_pd(0.5), zero = _mm256_setzero_pd();
  const __m256d X = WarpRowGeom::centres(x);
  const __m256d xin = g.xin(X), yin = g.yin(X);
  const __m256d in = _mm256_and_pd(
      _mm256_and_pd(_mm256_cmp_pd(xin, zero, _CMP_GE_OQ), _mm256_cmp_pd(xin, _mm256_set1_pd(W), _CMP_LT_OQ)),
      _mm256_and_pd(_mm256_cmp_pd(yin, zero, _CMP_GE_OQ), _mm256_cmp_pd(yin, _mm256_set1_pd(H), _CMP_LT_OQ)));
  q.inside = _mm256_movemask_pd(in);
  q.xs = _mm256_sub_pd(xin, half);
  q.ys = _mm256_sub_pd(yin, half);
  q.fx = _mm256_floor_pd(q.xs);
  q.fy = _mm256_floor_pd(q.ys);
  q.x0 = _mm256_cvttpd_epi32(q.fx);
  q.y0 = _mm256_cvttpd_epi32(q.fy);
  // The fast mask (x0, y0 are garbage where not inside: masked by inside).
  const __m128i xa = _mm_sub_epi32(q.x0, _mm_set1_epi32(kOff)), ya = _mm_sub_epi32(q.y0, _mm_set1_epi32(kOff));
  const __m128i neg1 = _mm_set1_epi32(-1);
  __m128i ok = _mm_and_si128(_mm_cmpgt_epi32(xa, neg1), _mm_cmpgt_epi32(_mm_set1_epi32(W - N + 1), xa));
  ok = _mm_and_si128(ok, _mm_and_si128(_mm_cmpgt_epi32(ya, neg1), _mm_cmpgt_epi32(_mm_set1_epi32(H - N + 1), ya)));
  // On the last tap row (ya = H - N) the load must end inside the buffer.
  ok = _mm_and_si128(ok, _mm_or_si128(_mm_cmpgt_epi32(_mm_set1_epi32(H - N), ya),
                                      _mm_cmpgt_epi32(_mm_set1_epi32(W - kLoadSlack + 1), xa)));
  int f = q.inside & _mm_movemask_ps(_mm_castsi128_ps(ok));
  if (x + 4 > W) f &= (1 << (W - x)) - 1;
  q.fast = f;
}

// A group's setup into the WarpRow at x (for warp_pixels_avx2).
template <Interp F>
__attribute__((target("avx2"))) inline void warp_group_store(const WarpGroup& q, int x, WarpRow& r) {
  for (int k = 0; k < 4; ++k) r.inside[x + k] = (q.inside >> k) & 1;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&r.x0[x]), q.x0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&r.y0[x]), q.y0);
  __m128i w[4];
  weights_avx2<F>(_mm256_sub_pd(q.xs, q.fx), w);  // per pixel: 4 x int16
  {
    const __m128i t0 = _mm_unpacklo_epi32(w[0], w[1]), t1 = _mm_unpacklo_epi32(w[2], w[3]);
    const __m128i t2 = _mm_unpackhi_epi32(w[0], w[1]), t3 = _mm_unpackhi_epi32(w[2], w[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&r.wx[4 * x]),
                     _mm_packs_epi32(_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(&r.wx[4 * x + 8]),
                     _mm_packs_epi32(_mm_unpacklo_epi64(t2, t3), _mm_unpackhi_epi64(t2, t3)));
  }
  weights_avx2<F>(_mm256_sub_pd(q.ys, q.fy), w);  // per pixel: 4 x int32
  {
    const __m128i t0 = _mm_unpacklo_epi32(w[0], w[1]), t1 = _mm_unpacklo_epi32(w[2], w[3]);
    const __m128i t2 = _mm_unpackhi_epi32(w[0], w[1]), t3 = _mm_unpackhi_epi32(w[2], w[3]);
    __m128i* o = reinterpret_cast<__m128i*>(&r.wy[4 * x]);
    _mm_storeu_si128(o, _mm_unpacklo_epi64(t0, t1));
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi64(t0, t1));
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi64(t2, t3));
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi64(t2, t3));
  }
}

// clamp(acc >> 21, 0, 255) of lanes 0..2 written as R, G, B.
__attribute__((target("avx2"))) inline void store_rgb_avx2(uint8_t* o, __m128i acc) {
  const __m128i v = _mm_srai_epi32(acc, 21);
  const uint32_t rgb = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(v, v), v)));
  std::memcpy(o, &rgb, 3);
}

// Output pixels [xb, xe) of a row from its WarpRow: fill, the SIMD tap sums where the
// taps along x are not clamped (rows are clamped by pointer), else the scalar formula.
template <Interp F>
__attribute__((target("avx2"))) void warp_pixels_avx2(const ImageU8& in, const WarpRow& r, uint8_t* o,
                                                      const uint8_t fill[3], int xb, int xe) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kOff = N == 4 ? 1 : 0;  // taps start at x0 - kOff
  const int W = in.w, H = in.h;
  const uint8_t* base = in.data.data();
  const uint8_t* end = base + in.data.size();
  const ptrdiff_t stride = in.stride();
  // Tap pairs (0,1) | (2,3) of R, G, B as int16 pairs, from 12 contiguous bytes.
  const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m256i wpat = _mm256_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, -1, -1, -1, -1,
                                        4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, -1, -1, -1, -1);
  const __m256i idx01 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m256i idx23 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  const __m256i c64 = _mm256_set1_epi32(64);
  for (int x = xb; x < xe; ++x) {
    uint8_t* op = o + 3 * x;
    if (!r.inside[x]) {
      op[0] = fill[0]; op[1] = fill[1]; op[2] = fill[2];
      continue;
    }
    const int xa = r.x0[x] - kOff, ya = r.y0[x] - kOff;
    const uint8_t* rows[N];
    for (int j = 0; j < N; ++j) {
      const int yy = ya + j;
      rows[j] = base + (yy < 0 ? 0 : (yy >= H ? H - 1 : yy)) * stride;
    }
    const __m256i wy4 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&r.wy[4 * x])));
    if (xa >= 0 && xa + N - 1 <= W - 1 && rows[N - 1] + 3 * xa + 4 * N <= end) {
      const __m256i wxv = _mm256_shuffle_epi8(
          _mm256_broadcastq_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&r.wx[4 * x]))), wpat);
      __m256i acc;
      if (N == 4) {
        __m256i m[4];
        for (int j = 0; j < 4; ++j)
          m[j] = _mm256_madd_epi16(
              _mm256_shuffle_epi8(
                  _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + 3 * xa))),
                  shuf),
              wxv);
        // [r_j | r_j+1]: the two tap pairs' halves added.
        __m256i r01 = _mm256_add_epi32(_mm256_permute2x128_si256(m[0], m[1], 0x20),
                                       _mm256_permute2x128_si256(m[0], m[1], 0x31));
        __m256i r23 = _mm256_add_epi32(_mm256_permute2x128_si256(m[2], m[3], 0x20),
                                       _mm256_permute2x128_si256(m[2], m[3], 0x31));
        r01 = _mm256_srai_epi32(_mm256_add_epi32(r01, c64), 7);
        r23 = _mm256_srai_epi32(_mm256_add_epi32(r23, c64), 7);
        acc = _mm256_add_epi32(_mm256_mullo_epi32(r01, _mm256_permutevar8x32_epi32(wy4, idx01)),
                               _mm256_mullo_epi32(r23, _mm256_permutevar8x32_epi32(wy4, idx23)));
      } else {
        const __m128i s2 = _mm256_castsi256_si128(shuf), w2 = _mm256_castsi256_si128(wxv);
        const __m128i m0 = _mm_madd_epi16(
            _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[0] + 3 * xa)), s2), w2);
        const __m128i m1 = _mm_madd_epi16(
            _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[1] + 3 * xa)), s2), w2);
        const __m256i r01 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_set_m128i(m1, m0), c64), 7);
        acc = _mm256_mullo_epi32(r01, _mm256_permutevar8x32_epi32(wy4, idx01));
      }
      store_rgb_avx2(op, _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)));
      continue;
    }
    int xs[N];
    for (int k = 0; k < N; ++k) {
      const int xx = xa + k;
      xs[k] = 3 * (xx < 0 ? 0 : (xx >= W ? W - 1 : xx));
    }
    const int16_t* wx = &r.wx[4 * x];
    const int32_t* wy = &r.wy[4 * x];
    for (int c = 0; c < 3; ++c) {
      int32_t acc = 0;
      for (int j = 0; j < N; ++j) {
        int32_t s = 0;
        for (int k = 0; k < N; ++k) s += rows[j][xs[k] + c] * wx[k];
        acc += ((s + 64) >> 7) * wy[j];
      }
      const int32_t v = acc >> 21;
      op[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}

// Two fast pixels (all taps unclamped, see WarpGroup::fast) in the two 128-bit lanes: per
// tap row one load per pixel, 16-bit multiply-adds with each lane's own weights (w01, w23:
// the lane's pixel's (wx0, wx1), (wx2, wx3) int16 pairs), then the vertical step with each
// lane's row weights wy[j]. The same integers as warp_pixels_avx2. Writes 4 bytes per pixel
// (the 4th is the next pixel's first byte, written after this) unless last4 is false.
template <Interp F>
__attribute__((target("avx2"))) inline void warp_pair_avx2(const uint8_t* pa, const uint8_t* pb, ptrdiff_t stride,
                                                          __m256i w01, __m256i w23, const __m256i wy[4],
                                                          uint8_t* op, bool last4) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  const __m256i sh01 = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                        0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  const __m256i sh23 = _mm256_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1,
                                        6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m256i c64 = _mm256_set1_epi32(64);
  __m256i acc = _mm256_setzero_si256();
  for (int j = 0; j < N; ++j) {
    __m256i rj;
    if (N == 4) {
      const __m256i v = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(pb + j * stride),
                                            reinterpret_cast<const __m128i*>(pa + j * stride));
      rj = _mm256_add_epi32(_mm256_madd_epi16(_mm256_shuffle_epi8(v, sh01), w01),
                            _mm256_madd_epi16(_mm256_shuffle_epi8(v, sh23), w23));
    } else {
      const __m256i v = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(pa + j * stride))),
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(pb + j * stride)), 1);
      rj = _mm256_madd_epi16(_mm256_shuffle_epi8(v, sh01), w01);
    }
    rj = _mm256_srai_epi32(_mm256_add_epi32(rj, c64), 7);
    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(rj, wy[j]));
  }
  const __m256i v = _mm256_srai_epi32(acc, 21);
  const __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(v, v), v);  // lane: R G B 0 ..
  const uint32_t ra = static_cast<uint32_t>(_mm256_cvtsi256_si32(b));
  const uint32_t rb = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1)));
  std::memcpy(op, &ra, 4);
  if (last4) {
    std::memcpy(op + 3, &rb, 4);
  } else {
    std::memcpy(op + 3, &rb, 2);
    op[5] = static_cast<uint8_t>(rb >> 16);
  }
}

// int16 pairs (lo, hi) of four int32 lanes (for madd).
__attribute__((target("avx2"))) inline __m128i pair16(__m128i lo, __m128i hi) {
  return _mm_or_si128(_mm_and_si128(lo, _mm_set1_epi32(0xffff)), _mm_slli_epi32(hi, 16));
}

// General matrices (rotate, ...), four pixels at a time: where all four are fast, their
// weights go from the setup straight into two pixel pairs; else the group's setup is
// stored and warp_pixels_avx2 does its pixels one by one (fill, clamped taps, ...).
template <Interp F>
__attribute__((target("avx2"))) void warp_general_avx2(const ImageU8& in, ImageU8& out, const double a[6],
                                                       const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kOff = N == 4 ? 1 : 0;
  thread_local WarpRow r;
  r.resize(in.w);
  const int W = in.w, H = in.h;
  const uint8_t* base = in.data.data();
  const ptrdiff_t stride = in.stride();
  // Tap offsets in int32 lanes: fine while the image has < 2^31 bytes.
  const bool off32 = in.data.size() <= 0x7fffffffu;
  const __m256i lo2 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), hi2 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  for (int y = 0; y < H; ++y) {
    const WarpRowGeom g(a, y);
    uint8_t* o = out.row(y);
    const bool last_row = y == H - 1;
    for (int x = 0; x < W; x += 4) {
      WarpGroup q;
      warp_group<F>(g, x, W, H, q);
      if (q.inside == 0) {  // all fill (the corners of a rotation)
        for (int k = x; k < x + 4 && k < W; ++k) std::memcpy(o + 3 * k, fill, 3);
        continue;
      }
      if (q.fast != 15 || !off32) {
        warp_group_store<F>(q, x, r);
        warp_pixels_avx2<F>(in, r, o, fill, x, std::min(x + 4, W));
        continue;
      }
      __m128i wx[4], wy[4];
      weights_avx2<F>(_mm256_sub_pd(q.xs, q.fx), wx);
      weights_avx2<F>(_mm256_sub_pd(q.ys, q.fy), wy);
      const __m256i p01 = _mm256_castsi128_si256(pair16(wx[0], wx[1]));
      const __m256i p23 = _mm256_castsi128_si256(pair16(wx[2], wx[3]));
      alignas(16) int32_t off[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(off),
                      _mm_add_epi32(_mm_mullo_epi32(_mm_sub_epi32(q.y0, _mm_set1_epi32(kOff)),
                                                    _mm_set1_epi32(static_cast<int32_t>(stride))),
                                    _mm_mullo_epi32(_mm_sub_epi32(q.x0, _mm_set1_epi32(kOff)), _mm_set1_epi32(3))));
      __m256i wyl[4], wyh[4];
      for (int j = 0; j < N; ++j) {
        wyl[j] = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(wy[j]), lo2);
        wyh[j] = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(wy[j]), hi2);
      }
      uint8_t* op = o + 3 * x;
      warp_pair_avx2<F>(base + off[0], base + off[1], stride, _mm256_permutevar8x32_epi32(p01, lo2),
                        _mm256_permutevar8x32_epi32(p23, lo2), wyl, op, true);
      warp_pair_avx2<F>(base + off[2], base + off[3], stride, _mm256_permutevar8x32_epi32(p01, hi2),
                        _mm256_permutevar8x32_epi32(p23, hi2), wyh, op + 6, !(last_row && x + 4 == W));
    }
  }
}

// Two Q14 weights as an int16 pair in every 32-bit lane (for madd).
__attribute__((target("avx2"))) inline __m256i weight_pair(int32_t lo, int32_t hi) {
  return _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                                                (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16)));
}

// 16 bytes as int16.
__attribute__((target("avx2"))) inline __m256i load16(const uint8_t* p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// dst[i] = clamp((sum_k src[i + 3k] * w[k] + Bias) >> 14), i < len (len >= 16): the column
// map's formula (Bias 64; shear_y's transposed form: Bias 0) over a run of pixels with the
// same taps offset and weights. Each load covers only tap bytes of the run (the last block
// overlaps the previous one).
template <int N, int Bias = 64>
__attribute__((target("avx2"))) void filter_run_avx2(const uint8_t* src, uint8_t* dst, int len, const int32_t w[4]) {
  const __m256i w01 = weight_pair(w[0], w[1]), w23 = weight_pair(N == 4 ? w[2] : 0, N == 4 ? w[3] : 0);
  const __m256i c64 = _mm256_set1_epi32(Bias);
  for (int i = 0;; i += 16) {
    if (i > len - 16) i = len - 16;
    const __m256i p0 = load16(src + i), p1 = load16(src + i + 3);
    __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(p0, p1), w01);
    __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(p0, p1), w01);
    if (N == 4) {
      const __m256i p2 = load16(src + i + 6), p3 = load16(src + i + 9);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(p2, p3), w23));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(p2, p3), w23));
    }
    lo = _mm256_srai_epi32(_mm256_add_epi32(lo, c64), 14);
    hi = _mm256_srai_epi32(_mm256_add_epi32(hi, c64), 14);
    const __m256i v = _mm256_packs_epi32(lo, hi);  // in-lane unpack + pack: byte order restored
    const __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(v, v), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_castsi256_si128(b));
    if (i == len - 16) break;
  }
}

// Column maps with a0 = 1 (translate_x, shear_x: matrix 1 s t / 0 1 0): yin = Y exactly, so
// the row weights are one-hot on row y (warp_taps: e = 0) and v = ((r + 64) >> 7) * 16384
// >> 21 = (r + 64) >> 14 with r = sum_k p_k wx_k. xin = (X + s Y) + t is non-decreasing in
// x (each rounding is monotone), so a row is: fill, clamped taps, unclamped taps, clamped,
// fill, each an interval found by bisection. In the unclamped part, a run of pixels with
// the same d and x0 - x (checked for every pixel, 4 at a time: the rounding of xin can move
// d by an ulp) is one constant-weight filter over contiguous bytes.
struct ColSeg {
  int xb, xe;
  int kind;  // 0 fill, 1 per-pixel formula, 2 run
  int src;   // run: first tap column of pixel xb
  int32_t wx[4];
};

template <Interp F>
__attribute__((target("avx2"))) void col_map_segments(const ImageU8& in, const double a[6], int y,
                                                      std::vector<ColSeg>& segs) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kOff = N == 4 ? 1 : 0;
  constexpr int kMinRun = 6;  // pixels: 18 bytes >= one 16-byte block
  const int W = in.w;
  const double Y = y + 0.5;
  auto xin_at = [&](int x) {
    const double X = x + 0.5;
    return a[0] * X + a[1] * Y + a[2];
  };
  auto first = [](int lo, int hi, auto pred) {  // first x in [lo, hi) with pred (monotone), or hi
    while (lo < hi) {
      const int mid = lo + (hi - lo) / 2;
      if (pred(mid)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const int xa = first(0, W, [&](int x) { return xin_at(x) >= 0.0; });
  const int xb = first(xa, W, [&](int x) { return !(xin_at(x) < W); });
  const int ua = first(xa, xb, [&](int x) { return floor_int(xin_at(x) - 0.5) - kOff >= 0; });
  const int ub = first(ua, xb, [&](int x) { return floor_int(xin_at(x) - 0.5) - kOff + N - 1 > W - 1; });
  segs.clear();
  auto add = [&](int b, int e, int kind) {
    if (b < e) segs.push_back(ColSeg{b, e, kind, 0, {0, 0, 0, 0}});
  };
  add(0, xa, 0);
  add(xa, ua, 1);
  const WarpRowGeom g(a, y);
  const __m256d half = _mm256_set1_pd(0.5);
  for (int x = ua; x < ub;) {
    const double xs = xin_at(x) - 0.5;
    const int x0 = floor_int(xs);
    const double d = xs - x0;
    const int s = x0 - x;
    const __m256d dv = _mm256_set1_pd(d), sv = _mm256_set1_pd(s);
    int e = x + 1;
    while (e < ub) {
      const __m256d X = WarpRowGeom::centres(e);
      const __m256d xsv = _mm256_sub_pd(g.xin(X), half), fx = _mm256_floor_pd(xsv);
      const __m256d same = _mm256_and_pd(_mm256_cmp_pd(_mm256_sub_pd(xsv, fx), dv, _CMP_EQ_OQ),
                                         _mm256_cmp_pd(_mm256_sub_pd(fx, _mm256_sub_pd(X, half)), sv, _CMP_EQ_OQ));
      const int m = _mm256_movemask_pd(same);
      if (m != 15) {
        e += __builtin_ctz(~m & 15);
        break;
      }
      e += 4;
    }
    if (e > ub) e = ub;
    if (e - x >= kMinRun) {
      Taps t;
      const double X = x + 0.5;
      const bool ok = warp_taps<F>(in, xin_at(x), a[3] * X + a[4] * Y + a[5], t);
      ColSeg seg{x, e, 2, x0 - kOff, {t.wx[0], t.wx[1], t.wx[2], t.wx[3]}};
      // yin = Y: one-hot row weights on row y (else the per-pixel formula).
      bool one_hot = ok && t.rows[N == 4 ? 1 : 0] == in.row(y);
      for (int j = 0; j < N; ++j) one_hot = one_hot && t.wy[j] == (j == (N == 4 ? 1 : 0) ? 16384 : 0);
      if (!one_hot) seg.kind = 1;
      segs.push_back(seg);
    } else {
      add(x, e, 1);
    }
    x = e;
  }
  add(std::max(ub, ua), xb, 1);
  add(xb, W, 0);
}

template <Interp F>
__attribute__((target("avx2"))) void warp_col_map_avx2(const ImageU8& in, ImageU8& out, const double a[6],
                                                       const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  thread_local std::vector<ColSeg> segs;
  const bool same_rows = a[1] == 0.0;  // translate_x: xin does not depend on y
  for (int y = 0; y < in.h; ++y) {
    if (y == 0 || !same_rows) col_map_segments<F>(in, a, y, segs);
    uint8_t* o = out.row(y);
    for (const ColSeg& sg : segs) {
      if (sg.kind == 2) {
        filter_run_avx2<N>(in.row(y) + 3 * sg.src, o + 3 * sg.xb, 3 * (sg.xe - sg.xb), sg.wx);
      } else if (sg.kind == 0) {
        for (int x = sg.xb; x < sg.xe; ++x) std::memcpy(o + 3 * x, fill, 3);
      } else {
        for (int x = sg.xb; x < sg.xe; ++x) warp_pixel_ref<F>(in, a, x, y, fill, o + 3 * x);
      }
    }
  }
}

// Eight RGB0 dwords stored as 24 RGB bytes.
__attribute__((target("avx2"))) inline void put_rgb24_avx2(uint8_t* q, __m256i px) {
  // 12 bytes per lane, then dwords 0-2 | 4-6 joined: 24 contiguous bytes.
  const __m256i pack = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  const __m256i b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(px, pack), _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm256_castsi256_si128(b));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q + 16), _mm256_extracti128_si256(b, 1));
}

// RGB transpose: dst (src.w x src.h) gets dst(x, y) = src(y, x). 8x8-pixel tiles as
// 4-byte pixels in AVX2 registers (8x8 32-bit transpose); edges pixel by pixel. Loads and
// stores touch only the tiles' bytes.
__attribute__((target("avx2"))) void transpose_rgb_avx2(const ImageU8& src, ImageU8& dst) {
  const int H = src.h, W = src.w;
  dst.h = W;
  dst.w = H;
  dst.data.resize(static_cast<size_t>(H) * W * 3);  // every byte is written below
  // 8 pixels (24 bytes, loaded as bytes 0..15 | 8..23) -> 8 x RGB0 dwords.
  const __m256i expand = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,
                                          4, 5, 6, -1, 7, 8, 9, -1, 10, 11, 12, -1, 13, 14, 15, -1);
  const int H8 = H & ~7, W8 = W & ~7;
  const ptrdiff_t ss = src.stride(), ds = dst.stride();
  for (int y = 0; y < H8; y += 8) {
    for (int x = 0; x < W8; x += 8) {
      __m256i r[8];
      for (int i = 0; i < 8; ++i) {
        const uint8_t* p = src.data.data() + (y + i) * ss + 3 * x;
        r[i] = _mm256_shuffle_epi8(_mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(p + 8),
                                                       reinterpret_cast<const __m128i*>(p)),
                                   expand);
      }
      __m256i t[8], u[8];
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);      // column 0 (| 4) of rows i..i+3
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);  // column 1 (| 5)
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
      }
      uint8_t* q = dst.data.data() + x * ds + 3 * y;
      for (int c = 0; c < 4; ++c) {  // immediates must be constants even without unrolling
        put_rgb24_avx2(q + c * ds, _mm256_permute2x128_si256(u[c], u[4 + c], 0x20));
        put_rgb24_avx2(q + (c + 4) * ds, _mm256_permute2x128_si256(u[c], u[4 + c], 0x31));
      }
    }
  }
  auto one = [&](int y, int x) { std::memcpy(dst.data.data() + x * ds + 3 * y, src.data.data() + y * ss + 3 * x, 3); };
  for (int y = 0; y < H8; ++y)
    for (int x = W8; x < W; ++x) one(y, x);
  for (int y = H8; y < H; ++y)
    for (int x = 0; x < W; ++x) one(y, x);
}

// shear_y (matrix 1 0 0 / s 1 0) as a column map on the transposed image. Output (x, y)
// samples xin = (1 X + 0 Y) + 0 = X, yin = (s X + 1 Y) + 0; in the transpose (x' = y,
// y' = x) the shear_x matrix (1 s 0 / 0 1 0) samples xin' = (1 X' + s Y') + 0 = the same
// double as yin (X' = Y, Y' = X; the sum's operands commute) and yin' = Y' = X, and
// inside / clamping swap W and H consistently. Only the rounding differs: here the column
// weights are one-hot (d = 0), so each tap row's sum is exactly 16384 p, (r + 64) >> 7 =
// 128 p, and v = (sum_j 128 p_j wy_j) >> 21 = (sum_j p_j wy_j) >> 14: the transposed
// column map with Bias 0 (not shear_x's + 64). Pixels outside the runs use the reference
// formula on the original image.
template <Interp F>
__attribute__((target("avx2"))) void warp_shear_y_avx2(const ImageU8& in, ImageU8& out, const double a[6],
                                                       const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  thread_local ImageU8 tin, tout;
  thread_local std::vector<ColSeg> segs;
  transpose_rgb_avx2(in, tin);
  tout.h = tin.h;
  tout.w = tin.w;
  tout.data.resize(tin.data.size());
  const double at[6] = {1.0, a[3], 0.0, 0.0, 1.0, 0.0};
  for (int yt = 0; yt < tin.h; ++yt) {  // yt: column x of the output
    col_map_segments<F>(tin, at, yt, segs);
    uint8_t* o = tout.row(yt);
    for (const ColSeg& sg : segs) {
      if (sg.kind == 2) {
        filter_run_avx2<N, 0>(tin.row(yt) + 3 * sg.src, o + 3 * sg.xb, 3 * (sg.xe - sg.xb), sg.wx);
      } else if (sg.kind == 0) {
        for (int x = sg.xb; x < sg.xe; ++x) std::memcpy(o + 3 * x, fill, 3);
      } else {
        for (int x = sg.xb; x < sg.xe; ++x) warp_pixel_ref<F>(in, a, yt, x, fill, o + 3 * x);
      }
    }
  }
  transpose_rgb_avx2(tout, out);
}

// Row maps' combine (see combine_rows) on 16 bytes at a time: sum_j p_j * wy_j by 16-bit
// multiply-adds (Q14 weights fit int16), then >> 14 (= (128 sum) >> 21).
__attribute__((target("avx2"))) void combine_rows_avx2(const uint8_t* const* rows, const int32_t* wy, int n,
                                                      int len, uint8_t* out) {
  const uint8_t* rp[4];
  int32_t w[4];
  for (int j = 0; j < 4; ++j) {  // pad to two pairs with zero-weight copies of row 0
    rp[j] = j < n ? rows[j] : rows[0];
    w[j] = j < n ? wy[j] : 0;
  }
  const __m256i w01 = weight_pair(w[0], w[1]), w23 = weight_pair(w[2], w[3]);
  const bool two = n > 2;
  int i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m256i p0 = load16(rp[0] + i), p1 = load16(rp[1] + i);
    __m256i lo = _mm256_madd_epi16(_mm256_unpacklo_epi16(p0, p1), w01);
    __m256i hi = _mm256_madd_epi16(_mm256_unpackhi_epi16(p0, p1), w01);
    if (two) {
      const __m256i p2 = load16(rp[2] + i), p3 = load16(rp[3] + i);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(p2, p3), w23));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(p2, p3), w23));
    }
    const __m256i v = _mm256_packs_epi32(_mm256_srai_epi32(lo, 14), _mm256_srai_epi32(hi, 14));
    const __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(v, v), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(b));
  }
  for (; i < len; ++i) {
    int32_t acc = 0;
    for (int j = 0; j < n; ++j) acc += rows[j][i] * wy[j];
    const int32_t v = acc >> 14;
    out[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}
#endif

// Row maps (translate_y: matrix 1 0 0 / 0 1 t): every pixel of output row y has
// xin = X and the same yin, so the column weights are one-hot (16384 on column x) and
// the row weights/rows are those of the row's first pixel. Per sample the general
// formula reduces to  v = (sum_j p_j * 128 * wy_j) >> 21  (since ((p * 16384 + 64) >> 7)
// = 128 p), a plain loop over the row's bytes.
template <int N>
TINYVIT_INLINE void combine_rows_n(const uint8_t* const* rows, const int32_t* w, int len, uint8_t* out) {
  for (int i = 0; i < len; ++i) {
    int32_t acc = 0;
    for (int j = 0; j < N; ++j) acc += rows[j][i] * w[j];
    const int32_t v = acc >> 21;
    out[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

TINYVIT_HOT void combine_rows(const uint8_t* const* rows, const int32_t* w, int n, int len, uint8_t* out) {
  switch (n) {
    case 1: return combine_rows_n<1>(rows, w, len, out);
    case 2: return combine_rows_n<2>(rows, w, len, out);
    case 3: return combine_rows_n<3>(rows, w, len, out);
    default: return combine_rows_n<4>(rows, w, len, out);
  }
}

template <Interp F>
bool warp_row_map(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kCol = F == Interp::Bilinear ? 0 : 1;  // the tap that lands on column x
#ifdef TINYVIT_WARP_SIMD
  static const bool avx2 = __builtin_cpu_supports("avx2");
#endif
  for (int y = 0; y < in.h; ++y) {
    const double X = 0.5, Y = y + 0.5;
    const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
    Taps t;
    uint8_t* o = out.row(y);
    if (!warp_taps<F>(in, xin, yin, t)) {
      for (int x = 0; x < in.w; ++x) std::memcpy(o + 3 * x, fill, 3);
      continue;
    }
    for (int k = 0; k < N; ++k)
      if (t.wx[k] != (k == kCol ? 16384 : 0)) return false;  // not one-hot: general path
    if (t.xs[kCol] != 0) return false;
    const uint8_t* rows[4];
    int32_t w[4];
    int n = 0;
    for (int j = 0; j < N; ++j)
      if (t.wy[j] != 0) {
        rows[n] = t.rows[j];
        w[n++] = t.wy[j];
      }
    if (n == 0) {
      std::memset(o, 0, static_cast<size_t>(in.w) * 3);
      continue;
    }
#ifdef TINYVIT_WARP_SIMD
    if (avx2) {
      combine_rows_avx2(rows, w, n, in.w * 3, o);
      continue;
    }
#endif
    for (int j = 0; j < n; ++j) w[j] *= 128;
    combine_rows(rows, w, n, in.w * 3, o);
  }
  return true;
}

}  // namespace

void affine_warp(ImageU8& img, const double a[6], Interp resample, const uint8_t fill[3]) {
  if (resample != Interp::Nearest && resample != Interp::Bilinear && resample != Interp::Bicubic)
    throw std::invalid_argument("affine_warp: resample must be resolved");
  // Output goes into a per-thread spare image that then swaps with img: no allocation
  // (and no page faults) per warp once the spare has grown to the image size.
  thread_local ImageU8 spare;
  ImageU8& out = spare;
  out.reset(img.h, img.w);
  const bool bilinear = resample == Interp::Bilinear;
  if (resample == Interp::Nearest) {
    warp_scalar<Interp::Nearest>(img, out, a, fill);
    std::swap(img, out);
    return;
  }
  // Row maps (translate_y).
  if (img.w >= 1 && img.h >= 1 && a[0] == 1.0 && a[1] == 0.0 && a[2] == 0.0 && a[3] == 0.0 && a[4] == 1.0 &&
      (bilinear ? warp_row_map<Interp::Bilinear>(img, out, a, fill)
                : warp_row_map<Interp::Bicubic>(img, out, a, fill))) {
    std::swap(img, out);
    return;
  }
#ifdef TINYVIT_WARP_SIMD
  static const bool sse41 = __builtin_cpu_supports("sse4.1");
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) {  // reads stay inside img.data (checked per pixel): no padding
    if (a[0] == 1.0 && a[3] == 0.0 && a[4] == 1.0 && a[5] == 0.0) {  // column maps (translate_x, shear_x)
      if (bilinear) warp_col_map_avx2<Interp::Bilinear>(img, out, a, fill);
      else warp_col_map_avx2<Interp::Bicubic>(img, out, a, fill);
    } else if (a[0] == 1.0 && a[1] == 0.0 && a[2] == 0.0 && a[4] == 1.0 && a[5] == 0.0) {  // shear_y
      if (bilinear) warp_shear_y_avx2<Interp::Bilinear>(img, out, a, fill);
      else warp_shear_y_avx2<Interp::Bicubic>(img, out, a, fill);
    } else if (bilinear) {
      warp_general_avx2<Interp::Bilinear>(img, out, a, fill);
    } else {
      warp_general_avx2<Interp::Bicubic>(img, out, a, fill);
    }
    std::swap(img, out);
    return;
  }
  if (sse41) {
    const size_t n = img.data.size();
    img.data.resize(n + 16);  // tap loads read 4 bytes from a tap start
    if (bilinear) warp_sse<Interp::Bilinear>(img, out, a, fill);
    else warp_sse<Interp::Bicubic>(img, out, a, fill);
    img.data.resize(n);
    std::swap(img, out);
    return;
  }
#endif
  if (bilinear) warp_scalar<Interp::Bilinear>(img, out, a, fill);
  else warp_scalar<Interp::Bicubic>(img, out, a, fill);
  std::swap(img, out);
}

}  // namespace tinyvit
