// Argument checking shared by the bindings. Python ints are arbitrary precision, so
// every narrowing to a C++ integer goes through here and fails naming the argument:
// TypeError for a non-integer, ValueError below the allowed minimum (negative, or 0
// where 0 is meaningless), OverflowError above the maximum. pybind11's own conversion
// would only say "incompatible function arguments".
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace tinyvit {
namespace py = pybind11;

[[noreturn]] inline void raise_overflow(const std::string& msg) {
  PyErr_SetString(PyExc_OverflowError, msg.c_str());
  throw py::error_already_set();
}

// Accepts anything with __index__ (int, numpy integers); bool is rejected as a likely mistake.
inline uint64_t checked_u64(py::handle obj, const char* name, uint64_t min_value = 0,
                            uint64_t max_value = UINT64_MAX) {
  if (PyBool_Check(obj.ptr()))
    throw py::type_error(std::string(name) + " must be an integer, not bool");
  PyObject* raw = PyNumber_Index(obj.ptr());
  if (raw == nullptr) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be an integer, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  py::object index = py::reinterpret_steal<py::object>(raw);
  const std::string text = py::str(index);
  if (PyObject_RichCompareBool(raw, py::int_(min_value).ptr(), Py_LT) == 1) {
    throw py::value_error(std::string(name) + " must be >= " + std::to_string(min_value) +
                          ", got " + text);
  }
  if (PyObject_RichCompareBool(raw, py::int_(max_value).ptr(), Py_GT) == 1) {
    raise_overflow(std::string(name) + " must be <= " + std::to_string(max_value) + ", got " +
                   text);
  }
  return PyLong_AsUnsignedLongLong(raw);
}

inline double checked_positive_double(py::handle obj, const char* name) {
  const double v = py::cast<double>(obj);
  if (!(v > 0.0) || v == INFINITY)
    throw py::value_error(std::string(name) + " must be a finite number > 0, got " +
                          std::string(py::str(obj)));
  return v;
}

}  // namespace tinyvit
