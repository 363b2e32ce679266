// The augmentation plan: every random parameter of one (sample, epoch), decoded from
// its 4-byte seed by make_plan() (plan.cpp). Applying a plan draws nothing, so the
// student replays exactly the pixels the teacher saw.
//
// Pipeline order (as timm's create_transform(is_training=True), then timm's Mixup 'elem'):
//   RandomResizedCrop -> horizontal flip -> RandAugment -> [colour jitter]  (uint8, C++/PIL)
//   -> normalize -> RandomErasing -> Mixup/CutMix with the pair partner      (torch device ops)
// (timm appends ColorJitter after RandAugment in its secondary transforms, so we do too.)
// make_plan draws in exactly this order; the full draw list is documented in plan.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/plan/names.h"

namespace tinyvit {

// Bump whenever make_plan's draw order or any apply semantics change: it is part of
// AugConfig's fingerprint, so stores written under an older plan format are refused.
constexpr int kPlanFormatVersion = 1;

struct AugConfig {
  int out_h = 224, out_w = 224;
  Interp interpolation = Interp::Bicubic;  // for the crop resize; Random draws per sample
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0.5;
  // RandAugment (timm semantics: each chosen op applied with prob ra_prob; magnitude
  // ~ N(ra_magnitude, ra_mstd) clipped to [0, ra_mmax] when ra_mstd > 0).
  bool ra_enabled = false;
  std::vector<RaOp> ra_ops;  // the op set to choose from (uniformly, with replacement)
  int ra_num_ops = 2;
  double ra_magnitude = 9.0, ra_mstd = 0.5, ra_mmax = 10.0, ra_prob = 0.5;
  Interp ra_interpolation = Interp::Random;  // resample filter for geometric RA ops
  uint8_t fill[3] = {124, 116, 104};         // fill for geometric RA ops (timm's img_mean)
  // Colour jitter ranges as torchvision's ColorJitter(b, c, s, h) (0 disables one); applied
  // after RandAugment (timm's order).
  double cj_brightness = 0, cj_contrast = 0, cj_saturation = 0, cj_hue = 0;
  // RandomErasing on the normalized tensor.
  double re_prob = 0.0;
  EraseMode re_mode = EraseMode::Pixel;
  int re_min_count = 1, re_max_count = 1;
  double re_min_area = 0.02, re_max_area = 1.0 / 3.0, re_min_aspect = 0.3;
  // Mixup / CutMix (per-sample 'elem' mode: each sample mixes with its pair partner).
  double mixup_alpha = 0.0, cutmix_alpha = 0.0, mix_prob = 1.0, switch_prob = 0.5;
};

// One RandAugment op that applies, with its argument resolved exactly as timm's level
// functions do (sign already drawn):
//   Rotate: degrees (counter-clockwise, PIL's Image.rotate convention), |arg| = m/10*30
//   ShearX/ShearY: shear factor of PIL's affine (1, arg, 0, 0, 1, 0) / (1, 0, 0, arg, 1, 0)
//   TranslateXRel/TranslateYRel: OUTPUT pixels, = +-m/10*0.45 * out_w (resp. out_h), as
//     timm's translate_x_rel(pct * img.size[0]); not rounded (PIL affine takes a float)
//   Posterize*: bits to keep (0..4; >= 8 would be identity), Solarize*: threshold (0..256),
//   SolarizeAdd: value added below threshold 128, Color/Contrast/Brightness/Sharpness*:
//   enhance factor (1 = identity). AutoContrast/Equalize/Invert: arg 0 (unused).
struct RaStep {
  RaOp op;
  float arg;
  Interp resample; // Bilinear/Bicubic/Nearest for geometric ops; Nearest (unused) otherwise
};

struct EraseBox {
  int x, y, w, h;       // in output pixels
  uint32_t noise_seed;  // Rand/Pixel modes: PCG32(noise_seed, kStreamEraseNoise) fills the box
};

struct Plan {
  int src_w = 0, src_h = 0;
  // Crop in source pixels: x, y, w, h (integers, inside the source), resized to out size.
  int crop_x = 0, crop_y = 0, crop_w = 0, crop_h = 0;
  Interp resize = Interp::Bicubic;
  bool flip = false;
  bool jitter = false;                       // colour jitter present
  float jitter_factors[4] = {1, 1, 1, 0};    // brightness, contrast, saturation factors; hue shift
  uint8_t jitter_order[4] = {0, 1, 2, 3};    // order torchvision-style ColorJitter applies them
  std::vector<RaStep> ra;                    // only the steps that apply, in order
  std::vector<EraseBox> erase;
  MixMode mix = MixMode::None;
  float lam = 1.0f;                          // weight of this sample's own image
  int cut_x0 = 0, cut_y0 = 0, cut_x1 = 0, cut_y1 = 0;  // CutMix box [x0,x1) x [y0,y1), output px
};

// PCG32 stream ids (initseq) so independent parts never share a stream.
constexpr uint64_t kStreamPlan = 0x7469'6e79'7669'7401ULL;        // make_plan
constexpr uint64_t kStreamEraseNoise = 0x7469'6e79'7669'7402ULL;  // erase box noise
constexpr uint64_t kStreamPairing = 0x7469'6e79'7669'7403ULL;     // mix partner permutation
constexpr uint64_t kStreamSeeds = 0x7469'6e79'7669'7404ULL;       // per-(sample, epoch) seed generation

// Decode one seed into a plan for a source of (src_w, src_h) pixels. Throws
// std::invalid_argument on a non-positive source size or an invalid config.
Plan make_plan(uint32_t seed, int src_w, int src_h, const AugConfig& cfg);

// Throws std::invalid_argument naming the field when cfg is out of range.
void validate_config(const AugConfig& cfg);

inline bool ra_op_is_geometric(RaOp op) {
  return op == RaOp::Rotate || op == RaOp::ShearX || op == RaOp::ShearY ||
         op == RaOp::TranslateXRel || op == RaOp::TranslateYRel;
}

}  // namespace tinyvit
