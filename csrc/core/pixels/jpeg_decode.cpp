#include "core/pixels/jpeg_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef TINYVIT_WITH_JPEG
#include <csetjmp>
#include <cstdio>
#include <jpeglib.h>
#endif

namespace tinyvit {

// Larger images are refused: a flipped bit in a header can claim 65535 x 65535 and make
// libjpeg allocate gigabytes before it notices the data is short.
static constexpr int64_t kMaxPixels = int64_t{1} << 29;
static constexpr long kMaxLibjpegMemory = 1L << 30;  // libjpeg's own working memory cap

bool looks_like_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

int jpeg_scale_denom_for(int crop_w, int crop_h, int out_w, int out_h) {
  int d = 1;
  while (d < 8 && static_cast<int64_t>(crop_w) >= int64_t{2} * d * out_w &&
         static_cast<int64_t>(crop_h) >= int64_t{2} * d * out_h)
    d *= 2;
  return d;
}

#ifndef TINYVIT_WITH_JPEG

bool jpeg_supported() { return false; }
static void no_jpeg() {
  throw ImageDecodeError("tinyvit was built without libjpeg (fast JPEG path unavailable)");
}
JpegInfo jpeg_read_info(const uint8_t*, size_t) { no_jpeg(); return {}; }
JpegRegion jpeg_decode_region(const uint8_t*, size_t, int, int, int, int, int, int, double, int) {
  no_jpeg();
  return {};
}
ImageU8 jpeg_decode_full(const uint8_t*, size_t, int) { no_jpeg(); return {}; }
ImageView jpeg_decode_region_into(const uint8_t*, size_t, int, int, int, int, int, int, double, int,
                                  std::vector<uint8_t>&, ImageU8&, double*) {
  no_jpeg();
  return {};
}
struct JpegDecoder::State {};
JpegDecoder::JpegDecoder() = default;
JpegDecoder::~JpegDecoder() = default;
void JpegDecoder::close() {}
bool JpegDecoder::is_open() const { return false; }
const JpegInfo& JpegDecoder::open(const uint8_t*, size_t) { no_jpeg(); return info_; }
ImageView JpegDecoder::decode_region_into(int, int, int, int, int, int, double, int,
                                          std::vector<uint8_t>&, ImageU8&, double*) {
  no_jpeg();
  return {};
}
JpegRegion JpegDecoder::decode_region(int, int, int, int, int, int, double, int) {
  no_jpeg();
  return {};
}
ImageU8 JpegDecoder::decode_full(int) { no_jpeg(); return {}; }

#else

bool jpeg_supported() { return true; }

namespace {

struct ErrorMgr {
  jpeg_error_mgr pub;  // must be first: libjpeg hands us a jpeg_error_mgr*
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// libjpeg calls these from C frames, so they must not throw: longjmp back to the
// decode function, which cleans up and throws from C++.
extern "C" void tv_error_exit(j_common_ptr cinfo) {
  ErrorMgr* err = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

// Level -1 is a warning, which libjpeg only emits for corrupt or truncated data (it
// would go on and return grey or garbage pixels): treat it as an error.
extern "C" void tv_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  ErrorMgr* err = reinterpret_cast<ErrorMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

extern "C" void tv_output_message(j_common_ptr) {}

void check_input(const uint8_t* data, size_t size) {
  if (size == 0) throw ImageDecodeError("empty input (0 bytes)");
  if (data == nullptr) throw ImageDecodeError("null input buffer");
  if (!looks_like_jpeg(data, size)) throw ImageDecodeError("not a JPEG (no SOI marker)");
  if (size > static_cast<size_t>(~0UL)) throw ImageDecodeError("input too large");
}

// Sets the output colour space; returns false for colour spaces we do not handle.
bool choose_out_space(jpeg_decompress_struct* cinfo) {
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
      cinfo->out_color_space = JCS_GRAYSCALE;  // expanded to RGB by us (portable to IJG libjpeg)
      return true;
    case JCS_YCbCr:
    case JCS_RGB:
      cinfo->out_color_space = JCS_RGB;
      return true;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo->out_color_space = JCS_CMYK;
      return true;
    default:
      return false;
  }
}

// One decoded scanline (1, 3 or 4 components) -> RGB. CMYK from Adobe files is stored
// inverted (0 = full ink); R = (255 - C)(255 - K) / 255 on the un-inverted values,
// rounded, in integers so every platform agrees.
inline void to_rgb(const JSAMPLE* in, int comps, bool inverted_cmyk, int n, uint8_t* out) {
  if (comps == 3) {
    std::memcpy(out, in, static_cast<size_t>(n) * 3);
  } else if (comps == 1) {
    for (int i = 0; i < n; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = in[i];
  } else {
    for (int i = 0; i < n; ++i) {
      int c = in[4 * i], m = in[4 * i + 1], y = in[4 * i + 2], k = in[4 * i + 3];
      if (!inverted_cmyk) {
        c = 255 - c;
        m = 255 - m;
        y = 255 - y;
        k = 255 - k;
      }
      out[3 * i] = static_cast<uint8_t>((c * k + 127) / 255);
      out[3 * i + 1] = static_cast<uint8_t>((m * k + 127) / 255);
      out[3 * i + 2] = static_cast<uint8_t>((y * k + 127) / 255);
    }
  }
}

// A decode of the opened image: the crop box in source pixels (or the full image), mapped
// to the scaled image once the scaled size is known.
struct DecodeRequest {
  int scale_denom;        // 1, 2, 4, 8
  double src_box[4];      // crop in source pixels (x0, y0, x1, y1)
  double margin_support;  // filter support in output pixels
  int out_w, out_h;
  bool full;
  // When set (and the output is 3-component), scanlines are decoded straight into this
  // buffer (rows of the cropped-scanline width, no copy) and DecodeResult::view points at
  // the region inside it; otherwise the region is copied into DecodeResult::image.
  std::vector<uint8_t>* direct;
};

struct DecodeResult {
  ImageU8 image;
  int region_x = 0, region_y = 0, scaled_w = 0, scaled_h = 0;
  ImageView view;  // the region, in image or in *direct
};

}  // namespace

// The libjpeg objects of one JpegDecoder. `created` is true from jpeg_create_decompress
// to jpeg_destroy_decompress, i.e. while an image is open.
struct JpegDecoder::State {
  jpeg_decompress_struct cinfo;
  ErrorMgr err;
  bool created = false;
  void destroy() {
    if (created) jpeg_destroy_decompress(&cinfo);
    created = false;
  }
};

namespace {

using State = JpegDecoder::State;

// Creates the decompressor on `data` and parses its header into `info`; on any error the
// object is destroyed and ImageDecodeError thrown. Every function that calls libjpeg sets
// its own setjmp first (libjpeg errors longjmp to the innermost one), and declares no
// object with a destructor after it.
void open_stream(State& s, const uint8_t* data, size_t size, JpegInfo& info) {
  check_input(data, size);
  // Zeroed first so that destroy() is safe whatever point of creation an error reaches.
  std::memset(&s.cinfo, 0, sizeof(s.cinfo));
  s.cinfo.err = jpeg_std_error(&s.err.pub);
  s.err.pub.error_exit = tv_error_exit;
  s.err.pub.emit_message = tv_emit_message;
  s.err.pub.output_message = tv_output_message;
  s.err.message[0] = '\0';
  if (setjmp(s.err.jump)) {
    s.destroy();
    throw ImageDecodeError(std::string("corrupt JPEG: ") + s.err.message);
  }
  s.created = true;
  jpeg_create_decompress(&s.cinfo);
  s.cinfo.mem->max_memory_to_use = kMaxLibjpegMemory;
  jpeg_mem_src(&s.cinfo, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  jpeg_read_header(&s.cinfo, TRUE);
  info.width = static_cast<int>(s.cinfo.image_width);
  info.height = static_cast<int>(s.cinfo.image_height);
  info.components = s.cinfo.num_components;
  info.progressive = s.cinfo.progressive_mode != 0;
  const int64_t pixels = int64_t{info.width} * info.height;
  const char* refuse = nullptr;
  if (info.width <= 0 || info.height <= 0) refuse = "image has zero size";
  else if (pixels > kMaxPixels) refuse = "image too large (more than 2^29 pixels)";
  else if (!choose_out_space(&s.cinfo)) refuse = "unsupported JPEG colour space";
  if (refuse) {
    s.destroy();
    throw ImageDecodeError(refuse);
  }
}

// The scaled-pixel rows and columns [x0, x1) x [y0, y1) to decode for a request on an image
// that decodes to sw x sh: all of it (req.full), else the crop box plus the resize filter's
// margin. Pure arithmetic, no libjpeg call (so it needs no setjmp of its own).
struct Region {
  int x0, y0, x1, y1;
};

Region decoded_region(const DecodeRequest& req, int sw, int sh) {
  Region r{0, 0, sw, sh};
  if (req.full) return r;
  // Crop box in scaled pixels: the IDCT maps source pixel x to x / d exactly (each
  // 8x8 block becomes (8/d)x(8/d)).
  const double d = req.scale_denom;
  const double bx0 = req.src_box[0] / d, by0 = req.src_box[1] / d;
  const double bx1 = req.src_box[2] / d, by1 = req.src_box[3] / d;
  const double sx = std::max(1.0, (bx1 - bx0) / req.out_w);
  const double sy = std::max(1.0, (by1 - by0) / req.out_h);
  const int mx = static_cast<int>(std::ceil(req.margin_support * sx)) + 2;
  const int my = static_cast<int>(std::ceil(req.margin_support * sy)) + 2;
  r.x0 = std::max(0, static_cast<int>(std::floor(bx0)) - mx);
  r.y0 = std::max(0, static_cast<int>(std::floor(by0)) - my);
  r.x1 = std::min(sw, static_cast<int>(std::ceil(bx1)) + mx);
  r.y1 = std::min(sh, static_cast<int>(std::ceil(by1)) + my);
  if (r.x1 <= r.x0) r.x1 = std::min(sw, r.x0 + 1);
  if (r.y1 <= r.y0) r.y1 = std::min(sh, r.y0 + 1);
  return r;
}

// Decodes the opened image (open_stream succeeded) and always destroys the decompressor:
// on success, on ImageDecodeError and on std::invalid_argument alike.
void decode_stream(State& s, const JpegInfo& info, const DecodeRequest& req, DecodeResult& res) {
  jpeg_decompress_struct& cinfo = s.cinfo;
  std::vector<JSAMPLE> line;  // declared before setjmp: never constructed after it
  if (setjmp(s.err.jump)) {
    s.destroy();
    throw ImageDecodeError(std::string("corrupt JPEG: ") + s.err.message);
  }
  if (!req.full && (req.src_box[0] < 0 || req.src_box[1] < 0 || req.src_box[2] > info.width ||
                    req.src_box[3] > info.height || req.src_box[2] <= req.src_box[0] ||
                    req.src_box[3] <= req.src_box[1])) {
    s.destroy();
    throw std::invalid_argument("crop box outside the " + std::to_string(info.width) + "x" +
                                std::to_string(info.height) + " image");
  }
  const bool inverted_cmyk = cinfo.out_color_space == JCS_CMYK && cinfo.saw_Adobe_marker;
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned int>(req.scale_denom);
  cinfo.dct_method = JDCT_ISLOW;  // the exact IDCT: same pixels on every CPU/SIMD level
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  const int sw = static_cast<int>(cinfo.output_width), sh = static_cast<int>(cinfo.output_height);
  const int comps = cinfo.output_components;
  res.scaled_w = sw;
  res.scaled_h = sh;
  const Region r = decoded_region(req, sw, sh);
  const int x0 = r.x0, y0 = r.y0, x1 = r.x1, y1 = r.y1;
  int line_x0 = 0;  // first column present in each decoded scanline
  int line_w = sw;
#if defined(LIBJPEG_TURBO_VERSION_NUMBER) && LIBJPEG_TURBO_VERSION_NUMBER >= 1005000
  if (x0 > 0 || x1 < sw) {
    // Widens the span to iMCU boundaries; we copy only [x0, x1) out of it.
    JDIMENSION xoff = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
    jpeg_crop_scanline(&cinfo, &xoff, &width);
    line_x0 = static_cast<int>(xoff);
    line_w = static_cast<int>(width);
  }
  if (y0 > 0) {
    const JDIMENSION skipped = jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
    if (static_cast<int>(skipped) != y0) {
      s.destroy();
      throw ImageDecodeError("corrupt JPEG: could not skip to the crop");
    }
  }
#endif
  if (line_x0 > x0 || line_x0 + line_w < x1) {
    s.destroy();
    throw ImageDecodeError("internal: libjpeg cropped the scanline outside the request");
  }
  res.region_x = x0;
  res.region_y = y0;
  if (req.direct != nullptr && comps == 3 && static_cast<int>(cinfo.output_scanline) == y0) {
    // 16 spare bytes: SIMD loops may read a few bytes past the last pixel.
    const size_t row_bytes = static_cast<size_t>(line_w) * 3;
    req.direct->resize(row_bytes * static_cast<size_t>(y1 - y0) + 16);
    uint8_t* base = req.direct->data();
    JSAMPROW dst_rows[16];
    while (static_cast<int>(cinfo.output_scanline) < y1) {
      const int y = static_cast<int>(cinfo.output_scanline);
      const int n = std::min(16, y1 - y);
      for (int i = 0; i < n; ++i) dst_rows[i] = base + row_bytes * static_cast<size_t>(y - y0 + i);
      if (jpeg_read_scanlines(&cinfo, dst_rows, static_cast<JDIMENSION>(n)) == 0) {
        s.destroy();
        throw ImageDecodeError("corrupt JPEG: no scanline returned");
      }
    }
    s.destroy();  // stopping early is fine: destroy releases the decoder without reading on
    res.view = ImageView{base + static_cast<size_t>(x0 - line_x0) * 3, y1 - y0, x1 - x0,
                         static_cast<ptrdiff_t>(row_bytes)};
    return;
  }
  line.resize(static_cast<size_t>(line_w) * comps);
  res.image.reset(y1 - y0, x1 - x0);
  JSAMPROW rows[1] = {line.data()};
  while (static_cast<int>(cinfo.output_scanline) < y1) {
    const int y = static_cast<int>(cinfo.output_scanline);
    if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
      s.destroy();
      throw ImageDecodeError("corrupt JPEG: no scanline returned");
    }
    if (y < y0) continue;  // only without jpeg_skip_scanlines (IJG libjpeg)
    to_rgb(line.data() + static_cast<size_t>(x0 - line_x0) * comps, comps, inverted_cmyk,
           x1 - x0, res.image.row(y - y0));
  }
  s.destroy();
  res.view = res.image.view();
}

DecodeRequest region_request(int cx, int cy, int cw, int ch, int out_w, int out_h,
                             double filter_support, int& scale_denom) {
  if (cw <= 0 || ch <= 0 || out_w <= 0 || out_h <= 0)
    throw std::invalid_argument("jpeg_decode_region: crop and output sizes must be positive");
  if (scale_denom == 0) scale_denom = jpeg_scale_denom_for(cw, ch, out_w, out_h);
  if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8)
    throw std::invalid_argument("jpeg_decode_region: scale_denom must be 0, 1, 2, 4 or 8");
  DecodeRequest req{};
  req.scale_denom = scale_denom;
  req.src_box[0] = cx;
  req.src_box[1] = cy;
  req.src_box[2] = static_cast<double>(cx) + cw;
  req.src_box[3] = static_cast<double>(cy) + ch;
  req.margin_support = filter_support;
  req.out_w = out_w;
  req.out_h = out_h;
  return req;
}

void region_box(int cx, int cy, int cw, int ch, int scale_denom, const DecodeResult& res, double box[4]) {
  const double d = scale_denom;
  box[0] = cx / d - res.region_x;
  box[1] = cy / d - res.region_y;
  box[2] = (static_cast<double>(cx) + cw) / d - res.region_x;
  box[3] = (static_cast<double>(cy) + ch) / d - res.region_y;
}

}  // namespace

JpegDecoder::JpegDecoder() = default;
JpegDecoder::~JpegDecoder() { close(); }

void JpegDecoder::close() {
  if (state_) state_->destroy();
}

bool JpegDecoder::is_open() const { return state_ && state_->created; }

const JpegInfo& JpegDecoder::open(const uint8_t* data, size_t size) {
  close();
  info_ = JpegInfo{};
  if (!state_) state_ = std::make_unique<State>();
  JpegInfo info;
  open_stream(*state_, data, size, info);
  info_ = info;
  return info_;
}

ImageView JpegDecoder::decode_region_into(int cx, int cy, int cw, int ch, int out_w, int out_h,
                                          double filter_support, int scale_denom,
                                          std::vector<uint8_t>& buffer, ImageU8& fallback,
                                          double box[4]) {
  if (!is_open()) throw std::logic_error("JpegDecoder: decode without a successful open()");
  DecodeRequest req{};
  try {
    req = region_request(cx, cy, cw, ch, out_w, out_h, filter_support, scale_denom);
  } catch (...) {
    close();  // a decode, even a refused one, ends the image
    throw;
  }
  req.direct = &buffer;
  DecodeResult res;
  decode_stream(*state_, info_, req, res);
  fallback = std::move(res.image);  // empty unless the copying path ran; the view stays valid
  region_box(cx, cy, cw, ch, scale_denom, res, box);
  return res.view;
}

JpegRegion JpegDecoder::decode_region(int cx, int cy, int cw, int ch, int out_w, int out_h,
                                      double filter_support, int scale_denom) {
  if (!is_open()) throw std::logic_error("JpegDecoder: decode without a successful open()");
  DecodeRequest req{};
  try {
    req = region_request(cx, cy, cw, ch, out_w, out_h, filter_support, scale_denom);
  } catch (...) {
    close();
    throw;
  }
  DecodeResult res;
  decode_stream(*state_, info_, req, res);
  JpegRegion out;
  out.image = std::move(res.image);
  out.scale_denom = scale_denom;
  out.region_x = res.region_x;
  out.region_y = res.region_y;
  out.scaled_w = res.scaled_w;
  out.scaled_h = res.scaled_h;
  region_box(cx, cy, cw, ch, scale_denom, res, out.box);
  return out;
}

ImageU8 JpegDecoder::decode_full(int scale_denom) {
  if (!is_open()) throw std::logic_error("JpegDecoder: decode without a successful open()");
  if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8) {
    close();
    throw std::invalid_argument("jpeg_decode_full: scale_denom must be 1, 2, 4 or 8");
  }
  DecodeRequest req{};
  req.scale_denom = scale_denom;
  req.full = true;
  DecodeResult res;
  decode_stream(*state_, info_, req, res);
  return std::move(res.image);
}

JpegInfo jpeg_read_info(const uint8_t* data, size_t size) {
  JpegDecoder dec;
  return dec.open(data, size);
}

JpegRegion jpeg_decode_region(const uint8_t* data, size_t size, int cx, int cy, int cw, int ch,
                              int out_w, int out_h, double filter_support, int scale_denom) {
  int denom = scale_denom;  // argument errors before data errors, as before the split
  region_request(cx, cy, cw, ch, out_w, out_h, filter_support, denom);
  JpegDecoder dec;
  dec.open(data, size);
  return dec.decode_region(cx, cy, cw, ch, out_w, out_h, filter_support, scale_denom);
}

ImageView jpeg_decode_region_into(const uint8_t* data, size_t size, int cx, int cy, int cw, int ch,
                                  int out_w, int out_h, double filter_support, int scale_denom,
                                  std::vector<uint8_t>& buffer, ImageU8& fallback, double box[4]) {
  int denom = scale_denom;
  region_request(cx, cy, cw, ch, out_w, out_h, filter_support, denom);
  JpegDecoder dec;
  dec.open(data, size);
  return dec.decode_region_into(cx, cy, cw, ch, out_w, out_h, filter_support, scale_denom, buffer,
                                fallback, box);
}

ImageU8 jpeg_decode_full(const uint8_t* data, size_t size, int scale_denom) {
  if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8)
    throw std::invalid_argument("jpeg_decode_full: scale_denom must be 1, 2, 4 or 8");
  JpegDecoder dec;
  dec.open(data, size);
  return dec.decode_full(scale_denom);
}

#endif  // TINYVIT_WITH_JPEG

}  // namespace tinyvit
