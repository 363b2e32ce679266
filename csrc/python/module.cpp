// The tinyvit._C extension module. Each concept binds itself in its own file.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinyvit compiled core";
  tinyvit::init_build_info(m);
  tinyvit::init_errors(m);  // before any init that registers error kinds
  tinyvit::init_rng(m);
  tinyvit::init_plan(m);
  tinyvit::init_store(m);
  tinyvit::init_pixels(m);
  tinyvit::init_index(m);
}
