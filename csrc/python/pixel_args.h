// Argument conversion shared by the pixel bindings (pixels.cpp: plan application and single
// ops; jpeg.cpp: the JPEG fast path; pixel_pool.cpp: the batch pool): bytes-like sources,
// uint8 (H, W, 3) arrays, filter names, and running core work with the GIL released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "core/pixels/batch.h"
#include "core/pixels/image.h"
#include "core/plan/names.h"
#include "core/util/error.h"
#include "errors.h"

namespace tinyvit {
namespace py = pybind11;

using U8Array = py::array_t<uint8_t, py::array::c_style>;

// Bytes-like source as a pointer + size (the object must outlive the use).
struct Bytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

inline Bytes bytes_of(py::handle obj, const char* name) {
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

inline Interp interp_of(const std::string& s, const char* field) {
  if (s == "nearest") return Interp::Nearest;
  if (s == "bilinear") return Interp::Bilinear;
  if (s == "bicubic") return Interp::Bicubic;
  throw py::value_error(std::string(field) + " must be 'nearest', 'bilinear' or 'bicubic', got '" +
                        s + "'");
}

inline ImageView view_of(const U8Array& a, const char* name) {
  if (a.ndim() != 3 || a.shape(2) != 3)
    throw py::value_error(std::string(name) + " must be a uint8 array of shape (H, W, 3)");
  if (a.shape(0) < 1 || a.shape(1) < 1) throw py::value_error(std::string(name) + " is empty");
  return ImageView{a.data(), static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)),
                   static_cast<ptrdiff_t>(a.strides(0))};
}

inline U8Array to_array(const ImageU8& img) {
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

inline std::string bytes_name(size_t n) { return "<bytes len=" + std::to_string(n) + ">"; }

}  // namespace tinyvit
