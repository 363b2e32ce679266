// Python bindings for the augmentation plan (core/plan.h) and pairing/seeds
// (core/pairing.h). Thin: conversion and argument checks only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/pixels/batch.h"
#include "core/plan/names.h"
#include "core/plan/pairing.h"
#include "core/plan/plan.h"
#include "args.h"
#include "bindings.h"
#include "device_params.h"

namespace tinyvit {

namespace {

constexpr uint64_t kMaxSeed = UINT32_MAX;
constexpr uint64_t kMaxSide = INT32_MAX;

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

std::pair<int, int> checked_size(py::handle size) {
  const Py_ssize_t len = PySequence_Check(size.ptr()) ? PySequence_Size(size.ptr()) : -1;
  if (len != 2) {
    PyErr_Clear();
    throw py::type_error("size must be a (width, height) pair");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(size);
  const auto w = static_cast<int>(checked_u64(seq[0], "width", 1, kMaxSide));
  const auto h = static_cast<int>(checked_u64(seq[1], "height", 1, kMaxSide));
  return {w, h};
}

py::dict plan_to_dict(const Plan& p) {
  py::dict d;
  d["src_size"] = py::make_tuple(p.src_w, p.src_h);
  d["crop"] = py::make_tuple(p.crop_x, p.crop_y, p.crop_w, p.crop_h);
  d["interpolation"] = interp_name(p.resize);
  d["flip"] = p.flip;
  if (p.jitter) {
    static const char* const kJitterNames[4] = {"brightness", "contrast", "saturation", "hue"};
    py::dict j;
    for (int k = 0; k < 4; ++k) j[kJitterNames[k]] = p.jitter_factors[k];
    py::list order;
    for (int k = 0; k < 4; ++k) order.append(kJitterNames[p.jitter_order[k]]);
    j["order"] = order;
    d["jitter"] = j;
  } else {
    d["jitter"] = py::none();
  }
  py::list ra;
  for (const RaStep& s : p.ra) {
    py::dict step;
    step["op"] = ra_op_name(s.op);
    step["arg"] = s.arg;
    step["resample"] = ra_op_is_geometric(s.op) ? py::object(py::str(interp_name(s.resample)))
                                                : py::object(py::none());
    ra.append(step);
  }
  d["ra"] = ra;
  py::list erase;
  for (const EraseBox& b : p.erase) {
    py::dict box;
    box["x"] = b.x;
    box["y"] = b.y;
    box["w"] = b.w;
    box["h"] = b.h;
    box["noise_seed"] = b.noise_seed;
    erase.append(box);
  }
  d["erase"] = erase;
  d["mix"] = mix_mode_name(p.mix);
  d["lam"] = p.lam;
  d["cut_box"] = p.mix == MixMode::CutMix
                     ? py::object(py::make_tuple(p.cut_x0, p.cut_y0, p.cut_x1, p.cut_y1))
                     : py::object(py::none());
  return d;
}

// seeds/indices from Python: any integer array-like, range-checked here (numpy's
// forcecast would wrap negatives silently).
std::vector<uint64_t> checked_u64_array(py::handle obj, const char* name, uint64_t max_value) {
  py::array arr = py::array::ensure(obj);
  if (!arr) throw py::type_error(std::string(name) + " must be an integer array");
  if (arr.ndim() != 1) throw py::value_error(std::string(name) + " must be 1-D");
  const char kind = arr.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw py::type_error(std::string(name) + " must hold integers, got dtype " +
                         std::string(py::str(arr.dtype())));
  std::vector<uint64_t> out(static_cast<size_t>(arr.size()));
  if (kind == 'i') {
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
    for (size_t i = 0; i < out.size(); ++i) {
      const int64_t v = a.data()[i];
      if (v < 0)
        throw py::value_error(std::string(name) + "[" + std::to_string(i) + "] must be >= 0, got " +
                              std::to_string(v));
      out[i] = static_cast<uint64_t>(v);
    }
  } else {
    auto a = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
    std::copy(a.data(), a.data() + out.size(), out.begin());
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] > max_value)
      raise_overflow(std::string(name) + "[" + std::to_string(i) + "] must be <= " +
                     std::to_string(max_value) + ", got " + std::to_string(out[i]));
  }
  return out;
}

}  // namespace

void init_plan(py::module_& m) {
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

  m.def(
      "make_plan",
      [](py::handle seed, py::handle size, const AugConfig& cfg) {
        const auto s = static_cast<uint32_t>(checked_u64(seed, "seed", 0, kMaxSeed));
        const auto wh = checked_size(size);
        Plan p;
        try {
          p = make_plan(s, wh.first, wh.second, cfg);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return plan_to_dict(p);
      },
      py::arg("seed"), py::arg("size"), py::arg("cfg"),
      "Decode seed into the augmentation plan for a source of size (width, height), as a dict.");

  m.def(
      "plan_device_params",
      [](py::handle seeds_obj, py::handle widths_obj, py::handle heights_obj,
         const AugConfig& cfg) {
        const auto seeds = checked_u64_array(seeds_obj, "seeds", kMaxSeed);
        const auto widths = checked_u64_array(widths_obj, "widths", kMaxSide);
        const auto heights = checked_u64_array(heights_obj, "heights", kMaxSide);
        const size_t n = seeds.size();
        if (widths.size() != n || heights.size() != n)
          throw py::value_error("seeds, widths and heights must have the same length");
        std::vector<Plan> plans(n);
        std::string error;
        {
          py::gil_scoped_release release;
          for (size_t i = 0; i < n && error.empty(); ++i) {
            try {
              plans[i] = make_plan(static_cast<uint32_t>(seeds[i]), static_cast<int>(widths[i]),
                                   static_cast<int>(heights[i]), cfg);
            } catch (const std::invalid_argument& e) {
              error = "sample " + std::to_string(i) + ": " + e.what();
            }
          }
        }
        if (!error.empty()) throw py::value_error(error);
        return device_params_to_dict(pack_device_params(plans));
      },
      py::arg("seeds"), py::arg("widths"), py::arg("heights"), py::arg("cfg"),
      "The device-op part (erase boxes, mix mode, lam, cut box) of many plans, packed as numpy "
      "arrays: erase_boxes (N, B, 4) [x, y, w, h], erase_seeds (N, B), erase_count (N,), mix "
      "(N,) 0 none / 1 mixup / 2 cutmix, lam (N,), cut_box (N, 4) [x0, y0, x1, y1].");

  m.def(
      "erase_noise",
      [](py::handle seed, py::handle n) {
        const auto s = static_cast<uint32_t>(checked_u64(seed, "seed", 0, kMaxSeed));
        const auto count = static_cast<py::ssize_t>(checked_u64(n, "n", 0, uint64_t{1} << 32));
        py::array_t<float> out(count);
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          erase_noise(s, dst, static_cast<size_t>(count));
        }
        return out;
      },
      py::arg("seed"), py::arg("n"),
      "n standard normals (float32) of an erase box, from PCG32(seed, kStreamEraseNoise).");

  m.def(
      "erase_noise_batch",
      [](py::handle seeds_obj, py::handle counts_obj) {
        const auto seeds = checked_u64_array(seeds_obj, "seeds", kMaxSeed);
        const auto counts = checked_u64_array(counts_obj, "counts", uint64_t{1} << 32);
        if (seeds.size() != counts.size())
          throw py::value_error("seeds and counts must have the same length");
        uint64_t total = 0;
        for (auto c : counts) total += c;
        py::array_t<float> out(static_cast<py::ssize_t>(total));
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (size_t i = 0; i < seeds.size(); ++i) {
            erase_noise(static_cast<uint32_t>(seeds[i]), dst, counts[i]);
            dst += counts[i];
          }
        }
        return out;
      },
      py::arg("seeds"), py::arg("counts"),
      "Concatenated erase_noise(seeds[i], counts[i]) for all i (one float32 array).");

  m.def(
      "sample_seeds",
      [](py::handle base_seed, py::handle epoch, py::handle indices_obj) {
        const auto b = static_cast<uint32_t>(checked_u64(base_seed, "base_seed", 0, kMaxSeed));
        const auto e = static_cast<uint32_t>(checked_u64(epoch, "epoch", 0, kMaxSeed));
        const auto idx = checked_u64_array(indices_obj, "indices", UINT64_MAX);
        py::array_t<uint32_t> out(static_cast<py::ssize_t>(idx.size()));
        {
          py::gil_scoped_release release;
          sample_seed_batch(idx.data(), out.mutable_data(), idx.size(), b, e);
        }
        return out;
      },
      py::arg("base_seed"), py::arg("epoch"), py::arg("indices"),
      "Per-sample augmentation seeds (uint32) of dataset indices in an epoch.");

  auto pairing_call = [](bool partner) {
    return [partner](py::handle epoch, py::handle values_obj, py::handle n_obj,
                     py::handle base_seed) {
      const auto e = static_cast<uint32_t>(checked_u64(epoch, "epoch", 0, kMaxSeed));
      const auto n = checked_u64(n_obj, "num_samples", 1, uint64_t{1} << 62);
      const auto b = static_cast<uint32_t>(checked_u64(base_seed, "base_seed", 0, kMaxSeed));
      const char* what = partner ? "indices" : "positions";
      const auto v = checked_u64_array(values_obj, what, UINT64_MAX);
      for (size_t i = 0; i < v.size(); ++i) {
        if (v[i] >= n)
          throw py::index_error(std::string(what) + "[" + std::to_string(i) + "] = " +
                                std::to_string(v[i]) + " is out of range for num_samples " +
                                std::to_string(n));
      }
      py::array_t<int64_t> out(static_cast<py::ssize_t>(v.size()));
      std::vector<uint64_t> tmp(v.size());
      {
        py::gil_scoped_release release;
        if (partner) {
          mix_partner_batch(v.data(), tmp.data(), v.size(), n, b, e);
        } else {
          pair_perm_batch(v.data(), tmp.data(), v.size(), n, b, e);
        }
      }
      std::copy(tmp.begin(), tmp.end(), out.mutable_data());
      return out;
    };
  };
  m.def("mix_partners", pairing_call(true), py::arg("epoch"), py::arg("indices"),
        py::arg("num_samples"), py::arg("base_seed"),
        "Mix partner (int64) of each dataset index in the epoch's pairing.");
  m.def("pair_permutation", pairing_call(false), py::arg("epoch"), py::arg("positions"),
        py::arg("num_samples"), py::arg("base_seed"),
        "The epoch's pairing permutation at the given positions: pairs are positions (2k, 2k+1).");

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

}  // namespace tinyvit
