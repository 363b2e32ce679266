#include "core/pixels/randaugment.h"

#include "core/util/cpu_dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TINYVIT_NO_DISPATCH)
#include <immintrin.h>
#define TINYVIT_WARP_SIMD 1
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinyvit {

namespace {

using Lut = uint8_t[3][256];

// ---- colour / pixel ops: SIMD paths -------------------------------------------------
// Every fast path below produces the same bytes as the scalar code next to it: integer
// arithmetic, or the scalar's float operations in the same order (separate mul and add,
// truncating conversion). tests/test_pixels.py compares both paths with numpy.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TINYVIT_NO_DISPATCH)  // as the include above
#define TINYVIT_COLOUR_SIMD 1
#define TV_AVX2 __attribute__((target("avx2")))
#define TV_AVX2_INLINE inline __attribute__((target("avx2"), always_inline))
// Set during static initialisation, hence __builtin_cpu_init first; ra_colour_simd() may
// turn it off.
std::atomic<bool> g_colour_avx2{[] {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") != 0;
}()};
#else
std::atomic<bool> g_colour_avx2{false};
#endif

// Byte-wise LUT, 8 bytes per 64-bit load: the bytes are extracted from a register
// instead of being loaded one by one (fewer loads than the plain byte loop).
void apply_lut1(ImageU8& img, const uint8_t lut[256]) {
  uint8_t* p = img.data.data();
  const size_t n = img.data.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, 8);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) p[i + k] = lut[(x >> (8 * k)) & 0xFF];
  }
  for (; i < n; ++i) p[i] = lut[p[i]];
}

// Per-channel LUT, likewise, 24 bytes (8 pixels) per step: byte j of a step is channel j % 3.
void apply_lut_scalar(ImageU8& img, const Lut lut) {
  uint8_t* p = img.data.data();
  const size_t n = img.data.size();
  size_t i = 0;
  for (; i + 24 <= n; i += 24) {
    uint64_t x[3];
    std::memcpy(x, p + i, 24);
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) p[i + j] = lut[j % 3][(x[j / 8] >> (8 * (j % 8))) & 0xFF];
  }
  for (; i < n; ++i) p[i] = lut[i % 3][p[i]];
}

// Four interleaved sub-histograms per channel (pixel i counts in copy i % 4), so that
// consecutive increments of one bin do not wait on each other's store.
void histograms(const ImageU8& img, uint32_t hist[3][256]) {
  uint32_t sub[4][3][256];
  std::memset(sub, 0, sizeof(sub));
  const uint8_t* p = img.data.data();
  const size_t n = static_cast<size_t>(img.h) * img.w;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint8_t* q = p + 3 * i;
    for (int k = 0; k < 4; ++k) {
      ++sub[k][0][q[3 * k]];
      ++sub[k][1][q[3 * k + 1]];
      ++sub[k][2][q[3 * k + 2]];
    }
  }
  for (; i < n; ++i)
    for (int c = 0; c < 3; ++c) ++sub[0][c][p[3 * i + c]];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) hist[c][v] = sub[0][c][v] + sub[1][c][v] + sub[2][c][v] + sub[3][c][v];
}

// PIL's RGB -> L: ITU-R 601-2 luma in 16-bit fixed point, rounded.
inline uint8_t luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

// Image.blend(degenerate, img, factor) for one sample: float arithmetic as Pillow's
// ImagingBlend (alpha is a C float), truncating toward zero, clipping when extrapolating.
inline uint8_t blend1(int deg, int v, float alpha) {
  const float t = static_cast<float>(deg) + alpha * static_cast<float>(v - deg);
  if (alpha >= 0.0f && alpha <= 1.0f) return static_cast<uint8_t>(t);
  if (t <= 0.0f) return 0;
  if (t >= 255.0f) return 255;
  return static_cast<uint8_t>(t);
}

// ImageFilter.SMOOTH at one sample from the 3x3 neighbourhood sum s (centre weight 5):
// round(s / 13) = (2 s + 13) / 26 (see ra_sharpness).
inline int smooth_round(int s) { return (2 * s + 13) / 26; }

// The SIMD division: (x * 40330) >> 20 == x / 26 for every x = 2 s + 13, 0 <= s <= 13 * 255.
constexpr bool div26_exact() {
  for (int s = 0; s <= 13 * 255; ++s)
    if ((((2 * s + 13) * 40330) >> 20) != (2 * s + 13) / 26) return false;
  return true;
}
static_assert(div26_exact(), "mulhi division by 26 must be exact on the smoothing range");

// Solarize-type LUTs in SIMD: out = v < thr ? f(v) : g(v), with f, g each identity, 255 - v,
// or a saturating add/subtract. The caller checks that the formula equals its LUT.
struct LutShape {
  int thr;       // 0..256
  int lo_add;    // v < thr: v + lo_add, saturated to [0, 255]
  bool lo_inv;   // v < thr: 255 - v instead
  bool hi_inv;   // v >= thr: 255 - v, else v
};

inline int shape_eval(const LutShape& s, int v) {
  if (v < s.thr) return s.lo_inv ? 255 - v : std::min(255, std::max(0, v + s.lo_add));
  return s.hi_inv ? 255 - v : v;
}

#ifdef TINYVIT_COLOUR_SIMD
// blend1 on 8 samples (int32 lanes), as int32 lanes for the unsigned-saturating packs.
// For alpha in [0, 1], t lies between deg and v (the rounded product and sum are monotone):
// no clip. Otherwise (Clip) t is capped at 255 here; t <= 0 truncates to an int <= 0 (INT_MIN
// beyond int range), which the packs saturate to 0: the scalar's clip. cvtt truncates like
// the scalar cast.
template <bool Clip>
TV_AVX2_INLINE __m256i blend8(__m256i v, __m256i d, __m256 alpha) {
  const __m256 df = _mm256_cvtepi32_ps(d);
  const __m256 diff = _mm256_cvtepi32_ps(_mm256_sub_epi32(v, d));
  __m256 t = _mm256_add_ps(df, _mm256_mul_ps(alpha, diff));
  if (Clip) t = _mm256_min_ps(t, _mm256_set1_ps(255.0f));
  return _mm256_cvttps_epi32(t);
}

TV_AVX2_INLINE __m256i load8_u32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Four blend8 results (32 samples in order r0..r3) -> 32 bytes.
TV_AVX2_INLINE __m256i pack32(__m256i r0, __m256i r1, __m256i r2, __m256i r3) {
  const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(r0, r1), _mm256_packus_epi32(r2, r3));
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// p[i] = blend1(deg, p[i], alpha) (Brightness, Contrast).
template <bool Clip>
TV_AVX2 void blend_const_avx2(uint8_t* p, int deg, size_t n, float alpha) {
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
TV_AVX2_INLINE __m256i luma8(const uint8_t* q) {
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
TV_AVX2 uint64_t luma_sum_avx2(const uint8_t* p, size_t n) {
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
TV_AVX2 void color_avx2(uint8_t* p, size_t n, float alpha) {
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

TV_AVX2_INLINE __m256i ld(const uint8_t* s) {  // 16 bytes -> 16 uint16 lanes
  return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
}

TV_AVX2_INLINE __m256i ld16(const uint16_t* s) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s));
}

// Sharpness output for one interior row: o[i] = blend1(smooth(i), m[i], alpha) for
// i in [3, rowlen - 3), from the original rows above (a), at (m) and below (b). The
// smoothing sum is col[i - 3] + col[i] + col[i + 3] + 4 m[i] with column sums
// col = a + m + b (uint16, in `col`, rowlen entries).
template <bool Clip>
TV_AVX2 void sharpen_row_avx2(const uint8_t* a, const uint8_t* m, const uint8_t* b, uint8_t* o,
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

TV_AVX2 void lut_shape_avx2(uint8_t* p, size_t n, const LutShape& s) {
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
TV_AVX2 void minmax_avx2(const uint8_t* p, size_t n, int lo[3], int hi[3]) {
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
TV_AVX2 void autocontrast_avx2(uint8_t* p, size_t n, const double sc[3], const double of[3]) {
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

TV_AVX2_INLINE __m256i ld256(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

TV_AVX2_INLINE __m256i lut_plane(__m256i v, const uint8_t (*sub)[32]) {  // sub: 16 tables D_k
  const __m256i hv = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
  __m256i r = _mm256_setzero_si256();
  for (int k = 0; k < 8; ++k) {
    const __m256i add = _mm256_set1_epi8(static_cast<char>(112 - 16 * k));
    r = _mm256_xor_si256(r, _mm256_shuffle_epi8(ld256(sub[k]), _mm256_adds_epu8(v, add)));
    r = _mm256_xor_si256(r, _mm256_shuffle_epi8(ld256(sub[8 + k]), _mm256_adds_epu8(hv, add)));
  }
  return r;
}

TV_AVX2 void lut3_avx2(uint8_t* p, size_t n, const Lut lut) {
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
#endif  // TINYVIT_COLOUR_SIMD

// Applies a LUT of solarize shape in SIMD when the shape reproduces it exactly.
void apply_lut1_shaped(ImageU8& img, const uint8_t lut[256], const LutShape& s) {
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) {
    bool same = true;
    for (int i = 0; i < 256; ++i) same &= shape_eval(s, i) == lut[i];
    if (same) return lut_shape_avx2(img.data.data(), img.data.size(), s);
  }
#endif
  (void)s;
  apply_lut1(img, lut);
}

void apply_lut(ImageU8& img, const Lut lut) {
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) return lut3_avx2(img.data.data(), img.data.size(), lut);
#endif
  apply_lut_scalar(img, lut);
}

// Blend with a per-sample degenerate image (branch on alpha hoisted out of the loop).
TINYVIT_HOT void blend_with(ImageU8& img, const std::vector<uint8_t>& degenerate, float alpha) {
  uint8_t* p = img.data.data();
  const uint8_t* d = degenerate.data();
  const size_t n = img.data.size();
  if (alpha >= 0.0f && alpha <= 1.0f) {
    for (size_t i = 0; i < n; ++i)
      p[i] = static_cast<uint8_t>(static_cast<float>(d[i]) + alpha * static_cast<float>(p[i] - d[i]));
  } else {
    for (size_t i = 0; i < n; ++i) {
      const float t = static_cast<float>(d[i]) + alpha * static_cast<float>(p[i] - d[i]);
      p[i] = t <= 0.0f ? 0 : (t >= 255.0f ? 255 : static_cast<uint8_t>(t));
    }
  }
}

// Blend with a constant degenerate value: in SIMD floats, or a LUT.
void blend_const(ImageU8& img, int deg, float alpha) {
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) {
    if (alpha >= 0.0f && alpha <= 1.0f) return blend_const_avx2<false>(img.data.data(), deg, img.data.size(), alpha);
    return blend_const_avx2<true>(img.data.data(), deg, img.data.size(), alpha);
  }
#endif
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) lut[i] = blend1(deg, i, alpha);
  apply_lut1(img, lut);
}

// Python's round(v, 15), which PIL applies to the rotation matrix (so cos 90 is 0).
inline double round15(double v) { return std::nearbyint(v * 1e15) / 1e15; }

void rotate90_square(ImageU8& img, int quarter_turns) {  // CCW quarter turns, square image
  thread_local ImageU8 spare;  // reused across calls (see affine_warp)
  ImageU8& out = spare;
  out.reset(img.h, img.w);
  const int n = img.w;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      int sx, sy;  // source pixel of output (x, y)
      if (quarter_turns == 1) { sx = n - 1 - y; sy = x; }
      else { sx = y; sy = n - 1 - x; }
      std::memcpy(out.row(y) + 3 * x, img.row(sy) + 3 * sx, 3);
    }
  std::swap(img, out);
}

void rotate180(ImageU8& img) {
  const size_t n = static_cast<size_t>(img.h) * img.w;
  uint8_t* p = img.data.data();
  for (size_t a = 0, b = n - 1; a < b; ++a, --b)
    for (int c = 0; c < 3; ++c) std::swap(p[3 * a + c], p[3 * b + c]);
}

// RGB <-> PIL's 8-bit HSV, following Pillow's conversions.
void rgb_to_hsv(const uint8_t* in, uint8_t* out) {
  const int r = in[0], g = in[1], b = in[2];
  const int maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  out[2] = static_cast<uint8_t>(maxc);
  if (minc == maxc) {
    out[0] = out[1] = 0;
    return;
  }
  const float cr = static_cast<float>(maxc - minc);
  const float s = cr / static_cast<float>(maxc);
  const float rc = static_cast<float>(maxc - r) / cr;
  const float gc = static_cast<float>(maxc - g) / cr;
  const float bc = static_cast<float>(maxc - b) / cr;
  float h;
  if (r == maxc) h = bc - gc;
  else if (g == maxc) h = 2.0f + rc - bc;
  else h = 4.0f + gc - rc;
  double hh = std::fmod(h / 6.0 + 1.0, 1.0);
  const int hi = static_cast<int>(hh * 255.0), si = static_cast<int>(s * 255.0);
  out[0] = static_cast<uint8_t>(std::min(255, std::max(0, hi)));
  out[1] = static_cast<uint8_t>(std::min(255, std::max(0, si)));
}

void hsv_to_rgb(const uint8_t* in, uint8_t* out) {
  const int h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = static_cast<uint8_t>(v);
    return;
  }
  const int i = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  const double f = static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(i);
  const double fs = static_cast<float>(s) / 255.0;
  auto clip = [](double x) {
    const long r = std::lround(x);
    return static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
  };
  const uint8_t p = clip(v * (1.0 - fs));
  const uint8_t q = clip(v * (1.0 - fs * f));
  const uint8_t t = clip(v * (1.0 - fs * (1.0 - f)));
  const uint8_t V = static_cast<uint8_t>(v);
  uint8_t r, g, b;
  switch (i % 6) {
    case 0: r = V; g = t; b = p; break;
    case 1: r = q; g = V; b = p; break;
    case 2: r = p; g = V; b = t; break;
    case 3: r = p; g = q; b = V; break;
    case 4: r = t; g = p; b = V; break;
    default: r = V; g = p; b = q; break;
  }
  out[0] = r;
  out[1] = g;
  out[2] = b;
}

void adjust_hue(ImageU8& img, float hue) {
  // torchvision: H channel (uint8) += uint8(hue * 255), wrapping.
  const int shift = static_cast<int>(static_cast<double>(hue) * 255.0);
  const uint8_t delta = static_cast<uint8_t>(((shift % 256) + 256) % 256);
  const size_t n = static_cast<size_t>(img.h) * img.w;
  uint8_t* p = img.data.data();
  for (size_t i = 0; i < n; ++i) {
    uint8_t hsv[3];
    rgb_to_hsv(p + 3 * i, hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + delta);
    hsv_to_rgb(hsv, p + 3 * i);
  }
}

}  // namespace

void ra_autocontrast(ImageU8& img) {
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) {  // the histogram's first and last non-empty bins are the min and max
    if (img.data.empty()) return;
    int lo[3], hi[3];
    minmax_avx2(img.data.data(), img.data.size(), lo, hi);
    double scale[3], offset[3];
    for (int c = 0; c < 3; ++c) {
      scale[c] = 1.0, offset[c] = 0.0;  // identity: i * 1.0 + 0.0 is exact
      if (hi[c] > lo[c]) {
        scale[c] = 255.0 / (hi[c] - lo[c]);
        offset[c] = -lo[c] * scale[c];
      }
    }
    return autocontrast_avx2(img.data.data(), img.data.size(), scale, offset);
  }
#endif
  uint32_t hist[3][256];
  histograms(img, hist);
  Lut lut;
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 256 && hist[c][lo] == 0) ++lo;
    while (hi >= 0 && hist[c][hi] == 0) --hi;
    if (hi <= lo) {
      for (int i = 0; i < 256; ++i) lut[c][i] = static_cast<uint8_t>(i);
      continue;
    }
    const double scale = 255.0 / (hi - lo);
    const double offset = -lo * scale;
    for (int i = 0; i < 256; ++i) {
      const int v = static_cast<int>(i * scale + offset);  // Python int(): toward zero
      lut[c][i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
  apply_lut(img, lut);
}

void ra_equalize(ImageU8& img) {
  uint32_t hist[3][256];
  histograms(img, hist);
  Lut lut;
  for (int c = 0; c < 3; ++c) {
    uint64_t total = 0, last = 0, nonzero = 0;
    for (int i = 0; i < 256; ++i)
      if (hist[c][i]) {
        total += hist[c][i];
        last = hist[c][i];
        ++nonzero;
      }
    const uint64_t step = nonzero <= 1 ? 0 : (total - last) / 255;  // as ImageOps.equalize
    if (step == 0) {
      for (int i = 0; i < 256; ++i) lut[c][i] = static_cast<uint8_t>(i);
      continue;
    }
    uint64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      const uint64_t v = n / step;
      lut[c][i] = static_cast<uint8_t>(v > 255 ? 255 : v);
      n += hist[c][i];
    }
  }
  apply_lut(img, lut);
}

void ra_invert(ImageU8& img) {
  for (uint8_t& v : img.data) v = static_cast<uint8_t>(255 - v);
}

void ra_posterize(ImageU8& img, int bits) {
  if (bits >= 8) return;
  if (bits < 0) bits = 0;
  const uint8_t mask = static_cast<uint8_t>(~((1 << (8 - bits)) - 1) & 0xFF);
  for (uint8_t& v : img.data) v &= mask;
}

void ra_solarize(ImageU8& img, double threshold) {
  uint8_t lut[256];
  int below = 0;  // how many levels stay (i < threshold)
  for (int i = 0; i < 256; ++i) {
    lut[i] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
    below += i < threshold;
  }
  apply_lut1_shaped(img, lut, LutShape{below, 0, false, true});
}

void ra_solarize_add(ImageU8& img, int add, int threshold) {
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) {
    const int v = i < threshold ? std::min(255, std::max(0, i + add)) : i;
    lut[i] = static_cast<uint8_t>(v);
  }
  apply_lut1_shaped(img, lut, LutShape{std::min(256, std::max(0, threshold)), add, false, false});
}

void ra_color(ImageU8& img, float factor) {
  const size_t n = static_cast<size_t>(img.h) * img.w;
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) {  // luma fused, no temporary
    if (factor >= 0.0f && factor <= 1.0f) return color_avx2<false>(img.data.data(), n, factor);
    return color_avx2<true>(img.data.data(), n, factor);
  }
#endif
  thread_local std::vector<uint8_t> deg;  // reused per thread
  deg.resize(img.data.size());
  for (size_t i = 0; i < n; ++i) deg[3 * i] = deg[3 * i + 1] = deg[3 * i + 2] = luma(&img.data[3 * i]);
  blend_with(img, deg, factor);
}

void ra_contrast(ImageU8& img, float factor) {
  const size_t n = static_cast<size_t>(img.h) * img.w;
  if (n == 0) return;
  uint64_t sum = 0;
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) sum = luma_sum_avx2(img.data.data(), n);
  else
#endif
    for (size_t i = 0; i < n; ++i) sum += luma(&img.data[3 * i]);
  const double mean = static_cast<double>(sum) / static_cast<double>(n);
  blend_const(img, static_cast<int>(mean + 0.5), factor);
}

void ra_brightness(ImageU8& img, float factor) { blend_const(img, 0, factor); }

void ra_sharpness(ImageU8& img, float factor) {
  // ImageFilter.SMOOTH: 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, rounded, borders copied.
  // Integer sum then round(s / 13) = (2 s + 13) / 26: equal to Pillow's float kernel
  // with +0.5 rounding, since s / 13 is never within float error of a .5 tie.
  // Border samples blend with themselves, which leaves them unchanged for any factor.
  const int W = img.w, rowlen = 3 * W;
#ifdef TINYVIT_COLOUR_SIMD
  if (g_colour_avx2) {
    if (img.h < 3 || W < 3) return;
    // Row y's output needs rows y - 1 and y + 1 unmodified: it is held back in a row
    // buffer and written once row y + 1 has been computed.
    thread_local std::vector<uint8_t> rows;  // reused per thread
    thread_local std::vector<uint16_t> col;
    rows.resize(2 * static_cast<size_t>(rowlen));
    col.resize(static_cast<size_t>(rowlen));
    uint8_t* done = rows.data();      // output of row y - 1
    uint8_t* cur = done + rowlen;     // output of row y
    const size_t inner = static_cast<size_t>(rowlen) - 6;
    const bool in_range = factor >= 0.0f && factor <= 1.0f;
    for (int y = 1; y + 1 < img.h; ++y) {
      if (in_range) sharpen_row_avx2<false>(img.row(y - 1), img.row(y), img.row(y + 1), cur, col.data(), rowlen, factor);
      else sharpen_row_avx2<true>(img.row(y - 1), img.row(y), img.row(y + 1), cur, col.data(), rowlen, factor);
      if (y > 1) std::memcpy(img.row(y - 1) + 3, done + 3, inner);
      std::swap(done, cur);
    }
    std::memcpy(img.row(img.h - 2) + 3, done + 3, inner);
    return;
  }
#endif
  thread_local std::vector<uint8_t> deg;  // reused per thread
  deg.assign(img.data.begin(), img.data.end());
  for (int y = 1; y + 1 < img.h; ++y) {
    const uint8_t* a = img.row(y - 1);
    const uint8_t* m = img.row(y);
    const uint8_t* b = img.row(y + 1);
    uint8_t* o = deg.data() + static_cast<size_t>(y) * rowlen;
    for (int i = 3; i < rowlen - 3; ++i) {
      const int s = a[i - 3] + a[i] + a[i + 3] + m[i - 3] + 5 * m[i] + m[i + 3] + b[i - 3] + b[i] +
                    b[i + 3];
      o[i] = static_cast<uint8_t>(smooth_round(s));
    }
  }
  blend_with(img, deg, factor);
}

bool ra_colour_simd(bool on) {
#ifdef TINYVIT_COLOUR_SIMD
  static const bool cpu = __builtin_cpu_supports("avx2");
#else
  const bool cpu = false;
#endif
  const bool was = g_colour_avx2;
  g_colour_avx2 = on && cpu;
  return was;
}

void det_sincos_deg(double degrees, double* s_out, double* c_out) {
  // Reduce exactly in degrees to [0, 360), then to an octant, then Taylor series on
  // [0, pi/4] (terms to x^17 / x^18: error < 1e-17).
  double d = std::fmod(degrees, 360.0);
  if (d < 0) d += 360.0;
  int quadrant = static_cast<int>(d / 90.0);
  if (quadrant > 3) quadrant = 3;
  double r = d - 90.0 * quadrant;  // [0, 90)
  bool swap = false;
  if (r > 45.0) {
    r = 90.0 - r;
    swap = true;
  }
  const double x = r * (3.14159265358979323846 / 180.0), x2 = x * x;
  double sn = 0.0, cs = 0.0, term_s = x, term_c = 1.0;
  for (int k = 1; k <= 9; ++k) {
    sn += term_s;
    cs += term_c;
    term_s = -term_s * x2 / ((2.0 * k) * (2.0 * k + 1.0));
    term_c = -term_c * x2 / ((2.0 * k - 1.0) * (2.0 * k));
  }
  if (swap) std::swap(sn, cs);  // sin(90 - r) = cos r
  double s, c;
  switch (quadrant) {
    case 0: s = sn; c = cs; break;
    case 1: s = cs; c = -sn; break;
    case 2: s = -sn; c = -cs; break;
    default: s = -cs; c = sn; break;
  }
  *s_out = s;
  *c_out = c;
}

void ra_rotate(ImageU8& img, double degrees, Interp resample, const uint8_t fill[3]) {
  // Image.rotate(degrees, resample, fillcolor=fill) with expand=False.
  double angle = std::fmod(degrees, 360.0);
  if (angle < 0) angle += 360.0;
  if (angle == 0.0) return;
  if (angle == 180.0) return rotate180(img);
  if ((angle == 90.0 || angle == 270.0) && img.w == img.h)
    return rotate90_square(img, angle == 90.0 ? 1 : 3);
  double sn, cs;
  det_sincos_deg(-angle, &sn, &cs);
  const double a = round15(cs), b = round15(sn), d = round15(-sn), e = round15(cs);
  const double cx = img.w / 2.0, cy = img.h / 2.0;
  const double m[6] = {a, b, a * (-cx) + b * (-cy) + cx, d, e, d * (-cx) + e * (-cy) + cy};
  affine_warp(img, m, resample, fill);
}

void ra_shear_x(ImageU8& img, double f, Interp r, const uint8_t fill[3]) {
  const double m[6] = {1, f, 0, 0, 1, 0};
  affine_warp(img, m, r, fill);
}
void ra_shear_y(ImageU8& img, double f, Interp r, const uint8_t fill[3]) {
  const double m[6] = {1, 0, 0, f, 1, 0};
  affine_warp(img, m, r, fill);
}
void ra_translate_x(ImageU8& img, double px, Interp r, const uint8_t fill[3]) {
  const double m[6] = {1, 0, px, 0, 1, 0};
  affine_warp(img, m, r, fill);
}
void ra_translate_y(ImageU8& img, double px, Interp r, const uint8_t fill[3]) {
  const double m[6] = {1, 0, 0, 0, 1, px};
  affine_warp(img, m, r, fill);
}

void color_jitter(ImageU8& img, const float factors[4], const uint8_t order[4]) {
  for (int k = 0; k < 4; ++k)
    if (!std::isfinite(factors[k]) || std::fabs(factors[k]) > 1e9)
      throw std::invalid_argument("colour jitter factors must be finite");
  for (int k = 0; k < 4; ++k) {
    switch (order[k]) {
      case 0: if (factors[0] != 1.0f) ra_brightness(img, factors[0]); break;
      case 1: if (factors[1] != 1.0f) ra_contrast(img, factors[1]); break;
      case 2: if (factors[2] != 1.0f) ra_color(img, factors[2]); break;
      case 3: if (factors[3] != 0.0f) adjust_hue(img, factors[3]); break;
      default: throw std::invalid_argument("color_jitter: order entries must be 0..3");
    }
  }
}

void apply_ra_step(ImageU8& img, const RaStep& st, const uint8_t fill[3]) {
  const double arg = st.arg;
  // Float-to-int conversions below are undefined for NaN/inf: refuse them up front.
  if (!std::isfinite(arg) || std::fabs(arg) > 1e9)
    throw std::invalid_argument("RandAugment argument must be finite, got " + std::to_string(arg));
  switch (st.op) {
    case RaOp::AutoContrast: return ra_autocontrast(img);
    case RaOp::Equalize: return ra_equalize(img);
    case RaOp::Invert: return ra_invert(img);
    case RaOp::Rotate: return ra_rotate(img, arg, st.resample, fill);
    case RaOp::Posterize:
    case RaOp::PosterizeIncreasing: return ra_posterize(img, static_cast<int>(std::lround(arg)));
    case RaOp::Solarize:
    case RaOp::SolarizeIncreasing: return ra_solarize(img, arg);
    case RaOp::SolarizeAdd: return ra_solarize_add(img, static_cast<int>(std::lround(arg)));
    case RaOp::Color:
    case RaOp::ColorIncreasing: return ra_color(img, st.arg);
    case RaOp::Contrast:
    case RaOp::ContrastIncreasing: return ra_contrast(img, st.arg);
    case RaOp::Brightness:
    case RaOp::BrightnessIncreasing: return ra_brightness(img, st.arg);
    case RaOp::Sharpness:
    case RaOp::SharpnessIncreasing: return ra_sharpness(img, st.arg);
    case RaOp::ShearX: return ra_shear_x(img, arg, st.resample, fill);
    case RaOp::ShearY: return ra_shear_y(img, arg, st.resample, fill);
    case RaOp::TranslateXRel: return ra_translate_x(img, arg, st.resample, fill);
    case RaOp::TranslateYRel: return ra_translate_y(img, arg, st.resample, fill);
    default: throw std::invalid_argument("unknown RandAugment op");
  }
}

}  // namespace tinyvit
