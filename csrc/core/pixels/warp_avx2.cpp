// AVX2 affine warp for general matrices (rotate, ...): the per-pixel geometry four pixels
// at a time, then 16-bit multiply-add tap sums. Same integers as warp_scalar (warp.cpp).
#include "core/pixels/warp_internal.h"

#ifdef TINYVIT_X86_SIMD
#include <algorithm>
#include <cstring>
#include <vector>

namespace tinyvit {
namespace warp_detail {
namespace {

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
TINYVIT_AVX2 inline __m128i q14_avx2(__m256d v) {
  const __m256d t = _mm256_add_pd(_mm256_mul_pd(v, _mm256_set1_pd(16384.0)), _mm256_set1_pd(16384.5));
  return _mm_sub_epi32(_mm256_cvttpd_epi32(t), _mm_set1_epi32(16384));
}

// q14_avx2 of vs / 16384 (vs already scaled).
TINYVIT_AVX2 inline __m128i q14s_avx2(__m256d vs) {
  return _mm_sub_epi32(_mm256_cvttpd_epi32(_mm256_add_pd(vs, _mm256_set1_pd(16384.5))), _mm_set1_epi32(16384));
}

// warp_taps' weights for four offsets. The bicubic polynomials run on 16384 d: scaling by
// a power of two commutes with every rounding (no overflow; |d| is 0 or >= 2^-60, far
// from subnormal, for any pixel that is not the fill), so each sum is 16384 times the
// scalar one and q14's v * 16384 is already done: 3 multiplies fewer, the same integers.
template <Interp F>
TINYVIT_AVX2 inline void weights_avx2(__m256d d, __m128i w[4]) {
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

// Everything warp_taps computes, for pixels x .. x+3 of row y (in registers).
struct WarpGroup {
  __m256d xs, ys, fx, fy;
  __m128i x0, y0;
  int inside;  // bit k: pixel x + k gets a sample (not the fill)
  int fast;    // bit k: also all taps unclamped and the tap loads (16 bytes bicubic, 8
               // bilinear, from each tap row start) inside the image
};

template <Interp F>
TINYVIT_AVX2 inline void warp_group(const WarpRowGeom& g, int x, int W, int H, WarpGroup& q) {
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
TINYVIT_AVX2 inline void warp_group_store(const WarpGroup& q, int x, WarpRow& r) {
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
TINYVIT_AVX2 inline void store_rgb_avx2(uint8_t* o, __m128i acc) {
  const __m128i v = _mm_srai_epi32(acc, 21);
  const uint32_t rgb = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(v, v), v)));
  std::memcpy(o, &rgb, 3);
}

// Output pixels [xb, xe) of a row from its WarpRow: fill, the SIMD tap sums where the
// taps along x are not clamped (rows are clamped by pointer), else the scalar formula.
template <Interp F>
TINYVIT_AVX2 void warp_pixels_avx2(const ImageU8& in, const WarpRow& r, uint8_t* o,
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
TINYVIT_AVX2 inline void warp_pair_avx2(const uint8_t* pa, const uint8_t* pb, ptrdiff_t stride,
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
TINYVIT_AVX2 inline __m128i pair16(__m128i lo, __m128i hi) {
  return _mm_or_si128(_mm_and_si128(lo, _mm_set1_epi32(0xffff)), _mm_slli_epi32(hi, 16));
}

// General matrices (rotate, ...), four pixels at a time: where all four are fast, their
// weights go from the setup straight into two pixel pairs; else the group's setup is
// stored and warp_pixels_avx2 does its pixels one by one (fill, clamped taps, ...).
template <Interp F>
TINYVIT_AVX2 void general_avx2(const ImageU8& in, ImageU8& out, const double a[6],
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

}  // namespace

void warp_general_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f) {
  if (f == Interp::Bilinear) general_avx2<Interp::Bilinear>(in, out, a, fill);
  else general_avx2<Interp::Bicubic>(in, out, a, fill);
}

}  // namespace warp_detail
}  // namespace tinyvit
#endif  // TINYVIT_X86_SIMD
