// One init function per concept; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace tinyvit {
namespace py = pybind11;

void init_build_info(py::module_& m);
void init_errors(py::module_& m);
void init_rng(py::module_& m);
void init_plan_config(py::module_& m);  // AugConfig, plan name tables (plan_config.cpp)
void init_plan(py::module_& m);
void init_pairing(py::module_& m);      // seeds and mix pairing (pairing.cpp)
void init_store(py::module_& m);        // format, limits, errors (store.cpp)
void init_store_epoch(py::module_& m);  // one epoch file (store_epoch.cpp)
void init_jpeg(py::module_& m);        // JPEG decode, ImageDecodeError (jpeg.cpp)
void init_pixels(py::module_& m);
void init_pixel_pool(py::module_& m);  // the batch pool (pixel_pool.cpp)
void init_index(py::module_& m);

}  // namespace tinyvit
