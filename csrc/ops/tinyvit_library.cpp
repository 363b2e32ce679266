// The single TORCH_LIBRARY(tinyvit, ...) block of the project: it owns the `tinyvit` op
// namespace. Every op file declares its schemas with TORCH_LIBRARY_FRAGMENT(tinyvit, m), so
// ops can be added in separate files without two TORCH_LIBRARY blocks clashing at load time.
#include <torch/library.h>

TORCH_LIBRARY(tinyvit, m) {}
