// AVX2 separable forms of the affine warps whose taps are constant along a run:
// column maps (translate_x, shear_x), shear_y on the transposed image, and the row maps'
// combine (translate_y). Same integers as warp_scalar (warp.cpp); see each comment.
#include "core/pixels/warp_internal.h"

#ifdef TINYVIT_X86_SIMD
#include <algorithm>
#include <cstring>
#include <vector>

namespace tinyvit {
namespace warp_detail {
namespace {

// Two Q14 weights as an int16 pair in every 32-bit lane (for madd).
TINYVIT_AVX2 inline __m256i weight_pair(int32_t lo, int32_t hi) {
  return _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                                                (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16)));
}

// 16 bytes as int16.
TINYVIT_AVX2 inline __m256i load16(const uint8_t* p) {
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// dst[i] = clamp((sum_k src[i + 3k] * w[k] + Bias) >> 14), i < len (len >= 16): the column
// map's formula (Bias 64; shear_y's transposed form: Bias 0) over a run of pixels with the
// same taps offset and weights. Each load covers only tap bytes of the run (the last block
// overlaps the previous one).
template <int N, int Bias = 64>
TINYVIT_AVX2 void filter_run_avx2(const uint8_t* src, uint8_t* dst, int len, const int32_t w[4]) {
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
TINYVIT_AVX2 void col_map_segments(const ImageU8& in, const double a[6], int y,
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
TINYVIT_AVX2 void col_map_avx2(const ImageU8& in, ImageU8& out, const double a[6],
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
TINYVIT_AVX2 inline void put_rgb24_avx2(uint8_t* q, __m256i px) {
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
TINYVIT_AVX2 void transpose_rgb_avx2(const ImageU8& src, ImageU8& dst) {
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
TINYVIT_AVX2 void shear_y_avx2(const ImageU8& in, ImageU8& out, const double a[6],
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
TINYVIT_AVX2 void combine_rows_avx2_impl(const uint8_t* const* rows, const int32_t* wy, int n,
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

}  // namespace

void warp_col_map_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f) {
  if (f == Interp::Bilinear) col_map_avx2<Interp::Bilinear>(in, out, a, fill);
  else col_map_avx2<Interp::Bicubic>(in, out, a, fill);
}

void warp_shear_y_avx2(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3], Interp f) {
  if (f == Interp::Bilinear) shear_y_avx2<Interp::Bilinear>(in, out, a, fill);
  else shear_y_avx2<Interp::Bicubic>(in, out, a, fill);
}

void combine_rows_avx2(const uint8_t* const* rows, const int32_t* wy, int n, int len, uint8_t* out) {
  combine_rows_avx2_impl(rows, wy, n, len, out);
}

}  // namespace warp_detail
}  // namespace tinyvit
#endif  // TINYVIT_X86_SIMD
