// Applying an augmentation plan to pixels: crop + resize -> flip -> RandAugment
// -> [colour jitter] (timm's order), producing uint8 out_h x out_w x 3. Draws no random numbers: the same
// plan and source give the same bytes on every call, thread and process.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/pixels/image.h"
#include "core/plan/plan.h"

namespace tinyvit {

class JpegDecoder;

// What apply needs from the config besides the plan.
struct ApplyParams {
  int out_h = 224, out_w = 224;
  uint8_t fill[3] = {124, 116, 104};
  static ApplyParams from(const AugConfig& cfg) {
    ApplyParams p;
    p.out_h = cfg.out_h;
    p.out_w = cfg.out_w;
    for (int c = 0; c < 3; ++c) p.fill[c] = cfg.fill[c];
    return p;
  }
};

// Checks the plan against the source size; throws std::invalid_argument naming the field.
void validate_plan(const Plan& plan, int src_w, int src_h, const ApplyParams& params);

// Steps after the crop/resize (flip, RandAugment, jitter), in place on an out-size image.
// flipped = true: the flip was already done (resize_box's mirror).
void apply_after_resize(const Plan& plan, const ApplyParams& params, ImageU8& img,
                        bool flipped = false);

// Plan on a decoded RGB image (any source): writes out_h * out_w * 3 bytes to `out`.
void apply_plan(const Plan& plan, const ImageView& src, const ApplyParams& params, uint8_t* out);
ImageU8 apply_plan(const Plan& plan, const ImageView& src, const ApplyParams& params);

// Plan on JPEG bytes: region-of-interest decode with DCT downscaling (scale_denom 0 =
// automatic, 1 = off), then the same steps. Throws ImageDecodeError on bad data.
void apply_plan_jpeg(const Plan& plan, const uint8_t* data, size_t size,
                     const ApplyParams& params, uint8_t* out, int scale_denom = 0);

// The same on an image already opened with `decoder.open()` (whose info made the plan):
// the header is not parsed again. The decode closes the decoder.
void apply_plan_jpeg(const Plan& plan, JpegDecoder& decoder, const ApplyParams& params,
                     uint8_t* out, int scale_denom = 0);

}  // namespace tinyvit
