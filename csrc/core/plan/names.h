// The plan's named settings: their enums and the one table of their names (timm's and
// AugConfig's spelling). Every conversion between a name and an enum goes through here:
// the bindings, and Python (tinyvit/augment/config.py reads _C.INTERPOLATIONS, _C.RA_OPS,
// _C.RAND_TRANSFORMS, ... which csrc/python/plan_config.cpp builds from these tables).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tinyvit {

enum class Interp : uint8_t { Nearest = 0, Bilinear = 1, Bicubic = 2, Random = 3 };

// RandAugment operations (timm's names). The *Increasing variants only differ in how
// the magnitude maps to the argument; the plan stores the resolved argument.
enum class RaOp : uint8_t {
  AutoContrast = 0, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd, Color,
  Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel, TranslateYRel,
  PosterizeIncreasing, SolarizeIncreasing, ColorIncreasing, ContrastIncreasing,
  BrightnessIncreasing, SharpnessIncreasing, Count
};

enum class EraseMode : uint8_t { Const = 0, Rand = 1, Pixel = 2 };
enum class MixMode : uint8_t { None = 0, Mixup = 1, CutMix = 2 };

constexpr int kNumInterp = 4, kNumRaOps = static_cast<int>(RaOp::Count), kNumEraseModes = 3,
              kNumMixModes = 3;

// Names: "nearest", "bilinear", "bicubic", "random"; timm's op names ("AutoContrast", ...,
// "PosterizeIncreasing", ...); "const", "rand", "pixel"; "none", "mixup", "cutmix".
// *_name returns "?" for a value outside the enum; *_from_name returns false when unknown.
const char* interp_name(Interp i);
bool interp_from_name(const std::string& name, Interp* out);
const char* ra_op_name(RaOp op);
bool ra_op_from_name(const std::string& name, RaOp* out);
const char* erase_mode_name(EraseMode m);
bool erase_mode_from_name(const std::string& name, EraseMode* out);
const char* mix_mode_name(MixMode m);

// timm's RandAugment op sets (_RAND_TRANSFORMS, _RAND_INCREASING_TRANSFORMS in
// timm/data/auto_augment.py), in timm's order: the order make_plan indexes them by.
constexpr int kNumRandTransforms = 15;
extern const RaOp kRandTransforms[kNumRandTransforms];
extern const RaOp kRandIncreasingTransforms[kNumRandTransforms];

}  // namespace tinyvit
