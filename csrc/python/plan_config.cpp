// Python binding of the augmentation config (core/plan/plan.h AugConfig) and the name
// tables and constants of the plan format (core/plan/names.h): one table of fields drives
// the dict conversion both ways, so Python keeps no copy of either. Thin: conversion and
// range checks (validate_config, in core) only.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/plan/names.h"
#include "core/plan/plan.h"
#include "bindings.h"

namespace tinyvit {

namespace {

// "'a', 'b' or 'c'": the accepted names of a table, for error messages.
template <typename E>
std::string one_of(const char* (*name)(E), int count) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (i) out += i + 1 == count ? " or " : ", ";
    out += std::string("'") + name(static_cast<E>(i)) + "'";
  }
  return out;
}

template <typename E>
py::tuple names_of(const char* (*name)(E), int count) {
  py::list out;
  for (int i = 0; i < count; ++i) out.append(name(static_cast<E>(i)));
  return py::tuple(out);
}

Interp interp_from(const std::string& s, const char* field) {
  Interp i;
  if (interp_from_name(s, &i)) return i;
  throw py::value_error(std::string(field) + " must be " + one_of(interp_name, kNumInterp) + ", got '" +
                        s + "'");
}

EraseMode erase_mode_from(const std::string& s) {
  EraseMode m;
  if (erase_mode_from_name(s, &m)) return m;
  throw py::value_error("re_mode must be " + one_of(erase_mode_name, kNumEraseModes) + ", got '" + s + "'");
}

// Every AugConfig field once, in the order of the dict (to_dict, so pickle state and repr,
// keep it): the known keys, to_dict and from_dict all walk this one table.
using ConfigMember = std::variant<int AugConfig::*, double AugConfig::*, bool AugConfig::*, Interp AugConfig::*,
                                  EraseMode AugConfig::*, std::vector<RaOp> AugConfig::*, uint8_t (AugConfig::*)[3]>;
struct ConfigField {
  const char* key;
  ConfigMember member;
};

const std::vector<ConfigField>& config_fields() {
  using C = AugConfig;
  static const std::vector<ConfigField> fields = {
      {"out_h", &C::out_h}, {"out_w", &C::out_w}, {"interpolation", &C::interpolation},
      {"scale_min", &C::scale_min}, {"scale_max", &C::scale_max}, {"ratio_min", &C::ratio_min},
      {"ratio_max", &C::ratio_max}, {"hflip", &C::hflip}, {"ra_enabled", &C::ra_enabled},
      {"ra_ops", &C::ra_ops}, {"ra_num_ops", &C::ra_num_ops}, {"ra_magnitude", &C::ra_magnitude},
      {"ra_mstd", &C::ra_mstd}, {"ra_mmax", &C::ra_mmax}, {"ra_prob", &C::ra_prob},
      {"ra_interpolation", &C::ra_interpolation}, {"fill", &C::fill}, {"cj_brightness", &C::cj_brightness},
      {"cj_contrast", &C::cj_contrast}, {"cj_saturation", &C::cj_saturation}, {"cj_hue", &C::cj_hue},
      {"re_prob", &C::re_prob}, {"re_mode", &C::re_mode}, {"re_min_count", &C::re_min_count},
      {"re_max_count", &C::re_max_count}, {"re_min_area", &C::re_min_area}, {"re_max_area", &C::re_max_area},
      {"re_min_aspect", &C::re_min_aspect}, {"mixup_alpha", &C::mixup_alpha}, {"cutmix_alpha", &C::cutmix_alpha},
      {"mix_prob", &C::mix_prob}, {"switch_prob", &C::switch_prob}};
  return fields;
}

template <typename... F>
struct Overload : F... {
  using F::operator()...;
};
template <typename... F>
Overload(F...) -> Overload<F...>;

py::dict config_to_dict(const AugConfig& c) {
  py::dict d;
  for (const ConfigField& f : config_fields()) {
    d[f.key] = std::visit(
        Overload{[&](Interp AugConfig::*m) -> py::object { return py::str(interp_name(c.*m)); },
                 [&](EraseMode AugConfig::*m) -> py::object { return py::str(erase_mode_name(c.*m)); },
                 [&](std::vector<RaOp> AugConfig::*m) -> py::object {
                   py::list ops;
                   for (RaOp op : c.*m) ops.append(ra_op_name(op));
                   return ops;
                 },
                 [&](uint8_t (AugConfig::*m)[3]) -> py::object {
                   const uint8_t* v = c.*m;
                   return py::make_tuple(int(v[0]), int(v[1]), int(v[2]));
                 },
                 [&](auto m) -> py::object { return py::cast(c.*m); }},  // int, double, bool
        f.member);
  }
  return d;
}

// The C++ AugConfig from the flat dict built by tinyvit.AugConfig._cpp_fields(): every key
// required, no unknown key (a typo must not silently fall back to a default).
AugConfig config_from_dict(const py::dict& d) {
  for (auto item : d) {
    const auto key = py::cast<std::string>(item.first);
    bool known = false;
    for (const ConfigField& f : config_fields()) known = known || key == f.key;
    if (!known) throw py::key_error("unknown AugConfig field: " + key);
  }
  AugConfig c;
  for (const ConfigField& f : config_fields()) {
    if (!d.contains(f.key)) throw py::key_error(std::string("AugConfig field missing: ") + f.key);
    const py::object v = d[f.key];
    std::visit(Overload{[&](int AugConfig::*m) { c.*m = py::cast<int>(v); },
                        [&](double AugConfig::*m) { c.*m = py::cast<double>(v); },
                        [&](bool AugConfig::*m) { c.*m = py::cast<bool>(v); },
                        [&](Interp AugConfig::*m) { c.*m = interp_from(py::cast<std::string>(v), f.key); },
                        [&](EraseMode AugConfig::*m) { c.*m = erase_mode_from(py::cast<std::string>(v)); },
                        [&](std::vector<RaOp> AugConfig::*m) {
                          (c.*m).clear();
                          for (const auto& name : py::cast<std::vector<std::string>>(v)) {
                            RaOp op;
                            if (!ra_op_from_name(name, &op))
                              throw py::value_error("unknown RandAugment op '" + name + "'");
                            (c.*m).push_back(op);
                          }
                        },
                        [&](uint8_t (AugConfig::*m)[3]) {
                          const auto fill = py::cast<std::vector<int>>(v);
                          if (fill.size() != 3) throw py::value_error("fill must have 3 values");
                          for (int k = 0; k < 3; ++k) {
                            if (fill[k] < 0 || fill[k] > 255)
                              throw py::value_error("fill values must be in [0, 255]");
                            (c.*m)[k] = static_cast<uint8_t>(fill[k]);
                          }
                        }},
               f.member);
  }
  try {
    validate_config(c);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return c;
}

void bind_name_tables(py::module_& m) {
  m.attr("PLAN_FORMAT_VERSION") = kPlanFormatVersion;
  py::dict streams;
  streams["plan"] = kStreamPlan;
  streams["erase_noise"] = kStreamEraseNoise;
  streams["pairing"] = kStreamPairing;
  streams["seeds"] = kStreamSeeds;
  m.attr("PCG32_STREAMS") = streams;
  // The name tables (core/plan/names.h), so Python keeps no copy of them.
  m.attr("INTERPOLATIONS") = names_of(interp_name, kNumInterp);
  m.attr("RA_OPS") = names_of(ra_op_name, kNumRaOps);
  m.attr("ERASE_MODES") = names_of(erase_mode_name, kNumEraseModes);
  m.attr("MIX_MODES") = names_of(mix_mode_name, kNumMixModes);
  py::list rand, rand_inc;
  for (int i = 0; i < kNumRandTransforms; ++i) {
    rand.append(ra_op_name(kRandTransforms[i]));
    rand_inc.append(ra_op_name(kRandIncreasingTransforms[i]));
  }
  m.attr("RAND_TRANSFORMS") = py::tuple(rand);
  m.attr("RAND_INCREASING_TRANSFORMS") = py::tuple(rand_inc);
}

}  // namespace

void init_plan_config(py::module_& m) {
  py::class_<AugConfig>(m, "AugConfig", R"doc(
The C++ augmentation config (csrc/core/plan/plan.h). Build it with tinyvit.AugConfig(...)._cpp();
constructing it here from a dict requires every field (see to_dict()) and validates ranges.
C++ bindings take it as `const tinyvit::AugConfig&`.
)doc")
      .def(py::init([](const py::dict& d) { return config_from_dict(d); }), py::arg("fields"))
      .def("to_dict", &config_to_dict, "All fields as a dict (enum values as names).")
      .def(py::pickle([](const AugConfig& c) { return config_to_dict(c); },
                      [](const py::dict& d) { return config_from_dict(d); }))
      .def("__repr__", [](const AugConfig& c) {
        return "_C.AugConfig(" + std::string(py::repr(config_to_dict(c))) + ")";
      });
  bind_name_tables(m);
}

}  // namespace tinyvit
