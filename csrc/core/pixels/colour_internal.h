// Internals shared by the colour-op translation units: colour.cpp (the ops, scalar paths)
// and colour_avx2.cpp (their AVX2 kernels, same bytes).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "core/util/cpu_dispatch.h"

namespace tinyvit {
namespace colour_detail {

using Lut = uint8_t[3][256];

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

// Whether the ops take their AVX2 kernels: the CPU has AVX2 and ra_colour_simd has not
// turned them off.
bool colour_simd_on();

#ifdef TINYVIT_X86_SIMD
// AVX2 kernels (colour_avx2.cpp), each equal to the scalar code it replaces. `clip`: alpha
// is outside [0, 1], so blends can leave [0, 255] and are clipped.
void blend_const_avx2(uint8_t* p, int deg, size_t n, float alpha, bool clip);  // blend1 per byte
uint64_t luma_sum_avx2(const uint8_t* p, size_t n);                            // sum of n pixels' luma
void color_avx2(uint8_t* p, size_t n, float alpha, bool clip);                 // blend with own luma
// One interior sharpness row (see ra_sharpness); col: rowlen uint16 of scratch.
void sharpen_row_avx2(const uint8_t* a, const uint8_t* m, const uint8_t* b, uint8_t* o, uint16_t* col,
                      int rowlen, float alpha, bool clip);
void lut_shape_avx2(uint8_t* p, size_t n, const LutShape& s);                  // shape_eval per byte
void minmax_avx2(const uint8_t* p, size_t n, int lo[3], int hi[3]);            // per channel
void autocontrast_avx2(uint8_t* p, size_t n, const double sc[3], const double of[3]);
void lut3_avx2(uint8_t* p, size_t n, const Lut lut);                           // per-channel LUT
#endif

}  // namespace colour_detail
}  // namespace tinyvit
