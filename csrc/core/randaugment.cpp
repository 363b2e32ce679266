#include "randaugment.h"

#include "cpu_dispatch.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TINYVIT_NO_DISPATCH)
#include <immintrin.h>
#define TINYVIT_WARP_SIMD 1
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinyvit {

namespace {

using Lut = uint8_t[3][256];

void apply_lut(ImageU8& img, const Lut lut) {
  uint8_t* p = img.data.data();
  const size_t n = static_cast<size_t>(img.h) * img.w;
  for (size_t i = 0; i < n; ++i) {
    p[3 * i] = lut[0][p[3 * i]];
    p[3 * i + 1] = lut[1][p[3 * i + 1]];
    p[3 * i + 2] = lut[2][p[3 * i + 2]];
  }
}

void apply_lut1(ImageU8& img, const uint8_t lut[256]) {
  for (uint8_t& v : img.data) v = lut[v];
}

void histograms(const ImageU8& img, uint32_t hist[3][256]) {
  std::memset(hist, 0, sizeof(uint32_t) * 3 * 256);
  const uint8_t* p = img.data.data();
  const size_t n = static_cast<size_t>(img.h) * img.w;
  for (size_t i = 0; i < n; ++i) {
    ++hist[0][p[3 * i]];
    ++hist[1][p[3 * i + 1]];
    ++hist[2][p[3 * i + 2]];
  }
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

// Blend with a constant degenerate value: a LUT.
void blend_const(ImageU8& img, int deg, float alpha) {
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) lut[i] = blend1(deg, i, alpha);
  apply_lut1(img, lut);
}

// Pillow's COORD: -1 below 0. NaN and values beyond int range map to -1 too (both are
// outside the image), so the int conversion is always defined.
inline int coord(double v) { return (v >= 0.0 && v < 2147483647.0) ? static_cast<int>(v) : -1; }
// floor without a libm call (std::floor is not inlined without SSE4.1); exact for
// the |v| < 2^31 coordinates used here.
inline int floor_int(double v) {
  const int i = static_cast<int>(v);
  return v < i ? i - 1 : i;
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
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
  apply_lut1(img, lut);
}

void ra_solarize_add(ImageU8& img, int add, int threshold) {
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) {
    const int v = i < threshold ? std::min(255, std::max(0, i + add)) : i;
    lut[i] = static_cast<uint8_t>(v);
  }
  apply_lut1(img, lut);
}

void ra_color(ImageU8& img, float factor) {
  thread_local std::vector<uint8_t> deg;  // reused per thread
  deg.resize(img.data.size());
  const size_t n = static_cast<size_t>(img.h) * img.w;
  for (size_t i = 0; i < n; ++i) deg[3 * i] = deg[3 * i + 1] = deg[3 * i + 2] = luma(&img.data[3 * i]);
  blend_with(img, deg, factor);
}

void ra_contrast(ImageU8& img, float factor) {
  const size_t n = static_cast<size_t>(img.h) * img.w;
  if (n == 0) return;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += luma(&img.data[3 * i]);
  const double mean = static_cast<double>(sum) / static_cast<double>(n);
  blend_const(img, static_cast<int>(mean + 0.5), factor);
}

void ra_brightness(ImageU8& img, float factor) { blend_const(img, 0, factor); }

void ra_sharpness(ImageU8& img, float factor) {
  // ImageFilter.SMOOTH: 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, rounded, borders copied.
  // Integer sum then round(s / 13) = (2 s + 13) / 26: equal to Pillow's float kernel
  // with +0.5 rounding, since s / 13 is never within float error of a .5 tie.
  thread_local std::vector<uint8_t> deg;  // reused per thread
  deg.assign(img.data.begin(), img.data.end());
  const int W = img.w, rowlen = 3 * W;
  for (int y = 1; y + 1 < img.h; ++y) {
    const uint8_t* a = img.row(y - 1);
    const uint8_t* m = img.row(y);
    const uint8_t* b = img.row(y + 1);
    uint8_t* o = deg.data() + static_cast<size_t>(y) * rowlen;
    for (int i = 3; i < rowlen - 3; ++i) {
      const int s = a[i - 3] + a[i] + a[i + 3] + m[i - 3] + 5 * m[i] + m[i + 3] + b[i - 3] + b[i] +
                    b[i + 3];
      o[i] = static_cast<uint8_t>((2 * s + 13) / 26);
    }
  }
  blend_with(img, deg, factor);
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
