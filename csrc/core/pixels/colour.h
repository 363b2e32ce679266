// The colour / pixel RandAugment ops and colour jitter on uint8 RGB images, with Pillow's
// semantics (ImageOps / ImageEnhance, as timm's RandAugment calls them), computed with
// integer or fixed-order float arithmetic so results are identical on every platform.
// Each op takes the plan's already-resolved argument; nothing here draws random numbers.
#pragma once

#include <cstdint>

#include "core/pixels/image.h"

namespace tinyvit {

// LUT ops (colour.cpp).
void ra_autocontrast(ImageU8& img);
void ra_equalize(ImageU8& img);
void ra_invert(ImageU8& img);
void ra_posterize(ImageU8& img, int bits);              // keep the top `bits` bits (0..8)
void ra_solarize(ImageU8& img, double threshold);       // v >= threshold -> 255 - v
void ra_solarize_add(ImageU8& img, int add, int threshold = 128);  // v < thr -> min(255, v + add)

// ImageEnhance-style blends of the image with a degenerate image by `factor`
// (factor 1 = identity, 0 = the degenerate image; > 1 extrapolates, clipped).
void ra_color(ImageU8& img, float factor);       // degenerate: greyscale (ITU-R 601 luma)
void ra_contrast(ImageU8& img, float factor);    // degenerate: mean grey level
void ra_brightness(ImageU8& img, float factor);  // degenerate: black
void ra_sharpness(ImageU8& img, float factor);   // degenerate: 3x3 smooth filter

// Tests: turn the AVX2 kernels of the colour ops off (scalar reference) or on (where the
// CPU has them); returns the previous setting. Both give identical bytes (colour_avx2.cpp).
bool ra_colour_simd(bool on);

// torchvision ColorJitter on PIL images (jitter.cpp): factors for brightness, contrast,
// saturation, and a hue shift in [-0.5, 0.5] (applied in PIL's 8-bit HSV space), in `order`.
void color_jitter(ImageU8& img, const float factors[4], const uint8_t order[4]);

}  // namespace tinyvit
