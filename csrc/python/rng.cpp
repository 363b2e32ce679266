// Python bindings for PCG32: thin wrappers, argument checks in args.h.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/rng/pcg32.h"
#include "args.h"
#include "bindings.h"

namespace tinyvit {

namespace {
// numpy arrays above this size are almost certainly a bug (16 GiB of uint32).
constexpr uint64_t kMaxStreamLength = uint64_t{1} << 32;
}  // namespace

void init_rng(py::module_& m) {
  py::class_<PCG32>(m, "PCG32", R"doc(
PCG32 random number generator (O'Neill's pcg32: 64-bit state, XSH-RR output).

PCG32(initstate, initseq) seeds exactly like the reference pcg32_srandom_r, so the raw
stream equals the reference one. Every distribution is computed in C++ without libm
transcendentals, so results are bit-identical across platforms and compilers.
)doc")
      .def(py::init([](py::handle initstate, py::handle initseq) {
             return PCG32(checked_u64(initstate, "initstate"), checked_u64(initseq, "initseq"));
           }),
           py::arg("initstate"), py::arg("initseq"))
      .def("next_u32", &PCG32::next_u32, "Next raw 32-bit output.")
      .def("random", py::overload_cast<>(&PCG32::uniform),
           "Uniform float in [0, 1): one draw, u32 * 2**-32.")
      .def(
          "bounded",
          [](PCG32& g, py::handle n) {
            return g.bounded(static_cast<uint32_t>(checked_u64(n, "n", 1, UINT32_MAX)));
          },
          py::arg("n"), "Unbiased integer in [0, n) for 1 <= n < 2**32 (rejection sampling).")
      .def("normal", [](PCG32& g) { return g.normal(); }, "Standard normal (polar method).")
      .def(
          "gamma",
          [](PCG32& g, py::handle shape) {
            return g.gamma(checked_positive_double(shape, "shape"));
          },
          py::arg("shape"), "Gamma(shape, 1) (Marsaglia-Tsang).")
      .def(
          "beta",
          [](PCG32& g, py::handle a, py::handle b) {
            return g.beta(checked_positive_double(a, "a"), checked_positive_double(b, "b"));
          },
          py::arg("a"), py::arg("b"), "Beta(a, b) via two gamma draws (Mixup/CutMix lambda).")
      .def_property_readonly("state", &PCG32::state, "Internal 64-bit LCG state.")
      .def_property_readonly("inc", &PCG32::inc, "Stream increment (2 * initseq + 1 mod 2**64).")
      .def("__repr__", [](const PCG32& g) {
        return "PCG32(state=" + std::to_string(g.state()) + ", inc=" + std::to_string(g.inc()) + ")";
      });

  m.def(
      "pcg32_u32",
      [](py::handle initstate, py::handle initseq, py::handle n) {
        PCG32 g(checked_u64(initstate, "initstate"), checked_u64(initseq, "initseq"));
        const auto count = static_cast<py::ssize_t>(checked_u64(n, "n", 0, kMaxStreamLength));
        py::array_t<uint32_t> out(count);
        uint32_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          for (py::ssize_t i = 0; i < count; ++i) dst[i] = g.next_u32();
        }
        return out;
      },
      py::arg("initstate"), py::arg("initseq"), py::arg("n"),
      "The first n raw outputs of PCG32(initstate, initseq) as a numpy uint32 array.");
}

}  // namespace tinyvit
