// Integer array arguments shared by the plan and pairing bindings (plan.cpp, pairing.cpp):
// any integer array-like, range-checked here (numpy's forcecast would wrap negatives
// silently), failing with the argument's name and the offending position.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"

namespace tinyvit {
namespace py = pybind11;

constexpr uint64_t kMaxSeed = UINT32_MAX;  // seeds, base seeds and epochs are uint32

inline std::vector<uint64_t> checked_u64_array(py::handle obj, const char* name,
                                               uint64_t max_value) {
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

}  // namespace tinyvit
