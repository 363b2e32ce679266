// Separable resampling of a float box of an RGB uint8 image (PIL's convolution
// resampler semantics: antialiased when downscaling, fixed-point weights), plus flip.
#pragma once

#include "core/pixels/image.h"
#include "core/plan/plan.h"

namespace tinyvit {

// Filter support radius in output pixels at scale 1 (0 for nearest).
double filter_support(Interp filter);

// Resamples src's box [x0, x1) x [y0, y1) (source pixel coordinates, fractional allowed,
// inside the image) to out (whose h/w give the output size). Bilinear and bicubic
// (a = -0.5) widen the kernel by the downscale factor (antialiasing), use 22-bit
// fixed-point weights and round once per pass, exactly like Pillow's Image.resize(...,
// box=...); nearest samples floor(x0 + (i + 0.5) * scale) like Pillow's nearest resize.
void resize_box(const ImageView& src, const double box[4], Interp filter, ImageU8& out);
// The same followed by a left-right mirror when `mirror` is set, at no extra cost where a
// horizontal pass runs (it writes its columns in reverse order; each output column is
// computed exactly as without the mirror, so the bytes equal resize + flip_horizontal).
void resize_box(const ImageView& src, const double box[4], Interp filter, ImageU8& out, bool mirror);

// Mirror left-right in place.
void flip_horizontal(ImageU8& img);

}  // namespace tinyvit
