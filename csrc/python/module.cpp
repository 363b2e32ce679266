// The tinyvit._C extension module. Each concept binds itself in its own file.
#include <pybind11/pybind11.h>

#include "bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "tinyvit compiled core";
  tinyvit::init_build_info(m);
  tinyvit::init_errors(m);  // before any init that registers error kinds
  tinyvit::init_rng(m);
  tinyvit::init_plan_config(m);  // before any binding that takes an AugConfig
  tinyvit::init_plan(m);
  tinyvit::init_pairing(m);
  tinyvit::init_store(m);
  tinyvit::init_store_epoch(m);
  tinyvit::init_jpeg(m);  // registers the decode error kind the pixel bindings raise
  tinyvit::init_pixels(m);
  tinyvit::init_pixel_pool(m);
  tinyvit::init_index(m);
}
