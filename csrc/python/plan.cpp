// Python bindings for the augmentation plan (core/plan/plan.h): decode one seed into a plan
// dict, many seeds into their device-op parameters, and the erase boxes' noise
// (core/plan/pairing.h). AugConfig and the name tables are bound in plan_config.cpp, the
// pairing and per-sample seeds in pairing.cpp. Thin: conversion and argument checks only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/pixels/batch.h"
#include "core/plan/names.h"
#include "core/plan/pairing.h"
#include "core/plan/plan.h"
#include "args.h"
#include "array_args.h"
#include "bindings.h"
#include "device_params.h"

namespace tinyvit {

namespace {

constexpr uint64_t kMaxSide = INT32_MAX;

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

py::dict make_plan_dict(py::handle seed, py::handle size, const AugConfig& cfg) {
  const auto s = static_cast<uint32_t>(checked_u64(seed, "seed", 0, kMaxSeed));
  const auto wh = checked_size(size);
  Plan p;
  try {
    p = make_plan(s, wh.first, wh.second, cfg);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return plan_to_dict(p);
}

py::dict plan_device_params(py::handle seeds_obj, py::handle widths_obj, py::handle heights_obj,
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
}

py::array_t<float> erase_noise_of(py::handle seed, py::handle n) {
  const auto s = static_cast<uint32_t>(checked_u64(seed, "seed", 0, kMaxSeed));
  const auto count = static_cast<py::ssize_t>(checked_u64(n, "n", 0, uint64_t{1} << 32));
  py::array_t<float> out(count);
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    erase_noise(s, dst, static_cast<size_t>(count));
  }
  return out;
}

py::array_t<float> erase_noise_batch(py::handle seeds_obj, py::handle counts_obj) {
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
}

}  // namespace

void init_plan(py::module_& m) {
  m.def("make_plan", &make_plan_dict, py::arg("seed"), py::arg("size"), py::arg("cfg"),
        "Decode seed into the augmentation plan for a source of size (width, height), as a dict.");
  m.def("plan_device_params", &plan_device_params, py::arg("seeds"), py::arg("widths"),
        py::arg("heights"), py::arg("cfg"),
        "The device-op part (erase boxes, mix mode, lam, cut box) of many plans, packed as numpy "
        "arrays: erase_boxes (N, B, 4) [x, y, w, h], erase_seeds (N, B), erase_count (N,), mix "
        "(N,) 0 none / 1 mixup / 2 cutmix, lam (N,), cut_box (N, 4) [x0, y0, x1, y1].");
  m.def("erase_noise", &erase_noise_of, py::arg("seed"), py::arg("n"),
        "n standard normals (float32) of an erase box, from PCG32(seed, kStreamEraseNoise).");
  m.def("erase_noise_batch", &erase_noise_batch, py::arg("seeds"), py::arg("counts"),
        "Concatenated erase_noise(seeds[i], counts[i]) for all i (one float32 array).");
}

}  // namespace tinyvit
