// The device part of many plans (core/pixels/batch.h) as Python sees it, one conversion for
// both bindings that return it: plan_device_params (plan.cpp) and PixelPool.run (pixels.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include "core/pixels/batch.h"

namespace tinyvit {
namespace py = pybind11;

// numpy arrays erase_boxes (N, B, 4), erase_seeds (N, B), erase_count (N,), mix (N,),
// lam (N,), cut_box (N, 4); defined in pixels.cpp.
py::dict device_params_to_dict(const DeviceParams& d);

}  // namespace tinyvit
