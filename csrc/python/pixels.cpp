// Python bindings for the pixel pipeline (core/pixels/pixels.h, jpeg_decode.h, batch.h):
// JPEG fast path, plan application, single RandAugment ops (for tests) and the batch
// thread pool. Thin: argument conversion here, all logic in core/; failures cross as core
// Errors through errors.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/pixels/batch.h"
#include "core/pixels/jpeg_decode.h"
#include "core/pixels/pixels.h"
#include "core/plan/plan.h"
#include "core/pixels/randaugment.h"
#include "core/pixels/resize.h"
#include "core/util/thread_pool.h"
#include "args.h"
#include "bindings.h"
#include "device_params.h"
#include "errors.h"

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

// Runs fn with the GIL released; a core failure is raised as its registered Python class,
// the message prefixed with the source `name`.
template <class Fn>
void run_released(const std::string& name, Fn&& fn) {
  Error err;
  {
    py::gil_scoped_release release;
    try {
      fn();
    } catch (...) {
      err = current_pixel_error();
    }
  }
  if (err) raise_error(err, name + ": ");
}

std::string bytes_name(size_t n) { return "<bytes len=" + std::to_string(n) + ">"; }

// The batch pool: owns its threads; one Python object is reused across batches. The work
// is core/pixels/batch.h run_batch; this class converts arguments and results only.
class PixelPool {
 public:
  explicit PixelPool(int n) : pool_(n) {}
  int num_threads() const { return pool_.size(); }

  // sources[i]: bytes/bytearray (encoded image), str (path, read by a worker) or a uint8
  // (H, W, 3) array (decoded RGB). Non-JPEG encoded items are handed, as bytes, to
  // decode(i, data) -> uint8 (H, W, 3) array (Python: Pillow) and augmented here like arrays.
  // Fills out[i] and returns the device part of every item's plan (the same plans the
  // pixels were made with). The first failing item (lowest i) is raised as its registered
  // class, the message "<names[i]> (batch item i): ...".
  py::dict run(const py::list& sources, py::handle seeds_obj, const AugConfig& cfg, py::array out,
               int scale_denom, py::object decode, py::object names_obj) {
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
    std::vector<std::string> names;
    if (!names_obj.is_none()) {
      names = py::cast<std::vector<std::string>>(names_obj);
      if (names.size() != n) throw py::value_error("names and sources must have the same length");
    }
    std::vector<BatchItem> items(n);
    std::vector<U8Array> keep;  // arrays referenced by Image items
    for (size_t i = 0; i < n; ++i) {
      py::handle s = sources[i];
      BatchItem& it = items[i];
      it.slot = i;
      it.seed = static_cast<uint32_t>(checked_u64(seeds[i], "seed", 0, UINT32_MAX));
      std::string name;
      if (PyUnicode_Check(s.ptr())) {
        it.kind = BatchItem::Kind::File;
        it.path = py::cast<std::string>(s);
        name = it.path;
      } else if (PyBytes_Check(s.ptr()) || PyByteArray_Check(s.ptr())) {
        const Bytes b = bytes_of(s, "source");
        it.kind = BatchItem::Kind::Encoded;
        it.data = b.data;
        it.size = b.size;
        name = bytes_name(b.size);
      } else {
        U8Array arr = U8Array::ensure(s);
        if (!arr) throw py::type_error("sources[" + std::to_string(i) +
                                       "] must be bytes, a path or a uint8 (H, W, 3) array");
        it.kind = BatchItem::Kind::Image;
        it.image = view_of(arr, "source");
        keep.push_back(std::move(arr));
        name = "<array>";
      }
      if (names_obj.is_none()) names.push_back(name);
    }
    uint8_t* pixels = static_cast<uint8_t*>(out.mutable_data());
    BatchOutput result(n);
    {
      py::gil_scoped_release release;
      run_batch(pool_, items, cfg, scale_denom, pixels, result);
    }
    raise_first_error(result, names);
    // Second pass, same slots: formats the JPEG path does not read, decoded by the caller.
    std::vector<BatchItem> second;
    for (size_t i = 0; i < n; ++i) {
      if (!result.needs_decode[i]) continue;
      if (decode.is_none())
        raise_error(Error(error_kind::kDecode, "not a JPEG and no decoder given"),
                    names[i] + " (batch item " + std::to_string(i) + "): ");
      const auto& data = result.undecoded[i];
      py::object rgb = decode(i, py::bytes(reinterpret_cast<const char*>(data.data()), data.size()));
      U8Array arr = U8Array::ensure(rgb);
      if (!arr) throw py::type_error("decode must return a uint8 (H, W, 3) array");
      BatchItem it;
      it.kind = BatchItem::Kind::Image;
      it.slot = i;
      it.seed = items[i].seed;
      it.image = view_of(arr, "decoded source");
      keep.push_back(std::move(arr));
      second.push_back(std::move(it));
      std::vector<uint8_t>().swap(result.undecoded[i]);
    }
    if (!second.empty()) {
      {
        py::gil_scoped_release release;
        run_batch(pool_, second, cfg, scale_denom, pixels, result);
      }
      raise_first_error(result, names);
    }
    for (size_t i = 0; i < n; ++i)
      if (!result.has_plan[i]) throw std::logic_error("PixelPool.run: item without a plan");
    return device_params_to_dict(pack_device_params(result.plans));
  }

 private:
  static void raise_first_error(const BatchOutput& r, const std::vector<std::string>& names) {
    for (size_t i = 0; i < r.size(); ++i)
      if (r.errors[i]) raise_error(r.errors[i], names[i] + " (batch item " + std::to_string(i) + "): ");
  }

  ThreadPool pool_;
};

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
  py::register_exception<ImageDecodeError>(m, "ImageDecodeError", PyExc_ValueError);
  register_error_kind(error_kind::kDecode, m.attr("ImageDecodeError"));

  m.def(
      "_read_file",
      [](const std::string& path) {
        std::vector<uint8_t> data;
        Error err;
        {
          py::gil_scoped_release release;
          err = read_image_file(path, data);
        }
        if (err) raise_error(err, path + ": ");
        return py::bytes(reinterpret_cast<const char*>(data.data()), data.size());
      },
      py::arg("path"),
      "An image file's bytes: regular files only (a FIFO cannot hang it), at most 1 GiB; "
      "errors name the path.");

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
           py::arg("out"), py::arg("scale_denom") = 0, py::arg("decode") = py::none(),
           py::arg("names") = py::none());
}

}  // namespace tinyvit
