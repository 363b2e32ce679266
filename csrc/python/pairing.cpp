// Python bindings for the traversal randomness (core/plan/pairing.h): per-sample
// augmentation seeds and the epoch's mix pairing. Thin: argument checks only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/plan/pairing.h"
#include "args.h"
#include "array_args.h"
#include "bindings.h"

namespace tinyvit {

namespace {

py::array_t<uint32_t> sample_seeds(py::handle base_seed, py::handle epoch, py::handle indices_obj) {
  const auto b = static_cast<uint32_t>(checked_u64(base_seed, "base_seed", 0, kMaxSeed));
  const auto e = static_cast<uint32_t>(checked_u64(epoch, "epoch", 0, kMaxSeed));
  const auto idx = checked_u64_array(indices_obj, "indices", UINT64_MAX);
  py::array_t<uint32_t> out(static_cast<py::ssize_t>(idx.size()));
  {
    py::gil_scoped_release release;
    sample_seed_batch(idx.data(), out.mutable_data(), idx.size(), b, e);
  }
  return out;
}

// mix_partners (partner = true) and pair_permutation: same arguments, same checks.
template <bool partner>
py::array_t<int64_t> pairing(py::handle epoch, py::handle values_obj, py::handle n_obj,
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
}

}  // namespace

void init_pairing(py::module_& m) {
  m.def("sample_seeds", &sample_seeds, py::arg("base_seed"), py::arg("epoch"), py::arg("indices"),
        "Per-sample augmentation seeds (uint32) of dataset indices in an epoch.");
  m.def("mix_partners", &pairing<true>, py::arg("epoch"), py::arg("indices"),
        py::arg("num_samples"), py::arg("base_seed"),
        "Mix partner (int64) of each dataset index in the epoch's pairing.");
  m.def("pair_permutation", &pairing<false>, py::arg("epoch"), py::arg("positions"),
        py::arg("num_samples"), py::arg("base_seed"),
        "The epoch's pairing permutation at the given positions: pairs are positions (2k, 2k+1).");
}

}  // namespace tinyvit
