// JPEG decoding for the fast replay path (libjpeg-turbo, TINYVIT_WITH_JPEG).
//
// Only the crop's region of interest is decoded: columns via jpeg_crop_scanline, rows
// above via jpeg_skip_scanlines, and decoding stops after the last needed row. When the
// crop is at least twice the output size the IDCT downscales by 1/2, 1/4 or 1/8 (the
// largest factor that keeps the scaled crop >= the output), which makes the decode
// several times cheaper. Every libjpeg error AND warning (corrupt or truncated data)
// becomes an ImageDecodeError; nothing is ever read outside the input buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/pixels/image.h"

namespace tinyvit {

// True when this build links libjpeg (otherwise every function below throws).
bool jpeg_supported();

// True when the bytes start with a JPEG SOI marker (FF D8 FF).
bool looks_like_jpeg(const uint8_t* data, size_t size);

struct JpegInfo {
  int width = 0, height = 0;
  int components = 0;
  bool progressive = false;
};

// Parses the header only (cheap); throws ImageDecodeError on a bad header.
JpegInfo jpeg_read_info(const uint8_t* data, size_t size);

// Denominator d in {1, 2, 4, 8}: the largest with crop_w / d >= out_w and crop_h / d >= out_h.
int jpeg_scale_denom_for(int crop_w, int crop_h, int out_w, int out_h);

struct JpegRegion {
  ImageU8 image;           // decoded RGB pixels of the region
  double box[4] = {0, 0, 0, 0};  // the crop (x0, y0, x1, y1) in `image` pixel coordinates
  int scale_denom = 1;     // the IDCT scaled the image by 1 / scale_denom
  int region_x = 0, region_y = 0;  // region origin inside the scaled image
  int scaled_w = 0, scaled_h = 0;  // scaled full image size
};

// Decodes the crop [cx, cx + cw) x [cy, cy + ch) (source pixels, must lie inside the
// image) plus a margin of ceil(filter_support * max(1, scaled crop / output)) + 2 scaled
// pixels so that a resampling filter sees the same neighbours as on the full image.
// scale_denom = 0 picks jpeg_scale_denom_for(cw, ch, out_w, out_h); 1 disables scaling.
JpegRegion jpeg_decode_region(const uint8_t* data, size_t size, int cx, int cy, int cw, int ch,
                              int out_w, int out_h, double filter_support, int scale_denom = 0);

// Same decode without the copy into an owning image: 3-component scanlines are written
// straight into `buffer` (reused across calls; grows as needed) and the returned view
// points into it (or into `fallback` for greyscale/CMYK sources). `box` receives the crop
// in view coordinates. The pixels are those of jpeg_decode_region.
ImageView jpeg_decode_region_into(const uint8_t* data, size_t size, int cx, int cy, int cw, int ch,
                                  int out_w, int out_h, double filter_support, int scale_denom,
                                  std::vector<uint8_t>& buffer, ImageU8& fallback, double box[4]);

// Full decode (optionally IDCT-scaled), for tests and for sources needing the whole image.
ImageU8 jpeg_decode_full(const uint8_t* data, size_t size, int scale_denom = 1);

// The functions above in two steps on one parsed stream, so that a caller which needs the
// size first (to make or check a plan) parses the header once, not once per call:
//   JpegDecoder dec;  const JpegInfo& info = dec.open(data, size);  ... dec.decode_region_into(...)
// open() keeps a pointer to the bytes; they must stay valid until the decode returns.
// A decode (or any error) closes the image; open() may then be called again, also after
// an ImageDecodeError. The libjpeg object lives from open() to the end of the decode: it
// is not kept across images, because libjpeg keeps Huffman and quantisation tables across
// streams on one object, and a stream lacking a table would then silently decode with the
// previous image's (a fresh object rejects it or uses the standard tables).
class JpegDecoder {
 public:
  JpegDecoder();
  ~JpegDecoder();
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  // Parses the header (the checks of jpeg_read_info); throws ImageDecodeError.
  const JpegInfo& open(const uint8_t* data, size_t size);
  bool is_open() const;
  const JpegInfo& info() const { return info_; }  // of the last successful open()

  // jpeg_decode_region_into / jpeg_decode_region / jpeg_decode_full on the opened image.
  ImageView decode_region_into(int cx, int cy, int cw, int ch, int out_w, int out_h,
                               double filter_support, int scale_denom,
                               std::vector<uint8_t>& buffer, ImageU8& fallback, double box[4]);
  JpegRegion decode_region(int cx, int cy, int cw, int ch, int out_w, int out_h,
                           double filter_support, int scale_denom = 0);
  ImageU8 decode_full(int scale_denom = 1);

  struct State;  // libjpeg objects (defined in jpeg_decode.cpp)

 private:
  void close();
  std::unique_ptr<State> state_;  // allocated on the first open(), kept for the next ones
  JpegInfo info_;
};

}  // namespace tinyvit
