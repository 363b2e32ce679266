// Python bindings for the pixel pipeline (core/pixels.h, core/jpeg_decode.h): JPEG fast
// path, plan application, single RandAugment ops (for tests) and the batch thread pool.
// Thin: argument conversion here, all logic in core/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/pixels/jpeg_decode.h"
#include "core/pixels/pixels.h"
#include "core/plan/plan.h"
#include "core/pixels/randaugment.h"
#include "core/pixels/resize.h"
#include "core/util/thread_pool.h"
#include "args.h"
#include "bindings.h"

namespace tinyvit {

namespace {

using U8Array = py::array_t<uint8_t, py::array::c_style>;

// Bytes-like source as a pointer + size (the object must outlive the use).
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

Bytes bytes_of(py::handle obj, const char* name) {
  Bytes b;
  if (PyBytes_Check(obj.ptr())) {
    b.data = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(obj.ptr()));
    b.size = static_cast<size_t>(PyBytes_GET_SIZE(obj.ptr()));
    return b;
  }
  if (PyByteArray_Check(obj.ptr())) {
    b.data = reinterpret_cast<const uint8_t*>(PyByteArray_AS_STRING(obj.ptr()));
    b.size = static_cast<size_t>(PyByteArray_GET_SIZE(obj.ptr()));
    return b;
  }
  throw py::type_error(std::string(name) + " must be bytes or bytearray");
}

Interp interp_of(const std::string& s, const char* field) {
  if (s == "nearest") return Interp::Nearest;
  if (s == "bilinear") return Interp::Bilinear;
  if (s == "bicubic") return Interp::Bicubic;
  throw py::value_error(std::string(field) + " must be 'nearest', 'bilinear' or 'bicubic', got '" +
                        s + "'");
}

ImageView view_of(const U8Array& a, const char* name) {
  if (a.ndim() != 3 || a.shape(2) != 3)
    throw py::value_error(std::string(name) + " must be a uint8 array of shape (H, W, 3)");
  if (a.shape(0) < 1 || a.shape(1) < 1) throw py::value_error(std::string(name) + " is empty");
  return ImageView{a.data(), static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)),
                   static_cast<ptrdiff_t>(a.strides(0))};
}

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

U8Array to_array(const ImageU8& img) {
  U8Array a({img.h, img.w, 3});
  std::memcpy(a.mutable_data(), img.data.data(), img.data.size());
  return a;
}

// Runs fn with the GIL released; maps core exceptions to Python ones naming `name`.
template <class Fn>
void run_released(const std::string& name, Fn&& fn) {
  std::string decode_error, value_error;
  {
    py::gil_scoped_release release;
    try {
      fn();
    } catch (const ImageDecodeError& e) {
      decode_error = e.what();
    } catch (const std::invalid_argument& e) {
      value_error = e.what();
    }
  }
  if (!decode_error.empty()) throw ImageDecodeError(name + ": " + decode_error);
  if (!value_error.empty()) throw py::value_error(name + ": " + value_error);
}

std::string bytes_name(size_t n) { return "<bytes len=" + std::to_string(n) + ">"; }

bool read_file(const std::string& path, std::vector<uint8_t>& out, std::string& err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    err = "cannot open file";
    return false;
  }
  f.seekg(0, std::ios::end);
  const std::streamoff n = f.tellg();
  if (n < 0) {
    err = "cannot read file";
    return false;
  }
  f.seekg(0, std::ios::beg);
  out.resize(static_cast<size_t>(n));
  if (n > 0 && !f.read(reinterpret_cast<char*>(out.data()), n)) {
    err = "cannot read file";
    return false;
  }
  return true;
}

// The batch pool: owns its threads; one Python object is reused across batches.
class PixelPool {
 public:
  explicit PixelPool(int n) : pool_(n) {}
  int num_threads() const { return pool_.size(); }

  // sources: list of bytes (JPEG) or str (path). Fills out[i] for every JPEG source and
  // returns per-item status: None (done), ("notjpeg", None) (caller uses the PIL path),
  // ("decode" | "value" | "io", message).
  py::list run(const py::list& sources, py::handle seeds_obj, const AugConfig& cfg, py::array out,
               int scale_denom) {
    const size_t n = sources.size();
    // Checked, never converted: a converted copy would silently swallow the writes.
    if (!out.dtype().is(py::dtype::of<uint8_t>()) || !(out.flags() & py::array::c_style) ||
        !out.writeable() || out.ndim() != 4 || static_cast<size_t>(out.shape(0)) != n || out.shape(1) != cfg.out_h ||
        out.shape(2) != cfg.out_w || out.shape(3) != 3)
      throw py::value_error("out must be a C-contiguous uint8 array of shape (" +
                            std::to_string(n) + ", " + std::to_string(cfg.out_h) + ", " +
                            std::to_string(cfg.out_w) + ", 3)");
    auto seeds = py::cast<std::vector<py::object>>(seeds_obj);
    if (seeds.size() != n) throw py::value_error("seeds and sources must have the same length");
    struct Item {
      Bytes bytes;
      std::string path;
      bool is_path = false;
      uint32_t seed = 0;
      int status = 0;  // 0 ok, 1 notjpeg, 2 decode, 3 value, 4 io
      std::string message;
    };
    std::vector<Item> items(n);
    for (size_t i = 0; i < n; ++i) {
      py::handle s = sources[i];
      items[i].seed = static_cast<uint32_t>(checked_u64(seeds[i], "seed", 0, UINT32_MAX));
      if (PyUnicode_Check(s.ptr())) {
        items[i].is_path = true;
        items[i].path = py::cast<std::string>(s);
      } else {
        items[i].bytes = bytes_of(s, "source");
      }
    }
    const ApplyParams params = ApplyParams::from(cfg);
    uint8_t* base = static_cast<uint8_t*>(out.mutable_data());
    const size_t stride = static_cast<size_t>(cfg.out_h) * cfg.out_w * 3;
    {
      py::gil_scoped_release release;
      pool_.parallel_for(n, [&](size_t i) {
        Item& it = items[i];
        std::vector<uint8_t> file;
        Bytes b = it.bytes;
        if (it.is_path) {
          if (!read_file(it.path, file, it.message)) {
            it.status = 4;
            return;
          }
          b.data = file.data();
          b.size = file.size();
        }
        if (b.size > 0 && !looks_like_jpeg(b.data, b.size)) {
          it.status = 1;
          return;
        }
        try {
          JpegDecoder decoder;  // the header is parsed once, for the plan and the decode
          const JpegInfo& info = decoder.open(b.data, b.size);
          const Plan plan = make_plan(it.seed, info.width, info.height, cfg);
          apply_plan_jpeg(plan, decoder, params, base + i * stride, scale_denom);
        } catch (const ImageDecodeError& e) {
          it.status = 2;
          it.message = e.what();
        } catch (const std::invalid_argument& e) {
          it.status = 3;
          it.message = e.what();
        } catch (const std::exception& e) {
          it.status = 2;
          it.message = e.what();
        }
      });
    }
    static const char* const kKinds[5] = {"", "notjpeg", "decode", "value", "io"};
    py::list status;
    for (const Item& it : items) {
      if (it.status == 0) status.append(py::none());
      else if (it.status == 1) status.append(py::make_tuple(kKinds[1], py::none()));
      else status.append(py::make_tuple(kKinds[it.status], it.message));
    }
    return status;
  }

 private:
  ThreadPool pool_;
};

}  // namespace

void init_pixels(py::module_& m) {
  py::register_exception<ImageDecodeError>(m, "ImageDecodeError", PyExc_ValueError);

  m.def("_jpeg_supported", &jpeg_supported);

  m.def(
      "_jpeg_info",
      [](py::handle data, const std::string& name) {
        const Bytes b = bytes_of(data, "data");
        JpegInfo info;
        run_released(name.empty() ? bytes_name(b.size) : name,
                     [&] { info = jpeg_read_info(b.data, b.size); });
        return py::make_tuple(info.width, info.height, info.components, info.progressive);
      },
      py::arg("data"), py::arg("name") = "",
      "(width, height, components, progressive) from a JPEG header.");

  m.def(
      "_decode_jpeg",
      [](py::handle data, int scale_denom, const std::string& name) {
        const Bytes b = bytes_of(data, "data");
        ImageU8 img;
        run_released(name.empty() ? bytes_name(b.size) : name,
                     [&] { img = jpeg_decode_full(b.data, b.size, scale_denom); });
        return to_array(img);
      },
      py::arg("data"), py::arg("scale_denom") = 1, py::arg("name") = "",
      "Full JPEG decode to RGB uint8 (H, W, 3), optionally IDCT-scaled by 1/scale_denom.");

  m.def(
      "_decode_jpeg_region",
      [](py::handle data, std::vector<int> crop, std::vector<int> out_wh, const std::string& filter,
         int scale_denom) {
        const Bytes b = bytes_of(data, "data");
        if (crop.size() != 4 || out_wh.size() != 2)
          throw py::value_error("crop is (x, y, w, h), out_wh is (w, h)");
        const double support = filter_support(interp_of(filter, "filter"));
        JpegRegion r;
        run_released(bytes_name(b.size), [&] {
          r = jpeg_decode_region(b.data, b.size, crop[0], crop[1], crop[2], crop[3], out_wh[0],
                                 out_wh[1], support, scale_denom);
        });
        return py::make_tuple(to_array(r.image), py::make_tuple(r.box[0], r.box[1], r.box[2], r.box[3]),
                              r.scale_denom, py::make_tuple(r.region_x, r.region_y));
      },
      py::arg("data"), py::arg("crop"), py::arg("out_wh"), py::arg("filter") = "bicubic",
      py::arg("scale_denom") = 0,
      "Region-of-interest decode: (pixels, crop box in those pixels, scale_denom, region origin).");

  m.def(
      "_apply_plan",
      [](py::handle source, const py::dict& plan_dict, py::handle out_hw, py::handle fill,
         int scale_denom, const std::string& name) {
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
      },
      py::arg("source"), py::arg("plan"), py::arg("out_hw"), py::arg("fill"),
      py::arg("scale_denom") = 0, py::arg("name") = "",
      "Apply a plan dict (tinyvit.make_plan) in C++ to JPEG bytes or an RGB uint8 array.");

  m.def(
      "_replay_jpeg",
      [](py::handle data, py::handle seed, const AugConfig& cfg, int scale_denom,
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
      },
      py::arg("data"), py::arg("seed"), py::arg("cfg"), py::arg("scale_denom") = 0,
      py::arg("name") = "", "Plan + region decode + augment one JPEG, all in C++ (GIL released).");

  m.def(
      "_ra_op",
      [](U8Array image, const std::string& op_name, float arg, const std::string& resample,
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
      },
      py::arg("image"), py::arg("op"), py::arg("arg"), py::arg("resample") = "nearest",
      py::arg("fill") = py::make_tuple(124, 116, 104), "One RandAugment op in C++ (for tests).");

  m.def("_ra_colour_simd", &ra_colour_simd, py::arg("on"),
        "Tests: colour RandAugment ops on their SIMD (True) or scalar (False) path; returns "
        "the previous setting.");

  py::class_<PixelPool>(m, "PixelPool", "C++ thread pool decoding + augmenting JPEG batches.")
      .def(py::init([](py::handle n) {
             return new PixelPool(static_cast<int>(checked_u64(n, "num_threads", 1, 256)));
           }),
           py::arg("num_threads"))
      .def_property_readonly("num_threads", &PixelPool::num_threads)
      .def("run", &PixelPool::run, py::arg("sources"), py::arg("seeds"), py::arg("cfg"),
           py::arg("out"), py::arg("scale_denom") = 0);
}

}  // namespace tinyvit
