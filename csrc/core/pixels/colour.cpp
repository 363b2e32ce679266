// The colour / pixel RandAugment ops (colour.h) with Pillow's semantics: LUT ops and
// ImageEnhance blends. Scalar code here; the AVX2 kernels (colour_avx2.cpp) produce the
// same bytes and are taken when colour_simd_on().
#include "core/pixels/colour.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/pixels/colour_internal.h"

namespace tinyvit {

namespace {

using namespace colour_detail;

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

// Applies a LUT of solarize shape in SIMD when the shape reproduces it exactly.
void apply_lut1_shaped(ImageU8& img, const uint8_t lut[256], const LutShape& s) {
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) {
    bool same = true;
    for (int i = 0; i < 256; ++i) same &= shape_eval(s, i) == lut[i];
    if (same) return lut_shape_avx2(img.data.data(), img.data.size(), s);
  }
#endif
  (void)s;
  apply_lut1(img, lut);
}

void apply_lut(ImageU8& img, const Lut lut) {
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) return lut3_avx2(img.data.data(), img.data.size(), lut);
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
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) {
    return blend_const_avx2(img.data.data(), deg, img.data.size(), alpha, !(alpha >= 0.0f && alpha <= 1.0f));
  }
#endif
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) lut[i] = blend1(deg, i, alpha);
  apply_lut1(img, lut);
}

}  // namespace

void ra_autocontrast(ImageU8& img) {
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) {  // the histogram's first and last non-empty bins are the min and max
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
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) {  // luma fused, no temporary
    return color_avx2(img.data.data(), n, factor, !(factor >= 0.0f && factor <= 1.0f));
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
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) sum = luma_sum_avx2(img.data.data(), n);
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
#ifdef TINYVIT_X86_SIMD
  if (colour_simd_on()) {
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
      sharpen_row_avx2(img.row(y - 1), img.row(y), img.row(y + 1), cur, col.data(), rowlen, factor, !in_range);
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

}  // namespace tinyvit
