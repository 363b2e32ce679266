// torchvision ColorJitter on PIL images (colour.h): brightness, contrast and saturation
// through the ImageEnhance ops, and the hue shift in PIL's 8-bit HSV space.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "core/pixels/colour.h"

namespace tinyvit {

namespace {

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

}  // namespace tinyvit
