// One init function per concept; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace tinyvit {
namespace py = pybind11;

void init_build_info(py::module_& m);
void init_errors(py::module_& m);
void init_rng(py::module_& m);
void init_plan(py::module_& m);
void init_store(py::module_& m);
void init_pixels(py::module_& m);
void init_index(py::module_& m);

}  // namespace tinyvit
