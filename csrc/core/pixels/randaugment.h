// RandAugment operations on uint8 RGB images, with Pillow's semantics (the ops timm's
// RandAugment calls: ImageOps / ImageEnhance / transform). The colour ops and colour
// jitter are in colour.h; the geometric ops and the step dispatch here. Each op takes the
// plan's already-resolved argument; nothing here draws random numbers.
#pragma once

#include "core/pixels/colour.h"
#include "core/pixels/image.h"
#include "core/plan/plan.h"
#include "core/pixels/warp.h"

namespace tinyvit {

// Affine warps (affine_warp, in warp.h): rotate about the centre, shear, translate.
void ra_rotate(ImageU8& img, double degrees, Interp resample, const uint8_t fill[3]);  // CCW, about the centre
void ra_shear_x(ImageU8& img, double factor, Interp resample, const uint8_t fill[3]);
void ra_shear_y(ImageU8& img, double factor, Interp resample, const uint8_t fill[3]);
void ra_translate_x(ImageU8& img, double pixels, Interp resample, const uint8_t fill[3]);
void ra_translate_y(ImageU8& img, double pixels, Interp resample, const uint8_t fill[3]);

// One RandAugment step; the fill colour is the config's (timm's image mean).
void apply_ra_step(ImageU8& img, const RaStep& step, const uint8_t fill[3]);

// Deterministic sin/cos of an angle in degrees (no libm: identical on every platform).
void det_sincos_deg(double degrees, double* s, double* c);

}  // namespace tinyvit
