// AVX2 kernels of the colour ops (colour.cpp). Every kernel produces the same bytes as the
// scalar code it replaces: integer arithmetic, or the scalar's float operations in the same
// order (separate mul and add, truncating conversion). tests/augment/test_colour_ops.py
// runs both paths against numpy.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/pixels/colour.h"
#include "core/pixels/colour_internal.h"

namespace tinyvit {
namespace colour_detail {

namespace {
// Set during static initialisation; ra_colour_simd() may turn it off.
std::atomic<bool> g_colour_avx2{cpu_features().avx2};
}  // namespace

bool colour_simd_on() { return g_colour_avx2; }

#ifdef TINYVIT_X86_SIMD
namespace {

// The SIMD division: (x * 40330) >> 20 == x / 26 for every x = 2 s + 13, 0 <= s <= 13 * 255.
constexpr bool div26_exact() {
  for (int s = 0; s <= 13 * 255; ++s)
    if ((((2 * s + 13) * 40330) >> 20) != (2 * s + 13) / 26) return false;
  return true;
}
static_assert(div26_exact(), "mulhi division by 26 must be exact on the smoothing range");

// blend1 on 8 samples (int32 lanes), as int32 lanes for the unsigned-saturating packs.
// For alpha in [0, 1], t lies between deg and v (the rounded product and sum are monotone):
// no clip. Otherwise (Clip) t is capped at 255 here; t <= 0 truncates to an int <= 0 (INT_MIN
// beyond int range), which the packs saturate to 0: the scalar's clip. cvtt truncates like
// the scalar cast.
template <bool Clip>
TINYVIT_AVX2_INLINE __m256i blend8(__m256i v, __m256i d, __m256 alpha) {
  const __m256 df = _mm256_cvtepi32_ps(d);
  const __m256 diff = _mm256_cvtepi32_ps(_mm256_sub_epi32(v, d));
  __m256 t = _mm256_add_ps(df, _mm256_mul_ps(alpha, diff));
  if (Clip) t = _mm256_min_ps(t, _mm256_set1_ps(255.0f));
  return _mm256_cvttps_epi32(t);
}

TINYVIT_AVX2_INLINE __m256i load8_u32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Four blend8 results (32 samples in order r0..r3) -> 32 bytes.
TINYVIT_AVX2_INLINE __m256i pack32(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
  const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(r0, r1), _mm256_packus_epi32(r2, r3));
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// p[i] = blend1(deg, p[i], alpha) (Brightness, Contrast).
template <bool Clip>
TINYVIT_AVX2 void blend_const_k(uint8_t* p, int deg, size_t n, float alpha) {
  const __m256 a = _mm256_set1_ps(alpha);
  const __m256i dc = _mm256_set1_epi32(deg);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i r[4];
    for (int k = 0; k < 4; ++k) r[k] = blend8<Clip>(load8_u32(p + i + 8 * k), dc, a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), pack32(r[0], r[1], r[2], r[3]));
  }
  for (; i < n; ++i) p[i] = blend1(deg, p[i], alpha);
}

// Luma of the 8 pixels at q (int32 lanes); reads q[0, 28). Words (r, g, g, b) per pixel
// times (19595, 19235, 19235, 7471) pairwise-added by madd: r*19595 + g*38470 + b*7471.
TINYVIT_AVX2_INLINE __m256i luma8(const uint8_t* q) {
  const __m256i x = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 12)), 1);
  const __m256i s01 = _mm256_setr_epi8(0, -1, 1, -1, 1, -1, 2, -1, 3, -1, 4, -1, 4, -1, 5, -1,
                                       0, -1, 1, -1, 1, -1, 2, -1, 3, -1, 4, -1, 4, -1, 5, -1);
  const __m256i s23 = _mm256_setr_epi8(6, -1, 7, -1, 7, -1, 8, -1, 9, -1, 10, -1, 10, -1, 11, -1,
                                       6, -1, 7, -1, 7, -1, 8, -1, 9, -1, 10, -1, 10, -1, 11, -1);
  const __m256i w = _mm256_setr_epi16(19595, 19235, 19235, 7471, 19595, 19235, 19235, 7471,
                                      19595, 19235, 19235, 7471, 19595, 19235, 19235, 7471);
  const __m256i a = _mm256_madd_epi16(_mm256_shuffle_epi8(x, s01), w);  // px 0,1 | 4,5
  const __m256i b = _mm256_madd_epi16(_mm256_shuffle_epi8(x, s23), w);  // px 2,3 | 6,7
  const __m256i h = _mm256_hadd_epi32(a, b);                            // px 0..3 | 4..7
  return _mm256_srli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(0x8000)), 16);
}

// Sum of the luma of n pixels.
TINYVIT_AVX2 uint64_t luma_sum_k(const uint8_t* p, size_t n) {
  uint64_t sum = 0;
  size_t i = 0;
  while (i + 10 <= n) {  // luma8 reads 28 bytes: 8 pixels plus 4 bytes
    __m256i acc = _mm256_setzero_si256();
    // At most 2^16 steps per flush: each lane gains <= 255 per step, no overflow.
    for (int k = 0; k < 65536 && i + 10 <= n; ++k, i += 8) acc = _mm256_add_epi32(acc, luma8(p + 3 * i));
    alignas(32) uint32_t l[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(l), acc);
    for (int k = 0; k < 8; ++k) sum += l[k];
  }
  for (; i < n; ++i) sum += luma(p + 3 * i);
  return sum;
}

// Color: blend every sample with its pixel's luma, 8 pixels (24 samples) per step. The
// step reads 4 bytes past its pixels (the next step's, still unmodified) and writes its own.
template <bool Clip>
TINYVIT_AVX2 void color_k(uint8_t* p, size_t n, float alpha) {
  const __m256 a = _mm256_set1_ps(alpha);
  const __m256i e0 = _mm256_setr_epi32(0, 0, 0, 1, 1, 1, 2, 2);
  const __m256i e1 = _mm256_setr_epi32(2, 3, 3, 3, 4, 4, 4, 5);
  const __m256i e2 = _mm256_setr_epi32(5, 5, 6, 6, 6, 7, 7, 7);
  size_t i = 0;
  for (; i + 10 <= n; i += 8) {
    uint8_t* q = p + 3 * i;
    const __m256i l = luma8(q);
    const __m256i r0 = blend8<Clip>(load8_u32(q), _mm256_permutevar8x32_epi32(l, e0), a);
    const __m256i r1 = blend8<Clip>(load8_u32(q + 8), _mm256_permutevar8x32_epi32(l, e1), a);
    const __m256i r2 = blend8<Clip>(load8_u32(q + 16), _mm256_permutevar8x32_epi32(l, e2), a);
    const __m256i out = pack32(r0, r1, r2, _mm256_setzero_si256());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm256_castsi256_si128(out));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + 16), _mm256_extracti128_si256(out, 1));
  }
  for (; i < n; ++i) {
    uint8_t* q = p + 3 * i;
    const int g = luma(q);
    for (int c = 0; c < 3; ++c) q[c] = blend1(g, q[c], alpha);
  }
}

TINYVIT_AVX2_INLINE __m256i ld(const uint8_t* s) {  // 16 bytes -> 16 uint16 lanes
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
}

TINYVIT_AVX2_INLINE __m256i ld16(const uint16_t* s) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
}

// Sharpness output for one interior row: o[i] = blend1(smooth(i), m[i], alpha) for
// i in [3, rowlen - 3), from the original rows above (a), at (m) and below (b). The
// smoothing sum is col[i - 3] + col[i] + col[i + 3] + 4 m[i] with column sums
// col = a + m + b (uint16, in `col`, rowlen entries).
template <bool Clip>
TINYVIT_AVX2 void sharpen_row_k(const uint8_t* a, const uint8_t* m, const uint8_t* b, uint8_t* o,
                              uint16_t* col, int rowlen, float alpha) {
  int i = 0;
  for (; i + 16 <= rowlen; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(col + i),
                        _mm256_add_epi16(_mm256_add_epi16(ld(a + i), ld(m + i)), ld(b + i)));
  for (; i < rowlen; ++i) col[i] = static_cast<uint16_t>(a[i] + m[i] + b[i]);
  const __m256 al = _mm256_set1_ps(alpha);
  const __m256i zero = _mm256_setzero_si256();
  for (i = 3; i + 16 <= rowlen - 3; i += 16) {  // reads [i - 3, i + 19) within the row
    const __m256i c = ld(m + i);
    __m256i s = _mm256_add_epi16(_mm256_add_epi16(ld16(col + i - 3), ld16(col + i)), ld16(col + i + 3));
    s = _mm256_add_epi16(s, _mm256_slli_epi16(c, 2));
    const __m256i x = _mm256_add_epi16(_mm256_add_epi16(s, s), _mm256_set1_epi16(13));
    const __m256i d = _mm256_srli_epi16(_mm256_mulhi_epu16(x, _mm256_set1_epi16(static_cast<short>(40330))), 4);
    // in-lane widening: lo holds samples 0-3 | 8-11, hi 4-7 | 12-15; packus_epi32(lo, hi)
    // restores the order 0-15
    const __m256i r0 = blend8<Clip>(_mm256_unpacklo_epi16(c, zero), _mm256_unpacklo_epi16(d, zero), al);
    const __m256i r1 = blend8<Clip>(_mm256_unpackhi_epi16(c, zero), _mm256_unpackhi_epi16(d, zero), al);
    const __m256i w = _mm256_packus_epi32(r0, r1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + i),
                     _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
  }
  for (; i < rowlen - 3; ++i) {
    const int s = a[i - 3] + a[i] + a[i + 3] + m[i - 3] + 5 * m[i] + m[i + 3] + b[i - 3] + b[i] + b[i + 3];
    o[i] = blend1(smooth_round(s), m[i], alpha);
  }
}

TINYVIT_AVX2 void lut_shape_k(uint8_t* p, size_t n, const LutShape& s) {
  const __m256i ones = _mm256_set1_epi8(-1);
  const __m256i tm1 = _mm256_set1_epi8(static_cast<char>(std::max(0, s.thr - 1)));
  const __m256i addv = _mm256_set1_epi8(static_cast<char>(std::min(255, std::abs(s.lo_add))));
  const __m256i all = s.thr >= 256 ? ones : _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    // v < thr  <=>  v <= thr - 1  <=>  min(v, thr - 1) == v  (thr in 1..255)
    const __m256i below = s.thr <= 0 ? _mm256_setzero_si256()
                        : s.thr >= 256 ? all
                        : _mm256_cmpeq_epi8(_mm256_min_epu8(v, tm1), v);
    const __m256i lo = s.lo_inv ? _mm256_xor_si256(v, ones)
                     : s.lo_add >= 0 ? _mm256_adds_epu8(v, addv) : _mm256_subs_epu8(v, addv);
    const __m256i hi = s.hi_inv ? _mm256_xor_si256(v, ones) : v;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), _mm256_blendv_epi8(hi, lo, below));
  }
  for (; i < n; ++i) p[i] = static_cast<uint8_t>(shape_eval(s, p[i]));
}

// Per-channel minimum and maximum of n bytes of RGB (what AutoContrast needs of the
// histogram), 96 bytes (3 vectors, whole pixels) per step.
TINYVIT_AVX2 void minmax_k(const uint8_t* p, size_t n, int lo[3], int hi[3]) {
  __m256i mn[3], mx[3];
  for (int b = 0; b < 3; ++b) {
    mn[b] = _mm256_set1_epi8(-1);
    mx[b] = _mm256_setzero_si256();
  }
  size_t i = 0;
  for (; i + 96 <= n; i += 96)
    for (int b = 0; b < 3; ++b) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32 * b));
      mn[b] = _mm256_min_epu8(mn[b], v);
      mx[b] = _mm256_max_epu8(mx[b], v);
    }
  alignas(32) uint8_t l[96], h[96];
  for (int b = 0; b < 3; ++b) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(l + 32 * b), mn[b]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(h + 32 * b), mx[b]);
  }
  for (int c = 0; c < 3; ++c) lo[c] = 255, hi[c] = 0;
  for (int k = 0; k < 96; ++k) {
    lo[k % 3] = std::min<int>(lo[k % 3], l[k]);
    hi[k % 3] = std::max<int>(hi[k % 3], h[k]);
  }
  for (; i < n; ++i) {
    lo[i % 3] = std::min<int>(lo[i % 3], p[i]);
    hi[i % 3] = std::max<int>(hi[i % 3], p[i]);
  }
}

// AutoContrast's map without a LUT: int(v * scale[c] + offset[c]) in doubles (mul, then
// add, truncation: the scalar's operations), clipped to [0, 255] by min and unsigned packs.
TINYVIT_AVX2 void autocontrast_k(uint8_t* p, size_t n, const double sc[3], const double of[3]) {
  __m256d S[3], O[3];  // 4 samples at byte offset o are channels o, o + 1, o + 2, o + 3 (mod 3)
  for (int k = 0; k < 3; ++k) {
    S[k] = _mm256_setr_pd(sc[k], sc[(k + 1) % 3], sc[(k + 2) % 3], sc[k]);
    O[k] = _mm256_setr_pd(of[k], of[(k + 1) % 3], of[(k + 2) % 3], of[k]);
  }
  const __m128i top = _mm_set1_epi32(255);
  size_t i = 0;
  for (; i + 48 <= n; i += 48) {
    __m128i x[12];
    for (int g = 0; g < 12; ++g) {  // 4 bytes at offset 4 g: channel pattern (4 g) % 3 = g % 3
      int32_t w;
      std::memcpy(&w, p + i + 4 * g, 4);
      const __m256d d = _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(w)));
      const __m256d t = _mm256_add_pd(_mm256_mul_pd(d, S[g % 3]), O[g % 3]);
      x[g] = _mm_min_epi32(_mm256_cvttpd_epi32(t), top);  // packus clips negatives to 0
    }
    for (int q = 0; q < 3; ++q)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i + 16 * q),
                       _mm_packus_epi16(_mm_packus_epi32(x[4 * q], x[4 * q + 1]),
                                        _mm_packus_epi32(x[4 * q + 2], x[4 * q + 3])));
  }
  for (; i < n; ++i) {
    const int v = static_cast<int>(p[i] * sc[i % 3] + of[i % 3]);
    p[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

// Per-channel LUT on RGB in AVX2. Each 128-bit lane takes 48 bytes (16 pixels): they are
// split into R, G and B planes with byte shuffles, each plane goes through its 256-entry
// table as 16 shuffles of 16-entry sub-tables, and the planes are interleaved back.
// Sub-table lookup: for v < 128 and k = 0..7, adds_epu8(v, 112 - 16 k) keeps bit 7 clear
// (shuffle result non-zero) exactly when v >> 4 <= k, with the low nibble of v as index;
// XOR-ing tables D_k = T_k ^ T_{k+1} (D_7 = T_7) over k >= v >> 4 telescopes to T_{v>>4}.
// v >= 128 runs the same on v ^ 0x80 with the upper 8 sub-tables; each half yields 0 for
// the other half's values.
struct Lut3Tables {
  alignas(32) uint8_t split[3][3][32];   // [plane][source vector] shuffle masks
  alignas(32) uint8_t merge[3][3][32];   // [dest vector][plane]
  Lut3Tables() {
    for (int c = 0; c < 3; ++c)
      for (int s = 0; s < 3; ++s)
        for (int k = 0; k < 32; ++k) {
          const int j = k % 16;              // plane position (pixel) in the lane
          const int g = 3 * j + c - 16 * s;  // its byte in source vector s
          split[c][s][k] = (g >= 0 && g < 16) ? static_cast<uint8_t>(g) : 0x80;
          const int gd = 16 * c + j;         // dest vector c, byte j: global byte gd
          merge[c][s][k] = (gd % 3 == s) ? static_cast<uint8_t>(gd / 3) : 0x80;
        }
  }
};

TINYVIT_AVX2_INLINE __m256i ld256(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

TINYVIT_AVX2_INLINE __m256i lut_plane(__m256i v, const uint8_t (*sub)[32]) {  // sub: 16 tables D_k
  const __m256i hv = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
  __m256i r = _mm256_setzero_si256();
  for (int k = 0; k < 8; ++k) {
    const __m256i add = _mm256_set1_epi8(static_cast<char>(112 - 16 * k));
    r = _mm256_xor_si256(r, _mm256_shuffle_epi8(ld256(sub[k]), _mm256_adds_epu8(v, add)));
    r = _mm256_xor_si256(r, _mm256_shuffle_epi8(ld256(sub[8 + k]), _mm256_adds_epu8(hv, add)));
  }
  return r;
}

TINYVIT_AVX2 void lut3_k(uint8_t* p, size_t n, const Lut lut) {
  static const Lut3Tables tb;
  alignas(32) uint8_t sub[3][16][32];
  for (int c = 0; c < 3; ++c)
    for (int half = 0; half < 2; ++half)
      for (int k = 0; k < 8; ++k)
        for (int l = 0; l < 32; ++l) {
          const int h = 8 * half + k, i = 16 * h + l % 16;
          sub[c][8 * half + k][l] = k < 7 ? lut[c][i] ^ lut[c][i + 16] : lut[c][i];
        }
  size_t i = 0;
  for (; i + 96 <= n; i += 96) {
    __m256i x[3], pl[3];
    for (int s = 0; s < 3; ++s)
      x[s] = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16 * s))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48 + 16 * s)), 1);
    for (int c = 0; c < 3; ++c) {
      const __m256i v = _mm256_or_si256(
          _mm256_or_si256(_mm256_shuffle_epi8(x[0], ld256(tb.split[c][0])), _mm256_shuffle_epi8(x[1], ld256(tb.split[c][1]))),
          _mm256_shuffle_epi8(x[2], ld256(tb.split[c][2])));
      pl[c] = lut_plane(v, sub[c]);
    }
    for (int d = 0; d < 3; ++d) {
      const __m256i o = _mm256_or_si256(
          _mm256_or_si256(_mm256_shuffle_epi8(pl[0], ld256(tb.merge[d][0])), _mm256_shuffle_epi8(pl[1], ld256(tb.merge[d][1]))),
          _mm256_shuffle_epi8(pl[2], ld256(tb.merge[d][2])));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i + 16 * d), _mm256_castsi256_si128(o));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p + i + 48 + 16 * d), _mm256_extracti128_si256(o, 1));
    }
  }
  for (; i < n; ++i) p[i] = lut[i % 3][p[i]];
}

}  // namespace

void blend_const_avx2(uint8_t* p, int deg, size_t n, float alpha, bool clip) {
  if (clip) blend_const_k<true>(p, deg, n, alpha);
  else blend_const_k<false>(p, deg, n, alpha);
}
uint64_t luma_sum_avx2(const uint8_t* p, size_t n) { return luma_sum_k(p, n); }
void color_avx2(uint8_t* p, size_t n, float alpha, bool clip) {
  if (clip) color_k<true>(p, n, alpha);
  else color_k<false>(p, n, alpha);
}
void sharpen_row_avx2(const uint8_t* a, const uint8_t* m, const uint8_t* b, uint8_t* o, uint16_t* col,
                      int rowlen, float alpha, bool clip) {
  if (clip) sharpen_row_k<true>(a, m, b, o, col, rowlen, alpha);
  else sharpen_row_k<false>(a, m, b, o, col, rowlen, alpha);
}
void lut_shape_avx2(uint8_t* p, size_t n, const LutShape& s) { lut_shape_k(p, n, s); }
void minmax_avx2(const uint8_t* p, size_t n, int lo[3], int hi[3]) { minmax_k(p, n, lo, hi); }
void autocontrast_avx2(uint8_t* p, size_t n, const double sc[3], const double of[3]) {
  autocontrast_k(p, n, sc, of);
}
void lut3_avx2(uint8_t* p, size_t n, const Lut lut) { lut3_k(p, n, lut); }
#endif  // TINYVIT_X86_SIMD

}  // namespace colour_detail

bool ra_colour_simd(bool on) {
  const bool was = colour_detail::g_colour_avx2;
  colour_detail::g_colour_avx2 = on && cpu_features().avx2;
  return was;
}

}  // namespace tinyvit
