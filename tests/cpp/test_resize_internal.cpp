// White-box tests of the resampler's internals (core/pixels/resize_internal.h): the AVX2
// coefficient precompute against the scalar one (every double must match, so every
// fixed-point weight must), and the AVX2 horizontal / vertical kernels against the scalar
// loops for every tap count, output widths 1..9 and odd row counts.
#include "core/pixels/resize_internal.h"

#include <algorithm>
#include <cstdio>

#include "check.h"
#include "core/rng/pcg32.h"

using namespace tinyvit;
using namespace tinyvit::resize_detail;

static bool same_coeffs(const Coeffs& a, const Coeffs& b) {
  return a.ksize == b.ksize && a.start == b.start && a.count == b.count && a.w == b.w;
}

static void test_precompute_paths() {
  PCG32 g(5, 9);
  int bad = 0, cases = 0;
  for (int t = 0; t < 20000; ++t) {
    const int in_size = 1 + static_cast<int>(g.bounded(t % 4 == 0 ? 8 : 2000));
    double in0, in1;
    if (t % 3 == 0) {  // integer boxes (crops), including the whole image
      const int a = static_cast<int>(g.bounded(in_size));
      in0 = a;
      in1 = a + 1 + static_cast<int>(g.bounded(static_cast<uint32_t>(in_size - a)));
    } else {
      in0 = g.uniform() * in_size * 0.9;
      in1 = in0 + (in_size - in0) * (0.001 + 0.999 * g.uniform());
    }
    const int out = 1 + static_cast<int>(g.bounded(t % 5 == 0 ? 4 : 700));
    for (Interp f : {Interp::Bilinear, Interp::Bicubic}) {
      bad += !same_coeffs(precompute(in_size, in0, in1, out, f), precompute_scalar(in_size, in0, in1, out, f));
      ++cases;
    }
  }
  CHECK(cases == 40000);
  CHECK(bad == 0);
}

static ImageU8 noise(int h, int w, uint64_t seed) {
  ImageU8 img(h, w);
  PCG32 g(seed, 1);
  for (auto& b : img.data) b = static_cast<uint8_t>(g.bounded(256));
  return img;
}

// pass_horizontal (padded taps -> AVX2 where the CPU has it) against the scalar K-tap loop
// with the same padded coefficients, and pass_vertical against its scalar loop.
static void test_kernels_vs_scalar() {
  PCG32 g(17, 2);
  int bad_h = 0, bad_v = 0, cases = 0;
  for (int t = 0; t < 600; ++t) {
    const int out_w = 1 + t % 9 + (t % 27 >= 18 ? static_cast<int>(g.bounded(60)) : 0);
    // Downscale factors from upscales to > 16x, so every padded K (4..16) and the
    // unpadded fallback occur.
    const double factor = 0.5 + g.uniform() * (t % 4 == 0 ? 20.0 : 6.0);
    const int src_w = std::max(1, static_cast<int>(out_w * factor) + static_cast<int>(g.bounded(4)));
    const int src_h = 1 + static_cast<int>(g.bounded(9));  // odd and even row counts, 1 row too
    const int pad = static_cast<int>(g.bounded(2)) * 5;    // strided view
    ImageU8 big = noise(src_h, src_w + pad, 300 + t);
    const ImageView v{big.row(0), src_h, src_w, big.stride()};
    const Interp f = t & 1 ? Interp::Bicubic : Interp::Bilinear;
    const double x0 = g.uniform() * src_w * 0.1, x1 = src_w - g.uniform() * src_w * 0.1;
    const Coeffs ch = precompute(src_w, x0, x1, out_w, f);
    const int row0 = static_cast<int>(g.bounded(static_cast<uint32_t>(src_h)));
    const int row1 = row0 + 1 + static_cast<int>(g.bounded(static_cast<uint32_t>(src_h - row0)));
    ImageU8 fast;
    pass_horizontal(v, row0, row1, ch, out_w, fast);
    ImageU8 ref(row1 - row0, out_w);
    for (int y = row0; y < row1; ++y)
      for (int x = 0; x < out_w; ++x)
        for (int c = 0; c < 3; ++c) {
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (int k = 0; k < ch.count[x]; ++k)
            acc += v.row(y)[3 * (ch.start[x] + k) + c] * ch.w[static_cast<size_t>(x) * ch.ksize + k];
          ref.row(y - row0)[3 * x + c] = clip_fixed(acc);
        }
    bad_h += fast.data != ref.data || fast.h != ref.h || fast.w != ref.w;
    // Vertical: src_w columns (n_bytes = 3 * src_w: every 32 / 16 / scalar split), any rows.
    const int out_h = 1 + static_cast<int>(g.bounded(9));
    const Coeffs cv = precompute(src_h, 0.0, src_h, out_h, f);
    ImageU8 vf;
    pass_vertical(v, 0, cv, out_h, vf);
    ImageU8 vr(out_h, src_w);
    for (int y = 0; y < out_h; ++y)
      for (int i = 0; i < src_w * 3; ++i) {
        int32_t acc = 1 << (kPrecisionBits - 1);
        for (int k = 0; k < cv.count[y]; ++k) acc += v.row(cv.start[y] + k)[i] * cv.w[static_cast<size_t>(y) * cv.ksize + k];
        vr.row(y)[i] = clip_fixed(acc);
      }
    bad_v += vf.data != vr.data;
    ++cases;
  }
  CHECK(cases == 600);
  CHECK(bad_h == 0);
  CHECK(bad_v == 0);
}

int main() {
  test_precompute_paths();
  test_kernels_vs_scalar();
  return TEST_REPORT();
}
