// Image (width, height) from the first bytes of a file, without decoding: JPEG (SOF
// markers), PNG (IHDR), GIF, BMP, PNM (P1-P6) and WebP (VP8, VP8L, VP8X). Torch-free.
// The dataset index reads sizes with it (the plan's crop depends on the source size);
// anything it cannot parse is left to Pillow by the caller. Sizes are the stored pixel
// grid, EXIF orientation ignored -- what Pillow's Image.size and the decoders report.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tinyvit {

enum class HeaderStatus {
  ok,         // width / height set
  need_more,  // a known format whose size lies beyond the bytes given (e.g. big EXIF)
  unknown,    // not a format parsed here, or a malformed header: fall back to Pillow
};

struct HeaderSize {
  int32_t width = 0;
  int32_t height = 0;
};

HeaderStatus parse_image_header(const uint8_t* data, size_t n, HeaderSize* out);

}  // namespace tinyvit
