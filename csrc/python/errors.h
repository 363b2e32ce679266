// The one way a core failure becomes a Python exception: a core Error {kind, message}
// (core/util/error.h) -> raise_error -> the Python class registered for `kind`.
// Built in: value -> ValueError, type -> TypeError, not_found -> FileNotFoundError,
// permission -> PermissionError, is_directory -> IsADirectoryError, io -> OSError,
// memory -> MemoryError. Packages register their own kinds (pixels: "decode" ->
// tinyvit.ImageDecodeError; the store's StoreException kinds as "store.<kind>", registered by
// tinyvit/store/errors.py: {"store.checksum": ChecksumError, ...}, translated in store.cpp). An unregistered kind raises RuntimeError naming it.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "core/util/error.h"

namespace tinyvit {
namespace py = pybind11;

// Maps kind to cls (a new reference is kept for the life of the process).
void register_error_kind(const std::string& kind, py::handle cls);

// Sets the Python error for e (prefix + message) without throwing: for exception translators.
void set_error(const Error& e, const std::string& prefix = "");

// Sets the Python error for e (prefix + message) and throws py::error_already_set.
[[noreturn]] void raise_error(const Error& e, const std::string& prefix = "");

void init_errors(py::module_& m);

}  // namespace tinyvit
