// Affine warps (RandAugment rotate / shear / translate): the integer sampling formula and
// its fast forms. Every path below computes the same integers as warp_scalar; the SIMD
// ones only organise the work differently (see the comments at each).
#include "core/pixels/warp.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/pixels/warp_internal.h"

namespace tinyvit {

namespace {

using namespace warp_detail;

template <Interp F>
void warp_scalar(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3]) {
  for (int y = 0; y < in.h; ++y) {
    uint8_t* o = out.row(y);
    Taps t;  // one per row: the weights are reused while the offsets stay
    for (int x = 0; x < in.w; ++x, o += 3) {
      if (F == Interp::Nearest) {
        const double X = x + 0.5, Y = y + 0.5;
        const int xi = coord(a[0] * X + a[1] * Y + a[2]), yi = coord(a[3] * X + a[4] * Y + a[5]);
        const uint8_t* p = (xi < 0 || xi >= in.w || yi < 0 || yi >= in.h) ? fill : in.row(yi) + 3 * xi;
        o[0] = p[0]; o[1] = p[1]; o[2] = p[2];
      } else if (warp_pixel_taps<F>(in, a, x, y, fill, t, o)) {
        warp_combine_ref<F>(t, o);
      }
    }
  }
}

#ifdef TINYVIT_X86_SIMD
// Shared steps of the SIMD warps, the same integer arithmetic as warp_scalar with R, G, B
// (+ a spare byte) in four int32 lanes.
// One tap row's horizontal sum, tap by tap (zero-weight taps skipped: their terms are 0).
template <int N>
TINYVIT_SSE41 inline __m128i warp_tap_row_sse(const Taps& t, int j) {
  __m128i r = _mm_setzero_si128();
  for (int k = 0; k < N; ++k) {
    if (t.wx[k] == 0) continue;
    int32_t four;
    std::memcpy(&four, t.rows[j] + t.xs[k], 4);
    r = _mm_add_epi32(r, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)),
                                         _mm_set1_epi32(t.wx[k])));
  }
  return r;
}

// acc + ((r + 64) >> 7) * wy: the vertical step.
TINYVIT_SSE41 inline __m128i warp_add_row_sse(__m128i acc, __m128i r,
                                                                  int32_t wy) {
  r = _mm_srai_epi32(_mm_add_epi32(r, _mm_set1_epi32(64)), 7);
  return _mm_add_epi32(acc, _mm_mullo_epi32(r, _mm_set1_epi32(wy)));
}

// clamp(acc >> 21, 0, 255) written as R, G, B.
TINYVIT_SSE41 inline void warp_store_rgb_sse(uint8_t* o, __m128i acc) {
  acc = _mm_min_epi32(_mm_max_epi32(_mm_srai_epi32(acc, 21), _mm_setzero_si128()),
                      _mm_set1_epi32(255));
  o[0] = static_cast<uint8_t>(_mm_cvtsi128_si32(acc));
  o[1] = static_cast<uint8_t>(_mm_extract_epi32(acc, 1));
  o[2] = static_cast<uint8_t>(_mm_extract_epi32(acc, 2));
}

// The same integer arithmetic with R, G, B (+ a spare byte) in four int32 lanes. Reads 4
// bytes per tap (one past the pixel): affine_warp pads the source buffer by 4 bytes.
template <Interp F>
TINYVIT_SSE41 void warp_sse(const ImageU8& in, ImageU8& out, const double a[6],
                                                 const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  for (int y = 0; y < in.h; ++y) {
    uint8_t* o = out.row(y);
    Taps t;
    for (int x = 0; x < in.w; ++x, o += 3) {
      if (!warp_pixel_taps<F>(in, a, x, y, fill, t, o)) continue;
      // Zero weights are skipped (their terms are exactly 0): shear and translate have
      // an integer offset along one axis, leaving 4 of the 16 bicubic taps.
      __m128i acc = _mm_setzero_si128();
      for (int j = 0; j < N; ++j) {
        if (t.wy[j] == 0) continue;
        acc = warp_add_row_sse(acc, warp_tap_row_sse<N>(t, j), t.wy[j]);
      }
      warp_store_rgb_sse(o, acc);
    }
  }
}

#endif


// Row maps (translate_y: matrix 1 0 0 / 0 1 t): every pixel of output row y has
// xin = X and the same yin, so the column weights are one-hot (16384 on column x) and
// the row weights/rows are those of the row's first pixel. Per sample the general
// formula reduces to  v = (sum_j p_j * 128 * wy_j) >> 21  (since ((p * 16384 + 64) >> 7)
// = 128 p), a plain loop over the row's bytes.
template <int N>
TINYVIT_INLINE void combine_rows_n(const uint8_t* const* rows, const int32_t* w, int len, uint8_t* out) {
  for (int i = 0; i < len; ++i) {
    int32_t acc = 0;
    for (int j = 0; j < N; ++j) acc += rows[j][i] * w[j];
    const int32_t v = acc >> 21;
    out[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
}

TINYVIT_HOT void combine_rows(const uint8_t* const* rows, const int32_t* w, int n, int len, uint8_t* out) {
  switch (n) {
    case 1: return combine_rows_n<1>(rows, w, len, out);
    case 2: return combine_rows_n<2>(rows, w, len, out);
    case 3: return combine_rows_n<3>(rows, w, len, out);
    default: return combine_rows_n<4>(rows, w, len, out);
  }
}

template <Interp F>
bool warp_row_map(const ImageU8& in, ImageU8& out, const double a[6], const uint8_t fill[3]) {
  constexpr int N = F == Interp::Bilinear ? 2 : 4;
  constexpr int kCol = F == Interp::Bilinear ? 0 : 1;  // the tap that lands on column x
#ifdef TINYVIT_X86_SIMD
  const bool avx2 = cpu_features().avx2;
#endif
  for (int y = 0; y < in.h; ++y) {
    const double X = 0.5, Y = y + 0.5;
    const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
    Taps t;
    uint8_t* o = out.row(y);
    if (!warp_taps<F>(in, xin, yin, t)) {
      for (int x = 0; x < in.w; ++x) std::memcpy(o + 3 * x, fill, 3);
      continue;
    }
    for (int k = 0; k < N; ++k)
      if (t.wx[k] != (k == kCol ? 16384 : 0)) return false;  // not one-hot: general path
    if (t.xs[kCol] != 0) return false;
    const uint8_t* rows[4];
    int32_t w[4];
    int n = 0;
    for (int j = 0; j < N; ++j)
      if (t.wy[j] != 0) {
        rows[n] = t.rows[j];
        w[n++] = t.wy[j];
      }
    if (n == 0) {
      std::memset(o, 0, static_cast<size_t>(in.w) * 3);
      continue;
    }
#ifdef TINYVIT_X86_SIMD
    if (avx2) {
      combine_rows_avx2(rows, w, n, in.w * 3, o);
      continue;
    }
#endif
    for (int j = 0; j < n; ++j) w[j] *= 128;
    combine_rows(rows, w, n, in.w * 3, o);
  }
  return true;
}

}  // namespace

void affine_warp(ImageU8& img, const double a[6], Interp resample, const uint8_t fill[3]) {
  if (resample != Interp::Nearest && resample != Interp::Bilinear && resample != Interp::Bicubic)
    throw std::invalid_argument("affine_warp: resample must be resolved");
  // Output goes into a per-thread spare image that then swaps with img: no allocation
  // (and no page faults) per warp once the spare has grown to the image size.
  thread_local ImageU8 spare;
  ImageU8& out = spare;
  out.reset(img.h, img.w);
  const bool bilinear = resample == Interp::Bilinear;
  if (resample == Interp::Nearest) {
    warp_scalar<Interp::Nearest>(img, out, a, fill);
    std::swap(img, out);
    return;
  }
  // Row maps (translate_y).
  if (img.w >= 1 && img.h >= 1 && a[0] == 1.0 && a[1] == 0.0 && a[2] == 0.0 && a[3] == 0.0 && a[4] == 1.0 &&
      (bilinear ? warp_row_map<Interp::Bilinear>(img, out, a, fill)
                : warp_row_map<Interp::Bicubic>(img, out, a, fill))) {
    std::swap(img, out);
    return;
  }
#ifdef TINYVIT_X86_SIMD
  if (cpu_features().avx2) {  // reads stay inside img.data (checked per pixel): no padding
    if (a[0] == 1.0 && a[3] == 0.0 && a[4] == 1.0 && a[5] == 0.0) {  // column maps (translate_x, shear_x)
      warp_col_map_avx2(img, out, a, fill, resample);
    } else if (a[0] == 1.0 && a[1] == 0.0 && a[2] == 0.0 && a[4] == 1.0 && a[5] == 0.0) {  // shear_y
      warp_shear_y_avx2(img, out, a, fill, resample);
    } else {
      warp_general_avx2(img, out, a, fill, resample);
    }
    std::swap(img, out);
    return;
  }
  if (cpu_features().sse41) {
    const size_t n = img.data.size();
    img.data.resize(n + 16);  // tap loads read 4 bytes from a tap start
    if (bilinear) warp_sse<Interp::Bilinear>(img, out, a, fill);
    else warp_sse<Interp::Bicubic>(img, out, a, fill);
    img.data.resize(n);
    std::swap(img, out);
    return;
  }
#endif
  if (bilinear) warp_scalar<Interp::Bilinear>(img, out, a, fill);
  else warp_scalar<Interp::Bicubic>(img, out, a, fill);
  std::swap(img, out);
}

}  // namespace tinyvit