// Python bindings of the logit store's format (core: csrc/core/store/store_format.h): record
// layout, the store limits, checksum and ISA switches, and the StoreException -> Python class
// mapping. The epoch file class is bound in store_epoch.cpp. Thin: argument checks here, the
// StoreException kinds mapped to the Python exception classes that tinyvit/store/errors.py
// registers at import.
#include <pybind11/pybind11.h>

#include <map>
#include <stdexcept>
#include <string>

#include "core/store/store_format.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "store_args.h"

namespace tinyvit {

namespace {
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

// The one error path (errors.h): kind "store.<name>" -> the class tinyvit/store registered.
void translate_store_exception(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const StoreException& e) {
    std::string name = "unknown";
    for (const auto& kv : kind_names())
      if (kv.second == e.kind()) name = kv.first;
    set_error(Error("store." + name, e.what()));
  }
}

py::list store_error_kinds() {
  py::list names;
  for (const auto& kv : kind_names()) names.append("store." + kv.first);
  return names;
}

py::dict store_limits() {
  py::dict d, text;
  d["max_samples"] = store::kMaxSamples;
  d["max_classes"] = store::kMaxClasses;
  d["max_topk"] = store::kMaxTopk;
  d["max_u16_classes"] = store::kMaxU16Classes;
  d["max_epochs"] = store::kMaxEpochs;
  d["max_manifest_bytes"] = store::kMaxManifestBytes;
  text["max_samples"] = store::kMaxSamplesText;
  text["max_classes"] = store::kMaxClassesText;
  text["max_topk"] = store::kMaxTopkText;
  text["max_epochs"] = store::kMaxEpochsText;
  d["text"] = text;
  return d;
}

py::dict layout_dict(const std::string& encoding, py::handle topk, py::handle num_classes,
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
}

void set_isa(const std::string& name) {
  if (!store::set_isa(name)) throw py::value_error("unknown or unsupported store ISA '" + name + "'");
}

uint32_t crc32c_of(py::bytes data, uint32_t crc) {
  const std::string s = data;
  return store::crc32c(crc, s.data(), s.size());
}

py::list compact_levels() {
  py::list out;
  for (int l = 0; l < store::kCompactLevels; ++l) out.append(store::compact_level_value(l));
  return out;
}

}  // namespace

store::Layout layout_from(const std::string& encoding, py::handle topk, py::handle num_classes,
                          py::handle store_id) {
  try {
    return store::make_layout(
        parse_encoding(encoding),
        static_cast<uint32_t>(checked_u64(topk, "topk", 1, store::kMaxTopk)),
        static_cast<uint32_t>(checked_u64(num_classes, "num_classes", 1, store::kMaxClasses)),
        checked_u64(store_id, "store_id"));
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

void init_store(py::module_& m) {
  py::register_exception_translator(&translate_store_exception);
  m.def("_store_error_kinds", &store_error_kinds,
        "The error kinds the store raises (register each with _C._register_error_kinds).");
  m.def("_store_limits", &store_limits,
        "The store's size limits (core/store/store_format.h); 'text': how messages print them.");
  m.def("_store_layout", &layout_dict, py::arg("value_encoding"), py::arg("topk"),
        py::arg("num_classes"), py::arg("store_id") = 0,
        "Byte layout of one record (sizes and offsets).");
  m.def("_store_isa", []() { return std::string(store::active_isa()); },
        "Active checksum/decode implementation.");
  m.def("_store_set_isa", &set_isa, py::arg("name"),
        "'auto', 'portable', or the fast ISA name (tests).");
  m.def("_store_crc32c", &crc32c_of, py::arg("data"), py::arg("crc") = 0xFFFFFFFFu,
        "Raw CRC32C update (no final inversion).");
  m.def("_store_compact_levels", &compact_levels, "The 256 compact-encoding level values T[l].");
}

}  // namespace tinyvit
