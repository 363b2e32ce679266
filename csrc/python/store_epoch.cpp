// Python binding of one epoch file of the logit store (core: csrc/core/store/store_io.h):
// batched read / write into caller-owned tensors, the missing-record scan and the audit.
// Thin: tensor checks here, the GIL released around every batch; StoreExceptions cross
// through the translator registered in store.cpp.
#include <torch/extension.h>

#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/store/store_format.h"
#include "core/store/store_io.h"
#include "args.h"
#include "bindings.h"
#include "store_args.h"

namespace tinyvit {

namespace {
using store::EpochFile;
using store::ErrorKind;
using store::StoreException;

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

// The batch size B of a read or write, after checking all four tensors against (B, K).
// names: sample indices, seeds, indices, probs (as the method's arguments are called).
int64_t checked_batch(const EpochFile& f, const torch::Tensor& samples, const torch::Tensor& seeds,
                      const torch::Tensor& indices, const torch::Tensor& probs,
                      const char* const (&names)[4]) {
  const int64_t B = samples.dim() == 1 ? samples.size(0) : -1;
  if (B < 0) shape_error(f, "sample_indices must be 1-D, got " + shape_str(samples));
  const int64_t K = f.layout().topk;
  check_tensor(f, samples, names[0], torch::kInt64, {B});
  check_tensor(f, seeds, names[1], torch::kInt64, {B});
  check_tensor(f, indices, names[2], torch::kInt64, {B, K});
  check_tensor(f, probs, names[3], torch::kFloat32, {B, K});
  return B;
}

std::shared_ptr<EpochFile> open_epoch(const std::string& path, const std::string& encoding,
                                      py::handle topk, py::handle num_classes,
                                      py::handle store_id, py::handle num_samples,
                                      py::handle epoch, bool writable, bool create) {
  const store::Layout L = layout_from(encoding, topk, num_classes, store_id);
  const uint64_t n = checked_u64(num_samples, "num_samples", 1, store::kMaxSamples);
  const auto e = static_cast<uint32_t>(checked_u64(epoch, "epoch", 0, 0xffffffffu));
  py::gil_scoped_release release;
  return std::make_shared<EpochFile>(path, L, n, e, writable, create);
}

void read_batch(const EpochFile& f, const torch::Tensor& samples, torch::Tensor seeds,
                torch::Tensor indices, torch::Tensor probs) {
  static const char* const kNames[4] = {"sample_indices", "out seeds", "out indices", "out probs"};
  const int64_t B = checked_batch(f, samples, seeds, indices, probs, kNames);
  const int64_t* s = samples.data_ptr<int64_t>();
  int64_t* sd = seeds.data_ptr<int64_t>();
  int64_t* ix = indices.data_ptr<int64_t>();
  float* pr = probs.data_ptr<float>();
  py::gil_scoped_release release;
  f.read(s, static_cast<size_t>(B), sd, ix, pr);
}

void write_batch(EpochFile& f, const torch::Tensor& samples, const torch::Tensor& seeds,
                 const torch::Tensor& indices, const torch::Tensor& probs) {
  static const char* const kNames[4] = {"sample_indices", "seeds", "topk_indices", "topk_probs"};
  const int64_t B = checked_batch(f, samples, seeds, indices, probs, kNames);
  const int64_t* s = samples.data_ptr<int64_t>();
  const int64_t* sd = seeds.data_ptr<int64_t>();
  const int64_t* ix = indices.data_ptr<int64_t>();
  const float* pr = probs.data_ptr<float>();
  py::gil_scoped_release release;
  f.write(s, static_cast<size_t>(B), sd, ix, pr);
}

torch::Tensor missing(const EpochFile& f, py::handle first, py::handle count) {
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
}

py::dict audit(const EpochFile& f, py::handle first, py::handle count) {
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
}

py::bytes raw_record(const EpochFile& f, py::handle sample) {
  return py::bytes(f.raw_record(checked_u64(sample, "sample")));
}

void sync(EpochFile& f) {
  py::gil_scoped_release release;
  f.sync();
}

}  // namespace

void init_store_epoch(py::module_& m) {
  py::class_<EpochFile, std::shared_ptr<EpochFile>>(m, "_StoreEpoch", R"doc(
One epoch file of a LogitStore (internal; use tinyvit.LogitStore). Reads go through pread
into a private buffer (verified and decoded from that copy), writes through pwrite at each
record's offset.
)doc")
      .def(py::init(&open_epoch), py::arg("path"), py::arg("value_encoding"), py::arg("topk"),
           py::arg("num_classes"), py::arg("store_id"), py::arg("num_samples"), py::arg("epoch"),
           py::arg("writable"), py::arg("create"))
      .def("read", &read_batch, py::arg("sample_indices"), py::arg("seeds"), py::arg("indices"),
           py::arg("probs"),
           "Fused batched read into preallocated int64[B], int64[B,K], float32[B,K] tensors.")
      .def("write", &write_batch, py::arg("sample_indices"), py::arg("seeds"),
           py::arg("topk_indices"), py::arg("topk_probs"), "Fused batched encode + pwrite.")
      .def("missing", &missing, py::arg("first"), py::arg("count"),
           "Sample indices in [first, first+count) whose record does not verify (int64 tensor).")
      .def("audit", &audit, py::arg("first"), py::arg("count"),
           "Per-finding counts over a sample range.")
      .def("raw_record", &raw_record, py::arg("sample"))
      .def("sync", &sync)
      .def_property_readonly("allocated_bytes", &EpochFile::allocated_bytes)
      .def_property_readonly("path", &EpochFile::path)
      .def_property_readonly("record_size",
                             [](const EpochFile& f) { return f.layout().record_size; });
}

}  // namespace tinyvit
