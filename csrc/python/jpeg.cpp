// Python bindings of the JPEG fast path (core/pixels/jpeg_decode.h) and image file reads
// (core/pixels/batch.h): header info, full and region-of-interest decodes. Also registers
// ImageDecodeError, the class every decode failure of the pixel bindings raises. Thin:
// argument conversion here, all logic in core/; failures cross as core Errors (errors.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "core/pixels/batch.h"
#include "core/pixels/jpeg_decode.h"
#include "core/pixels/resize.h"
#include "bindings.h"
#include "errors.h"
#include "pixel_args.h"

namespace tinyvit {

namespace {

py::bytes read_file(const std::string& path) {
  std::vector<uint8_t> data;
  Error err;
  {
    py::gil_scoped_release release;
    err = read_image_file(path, data);
  }
  if (err) raise_error(err, path + ": ");
  return py::bytes(reinterpret_cast<const char*>(data.data()), data.size());
}

// auto: the typed tuple make_tuple returns gives the signature its element types.
auto jpeg_info(py::handle data, const std::string& name) {
  const Bytes b = bytes_of(data, "data");
  JpegInfo info;
  run_released(name.empty() ? bytes_name(b.size) : name,
               [&] { info = jpeg_read_info(b.data, b.size); });
  return py::make_tuple(info.width, info.height, info.components, info.progressive);
}

U8Array decode_jpeg(py::handle data, int scale_denom, const std::string& name) {
  const Bytes b = bytes_of(data, "data");
  ImageU8 img;
  run_released(name.empty() ? bytes_name(b.size) : name,
               [&] { img = jpeg_decode_full(b.data, b.size, scale_denom); });
  return to_array(img);
}

auto decode_jpeg_region(py::handle data, std::vector<int> crop, std::vector<int> out_wh,
                        const std::string& filter, int scale_denom) {
  const Bytes b = bytes_of(data, "data");
  if (crop.size() != 4 || out_wh.size() != 2)
    throw py::value_error("crop is (x, y, w, h), out_wh is (w, h)");
  const double support = filter_support(interp_of(filter, "filter"));
  JpegRegion r;
  run_released(bytes_name(b.size), [&] {
    r = jpeg_decode_region(b.data, b.size, crop[0], crop[1], crop[2], crop[3], out_wh[0],
                           out_wh[1], support, scale_denom);
  });
  return py::make_tuple(to_array(r.image), py::make_tuple(r.box[0], r.box[1], r.box[2], r.box[3]),
                        r.scale_denom, py::make_tuple(r.region_x, r.region_y));
}

}  // namespace

void init_jpeg(py::module_& m) {
  py::register_exception<ImageDecodeError>(m, "ImageDecodeError", PyExc_ValueError);
  register_error_kind(error_kind::kDecode, m.attr("ImageDecodeError"));
  m.def("_read_file", &read_file, py::arg("path"),
        "An image file's bytes: regular files only (a FIFO cannot hang it), at most 1 GiB; "
        "errors name the path.");
  m.def("_jpeg_supported", &jpeg_supported);
  m.def("_jpeg_info", &jpeg_info, py::arg("data"), py::arg("name") = "",
        "(width, height, components, progressive) from a JPEG header.");
  m.def("_decode_jpeg", &decode_jpeg, py::arg("data"), py::arg("scale_denom") = 1,
        py::arg("name") = "",
        "Full JPEG decode to RGB uint8 (H, W, 3), optionally IDCT-scaled by 1/scale_denom.");
  m.def("_decode_jpeg_region", &decode_jpeg_region, py::arg("data"), py::arg("crop"),
        py::arg("out_wh"), py::arg("filter") = "bicubic", py::arg("scale_denom") = 0,
        "Region-of-interest decode: (pixels, crop box in those pixels, scale_denom, region "
        "origin).");
}

}  // namespace tinyvit
