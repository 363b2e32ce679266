// Internals of the separable resampler (resize.cpp): the fixed-point filter coefficients
// (resize_coeffs.cpp) and the two passes (resize_passes.cpp). Exposed for resize.cpp and
// the white-box test tests/cpp/test_resize_internal.cpp, nothing else.
#pragma once

#include <cstdint>
#include <vector>

#include "core/pixels/image.h"
#include "core/plan/plan.h"

namespace tinyvit {
namespace resize_detail {

constexpr int kPrecisionBits = 22;  // weights * 255 * |sum w| stays below 2^31

struct Coeffs {
  int ksize = 0;
  std::vector<int> start, count;  // per output pixel: first input index, number of taps
  std::vector<int32_t> w;         // out * ksize fixed-point weights
};

// Coefficients of one axis for the output box [in0, in1) of an axis of in_size pixels
// (Bilinear or Bicubic): the AVX2 form where the CPU has it, else precompute_scalar; both
// give identical weights.
Coeffs precompute(int in_size, double in0, double in1, int out_size, Interp filter);
Coeffs precompute_scalar(int in_size, double in0, double in1, int out_size, Interp filter);

inline uint8_t clip_fixed(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift: floor for negatives
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row0, row1) of src into dst (row1 - row0 rows, out_w wide).
void pass_horizontal(const ImageView& src, int row0, int row1, const Coeffs& c, int out_w, ImageU8& dst);
// Vertical pass: src row index = coefficient start - row_offset; dst gets out_h rows.
void pass_vertical(const ImageView& src, int row_offset, const Coeffs& c, int out_h, ImageU8& dst);

}  // namespace resize_detail
}  // namespace tinyvit
