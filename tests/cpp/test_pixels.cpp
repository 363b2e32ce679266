// Pure-core tests of the pixel pipeline: resize identities, RandAugment ops against
// direct computations, JPEG region decode vs full decode, and a decoder fuzz (run it
// under -DTINYVIT_SANITIZE=ON to check memory safety).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/pixels/batch.h"
#include "core/pixels/jpeg_decode.h"
#include "core/rng/pcg32.h"
#include "core/pixels/pixels.h"
#include "core/pixels/randaugment.h"
#include "core/pixels/resize.h"
#include "core/util/thread_pool.h"

#ifdef TINYVIT_WITH_JPEG
#include <jpeglib.h>
#endif

using namespace tinyvit;

static ImageU8 noise_image(int h, int w, uint64_t seed) {
  ImageU8 img(h, w);
  PCG32 g(seed, 7);
  // Smooth-ish content (JPEG-friendly) plus noise.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.row(y)[3 * x + c] =
            static_cast<uint8_t>((x * (c + 1) * 3 + y * 2 + static_cast<int>(g.bounded(24))) & 255);
  return img;
}

#ifdef TINYVIT_WITH_JPEG
static std::vector<uint8_t> encode_jpeg(const ImageU8& img, int quality, bool progressive,
                                        bool gray = false) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buf, &size);
  cinfo.image_width = img.w;
  cinfo.image_height = img.h;
  cinfo.input_components = gray ? 1 : 3;
  cinfo.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(img.w * 3);
  while (cinfo.next_scanline < cinfo.image_height) {
    const uint8_t* src = img.row(cinfo.next_scanline);
    if (gray)
      for (int x = 0; x < img.w; ++x) row[x] = src[3 * x];
    else
      std::memcpy(row.data(), src, row.size());
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buf, buf + size);
  free(buf);
  return out;
}

static void test_jpeg() {
  const ImageU8 src = noise_image(301, 517, 1);
  for (int prog = 0; prog < 2; ++prog) {
    const auto jpg = encode_jpeg(src, 90, prog == 1);
    const JpegInfo info = jpeg_read_info(jpg.data(), jpg.size());
    CHECK(info.width == 517 && info.height == 301 && info.progressive == (prog == 1));
    const ImageU8 full = jpeg_decode_full(jpg.data(), jpg.size());
    CHECK(full.w == 517 && full.h == 301);
    // Region decode at scale 1 equals the full decode inside the crop (libjpeg-turbo's
    // cropped/skipped decode is exact); allow 1 level at the upsampling context edge.
    const int cx = 77, cy = 93, cw = 200, ch = 150;
    JpegRegion r = jpeg_decode_region(jpg.data(), jpg.size(), cx, cy, cw, ch, 100, 100, 2.0, 1);
    CHECK(r.scale_denom == 1);
    int maxdiff = 0;
    for (int y = cy; y < cy + ch; ++y)
      for (int x = cx; x < cx + cw; ++x)
        for (int c = 0; c < 3; ++c) {
          const int a = full.row(y)[3 * x + c];
          const int b = r.image.row(y - r.region_y)[3 * (x - r.region_x) + c];
          maxdiff = std::max(maxdiff, std::abs(a - b));
        }
    CHECK(maxdiff <= 1);
    CHECK_NEAR(r.box[0], cx - r.region_x, 0);
    // DCT scaling choice: crop 400x280 -> 100x100 output: 1/2 gives 200x140 >= 100 and 1/4
    // gives 100x70 < 100, so d = 2.
    CHECK(jpeg_scale_denom_for(400, 280, 100, 100) == 2);
    CHECK(jpeg_scale_denom_for(800, 800, 100, 100) == 8);
    CHECK(jpeg_scale_denom_for(199, 800, 100, 100) == 1);
    JpegRegion r2 = jpeg_decode_region(jpg.data(), jpg.size(), 10, 10, 400, 280, 100, 100, 2.0, 0);
    CHECK(r2.scale_denom == 2);
    CHECK_NEAR(r2.box[2] - r2.box[0], 200.0, 1e-9);
    const ImageU8 half = jpeg_decode_full(jpg.data(), jpg.size(), 2);
    CHECK(half.w == 259 && half.h == 151);
  }
  // Grayscale JPEG -> R == G == B.
  const auto gjpg = encode_jpeg(src, 85, false, true);
  const ImageU8 g = jpeg_decode_full(gjpg.data(), gjpg.size());
  bool gray_ok = true;
  for (size_t i = 0; i < g.data.size(); i += 3)
    gray_ok = gray_ok && g.data[i] == g.data[i + 1] && g.data[i] == g.data[i + 2];
  CHECK(gray_ok);

  // Fuzz: truncations and bit flips must only ever throw ImageDecodeError (or succeed).
  const ImageU8 small = noise_image(64, 96, 3);
  int decoded = 0, errors = 0, other = 0;
  bool same_outcome = true, same_pixels = true;
  JpegDecoder shared;
  PCG32 rng(42, 1);
  for (int prog = 0; prog < 2; ++prog) {
    const auto base = encode_jpeg(small, 80, prog == 1);
    for (int iter = 0; iter < 1500; ++iter) {
      std::vector<uint8_t> buf = base;
      if (iter % 3 == 0) {
        buf.resize(rng.bounded(static_cast<uint32_t>(base.size())));
      } else {
        const int flips = 1 + static_cast<int>(rng.bounded(8));
        for (int k = 0; k < flips; ++k)
          buf[rng.bounded(static_cast<uint32_t>(buf.size()))] ^= static_cast<uint8_t>(1u << rng.bounded(8));
      }
      bool fresh_ok = false;
      ImageU8 fresh;
      try {
        const JpegInfo info = jpeg_read_info(buf.data(), buf.size());
        const int cw = std::max(1, info.width / 2), ch = std::max(1, info.height / 2);
        JpegRegion r = jpeg_decode_region(buf.data(), buf.size(), info.width - cw, info.height - ch,
                                          cw, ch, 16, 16, 2.0, 0);
        ImageU8 out(16, 16);
        resize_box(r.image.view(), r.box, Interp::Bicubic, out);
        fresh = std::move(r.image);
        fresh_ok = true;
        ++decoded;
      } catch (const ImageDecodeError&) {
        ++errors;
      } catch (...) {
        ++other;
      }
      // The same input through one JpegDecoder reused across all of them (after errors,
      // after abandoned opens): the same outcome and the same pixels as a fresh decoder.
      if (iter % 7 == 0) shared.open(base.data(), base.size());  // opened, never decoded
      bool reused_ok = false;
      try {
        const JpegInfo& info = shared.open(buf.data(), buf.size());
        const int cw = std::max(1, info.width / 2), ch = std::max(1, info.height / 2);
        JpegRegion r = shared.decode_region(info.width - cw, info.height - ch, cw, ch, 16, 16, 2.0);
        reused_ok = true;
        if (fresh_ok) same_pixels = same_pixels && r.image.w == fresh.w && r.image.h == fresh.h &&
                                    r.image.data == fresh.data;
      } catch (const ImageDecodeError&) {
      } catch (...) {
        ++other;
      }
      same_outcome = same_outcome && reused_ok == fresh_ok;
      CHECK(!shared.is_open());
    }
  }
  std::printf("fuzz: %d decoded, %d ImageDecodeError, %d other\n", decoded, errors, other);
  CHECK(other == 0);
  CHECK(errors > 0);
  CHECK(same_outcome);
  CHECK(same_pixels);
  {
    // Reuse after an error, then a good image of another kind: equals a fresh decode.
    const auto prog = encode_jpeg(noise_image(37, 53, 3), 75, true);
    shared.open(prog.data(), prog.size());
    CHECK(shared.decode_full().data == jpeg_decode_full(prog.data(), prog.size()).data);
    // Decoding without an open image is a caller bug, not a decode error.
    bool logic = false;
    try {
      shared.decode_full();
    } catch (const std::logic_error&) {
      logic = true;
    }
    CHECK(logic);
    // A refused argument still closes the image.
    shared.open(prog.data(), prog.size());
    bool invalid = false;
    try {
      shared.decode_full(3);
    } catch (const std::invalid_argument&) {
      invalid = true;
    }
    CHECK(invalid && !shared.is_open());
  }
  bool threw = false;
  try {
    jpeg_read_info(nullptr, 0);
  } catch (const ImageDecodeError&) {
    threw = true;
  }
  CHECK(threw);
}
#endif

// The documented fixed-point warp formula, written out independently (scalar), to check
// that the runtime-dispatched SIMD warp produces exactly these bytes.
static ImageU8 reference_warp(const ImageU8& in, const double a[6], bool bicubic, const uint8_t fill[3]) {
  ImageU8 out(in.h, in.w);
  auto q14 = [](double v) { return static_cast<int32_t>(std::floor(v * 16384.0 + 0.5)); };
  auto clampi = [](int v, int hi) { return v < 0 ? 0 : (v > hi ? hi : v); };
  for (int y = 0; y < in.h; ++y)
    for (int x = 0; x < in.w; ++x) {
      const double X = x + 0.5, Y = y + 0.5;
      const double xin = a[0] * X + a[1] * Y + a[2], yin = a[3] * X + a[4] * Y + a[5];
      uint8_t* o = out.row(y) + 3 * x;
      if (xin < 0 || xin >= in.w || yin < 0 || yin >= in.h) {
        std::memcpy(o, fill, 3);
        continue;
      }
      const int x0 = static_cast<int>(std::floor(xin - 0.5)), y0 = static_cast<int>(std::floor(yin - 0.5));
      const double d = xin - 0.5 - x0, e = yin - 0.5 - y0;
      std::vector<int32_t> wx, wy;
      std::vector<int> xs, ys;
      if (bicubic) {
        for (double t : {d, e}) {
          auto& w = (t == d && wx.empty()) ? wx : wy;
          w = {q14(-t + 2 * t * t - t * t * t), q14(1 - 2 * t * t + t * t * t),
               q14(t + t * t - t * t * t), q14(t * t * t - t * t)};
        }
        for (int k = 0; k < 4; ++k) {
          xs.push_back(clampi(x0 - 1 + k, in.w - 1));
          ys.push_back(clampi(y0 - 1 + k, in.h - 1));
        }
      } else {
        wx = {16384 - q14(d), q14(d)};
        wy = {16384 - q14(e), q14(e)};
        xs = {clampi(x0, in.w - 1), clampi(x0 + 1, in.w - 1)};
        ys = {clampi(y0, in.h - 1), clampi(y0 + 1, in.h - 1)};
      }
      for (int c = 0; c < 3; ++c) {
        int64_t acc = 0;
        for (size_t j = 0; j < ys.size(); ++j) {
          int64_t r = 0;
          for (size_t k = 0; k < xs.size(); ++k) r += in.row(ys[j])[3 * xs[k] + c] * wx[k];
          acc += ((r + 64) >> 7) * wy[j];
        }
        o[c] = static_cast<uint8_t>(clampi(static_cast<int>(acc >> 21), 255));
      }
    }
  return out;
}

static void test_warp_formula() {
  const ImageU8 src = noise_image(29, 41, 9);
  const uint8_t fill[3] = {9, 8, 7};
  // General, plus the axis-aligned forms that take affine_warp's fast paths: row maps
  // (translate_y) and column maps (translate_x, shear_x), with fill and clamped borders.
  const double mats[12][6] = {{1, 0.31, -2.2, 0, 1, 0}, {0.93, -0.37, 5.1, 0.37, 0.93, -3.3},
                              {1, 0, 3.7, -0.2, 1, 1.25}, {1, 0, 0, 0, 1, 2.37},
                              {1, 0, 0, 0, 1, -4.6}, {1, 0, 0, 0, 1, 40}, {1, 0, -3.41, 0, 1, 0},
                              {1, 0, 12.5, 0, 1, 0}, {1, 0, 0.013, 0, 1, 0}, {1, -0.27, 0, 0, 1, 0},
                              {1, 0.3, 0, 0, 1, 0}, {1, 0, -60, 0, 1, 0}};
  const ImageU8 thin = noise_image(9, 3, 4);
  int bad = 0;
  for (const ImageU8* im : {&src, &thin})
    for (const auto& m : mats)
      for (bool cubic : {false, true}) {
        ImageU8 got = *im;
        affine_warp(got, m, cubic ? Interp::Bicubic : Interp::Bilinear, fill);
        bad += got.data != reference_warp(*im, m, cubic, fill).data;
      }
  CHECK(bad == 0);
}

static void test_resize_and_ops() {
  const ImageU8 src = noise_image(40, 60, 2);
  // Identity box at the same size reproduces the source exactly (all filters).
  for (Interp f : {Interp::Nearest, Interp::Bilinear, Interp::Bicubic}) {
    ImageU8 out(40, 60);
    const double box[4] = {0, 0, 60, 40};
    resize_box(src.view(), box, f, out);
    CHECK(out.data == src.data);
    // A crop at scale 1 with integer offset is an exact copy too.
    ImageU8 crop(20, 30);
    const double b2[4] = {7, 5, 37, 25};
    resize_box(src.view(), b2, f, crop);
    bool same = true;
    for (int y = 0; y < 20; ++y)
      same = same && std::memcmp(crop.row(y), src.row(y + 5) + 3 * 7, 90) == 0;
    CHECK(same);
  }
  // Constant image stays constant under any resample.
  ImageU8 flat(33, 47);
  std::fill(flat.data.begin(), flat.data.end(), 77);
  ImageU8 o(224, 224);
  const double fb[4] = {1.5, 2.25, 40.0, 30.0};
  resize_box(flat.view(), fb, Interp::Bicubic, o);
  bool flat_ok = true;
  for (uint8_t v : o.data) flat_ok = flat_ok && v == 77;
  CHECK(flat_ok);

  // Invert twice = identity; posterize keeps top bits; solarize threshold.
  ImageU8 a = src;
  ra_invert(a);
  CHECK(a.data[0] == 255 - src.data[0]);
  ra_invert(a);
  CHECK(a.data == src.data);
  a = src;
  ra_posterize(a, 3);
  bool post = true;
  for (size_t i = 0; i < a.data.size(); ++i) post = post && a.data[i] == (src.data[i] & 0xE0);
  CHECK(post);
  a = src;
  ra_solarize(a, 128);
  bool sol = true;
  for (size_t i = 0; i < a.data.size(); ++i)
    sol = sol && a.data[i] == (src.data[i] < 128 ? src.data[i] : 255 - src.data[i]);
  CHECK(sol);
  a = src;
  ra_brightness(a, 0.0f);
  bool black = true;
  for (uint8_t v : a.data) black = black && v == 0;
  CHECK(black);
  // Rotations by 90 on a square image are exact transposes; four of them are identity.
  ImageU8 sq = noise_image(17, 17, 5);
  ImageU8 r = sq;
  const uint8_t fill[3] = {1, 2, 3};
  ra_rotate(r, 90, Interp::Bilinear, fill);
  CHECK(std::memcmp(r.row(0), sq.row(0) + 3 * 16, 3) == 0);  // out(0,0) = in(x=16, y=0)
  for (int k = 0; k < 3; ++k) ra_rotate(r, 90, Interp::Bicubic, fill);
  CHECK(r.data == sq.data);
  // Translate by +5 px (nearest): out[x] = in[x + 5]; the last 5 columns are fill.
  ImageU8 t = src;
  ra_translate_x(t, 5, Interp::Nearest, fill);
  CHECK(std::memcmp(t.row(3), src.row(3) + 15, 3 * 55) == 0);
  CHECK(t.row(3)[3 * 59] == 1 && t.row(3)[3 * 59 + 2] == 3);
  double s, c;
  det_sincos_deg(30.0, &s, &c);
  CHECK_NEAR(s, 0.5, 1e-15);
  det_sincos_deg(-135.0, &s, &c);
  CHECK_NEAR(s, -0.70710678118654752, 1e-15);
  CHECK_NEAR(c, -0.70710678118654752, 1e-15);

  // apply_plan is deterministic across a thread pool.
  Plan plan;
  plan.src_w = 60;
  plan.src_h = 40;
  plan.crop_x = 3;
  plan.crop_y = 4;
  plan.crop_w = 50;
  plan.crop_h = 30;
  plan.flip = true;
  plan.ra = {{RaOp::Rotate, 12.5f, Interp::Bicubic}, {RaOp::Equalize, 0, Interp::Nearest}};
  ApplyParams params;
  params.out_h = params.out_w = 32;
  const ImageU8 ref = apply_plan(plan, src.view(), params);
  ThreadPool pool(3);
  std::vector<ImageU8> outs(16);
  pool.parallel_for(outs.size(), [&](size_t i) { outs[i] = apply_plan(plan, src.view(), params); });
  bool same = true;
  for (auto& im : outs) same = same && im.data == ref.data;
  CHECK(same);
}

// Pillow's convolution resample written out directly (per-tap loops, no padding, no
// SIMD): 22-bit weights rounded half away from zero, horizontal pass over the rows the
// vertical pass needs, then vertical, each rounded and clipped once.
static void ref_coeffs(int in_size, double in0, double in1, int out_size, bool cubic,
                       std::vector<int>& lo, std::vector<std::vector<int32_t>>& w) {
  const double scale = (in1 - in0) / out_size, fs = scale < 1 ? 1 : scale;
  const double support = (cubic ? 2.0 : 1.0) * fs;
  lo.assign(out_size, 0);
  w.assign(out_size, {});
  for (int i = 0; i < out_size; ++i) {
    const double center = in0 + (i + 0.5) * scale;
    int a = static_cast<int>(center - support + 0.5), b = static_cast<int>(center + support + 0.5);
    if (a < 0) a = 0;
    if (b > in_size) b = in_size;
    std::vector<double> k;
    double total = 0;
    for (int x = a; x < b; ++x) {
      double t = std::fabs((x - center + 0.5) / fs), v;
      if (cubic) v = t < 1 ? (1.5 * t - 2.5) * t * t + 1 : (t < 2 ? ((-0.5 * t + 2.5) * t - 4) * t + 2 : 0);
      else v = t < 1 ? 1 - t : 0;
      k.push_back(v);
      total += v;
    }
    lo[i] = a;
    for (double v : k) {
      const double q = v / total * (1 << 22);
      w[i].push_back(static_cast<int32_t>(q < 0 ? q - 0.5 : q + 0.5));
    }
  }
}

static uint8_t ref_clip(int64_t acc) {
  const int64_t v = acc >> 22;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

static ImageU8 reference_resize(const ImageView& src, const double box[4], bool cubic, int oh, int ow) {
  std::vector<int> lx, ly;
  std::vector<std::vector<int32_t>> wx, wy;
  ref_coeffs(src.w, box[0], box[2], ow, cubic, lx, wx);
  ref_coeffs(src.h, box[1], box[3], oh, cubic, ly, wy);
  ImageU8 mid(src.h, ow), out(oh, ow);
  for (int y = 0; y < src.h; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        int64_t acc = 1 << 21;
        for (size_t k = 0; k < wx[x].size(); ++k) acc += int64_t{src.row(y)[3 * (lx[x] + k) + c]} * wx[x][k];
        mid.row(y)[3 * x + c] = ref_clip(acc);
      }
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x)
      for (int c = 0; c < 3; ++c) {
        int64_t acc = 1 << 21;
        for (size_t k = 0; k < wy[y].size(); ++k) acc += int64_t{mid.row(ly[y] + k)[3 * x + c]} * wy[y][k];
        out.row(y)[3 * x + c] = ref_clip(acc);
      }
  return out;
}

// resize_box (padded taps, SSE4.1 / AVX2 split-weight kernels where the CPU has them)
// against the direct reference: downscales covering every padded tap count (4..16 and
// the unpadded fallback), upscales, fractional boxes, and strided views (as the JPEG
// path passes: rows wider than the region).
static void test_resize_reference() {
  PCG32 g(11, 3);
  int mismatches = 0, cases = 0;
  for (int t = 0; t < 60; ++t) {
    const int w = 8 + static_cast<int>(g.bounded(300)), h = 8 + static_cast<int>(g.bounded(200));
    const int pad = static_cast<int>(g.bounded(3)) * 7;  // extra columns each side
    ImageU8 big = noise_image(h, w + 2 * pad, 100 + t);
    ImageView v{big.row(0) + 3 * pad, h, w, big.stride()};
    const double x0 = g.uniform() * w * 0.3, y0 = g.uniform() * h * 0.3;
    const double x1 = x0 + (w - x0) * (0.2 + 0.8 * g.uniform()), y1 = y0 + (h - y0) * (0.2 + 0.8 * g.uniform());
    const double box[4] = {x0, y0, x1, y1};
    const int ow = 4 + static_cast<int>(g.bounded(60)), oh = 4 + static_cast<int>(g.bounded(60));
    for (bool cubic : {false, true}) {
      ImageU8 out(oh, ow);
      resize_box(v, box, cubic ? Interp::Bicubic : Interp::Bilinear, out);
      ImageU8 ref = reference_resize(v, box, cubic, oh, ow);
      mismatches += out.data != ref.data;
      // The fused mirror equals resize + flip.
      ImageU8 mirrored(oh, ow);
      resize_box(v, box, cubic ? Interp::Bicubic : Interp::Bilinear, mirrored, true);
      flip_horizontal(ref);
      mismatches += mirrored.data != ref.data;
      ++cases;
    }
  }
  CHECK(cases == 120);
  CHECK(mismatches == 0);
  // Edge shapes of the AVX2 kernels (two pixels per register, two rows per weight load,
  // the last image row through a padded copy): output widths and heights 1..9, sources
  // 1 pixel wide or 1 row high, odd row counts, downscales beyond 16x (K = 16 and the
  // unpadded fallback).
  int edge_bad = 0, edge_cases = 0;
  for (int t = 0; t < 240; ++t) {
    const int ow = 1 + t % 9, oh = 1 + (t / 9) % 9;
    const double factor = t % 5 == 0 ? 16.0 + 8.0 * g.uniform() : 0.3 + 4.0 * g.uniform();
    const int w = t % 17 == 0 ? 1 : std::max(1, static_cast<int>(ow * factor) + static_cast<int>(g.bounded(3)));
    const int h = t % 13 == 0 ? 1 : std::max(1, static_cast<int>(oh * (0.3 + 4.0 * g.uniform())) + static_cast<int>(g.bounded(3)));
    ImageU8 img = noise_image(h, w, 900 + t);
    const double x0 = t % 3 == 0 ? 0.0 : g.uniform() * w * 0.2, y0 = t % 3 == 0 ? 0.0 : g.uniform() * h * 0.2;
    const double box[4] = {x0, y0, t % 3 == 0 ? w : x0 + (w - x0) * (0.5 + 0.5 * g.uniform()),
                           t % 3 == 0 ? h : y0 + (h - y0) * (0.5 + 0.5 * g.uniform())};
    for (bool cubic : {false, true}) {
      ImageU8 out(oh, ow), mirrored(oh, ow);
      resize_box(img.view(), box, cubic ? Interp::Bicubic : Interp::Bilinear, out);
      resize_box(img.view(), box, cubic ? Interp::Bicubic : Interp::Bilinear, mirrored, true);
      ImageU8 ref = reference_resize(img.view(), box, cubic, oh, ow);
      edge_bad += out.data != ref.data;
      flip_horizontal(ref);
      edge_bad += mirrored.data != ref.data;
      ++edge_cases;
    }
  }
  CHECK(edge_cases == 480);
  CHECK(edge_bad == 0);
}

#ifdef TINYVIT_WITH_JPEG
static bool same_device_part(const Plan& a, const Plan& b) {
  if (a.erase.size() != b.erase.size() || a.mix != b.mix || a.lam != b.lam ||
      a.cut_x0 != b.cut_x0 || a.cut_y0 != b.cut_y0 || a.cut_x1 != b.cut_x1 || a.cut_y1 != b.cut_y1 ||
      a.crop_x != b.crop_x || a.crop_w != b.crop_w || a.src_w != b.src_w || a.src_h != b.src_h)
    return false;
  for (size_t k = 0; k < a.erase.size(); ++k)
    if (a.erase[k].x != b.erase[k].x || a.erase[k].y != b.erase[k].y || a.erase[k].w != b.erase[k].w ||
        a.erase[k].h != b.erase[k].h || a.erase[k].noise_seed != b.erase[k].noise_seed)
      return false;
  return true;
}

// run_batch: one plan per item, kept with the pixels; every failure is a per-slot Error.
static void test_batch() {
  AugConfig cfg;
  cfg.out_h = cfg.out_w = 40;
  cfg.re_prob = 0.9;
  cfg.re_max_count = 3;
  cfg.mixup_alpha = 0.8;
  cfg.cutmix_alpha = 1.0;
  const ImageU8 a = noise_image(61, 83, 1), b = noise_image(120, 90, 2);
  const auto ja = encode_jpeg(a, 90, false), jb = encode_jpeg(b, 80, true);
  char dir_tmpl[] = "/tmp/tinyvit_batch_XXXXXX";
  const std::string dir = mkdtemp(dir_tmpl);
  const std::string good_path = dir + "/b.jpg", missing = dir + "/none.jpg",
                    a_dir = dir + "/x.jpg", fifo = dir + "/fifo.jpg", sparse = dir + "/huge.jpg";
  {
    FILE* f = std::fopen(good_path.c_str(), "wb");
    std::fwrite(jb.data(), 1, jb.size(), f);
    std::fclose(f);
  }
  CHECK(mkdir(a_dir.c_str(), 0700) == 0);
  CHECK(mkfifo(fifo.c_str(), 0600) == 0);
  {
    const int fd = ::open(sparse.c_str(), O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0 && ftruncate(fd, static_cast<off_t>(kMaxImageFileBytes) + 1) == 0);
    ::close(fd);
  }
  const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> broken(ja.begin(), ja.begin() + 200);
  std::vector<BatchItem> items(10);
  for (size_t i = 0; i < items.size(); ++i) {
    items[i].slot = i;
    items[i].seed = static_cast<uint32_t>(1000 + 7 * i);
  }
  items[0].data = ja.data(), items[0].size = ja.size();
  items[1].kind = BatchItem::Kind::File, items[1].path = good_path;
  items[2].kind = BatchItem::Kind::Image;
  items[2].image = ImageView{b.data.data(), b.h, b.w, static_cast<ptrdiff_t>(b.w) * 3};
  items[3].kind = BatchItem::Kind::File, items[3].path = missing;
  items[4].kind = BatchItem::Kind::File, items[4].path = a_dir;
  items[5].kind = BatchItem::Kind::File, items[5].path = fifo;      // must not block
  items[6].kind = BatchItem::Kind::File, items[6].path = sparse;    // over the cap
  items[7].data = broken.data(), items[7].size = broken.size();
  items[8].data = png_magic, items[8].size = sizeof(png_magic);    // not JPEG: handed back
  items[9].data = ja.data(), items[9].size = 0;                     // empty
  const size_t row = 40 * 40 * 3;
  std::vector<uint8_t> ref_px[3];
  Plan ref_plan[3];
  ref_plan[0] = make_plan(items[0].seed, a.w, a.h, cfg);
  ref_plan[1] = make_plan(items[1].seed, b.w, b.h, cfg);
  ref_plan[2] = make_plan(items[2].seed, b.w, b.h, cfg);
  const ApplyParams params = ApplyParams::from(cfg);
  for (int k = 0; k < 3; ++k) ref_px[k].resize(row);
  apply_plan_jpeg(ref_plan[0], ja.data(), ja.size(), params, ref_px[0].data());
  apply_plan_jpeg(ref_plan[1], jb.data(), jb.size(), params, ref_px[1].data());
  apply_plan(ref_plan[2], items[2].image, params, ref_px[2].data());
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    std::vector<uint8_t> px(items.size() * row, 0);
    BatchOutput out(items.size());
    run_batch(pool, items, cfg, 0, px.data(), out);
    for (int k = 0; k < 3; ++k) {
      CHECK(!out.errors[k] && out.has_plan[k]);
      CHECK(same_device_part(out.plans[k], ref_plan[k]));
      CHECK(std::memcmp(px.data() + k * row, ref_px[k].data(), row) == 0);
    }
    CHECK(out.errors[3].kind == error_kind::kNotFound);
    CHECK(out.errors[4].kind == error_kind::kIsDirectory);
    CHECK(out.errors[5].kind == error_kind::kIo);
    CHECK(out.errors[6].kind == error_kind::kDecode &&
          out.errors[6].message.find("limit") != std::string::npos);
    CHECK(out.errors[7].kind == error_kind::kDecode);
    CHECK(!out.errors[8] && out.needs_decode[8] && !out.has_plan[8] &&
          out.undecoded[8] == std::vector<uint8_t>(png_magic, png_magic + 8));
    CHECK(out.errors[9].kind == error_kind::kDecode);
    // The device part packs the kept plans (rows without a plan pack as no-ops).
    const DeviceParams d = pack_device_params(out.plans);
    size_t most = 0;
    for (int k = 0; k < 3; ++k) most = std::max(most, ref_plan[k].erase.size());
    CHECK(d.n == items.size() && d.max_boxes == most);
    for (size_t k = 0; k < 3; ++k) {
      const Plan& p = ref_plan[k];
      CHECK(d.erase_count[k] == static_cast<int32_t>(p.erase.size()));
      CHECK(d.mix[k] == static_cast<int8_t>(p.mix) && d.lam[k] == p.lam);
      CHECK(d.cut_box[k * 4] == p.cut_x0 && d.cut_box[k * 4 + 3] == p.cut_y1);
      for (size_t e = 0; e < p.erase.size(); ++e) {
        CHECK(d.erase_boxes[(k * d.max_boxes + e) * 4 + 2] == p.erase[e].w);
        CHECK(d.erase_seeds[k * d.max_boxes + e] == p.erase[e].noise_seed);
      }
    }
  }
  // A slot outside the output is a caller bug, refused before any work.
  {
    ThreadPool pool(1);
    BatchOutput out(1);
    std::vector<BatchItem> bad(1);
    bad[0].slot = 5;
    bool threw = false;
    try {
      run_batch(pool, bad, cfg, 0, nullptr, out);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }
  std::vector<uint8_t> got;
  CHECK(read_image_file(good_path, got).kind.empty() && got == jb);
  CHECK(read_image_file(good_path, got, 10).kind == error_kind::kDecode);
  ::unlink(good_path.c_str());
  ::unlink(fifo.c_str());
  ::unlink(sparse.c_str());
  ::rmdir(a_dir.c_str());
  ::rmdir(dir.c_str());
}
#endif

int main() {
  test_resize_reference();
  test_warp_formula();
  test_resize_and_ops();
#ifdef TINYVIT_WITH_JPEG
  test_jpeg();
  test_batch();
#endif
  return TEST_REPORT();
}
