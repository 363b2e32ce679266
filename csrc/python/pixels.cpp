// Python bindings for plan application (core/pixels/pixels.h, randaugment.h): a plan dict
// applied to JPEG bytes or an RGB array, the whole replay of one JPEG, single RandAugment
// ops (for tests), and the device part of many plans as numpy arrays (device_params.h).
// The JPEG decode bindings are in jpeg.cpp, the batch pool in pixel_pool.cpp. Thin:
// argument conversion here, all logic in core/; failures cross as core Errors (errors.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/pixels/batch.h"
#include "core/pixels/jpeg_decode.h"
#include "core/pixels/pixels.h"
#include "core/pixels/randaugment.h"
#include "core/plan/plan.h"
#include "args.h"
#include "bindings.h"
#include "device_params.h"
#include "pixel_args.h"

namespace tinyvit {

namespace {

// The plan dict of tinyvit.make_plan (keys src_size, crop, interpolation, flip, jitter,
// ra); erase/mix keys are for the device ops and ignored here.
Plan plan_from_dict(const py::dict& d) {
  auto get = [&](const char* key) -> py::object {
    if (!d.contains(key)) throw py::key_error(std::string("plan is missing '") + key + "'");
    return d[key];
  };
  Plan p;
  const auto src = py::cast<std::vector<int>>(get("src_size"));
  const auto crop = py::cast<std::vector<int>>(get("crop"));
  if (src.size() != 2) throw py::value_error("plan['src_size'] must be (width, height)");
  if (crop.size() != 4) throw py::value_error("plan['crop'] must be (x, y, w, h)");
  p.src_w = src[0];
  p.src_h = src[1];
  p.crop_x = crop[0];
  p.crop_y = crop[1];
  p.crop_w = crop[2];
  p.crop_h = crop[3];
  p.resize = interp_of(py::cast<std::string>(get("interpolation")), "plan['interpolation']");
  p.flip = py::cast<bool>(get("flip"));
  py::object jit = d.contains("jitter") ? py::object(d["jitter"]) : py::none();
  if (!jit.is_none()) {
    static const char* const kNames[4] = {"brightness", "contrast", "saturation", "hue"};
    py::dict j = jit.cast<py::dict>();
    p.jitter = true;
    for (int k = 0; k < 4; ++k) p.jitter_factors[k] = py::cast<float>(j[kNames[k]]);
    const auto order = py::cast<std::vector<std::string>>(j["order"]);
    if (order.size() != 4) throw py::value_error("plan['jitter']['order'] must have 4 names");
    for (int k = 0; k < 4; ++k) {
      int idx = -1;
      for (int n = 0; n < 4; ++n)
        if (order[k] == kNames[n]) idx = n;
      if (idx < 0) throw py::value_error("plan['jitter']['order']: unknown '" + order[k] + "'");
      p.jitter_order[k] = static_cast<uint8_t>(idx);
    }
  }
  for (auto item : py::cast<py::list>(get("ra"))) {
    py::dict s = item.cast<py::dict>();
    RaStep st;
    const auto name = py::cast<std::string>(s["op"]);
    if (!ra_op_from_name(name, &st.op)) throw py::value_error("unknown RandAugment op '" + name + "'");
    st.arg = py::cast<float>(s["arg"]);
    py::object rs = s.contains("resample") ? py::object(s["resample"]) : py::none();
    st.resample = rs.is_none() ? Interp::Nearest
                               : interp_of(py::cast<std::string>(rs), "plan['ra'][i]['resample']");
    p.ra.push_back(st);
  }
  return p;
}

ApplyParams params_of(py::handle out_hw, py::handle fill) {
  const auto hw = py::cast<std::vector<int>>(out_hw);
  const auto f = py::cast<std::vector<int>>(fill);
  if (hw.size() != 2 || hw[0] < 1 || hw[1] < 1)
    throw py::value_error("out_hw must be (height, width) with positive sides");
  if (f.size() != 3) throw py::value_error("fill must have 3 values");
  ApplyParams p;
  p.out_h = hw[0];
  p.out_w = hw[1];
  for (int c = 0; c < 3; ++c) {
    if (f[c] < 0 || f[c] > 255) throw py::value_error("fill values must be in [0, 255]");
    p.fill[c] = static_cast<uint8_t>(f[c]);
  }
  return p;
}

U8Array apply_plan_dict(py::handle source, const py::dict& plan_dict, py::handle out_hw,
                        py::handle fill, int scale_denom, const std::string& name) {
  const Plan plan = plan_from_dict(plan_dict);
  const ApplyParams params = params_of(out_hw, fill);
  U8Array out({params.out_h, params.out_w, 3});
  uint8_t* dst = out.mutable_data();
  if (PyBytes_Check(source.ptr()) || PyByteArray_Check(source.ptr())) {
    const Bytes b = bytes_of(source, "source");
    run_released(name.empty() ? bytes_name(b.size) : name,
                 [&] { apply_plan_jpeg(plan, b.data, b.size, params, dst, scale_denom); });
  } else {
    U8Array arr = U8Array::ensure(source);
    if (!arr) throw py::type_error("source must be JPEG bytes or a uint8 (H, W, 3) array");
    const ImageView v = view_of(arr, "source");
    run_released(name.empty() ? "<array>" : name, [&] { apply_plan(plan, v, params, dst); });
  }
  return out;
}

U8Array replay_jpeg(py::handle data, py::handle seed, const AugConfig& cfg, int scale_denom,
                    const std::string& name) {
  const Bytes b = bytes_of(data, "data");
  const auto s = static_cast<uint32_t>(checked_u64(seed, "seed", 0, UINT32_MAX));
  const ApplyParams params = ApplyParams::from(cfg);
  U8Array out({params.out_h, params.out_w, 3});
  uint8_t* dst = out.mutable_data();
  run_released(name.empty() ? bytes_name(b.size) : name, [&] {
    JpegDecoder decoder;
    const JpegInfo& info = decoder.open(b.data, b.size);
    const Plan plan = make_plan(s, info.width, info.height, cfg);
    apply_plan_jpeg(plan, decoder, params, dst, scale_denom);
  });
  return out;
}

U8Array ra_op(U8Array image, const std::string& op_name, float arg, const std::string& resample,
              py::handle fill) {
  const ImageView v = view_of(image, "image");
  RaStep st;
  if (!ra_op_from_name(op_name, &st.op))
    throw py::value_error("unknown RandAugment op '" + op_name + "'");
  st.arg = arg;
  st.resample = interp_of(resample, "resample");
  const ApplyParams p = params_of(py::make_tuple(1, 1), fill);
  ImageU8 img(v.h, v.w);
  for (int y = 0; y < v.h; ++y) std::memcpy(img.row(y), v.row(y), static_cast<size_t>(v.w) * 3);
  apply_ra_step(img, st, p.fill);
  return to_array(img);
}

}  // namespace

py::dict device_params_to_dict(const DeviceParams& d) {
  const size_t n = d.n, B = d.max_boxes;
  py::array_t<int32_t> erase_boxes({n, B, size_t{4}});
  py::array_t<int64_t> erase_seeds({n, B});
  py::array_t<int32_t> erase_count(n);
  py::array_t<int8_t> mix(n);
  py::array_t<float> lam(n);
  py::array_t<int32_t> cut_box({n, size_t{4}});
  auto copy = [](auto& arr, const auto& vec) {
    if (!vec.empty()) std::memcpy(arr.mutable_data(), vec.data(), vec.size() * sizeof(vec[0]));
  };
  copy(erase_boxes, d.erase_boxes);
  copy(erase_seeds, d.erase_seeds);
  copy(erase_count, d.erase_count);
  copy(mix, d.mix);
  copy(lam, d.lam);
  copy(cut_box, d.cut_box);
  py::dict out;
  out["erase_boxes"] = erase_boxes;
  out["erase_seeds"] = erase_seeds;
  out["erase_count"] = erase_count;
  out["mix"] = mix;
  out["lam"] = lam;
  out["cut_box"] = cut_box;
  return out;
}

void init_pixels(py::module_& m) {
  m.def("_apply_plan", &apply_plan_dict, py::arg("source"), py::arg("plan"), py::arg("out_hw"),
        py::arg("fill"), py::arg("scale_denom") = 0, py::arg("name") = "",
        "Apply a plan dict (tinyvit.make_plan) in C++ to JPEG bytes or an RGB uint8 array.");
  m.def("_replay_jpeg", &replay_jpeg, py::arg("data"), py::arg("seed"), py::arg("cfg"),
        py::arg("scale_denom") = 0, py::arg("name") = "",
        "Plan + region decode + augment one JPEG, all in C++ (GIL released).");
  m.def("_ra_op", &ra_op, py::arg("image"), py::arg("op"), py::arg("arg"),
        py::arg("resample") = "nearest", py::arg("fill") = py::make_tuple(124, 116, 104),
        "One RandAugment op in C++ (for tests).");
  m.def("_ra_colour_simd", &ra_colour_simd, py::arg("on"),
        "Tests: colour RandAugment ops on their SIMD (True) or scalar (False) path; returns "
        "the previous setting.");
}

}  // namespace tinyvit
