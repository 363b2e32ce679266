// Python bindings of the logit store (core: csrc/core/store/store_format.h, store_io.h).
// Thin: tensor checks, the GIL released around every batch, and StoreException kinds mapped
// to the Python exception classes that tinyvit/store/errors.py registers at import.
#include <torch/extension.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/store/store_format.h"
#include "core/store/store_io.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace tinyvit {

namespace {
using store::EpochFile;
using store::ErrorKind;
using store::StoreException;

const std::map<std::string, ErrorKind>& kind_names() {
  static const std::map<std::string, ErrorKind> names = {
      {"io", ErrorKind::kIo},
      {"truncated_file", ErrorKind::kTruncatedFile},
      {"file_size", ErrorKind::kFileSize},
      {"checksum", ErrorKind::kChecksum},
      {"record_missing", ErrorKind::kRecordMissing},
      {"corrupt_record", ErrorKind::kCorruptRecord},
      {"sample_index", ErrorKind::kSampleIndex},
      {"epoch_missing", ErrorKind::kEpochMissing},
      {"shape_mismatch", ErrorKind::kShapeMismatch},
      {"invalid_record", ErrorKind::kInvalidRecord},
      {"read_only", ErrorKind::kReadOnly},
  };
  return names;
}

store::ValueEncoding parse_encoding(const std::string& s) {
  if (s == "fp16") return store::ValueEncoding::kFp16;
  if (s == "compact") return store::ValueEncoding::kCompact;
  throw py::value_error("value_encoding must be 'fp16' or 'compact', got '" + s + "'");
}

store::Layout layout_from(const std::string& encoding, py::handle topk, py::handle num_classes,
                          py::handle store_id) {
  try {
    return store::make_layout(parse_encoding(encoding),
                              static_cast<uint32_t>(checked_u64(topk, "topk", 1, 65535)),
                              static_cast<uint32_t>(checked_u64(num_classes, "num_classes", 1,
                                                                0x7fffffffu)),
                              checked_u64(store_id, "store_id"));
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

[[noreturn]] void shape_error(const EpochFile& f, const std::string& what) {
  throw StoreException(ErrorKind::kShapeMismatch, f.path() + " (epoch " +
                                                      std::to_string(f.epoch()) + "): " + what);
}

std::string shape_str(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

void check_tensor(const EpochFile& f, const torch::Tensor& t, const char* name,
                  torch::ScalarType dtype, std::initializer_list<int64_t> shape) {
  if (t.device().type() != torch::kCPU)
    shape_error(f, std::string(name) + " must be a CPU tensor (pinned is fine), got " +
                       t.device().str());
  if (t.scalar_type() != dtype)
    shape_error(f, std::string(name) + " must have dtype " + std::string(c10::toString(dtype)) +
                       ", got " + std::string(c10::toString(t.scalar_type())));
  bool ok = t.dim() == static_cast<int64_t>(shape.size());
  size_t d = 0;
  for (int64_t s : shape) ok = ok && t.size(static_cast<int64_t>(d++)) == s;
  if (!ok) {
    std::string want = "[";
    d = 0;
    for (int64_t s : shape) want += (d++ ? ", " : "") + std::to_string(s);
    shape_error(f, std::string(name) + " must have shape " + want + "], got " + shape_str(t));
  }
  if (!t.is_contiguous()) shape_error(f, std::string(name) + " must be contiguous");
}

}  // namespace

void init_store(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StoreException& e) {
      // The one error path (errors.h): kind "store.<name>" -> the class tinyvit/store registered.
      std::string name = "unknown";
      for (const auto& kv : kind_names())
        if (kv.second == e.kind()) name = kv.first;
      set_error(Error("store." + name, e.what()));
    }
  });

  m.def(
      "_store_error_kinds", [] {
        py::list names;
        for (const auto& kv : kind_names()) names.append("store." + kv.first);
        return names;
      },
      "The error kinds the store raises (register each with _C._register_error_kinds).");

  m.def(
      "_store_layout",
      [](const std::string& encoding, py::handle topk, py::handle num_classes,
         py::handle store_id) {
        const store::Layout L = layout_from(encoding, topk, num_classes, store_id);
        py::dict d;
        d["record_size"] = L.record_size;
        d["index_bytes"] = static_cast<int>(L.index_type);
        d["off_seed"] = L.off_seed;
        d["off_scale"] = L.off_scale;
        d["off_indices"] = L.off_indices;
        d["off_values"] = L.off_values;
        d["values_bytes"] = L.values_bytes;
        d["off_check"] = L.off_check;
        return d;
      },
      py::arg("value_encoding"), py::arg("topk"), py::arg("num_classes"), py::arg("store_id") = 0,
      "Byte layout of one record (sizes and offsets).");

  m.def("_store_isa", []() { return std::string(store::active_isa()); },
        "Active checksum/decode implementation.");
  m.def(
      "_store_set_isa",
      [](const std::string& name) {
        if (!store::set_isa(name))
          throw py::value_error("unknown or unsupported store ISA '" + name + "'");
      },
      py::arg("name"), "'auto', 'portable', or the fast ISA name (tests).");
  m.def(
      "_store_crc32c",
      [](py::bytes data, uint32_t crc) {
        const std::string s = data;
        return store::crc32c(crc, s.data(), s.size());
      },
      py::arg("data"), py::arg("crc") = 0xFFFFFFFFu, "Raw CRC32C update (no final inversion).");
  m.def(
      "_store_compact_levels",
      []() {
        py::list out;
        for (int l = 0; l < store::kCompactLevels; ++l) out.append(store::compact_level_value(l));
        return out;
      },
      "The 256 compact-encoding level values T[l].");

  py::class_<EpochFile, std::shared_ptr<EpochFile>>(m, "_StoreEpoch", R"doc(
One epoch file of a LogitStore (internal; use tinyvit.LogitStore). Reads go through pread
into a private buffer (verified and decoded from that copy), writes through pwrite at each
record's offset.
)doc")
      .def(py::init([](const std::string& path, const std::string& encoding, py::handle topk,
                       py::handle num_classes, py::handle store_id, py::handle num_samples,
                       py::handle epoch, bool writable, bool create) {
             const store::Layout L = layout_from(encoding, topk, num_classes, store_id);
             const uint64_t n = checked_u64(num_samples, "num_samples", 1, uint64_t{1} << 48);
             const auto e = static_cast<uint32_t>(checked_u64(epoch, "epoch", 0, 0xffffffffu));
             py::gil_scoped_release release;
             return std::make_shared<EpochFile>(path, L, n, e, writable, create);
           }),
           py::arg("path"), py::arg("value_encoding"), py::arg("topk"), py::arg("num_classes"),
           py::arg("store_id"), py::arg("num_samples"), py::arg("epoch"), py::arg("writable"),
           py::arg("create"))
      .def(
          "read",
          [](const EpochFile& f, const torch::Tensor& samples, torch::Tensor seeds,
             torch::Tensor indices, torch::Tensor probs) {
            const int64_t B = samples.dim() == 1 ? samples.size(0) : -1;
            if (B < 0) shape_error(f, "sample_indices must be 1-D, got " + shape_str(samples));
            const int64_t K = f.layout().topk;
            check_tensor(f, samples, "sample_indices", torch::kInt64, {B});
            check_tensor(f, seeds, "out seeds", torch::kInt64, {B});
            check_tensor(f, indices, "out indices", torch::kInt64, {B, K});
            check_tensor(f, probs, "out probs", torch::kFloat32, {B, K});
            const int64_t* s = samples.data_ptr<int64_t>();
            int64_t* sd = seeds.data_ptr<int64_t>();
            int64_t* ix = indices.data_ptr<int64_t>();
            float* pr = probs.data_ptr<float>();
            py::gil_scoped_release release;
            f.read(s, static_cast<size_t>(B), sd, ix, pr);
          },
          py::arg("sample_indices"), py::arg("seeds"), py::arg("indices"), py::arg("probs"),
          "Fused batched read into preallocated int64[B], int64[B,K], float32[B,K] tensors.")
      .def(
          "write",
          [](EpochFile& f, const torch::Tensor& samples, const torch::Tensor& seeds,
             const torch::Tensor& indices, const torch::Tensor& probs) {
            const int64_t B = samples.dim() == 1 ? samples.size(0) : -1;
            if (B < 0) shape_error(f, "sample_indices must be 1-D, got " + shape_str(samples));
            const int64_t K = f.layout().topk;
            check_tensor(f, samples, "sample_indices", torch::kInt64, {B});
            check_tensor(f, seeds, "seeds", torch::kInt64, {B});
            check_tensor(f, indices, "topk_indices", torch::kInt64, {B, K});
            check_tensor(f, probs, "topk_probs", torch::kFloat32, {B, K});
            const int64_t* s = samples.data_ptr<int64_t>();
            const int64_t* sd = seeds.data_ptr<int64_t>();
            const int64_t* ix = indices.data_ptr<int64_t>();
            const float* pr = probs.data_ptr<float>();
            py::gil_scoped_release release;
            f.write(s, static_cast<size_t>(B), sd, ix, pr);
          },
          py::arg("sample_indices"), py::arg("seeds"), py::arg("topk_indices"),
          py::arg("topk_probs"), "Fused batched encode + pwrite.")
      .def(
          "missing",
          [](const EpochFile& f, py::handle first, py::handle count) {
            const uint64_t a = checked_u64(first, "first");
            const uint64_t n = checked_u64(count, "count");
            std::vector<int64_t> v;
            {
              py::gil_scoped_release release;
              v = f.missing(a, n);
            }
            torch::Tensor out = torch::empty({static_cast<int64_t>(v.size())}, torch::kInt64);
            if (!v.empty()) std::memcpy(out.data_ptr<int64_t>(), v.data(), v.size() * 8);
            return out;
          },
          py::arg("first"), py::arg("count"),
          "Sample indices in [first, first+count) whose record does not verify (int64 tensor).")
      .def(
          "audit",
          [](const EpochFile& f, py::handle first, py::handle count) {
            const uint64_t a = checked_u64(first, "first");
            const uint64_t n = checked_u64(count, "count");
            store::AuditCounts c;
            {
              py::gil_scoped_release release;
              c = f.audit(a, n);
            }
            py::dict d;
            d["ok"] = c.ok;
            d["missing"] = c.missing;
            d["bad_checksum"] = c.bad_check;
            d["bad_index"] = c.bad_index;
            d["duplicate_index"] = c.duplicate_index;
            d["prob_range"] = c.prob_range;
            d["prob_sum"] = c.prob_sum;
            d["bad_encoding"] = c.bad_encoding;
            d["first_bad_sample"] = c.first_bad_sample;
            d["first_bad_detail"] = c.first_bad_detail;
            return d;
          },
          py::arg("first"), py::arg("count"), "Per-finding counts over a sample range.")
      .def(
          "raw_record",
          [](const EpochFile& f, py::handle sample) {
            const std::string s = f.raw_record(checked_u64(sample, "sample"));
            return py::bytes(s);
          },
          py::arg("sample"))
      .def("sync",
           [](EpochFile& f) {
             py::gil_scoped_release release;
             f.sync();
           })
      .def_property_readonly("allocated_bytes", &EpochFile::allocated_bytes)
      .def_property_readonly("path", &EpochFile::path)
      .def_property_readonly("record_size",
                             [](const EpochFile& f) { return f.layout().record_size; });
}

}  // namespace tinyvit
