// Affine warps by inverse mapping on uint8 RGB images (the machinery behind the
// RandAugment rotate / shear / translate ops in randaugment.cpp).
#pragma once

#include "core/pixels/image.h"
#include "core/plan/plan.h"

namespace tinyvit {

// Output pixel centre (x + .5, y + .5) samples the input at (a0 X + a1 Y + a2,
// a3 X + a4 Y + a5); samples outside the image get `fill`. Nearest, or bilinear/bicubic
// with fixed-point weights (results are integers, identical on every CPU).
void affine_warp(ImageU8& img, const double a[6], Interp resample, const uint8_t fill[3]);

}  // namespace tinyvit
