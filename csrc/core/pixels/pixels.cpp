#include "core/pixels/pixels.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "core/pixels/jpeg_decode.h"
#include "core/pixels/randaugment.h"
#include "core/pixels/resize.h"

namespace tinyvit {

void validate_plan(const Plan& p, int src_w, int src_h, const ApplyParams& params) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("plan: " + m); };
  if (params.out_h <= 0 || params.out_w <= 0) fail("output size must be positive");
  if (p.src_w != src_w || p.src_h != src_h)
    fail("made for a " + std::to_string(p.src_w) + "x" + std::to_string(p.src_h) +
         " source but the image is " + std::to_string(src_w) + "x" + std::to_string(src_h));
  if (p.crop_w <= 0 || p.crop_h <= 0 || p.crop_x < 0 || p.crop_y < 0 ||
      int64_t{p.crop_x} + p.crop_w > src_w || int64_t{p.crop_y} + p.crop_h > src_h)
    fail("crop (x=" + std::to_string(p.crop_x) + ", y=" + std::to_string(p.crop_y) + ", w=" +
         std::to_string(p.crop_w) + ", h=" + std::to_string(p.crop_h) + ") is outside the " +
         std::to_string(src_w) + "x" + std::to_string(src_h) + " source");
  if (p.resize == Interp::Random || static_cast<int>(p.resize) > 3) fail("resize must be resolved");
  for (const RaStep& s : p.ra) {
    if (static_cast<int>(s.op) >= static_cast<int>(RaOp::Count)) fail("unknown RandAugment op");
    if (s.resample == Interp::Random || static_cast<int>(s.resample) > 3)
      fail("RandAugment resample must be resolved");
  }
}

void apply_after_resize(const Plan& plan, const ApplyParams& params, ImageU8& img, bool flipped) {
  if (plan.flip && !flipped) flip_horizontal(img);
  for (const RaStep& step : plan.ra) apply_ra_step(img, step, params.fill);
  // timm appends ColorJitter after RandAugment (plan.h).
  if (plan.jitter) color_jitter(img, plan.jitter_factors, plan.jitter_order);
}

void apply_plan(const Plan& plan, const ImageView& src, const ApplyParams& params, uint8_t* out) {
  validate_plan(plan, src.w, src.h, params);
  const double box[4] = {static_cast<double>(plan.crop_x), static_cast<double>(plan.crop_y),
                         static_cast<double>(plan.crop_x) + plan.crop_w,
                         static_cast<double>(plan.crop_y) + plan.crop_h};
  ImageU8 img(params.out_h, params.out_w);
  resize_box(src, box, plan.resize, img, plan.flip);
  apply_after_resize(plan, params, img, true);
  std::memcpy(out, img.data.data(), img.data.size());
}

ImageU8 apply_plan(const Plan& plan, const ImageView& src, const ApplyParams& params) {
  ImageU8 out(params.out_h, params.out_w);
  apply_plan(plan, src, params, out.data.data());
  return out;
}

void apply_plan_jpeg(const Plan& plan, const uint8_t* data, size_t size, const ApplyParams& params,
                     uint8_t* out, int scale_denom) {
  JpegDecoder decoder;
  decoder.open(data, size);
  apply_plan_jpeg(plan, decoder, params, out, scale_denom);
}

void apply_plan_jpeg(const Plan& plan, JpegDecoder& decoder, const ApplyParams& params,
                     uint8_t* out, int scale_denom) {
  if (!decoder.is_open()) throw std::logic_error("apply_plan_jpeg: the decoder is not open");
  // Size check before any pixel is decoded: a plan for another image is a caller bug.
  const JpegInfo& info = decoder.info();
  validate_plan(plan, info.width, info.height, params);
  // Decoded scanlines go into a per-thread buffer reused across images (no allocation,
  // page faults or copy per image); a very large one is released afterwards.
  thread_local std::vector<uint8_t> scratch;
  ImageU8 fallback;
  double box[4];
  ImageView region = decoder.decode_region_into(plan.crop_x, plan.crop_y, plan.crop_w, plan.crop_h,
                                                params.out_w, params.out_h,
                                                filter_support(plan.resize), scale_denom, scratch,
                                                fallback, box);
  // Guard against float rounding at the scaled image border.
  for (int k = 0; k < 2; ++k) {
    const double limit = k == 0 ? region.w : region.h;
    if (box[2 + k] > limit) box[2 + k] = limit;
    if (box[k] < 0) box[k] = 0;
  }
  thread_local ImageU8 img;  // working image, reused per thread
  img.reshape(params.out_h, params.out_w);  // resize_box writes every pixel
  resize_box(region, box, plan.resize, img, plan.flip);
  if (scratch.capacity() > (size_t{64} << 20)) std::vector<uint8_t>().swap(scratch);
  apply_after_resize(plan, params, img, true);
  std::memcpy(out, img.data.data(), img.data.size());
}

}  // namespace tinyvit
