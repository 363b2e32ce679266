#include "core/plan/names.h"

namespace tinyvit {

namespace {

// Index = enum value.
const char* const kInterpNames[] = {"nearest", "bilinear", "bicubic", "random"};
const char* const kRaOpNames[] = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
    "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
    "TranslateYRel", "PosterizeIncreasing", "SolarizeIncreasing", "ColorIncreasing",
    "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing"};
const char* const kEraseModeNames[] = {"const", "rand", "pixel"};
const char* const kMixModeNames[] = {"none", "mixup", "cutmix"};

static_assert(sizeof(kInterpNames) / sizeof(kInterpNames[0]) == kNumInterp, "Interp names");
static_assert(sizeof(kRaOpNames) / sizeof(kRaOpNames[0]) == kNumRaOps, "RaOp names");
static_assert(sizeof(kEraseModeNames) / sizeof(kEraseModeNames[0]) == kNumEraseModes, "EraseMode names");
static_assert(sizeof(kMixModeNames) / sizeof(kMixModeNames[0]) == kNumMixModes, "MixMode names");

template <typename E, size_t N>
const char* name_of(const char* const (&table)[N], E v) {
  const auto i = static_cast<size_t>(v);
  return i < N ? table[i] : "?";
}

template <typename E, size_t N>
bool value_of(const char* const (&table)[N], const std::string& name, E* out) {
  for (size_t i = 0; i < N; ++i)
    if (name == table[i]) {
      *out = static_cast<E>(i);
      return true;
    }
  return false;
}

}  // namespace

const RaOp kRandTransforms[kNumRandTransforms] = {
    RaOp::AutoContrast, RaOp::Equalize, RaOp::Invert, RaOp::Rotate, RaOp::Posterize,
    RaOp::Solarize, RaOp::SolarizeAdd, RaOp::Color, RaOp::Contrast, RaOp::Brightness,
    RaOp::Sharpness, RaOp::ShearX, RaOp::ShearY, RaOp::TranslateXRel, RaOp::TranslateYRel};
const RaOp kRandIncreasingTransforms[kNumRandTransforms] = {
    RaOp::AutoContrast, RaOp::Equalize, RaOp::Invert, RaOp::Rotate, RaOp::PosterizeIncreasing,
    RaOp::SolarizeIncreasing, RaOp::SolarizeAdd, RaOp::ColorIncreasing, RaOp::ContrastIncreasing,
    RaOp::BrightnessIncreasing, RaOp::SharpnessIncreasing, RaOp::ShearX, RaOp::ShearY,
    RaOp::TranslateXRel, RaOp::TranslateYRel};

const char* interp_name(Interp i) { return name_of(kInterpNames, i); }
bool interp_from_name(const std::string& name, Interp* out) { return value_of(kInterpNames, name, out); }
const char* ra_op_name(RaOp op) { return name_of(kRaOpNames, op); }
bool ra_op_from_name(const std::string& name, RaOp* out) { return value_of(kRaOpNames, name, out); }
const char* erase_mode_name(EraseMode m) { return name_of(kEraseModeNames, m); }
bool erase_mode_from_name(const std::string& name, EraseMode* out) {
  return value_of(kEraseModeNames, name, out);
}
const char* mix_mode_name(MixMode m) { return name_of(kMixModeNames, m); }

}  // namespace tinyvit
