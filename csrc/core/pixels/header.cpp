// See header.h. Every read is bounds-checked against n: a truncated header yields
// need_more (JPEG, where the size may be far in) or unknown, never a read past the end.
#include "core/pixels/header.h"

namespace tinyvit {

namespace {

inline uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
inline uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
inline uint32_t le24(const uint8_t* p) { return le16(p) | (uint32_t(p[2]) << 16); }
inline uint32_t le32(const uint8_t* p) { return le24(p) | (uint32_t(p[3]) << 24); }

HeaderStatus set(HeaderSize* out, int64_t w, int64_t h) {
  if (w <= 0 || h <= 0 || w > INT32_MAX || h > INT32_MAX) return HeaderStatus::unknown;
  out->width = static_cast<int32_t>(w);
  out->height = static_cast<int32_t>(h);
  return HeaderStatus::ok;
}

HeaderStatus jpeg(const uint8_t* d, size_t n, HeaderSize* out) {
  size_t i = 2;
  while (true) {
    // skip to the next marker (0xFF, then any fill 0xFF bytes)
    while (i < n && d[i] != 0xFF) ++i;
    while (i < n && d[i] == 0xFF) ++i;
    if (i >= n) return HeaderStatus::need_more;
    const uint8_t m = d[i++];
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length
    if (m == 0xD9 || m == 0xDA) return HeaderStatus::unknown;  // EOI / SOS before any SOF
    if (i + 2 > n) return HeaderStatus::need_more;
    const size_t len = be16(d + i);
    if (len < 2) return HeaderStatus::unknown;
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      if (i + 7 > n) return HeaderStatus::need_more;
      return set(out, be16(d + i + 5), be16(d + i + 3));  // P, Y (height), X (width)
    }
    i += len;
  }
}

// PNM header tokens: whitespace-separated decimals, '#' comments to end of line.
bool pnm_int(const uint8_t* d, size_t n, size_t* i, int64_t* v) {
  while (*i < n) {
    const uint8_t c = d[*i];
    if (c == '#') {
      while (*i < n && d[*i] != '\n' && d[*i] != '\r') ++*i;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      ++*i;
    } else {
      break;
    }
  }
  int64_t x = 0;
  size_t digits = 0;
  while (*i < n && d[*i] >= '0' && d[*i] <= '9' && digits < 10) {
    x = x * 10 + (d[*i] - '0');
    ++*i;
    ++digits;
  }
  if (digits == 0 || *i >= n) return false;  // a number must be followed by a separator
  *v = x;
  return true;
}

}  // namespace

HeaderStatus parse_image_header(const uint8_t* d, size_t n, HeaderSize* out) {
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return jpeg(d, n, out);
  static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  bool is_png = n >= 8;
  for (int k = 0; is_png && k < 8; ++k) is_png = d[k] == png_sig[k];
  if (is_png) {
    if (n < 24 || d[12] != 'I' || d[13] != 'H' || d[14] != 'D' || d[15] != 'R')
      return HeaderStatus::unknown;
    return set(out, be32(d + 16), be32(d + 20));
  }
  if (n >= 10 && d[0] == 'G' && d[1] == 'I' && d[2] == 'F' && d[3] == '8' &&
      (d[4] == '7' || d[4] == '9') && d[5] == 'a')
    return set(out, le16(d + 6), le16(d + 8));
  if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
    const uint32_t dib = le32(d + 14);
    if (dib == 12) return set(out, le16(d + 18), le16(d + 20));
    if (dib < 40) return HeaderStatus::unknown;
    const int64_t w = static_cast<int32_t>(le32(d + 18));
    const int64_t h = static_cast<int32_t>(le32(d + 22));
    return set(out, w, h < 0 ? -h : h);  // negative height = top-down rows
  }
  if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6') {
    size_t i = 2;
    int64_t w = 0, h = 0;
    if (!pnm_int(d, n, &i, &w) || !pnm_int(d, n, &i, &h)) return HeaderStatus::unknown;
    return set(out, w, h);
  }
  if (n >= 30 && d[0] == 'R' && d[1] == 'I' && d[2] == 'F' && d[3] == 'F' && d[8] == 'W' &&
      d[9] == 'E' && d[10] == 'B' && d[11] == 'P') {
    const uint8_t* c = d + 12;
    if (c[0] == 'V' && c[1] == 'P' && c[2] == '8' && c[3] == ' ') {
      // frame tag (3 bytes), start code 9d 01 2a, then 14-bit width / height
      if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A) return HeaderStatus::unknown;
      return set(out, le16(d + 26) & 0x3FFF, le16(d + 28) & 0x3FFF);
    }
    if (c[0] == 'V' && c[1] == 'P' && c[2] == '8' && c[3] == 'L') {
      if (d[20] != 0x2F) return HeaderStatus::unknown;
      const uint32_t b = le32(d + 21);
      return set(out, (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1);
    }
    if (c[0] == 'V' && c[1] == 'P' && c[2] == '8' && c[3] == 'X')
      return set(out, int64_t(le24(d + 24)) + 1, int64_t(le24(d + 27)) + 1);
    return HeaderStatus::unknown;
  }
  return HeaderStatus::unknown;
}

}  // namespace tinyvit
