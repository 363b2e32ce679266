// Shared by the store bindings (store.cpp: format, limits, errors; store_epoch.cpp: one
// epoch file's read / write / scan): the layout from Python arguments, checked against the
// limits of core/store/store_format.h.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "core/store/store_format.h"

namespace tinyvit {
namespace py = pybind11;

// Raises ValueError (bad encoding, K > C) or OverflowError (over a store limit) naming the
// argument; defined in store.cpp.
store::Layout layout_from(const std::string& encoding, py::handle topk, py::handle num_classes,
                          py::handle store_id);

}  // namespace tinyvit
