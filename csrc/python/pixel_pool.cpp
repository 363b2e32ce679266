// Python binding of the batch pool (core/pixels/batch.h run_batch over core/util/thread_pool.h):
// one Python object, reused across batches, decodes and augments a batch of sources into a
// caller-owned array. Thin: argument conversion and the caller's decode callback for formats
// the JPEG path does not read; all pixel work in core/.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "core/pixels/batch.h"
#include "core/plan/plan.h"
#include "core/util/thread_pool.h"
#include "args.h"
#include "bindings.h"
#include "device_params.h"
#include "errors.h"
#include "pixel_args.h"

namespace tinyvit {

namespace {

// Checked, never converted: a converted copy would silently swallow the writes.
void check_out(const py::array& out, size_t n, const AugConfig& cfg) {
  if (!out.dtype().is(py::dtype::of<uint8_t>()) || !(out.flags() & py::array::c_style) ||
      !out.writeable() || out.ndim() != 4 || static_cast<size_t>(out.shape(0)) != n ||
      out.shape(1) != cfg.out_h || out.shape(2) != cfg.out_w || out.shape(3) != 3)
    throw py::value_error("out must be a C-contiguous uint8 array of shape (" +
                          std::to_string(n) + ", " + std::to_string(cfg.out_h) + ", " +
                          std::to_string(cfg.out_w) + ", 3)");
}

// One BatchItem per source (see PixelPool::run); arrays it points into are kept alive in
// `keep`. With `names` given, the default name of each source is appended to it.
std::vector<BatchItem> items_of(const py::list& sources, const std::vector<py::object>& seeds,
                                std::vector<U8Array>& keep, std::vector<std::string>* names) {
  std::vector<BatchItem> items(sources.size());
  for (size_t i = 0; i < items.size(); ++i) {
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
    if (names != nullptr) names->push_back(name);
  }
  return items;
}

void raise_first_error(const BatchOutput& r, const std::vector<std::string>& names) {
  for (size_t i = 0; i < r.size(); ++i)
    if (r.errors[i]) raise_error(r.errors[i], names[i] + " (batch item " + std::to_string(i) + "): ");
}

// The second pass's items, same slots: the sources the JPEG path left undecoded, decoded by
// the caller's decode(i, data) -> uint8 (H, W, 3) array (their bytes are released here).
std::vector<BatchItem> decoded_items(BatchOutput& result, const std::vector<BatchItem>& items,
                                     const py::object& decode,
                                     const std::vector<std::string>& names,
                                     std::vector<U8Array>& keep) {
  std::vector<BatchItem> second;
  for (size_t i = 0; i < items.size(); ++i) {
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
  return second;
}

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
    check_out(out, n, cfg);
    auto seeds = py::cast<std::vector<py::object>>(seeds_obj);
    if (seeds.size() != n) throw py::value_error("seeds and sources must have the same length");
    std::vector<std::string> names;
    if (!names_obj.is_none()) {
      names = py::cast<std::vector<std::string>>(names_obj);
      if (names.size() != n) throw py::value_error("names and sources must have the same length");
    }
    std::vector<U8Array> keep;  // arrays referenced by Image items
    const std::vector<BatchItem> items =
        items_of(sources, seeds, keep, names_obj.is_none() ? &names : nullptr);
    uint8_t* pixels = static_cast<uint8_t*>(out.mutable_data());
    BatchOutput result(n);
    run_released_batch(items, cfg, scale_denom, pixels, result, names);
    const std::vector<BatchItem> second = decoded_items(result, items, decode, names, keep);
    if (!second.empty()) run_released_batch(second, cfg, scale_denom, pixels, result, names);
    for (size_t i = 0; i < n; ++i)
      if (!result.has_plan[i]) throw std::logic_error("PixelPool.run: item without a plan");
    return device_params_to_dict(pack_device_params(result.plans));
  }

 private:
  void run_released_batch(const std::vector<BatchItem>& items, const AugConfig& cfg,
                          int scale_denom, uint8_t* pixels, BatchOutput& result,
                          const std::vector<std::string>& names) {
    {
      py::gil_scoped_release release;
      run_batch(pool_, items, cfg, scale_denom, pixels, result);
    }
    raise_first_error(result, names);
  }

  ThreadPool pool_;
};

}  // namespace

void init_pixel_pool(py::module_& m) {
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
