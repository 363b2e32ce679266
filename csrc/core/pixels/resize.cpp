// Separable resampling (resize.h): the box checks, the nearest path, and the two passes
// (resize_passes.cpp) over coefficients (resize_coeffs.cpp).
#include "core/pixels/resize.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/pixels/resize_internal.h"

namespace tinyvit {

namespace {

using namespace resize_detail;

// Pillow's nearest resize is an affine scale with an accumulated source position.
void resize_nearest(const ImageView& src, const double box[4], ImageU8& out) {
  const double ax = (box[2] - box[0]) / out.w, ay = (box[3] - box[1]) / out.h;
  std::vector<int> xs(out.w);
  double xo = box[0] + ax * 0.5;
  for (int x = 0; x < out.w; ++x, xo += ax) {
    const int xi = xo < 0.0 ? 0 : static_cast<int>(xo);
    xs[x] = std::min(xi, src.w - 1);
  }
  double yo = box[1] + ay * 0.5;
  for (int y = 0; y < out.h; ++y, yo += ay) {
    const int yi = std::min(yo < 0.0 ? 0 : static_cast<int>(yo), src.h - 1);
    const uint8_t* in = src.row(yi);
    uint8_t* o = out.row(y);
    for (int x = 0; x < out.w; ++x) {
      o[3 * x] = in[3 * xs[x]];
      o[3 * x + 1] = in[3 * xs[x] + 1];
      o[3 * x + 2] = in[3 * xs[x] + 2];
    }
  }
}

}  // namespace

double filter_support(Interp filter) {
  switch (filter) {
    case Interp::Nearest: return 0.0;
    case Interp::Bilinear: return 1.0;
    case Interp::Bicubic: return 2.0;
    default: throw std::invalid_argument("resize: interpolation must be resolved (not random)");
  }
}

void resize_box(const ImageView& src, const double box[4], Interp filter, ImageU8& out) {
  resize_box(src, box, filter, out, false);
}

void resize_box(const ImageView& src, const double box[4], Interp filter, ImageU8& out, bool mirror) {
  if (src.w <= 0 || src.h <= 0 || out.w <= 0 || out.h <= 0)
    throw std::invalid_argument("resize_box: empty image");
  if (!(box[0] >= 0 && box[1] >= 0 && box[2] <= src.w && box[3] <= src.h && box[2] > box[0] &&
        box[3] > box[1]))
    throw std::invalid_argument("resize_box: box outside the source image");
  filter_support(filter);  // validates
  if (filter == Interp::Nearest) {
    resize_nearest(src, box, out);
    if (mirror) flip_horizontal(out);
    return;
  }
  const int out_w = out.w, out_h = out.h;
  const bool need_h = out_w != src.w || box[0] != 0.0 || box[2] != src.w;
  const bool need_v = out_h != src.h || box[1] != 0.0 || box[3] != src.h;
  Coeffs cv;
  int row0 = 0, row1 = src.h;
  if (need_v) {
    cv = precompute(src.h, box[1], box[3], out_h, filter);
    row0 = cv.start[0];
    row1 = cv.start[out_h - 1] + cv.count[out_h - 1];
  }
  thread_local ImageU8 tmp;  // horizontal-pass rows, reused per thread (no per-image allocation)
  ImageView mid = src;
  int mid_offset = 0;
  if (need_h) {
    Coeffs ch = precompute(src.w, box[0], box[2], out_w, filter);
    if (mirror) {  // output column x takes the taps of column out_w - 1 - x
      std::reverse(ch.start.begin(), ch.start.end());
      std::reverse(ch.count.begin(), ch.count.end());
      for (int a = 0, b = out_w - 1; a < b; ++a, --b)
        std::swap_ranges(ch.w.begin() + static_cast<ptrdiff_t>(a) * ch.ksize,
                         ch.w.begin() + static_cast<ptrdiff_t>(a + 1) * ch.ksize,
                         ch.w.begin() + static_cast<ptrdiff_t>(b) * ch.ksize);
      mirror = false;
    }
    pass_horizontal(src, row0, row1, ch, out_w, tmp);
    mid = tmp.view();
    mid_offset = row0;
  }
  if (need_v) {
    pass_vertical(mid, mid_offset, cv, out_h, out);
  } else if (need_h) {
    out = std::move(tmp);
  } else {
    for (int y = 0; y < out_h; ++y) std::memcpy(out.row(y), src.row(y), static_cast<size_t>(out_w) * 3);
  }
  if (mirror) flip_horizontal(out);  // no horizontal pass ran
}

void flip_horizontal(ImageU8& img) {
  for (int y = 0; y < img.h; ++y) {
    uint8_t* r = img.row(y);
    for (int a = 0, b = img.w - 1; a < b; ++a, --b) {
      std::swap(r[3 * a], r[3 * b]);
      std::swap(r[3 * a + 1], r[3 * b + 1]);
      std::swap(r[3 * a + 2], r[3 * b + 2]);
    }
  }
}

}  // namespace tinyvit