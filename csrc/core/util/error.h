// The one shape in which a core failure crosses to Python: {kind, message}. The core
// records an Error per item instead of throwing across threads; the binding helper
// (csrc/python/errors.h raise_error) maps `kind` to the registered Python class.
// Kinds are short stable names; the built-in ones are below, others (e.g. the store's
// "checksum") are registered by their Python package with _C._register_error_kinds.
#pragma once

#include <string>
#include <utility>

namespace tinyvit {

namespace error_kind {
constexpr const char* kValue = "value";          // ValueError: bad argument / plan / config
constexpr const char* kType = "type";            // TypeError
constexpr const char* kNotFound = "not_found";   // FileNotFoundError
constexpr const char* kPermission = "permission";  // PermissionError
constexpr const char* kIsDirectory = "is_directory";  // IsADirectoryError
constexpr const char* kIo = "io";                // OSError: any other file-system failure
constexpr const char* kMemory = "memory";        // MemoryError
constexpr const char* kDecode = "decode";        // tinyvit.ImageDecodeError (registered)
}  // namespace error_kind

struct Error {
  std::string kind;  // empty = no error
  std::string message;

  Error() = default;
  Error(std::string k, std::string m) : kind(std::move(k)), message(std::move(m)) {}
  explicit operator bool() const { return !kind.empty(); }
};

}  // namespace tinyvit
