// RandAugment (randaugment.h): the geometric ops (rotate, shear, translate; affine_warp
// in warp.cpp) and apply_ra_step, which dispatches a plan step to its op.
#include "core/pixels/randaugment.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace tinyvit {

namespace {

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

}  // namespace

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