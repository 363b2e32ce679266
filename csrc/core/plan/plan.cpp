// make_plan: decode a 4-byte seed into every random parameter of one augmented sample.
//
// All randomness comes from ONE generator, g = PCG32(seed, kStreamPlan), consumed in
// the fixed order below. A draw is only made when the config makes the step random, so
// the draw sequence is a function of (seed, source size, config); the config is pinned
// by AugConfig's fingerprint and the order by kPlanFormatVersion. Changing anything in
// this list changes pixels for stored seeds: bump kPlanFormatVersion.
//
//  1. RandomResizedCrop (torchvision's get_params), up to 10 attempts, each:
//       a  = uniform(scale_min, scale_max) * src_w * src_h          [1 draw]
//       r  = exp(uniform(log ratio_min, log ratio_max))              [1 draw]
//       w  = round(sqrt(a * r)), h = round(sqrt(a / r))   (round half to even, as Python)
//       if 0 < w <= src_w and 0 < h <= src_h:
//         y = bounded(src_h - h + 1), then x = bounded(src_w - w + 1); stop
//     after 10 failures: centre crop of the whole image clamped to [ratio_min, ratio_max]
//     (no draws; w, h clamped to >= 1 for degenerate sizes).
//  2. interpolation == Random: bounded(2) -> {Bilinear, Bicubic} (timm's random choice).
//  3. hflip > 0: flip = uniform() < hflip.
//  4. RandAugment (ra_enabled): first the ra_num_ops op indices, bounded(|ra_ops|) each
//     (uniform, with replacement); then for each chosen op in order:
//       ra_prob < 1: applies = uniform() < ra_prob       (skipped op: no further draws)
//       ra_mstd > 0: magnitude = uniform(0, m) when ra_mstd is +inf (timm: mstd > 100),
//                    else normal(m, ra_mstd)
//       magnitude clipped to [0, ra_mmax]
//       signed ops (Rotate, Shear*, Translate*Rel, *Increasing enhance): negate when
//         uniform() > 0.5 (timm's _randomly_negate)
//       geometric ops with ra_interpolation == Random: bounded(2) -> {Bilinear, Bicubic}
//  5. Colour jitter (any cj_* > 0): torchvision ColorJitter.get_params: a permutation of
//     the 4 functions by Fisher-Yates (for i = 3..1: j = bounded(i + 1), swap), then
//     brightness, contrast, saturation factors uniform(max(0, 1 - v), 1 + v) and the hue
//     shift uniform(-v, v), each drawn only when its v > 0.
//  6. RandomErasing (re_prob > 0) as timm's RandomErasing on the out_h x out_w image:
//       erase = uniform() < re_prob; if so
//       count = re_min_count (+ bounded(max - min + 1) when min != max); for each box up
//       to 10 attempts: area = uniform(min_area, max_area) * out_h * out_w / count,
//       aspect = exp(uniform(log min_aspect, -log min_aspect)), h = round(sqrt(area *
//       aspect)), w = round(sqrt(area / aspect)); if w < out_w and h < out_h:
//       y = bounded(out_h - h + 1), x = bounded(out_w - w + 1), noise_seed = next_u32().
//  7. Mixup/CutMix (mixup_alpha > 0 or cutmix_alpha > 0):
//       mix = uniform() < mix_prob; if so
//       both alphas > 0: cutmix = uniform() < switch_prob; else cutmix = cutmix_alpha > 0
//       lam = beta(alpha, alpha) of the chosen method
//       CutMix (timm's rand_bbox): cut = int(out * sqrt(1 - lam)) per side, cy =
//       bounded(out_h), cx = bounded(out_w), box clipped to the image, then lam = 1 - box
//       area / image area (timm's correct_lam).
#include "core/plan/plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/rng/detmath.h"
#include "core/rng/pcg32.h"

namespace tinyvit {
namespace {

// Python's round() on a non-negative double: half to even. floor and the comparisons
// are exact, so this is independent of the FPU rounding mode.
int round_half_even(double x) {
  const double f = std::floor(x);
  const double d = x - f;
  double r = f;
  if (d > 0.5 || (d == 0.5 && std::fmod(f, 2.0) != 0.0)) r = f + 1.0;
  if (r > static_cast<double>(std::numeric_limits<int>::max()))
    return std::numeric_limits<int>::max();
  return static_cast<int>(r);
}

Interp random_bilinear_bicubic(PCG32& g) {
  return g.bounded(2) == 0 ? Interp::Bilinear : Interp::Bicubic;
}

bool is_signed(RaOp op) {
  switch (op) {
    case RaOp::Rotate: case RaOp::ShearX: case RaOp::ShearY: case RaOp::TranslateXRel:
    case RaOp::TranslateYRel: case RaOp::ColorIncreasing: case RaOp::ContrastIncreasing:
    case RaOp::BrightnessIncreasing: case RaOp::SharpnessIncreasing:
      return true;
    default:
      return false;
  }
}

// timm's *_level_to_arg for magnitude level m (already clipped); `neg` is the sign draw.
double level_to_arg(RaOp op, double m, bool neg, const AugConfig& cfg) {
  const double s = neg ? -1.0 : 1.0;
  switch (op) {
    case RaOp::AutoContrast: case RaOp::Equalize: case RaOp::Invert:
      return 0.0;
    case RaOp::Rotate:
      return s * ((m / 10.0) * 30.0);
    case RaOp::ShearX: case RaOp::ShearY:
      return s * ((m / 10.0) * 0.3);
    case RaOp::TranslateXRel:
      return s * ((m / 10.0) * 0.45) * cfg.out_w;
    case RaOp::TranslateYRel:
      return s * ((m / 10.0) * 0.45) * cfg.out_h;
    case RaOp::Posterize:
      return static_cast<int>((m / 10.0) * 4.0);
    case RaOp::PosterizeIncreasing:
      return 4 - static_cast<int>((m / 10.0) * 4.0);
    case RaOp::Solarize:
      return std::min(256, static_cast<int>((m / 10.0) * 256.0));
    case RaOp::SolarizeIncreasing:
      return 256 - std::min(256, static_cast<int>((m / 10.0) * 256.0));
    case RaOp::SolarizeAdd:
      return std::min(128, static_cast<int>((m / 10.0) * 110.0));
    case RaOp::Color: case RaOp::Contrast: case RaOp::Brightness: case RaOp::Sharpness:
      return (m / 10.0) * 1.8 + 0.1;
    case RaOp::ColorIncreasing: case RaOp::ContrastIncreasing:
    case RaOp::BrightnessIncreasing: case RaOp::SharpnessIncreasing:
      return std::max(0.1, 1.0 + s * ((m / 10.0) * 0.9));
    case RaOp::Count:
      break;
  }
  throw std::invalid_argument("invalid RandAugment op");
}

void require(bool ok, const char* field, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("AugConfig.") + field + ": " + what);
}

bool prob_ok(double p) { return p >= 0.0 && p <= 1.0; }

}  // namespace

void validate_config(const AugConfig& c) {
  constexpr int kMaxSide = 1 << 16;
  require(c.out_h > 0 && c.out_h <= kMaxSide && c.out_w > 0 && c.out_w <= kMaxSide, "img_size",
          "output size must be in [1, 65536]");
  require(c.scale_min > 0.0 && c.scale_min <= c.scale_max && std::isfinite(c.scale_max),
          "scale", "need 0 < min <= max");
  require(c.ratio_min > 0.0 && c.ratio_min <= c.ratio_max && std::isfinite(c.ratio_max),
          "ratio", "need 0 < min <= max");
  require(prob_ok(c.hflip), "hflip", "must be a probability in [0, 1]");
  if (c.ra_enabled) {
    require(!c.ra_ops.empty(), "auto_augment", "empty op set");
    for (RaOp op : c.ra_ops)
      require(static_cast<int>(op) < static_cast<int>(RaOp::Count), "auto_augment", "bad op");
    require(c.ra_num_ops >= 0 && c.ra_num_ops <= 64, "auto_augment", "n must be in [0, 64]");
    require(c.ra_magnitude >= 0.0 && std::isfinite(c.ra_magnitude), "auto_augment",
            "m must be >= 0");
    require(c.ra_mstd >= 0.0, "auto_augment", "mstd must be >= 0");
    require(c.ra_mmax > 0.0 && std::isfinite(c.ra_mmax), "auto_augment", "mmax must be > 0");
    require(prob_ok(c.ra_prob), "auto_augment", "p must be in [0, 1]");
  }
  require(c.cj_brightness >= 0 && std::isfinite(c.cj_brightness), "color_jitter",
          "brightness must be >= 0");
  require(c.cj_contrast >= 0 && std::isfinite(c.cj_contrast), "color_jitter",
          "contrast must be >= 0");
  require(c.cj_saturation >= 0 && std::isfinite(c.cj_saturation), "color_jitter",
          "saturation must be >= 0");
  require(c.cj_hue >= 0 && c.cj_hue <= 0.5, "color_jitter", "hue must be in [0, 0.5]");
  require(prob_ok(c.re_prob), "re_prob", "must be a probability in [0, 1]");
  require(c.re_min_count >= 1 && c.re_min_count <= c.re_max_count && c.re_max_count <= 1024,
          "re_count", "need 1 <= min_count <= max_count <= 1024");
  require(c.re_min_area > 0.0 && c.re_min_area <= c.re_max_area && c.re_max_area <= 1.0,
          "re_area", "need 0 < min_area <= max_area <= 1");
  require(c.re_min_aspect > 0.0 && c.re_min_aspect <= 1.0, "re_min_aspect",
          "must be in (0, 1]");
  require(c.mixup_alpha >= 0.0 && std::isfinite(c.mixup_alpha), "mixup_alpha", "must be >= 0");
  require(c.cutmix_alpha >= 0.0 && std::isfinite(c.cutmix_alpha), "cutmix_alpha",
          "must be >= 0");
  require(prob_ok(c.mix_prob), "mix_prob", "must be a probability in [0, 1]");
  require(prob_ok(c.switch_prob), "switch_prob", "must be a probability in [0, 1]");
}

namespace {

// Each step below is one numbered item of the draw list at the top of this file; make_plan
// calls them in that order on the one generator, so the split changes no draw.

// 1. RandomResizedCrop.
void draw_crop(PCG32& g, const AugConfig& cfg, Plan& p) {
  const int src_w = p.src_w, src_h = p.src_h;
  const double area = static_cast<double>(src_w) * static_cast<double>(src_h);
  const double log_lo = detmath::log(cfg.ratio_min), log_hi = detmath::log(cfg.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * g.uniform(cfg.scale_min, cfg.scale_max);
    const double aspect = detmath::exp(g.uniform(log_lo, log_hi));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (w > 0 && w <= src_w && h > 0 && h <= src_h) {
      p.crop_y = static_cast<int>(g.bounded(static_cast<uint32_t>(src_h - h + 1)));
      p.crop_x = static_cast<int>(g.bounded(static_cast<uint32_t>(src_w - w + 1)));
      p.crop_w = w;
      p.crop_h = h;
      return;
    }
  }
  // Fallback after 10 failures (no draws): centre crop clamped to [ratio_min, ratio_max].
  const double in_ratio = static_cast<double>(src_w) / static_cast<double>(src_h);
  int w = src_w, h = src_h;
  if (in_ratio < cfg.ratio_min) {
    h = round_half_even(w / cfg.ratio_min);
  } else if (in_ratio > cfg.ratio_max) {
    w = round_half_even(h * cfg.ratio_max);
  }
  w = std::max(1, std::min(w, src_w));
  h = std::max(1, std::min(h, src_h));
  p.crop_w = w;
  p.crop_h = h;
  p.crop_x = (src_w - w) / 2;
  p.crop_y = (src_h - h) / 2;
}

// 4. RandAugment: the op indices first, then each chosen op's draws in order.
void draw_randaugment(PCG32& g, const AugConfig& cfg, Plan& p) {
  if (!cfg.ra_enabled || cfg.ra_num_ops <= 0) return;
  const auto n_ops = static_cast<uint32_t>(cfg.ra_ops.size());
  std::vector<RaOp> chosen(static_cast<size_t>(cfg.ra_num_ops));
  for (auto& op : chosen) op = cfg.ra_ops[g.bounded(n_ops)];
  for (RaOp op : chosen) {
    if (cfg.ra_prob < 1.0 && !(g.uniform() < cfg.ra_prob)) continue;
    double m = cfg.ra_magnitude;
    if (cfg.ra_mstd > 0.0) {
      m = std::isinf(cfg.ra_mstd) ? g.uniform(0.0, m) : g.normal(m, cfg.ra_mstd);
    }
    m = std::max(0.0, std::min(m, cfg.ra_mmax));
    const bool neg = is_signed(op) ? g.uniform() > 0.5 : false;
    RaStep step;
    step.op = op;
    step.arg = static_cast<float>(level_to_arg(op, m, neg, cfg));
    step.resample = Interp::Nearest;
    if (ra_op_is_geometric(op)) {
      step.resample = cfg.ra_interpolation == Interp::Random ? random_bilinear_bicubic(g)
                                                             : cfg.ra_interpolation;
    }
    p.ra.push_back(step);
  }
}

// 5. Colour jitter: the order permutation, then the factors whose range is not empty.
void draw_jitter(PCG32& g, const AugConfig& cfg, Plan& p) {
  if (!(cfg.cj_brightness > 0 || cfg.cj_contrast > 0 || cfg.cj_saturation > 0 || cfg.cj_hue > 0))
    return;
  p.jitter = true;
  for (int i = 3; i >= 1; --i) {
    const int j = static_cast<int>(g.bounded(static_cast<uint32_t>(i + 1)));
    std::swap(p.jitter_order[i], p.jitter_order[j]);
  }
  const double v[3] = {cfg.cj_brightness, cfg.cj_contrast, cfg.cj_saturation};
  for (int k = 0; k < 3; ++k) {
    if (v[k] > 0) p.jitter_factors[k] = static_cast<float>(g.uniform(std::max(0.0, 1.0 - v[k]),
                                                                      1.0 + v[k]));
  }
  if (cfg.cj_hue > 0) p.jitter_factors[3] = static_cast<float>(g.uniform(-cfg.cj_hue, cfg.cj_hue));
}

// 6. RandomErasing: the erase draw, the box count, then up to 10 attempts per box.
void draw_erase(PCG32& g, const AugConfig& cfg, Plan& p) {
  if (!(cfg.re_prob > 0.0 && g.uniform() < cfg.re_prob)) return;
  const int count = cfg.re_min_count == cfg.re_max_count
                        ? cfg.re_min_count
                        : cfg.re_min_count + static_cast<int>(g.bounded(
                              static_cast<uint32_t>(cfg.re_max_count - cfg.re_min_count + 1)));
  const double area = static_cast<double>(cfg.out_h) * static_cast<double>(cfg.out_w);
  const double log_lo = detmath::log(cfg.re_min_aspect);
  const double log_hi = detmath::log(1.0 / cfg.re_min_aspect);
  for (int b = 0; b < count; ++b) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target_area = g.uniform(cfg.re_min_area, cfg.re_max_area) * area / count;
      const double aspect = detmath::exp(g.uniform(log_lo, log_hi));
      const int h = round_half_even(std::sqrt(target_area * aspect));
      const int w = round_half_even(std::sqrt(target_area / aspect));
      if (w < cfg.out_w && h < cfg.out_h) {
        EraseBox box;
        box.y = static_cast<int>(g.bounded(static_cast<uint32_t>(cfg.out_h - h + 1)));
        box.x = static_cast<int>(g.bounded(static_cast<uint32_t>(cfg.out_w - w + 1)));
        box.w = w;
        box.h = h;
        box.noise_seed = g.next_u32();
        p.erase.push_back(box);
        break;
      }
    }
  }
}

// 7b. CutMix box (timm's rand_bbox) for mix weight lam; returns timm's correct_lam.
double draw_cut_box(PCG32& g, const AugConfig& cfg, double lam, Plan& p) {
  const int H = cfg.out_h, W = cfg.out_w;
  const double ratio = std::sqrt(std::max(0.0, 1.0 - lam));
  const int cut_h = static_cast<int>(H * ratio), cut_w = static_cast<int>(W * ratio);
  const int cy = static_cast<int>(g.bounded(static_cast<uint32_t>(H)));
  const int cx = static_cast<int>(g.bounded(static_cast<uint32_t>(W)));
  auto clip = [](int v, int hi) { return std::max(0, std::min(v, hi)); };
  p.cut_y0 = clip(cy - cut_h / 2, H);
  p.cut_y1 = clip(cy + (cut_h + 1) / 2, H);
  p.cut_x0 = clip(cx - cut_w / 2, W);
  p.cut_x1 = clip(cx + (cut_w + 1) / 2, W);
  const double box = static_cast<double>(p.cut_y1 - p.cut_y0) * (p.cut_x1 - p.cut_x0);
  return 1.0 - box / (static_cast<double>(H) * W);
}

// 7. Mixup / CutMix: whether to mix, which method, then lam (and the CutMix box).
void draw_mix(PCG32& g, const AugConfig& cfg, Plan& p) {
  if (!((cfg.mixup_alpha > 0.0 || cfg.cutmix_alpha > 0.0) && g.uniform() < cfg.mix_prob)) return;
  bool cut;
  if (cfg.mixup_alpha > 0.0 && cfg.cutmix_alpha > 0.0) {
    cut = g.uniform() < cfg.switch_prob;
  } else {
    cut = cfg.cutmix_alpha > 0.0;
  }
  const double alpha = cut ? cfg.cutmix_alpha : cfg.mixup_alpha;
  double lam = g.beta(alpha, alpha);
  if (cut) {
    lam = draw_cut_box(g, cfg, lam, p);
    p.mix = MixMode::CutMix;
  } else {
    p.mix = MixMode::Mixup;
  }
  p.lam = static_cast<float>(lam);
}

}  // namespace

Plan make_plan(uint32_t seed, int src_w, int src_h, const AugConfig& cfg) {
  if (src_w <= 0 || src_h <= 0)
    throw std::invalid_argument("make_plan: source size must be positive, got " +
                                std::to_string(src_w) + "x" + std::to_string(src_h));
  validate_config(cfg);
  PCG32 g(seed, kStreamPlan);
  Plan p;
  p.src_w = src_w;
  p.src_h = src_h;
  draw_crop(g, cfg, p);                                                     // 1.
  p.resize = cfg.interpolation == Interp::Random ? random_bilinear_bicubic(g)  // 2.
                                                 : cfg.interpolation;
  if (cfg.hflip > 0.0) p.flip = g.uniform() < cfg.hflip;                    // 3.
  draw_randaugment(g, cfg, p);                                              // 4.
  draw_jitter(g, cfg, p);                                                   // 5.
  draw_erase(g, cfg, p);                                                    // 6.
  draw_mix(g, cfg, p);                                                      // 7.
  return p;
}

}  // namespace tinyvit
