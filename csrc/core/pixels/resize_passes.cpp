// The two passes of the separable resampler (resize.cpp): horizontal (scalar, SSE4.1,
// AVX2) and vertical (scalar, AVX2). Every form computes the scalar loop's int32 sums.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/pixels/resize_internal.h"
#include "core/util/cpu_dispatch.h"

namespace tinyvit {
namespace resize_detail {

namespace {

// One output pixel of the scalar horizontal pass: the n taps of RGB pixels from p with
// weights wk, rounded and clamped into out[0..2]. Always inlined, so a constant n
// (pass_horizontal_k) gives the tap loop a compile-time trip count.
TINYVIT_INLINE void hpass_pixel(const uint8_t* p, const int32_t* wk, int n, uint8_t* out) {
  int32_t r = 1 << (kPrecisionBits - 1), g = r, b = r;
  for (int k = 0; k < n; ++k) {
    r += p[3 * k] * wk[k];
    g += p[3 * k + 1] * wk[k];
    b += p[3 * k + 2] * wk[k];
  }
  out[0] = clip_fixed(r);
  out[1] = clip_fixed(g);
  out[2] = clip_fixed(b);
}

// Horizontal pass over rows [row0, row1) of src into dst (row1 - row0 rows, out_w wide).
// Taps are padded to exactly K per output pixel (zero weights, start shifted inside the
// row) so the inner loop has a compile-time trip count and unrolls; sums are unchanged.
template <int K>
TINYVIT_INLINE void pass_horizontal_k(const ImageView& src, int row0, int row1, const std::vector<int>& start,
                       const std::vector<int32_t>& w, int out_w, ImageU8& dst) {
  for (int y = row0; y < row1; ++y) {
    const uint8_t* in = src.row(y);
    uint8_t* out = dst.row(y - row0);
    for (int x = 0; x < out_w; ++x)
      hpass_pixel(in + static_cast<ptrdiff_t>(start[x]) * 3, &w[static_cast<size_t>(x) * K], K, out + 3 * x);
  }
}

#ifdef TINYVIT_X86_SIMD
// SSE4.1 form of the same integer sums: one pixel's R, G, B (+ one spare byte) sit in
// four int32 lanes, so each tap is one multiply-add for all channels. Reads 4 bytes per
// tap, i.e. one byte past the pixel; the last row is therefore left to the scalar loop.
template <int K>
TINYVIT_SSE41 void pass_horizontal_sse(const ImageView& src, int row0, int row1,
                                                          const std::vector<int>& start,
                                                          const std::vector<int32_t>& w, int out_w,
                                                          ImageU8& dst) {
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  const __m128i zero = _mm_setzero_si128(), maxv = _mm_set1_epi32(255);
  for (int y = row0; y < row1; ++y) {
    const uint8_t* in = src.row(y);
    uint8_t* out = dst.row(y - row0);
    for (int x = 0; x < out_w; ++x) {
      const int32_t* wk = &w[static_cast<size_t>(x) * K];
      const uint8_t* p = in + static_cast<ptrdiff_t>(start[x]) * 3;
      __m128i acc = half;
      for (int k = 0; k < K; ++k) {
        int32_t four;
        std::memcpy(&four, p + 3 * k, 4);
        const __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(wk[k])));
      }
      acc = _mm_min_epi32(_mm_max_epi32(_mm_srai_epi32(acc, kPrecisionBits), zero), maxv);
      out[3 * x] = static_cast<uint8_t>(_mm_cvtsi128_si32(acc));
      out[3 * x + 1] = static_cast<uint8_t>(_mm_extract_epi32(acc, 1));
      out[3 * x + 2] = static_cast<uint8_t>(_mm_extract_epi32(acc, 2));
    }
  }
}

// AVX2 form of the same sums with 16-bit multiply-adds. Each 22-bit weight is split as
// w = wh * 2^11 + wl (wh = w >> 11, wl = w & 2047, both fit int16), so
//   sum p * w = 2^11 * sum p * wh + sum p * wl
// holds exactly in int32 (the true sum fits int32 and int32 addition is exact modulo 2^32,
// so any order gives the same integer): the bytes are those of the scalar loop.
// Two output pixels share one 256-bit register, pixel a in lane 0 and pixel b in lane 1,
// so a tap pair costs one shuffle and two vpmaddwd for both pixels and the per-pixel
// sums never cross lanes. A 16-byte load at tap 4g holds taps 4g..4g+3 (RGBRGB...); vpshufb
// turns taps (k, k+1) into int16 pairs (R R G G B B 0 0). A trailing pair (K % 4 == 2) is
// read by a load at tap K - 4 (its bytes 6..11), so no load reaches more than 4 bytes past
// the last tap, hence the same last-row rule as SSE.
// Weights are pre-expanded to the vpmaddwd operand layout (no shuffles in the loop): per
// pixel pair and tap pair j, a hi then a lo 32-byte vector, lane l holding pixel l's
// (w(2j), w(2j+1)) x 3 pairs + a zero pair.
void pack_hpass_avx2_weights(const std::vector<int32_t>& w, int K, int out_w, std::vector<int16_t>& packed) {
  const int pairs = (out_w + 1) / 2;
  const int stride = 16 * K;  // int16 per pixel pair: K / 2 tap pairs x (hi, lo) x 16
  packed.assign(static_cast<size_t>(pairs) * stride, 0);
  for (int x = 0; x < out_w; ++x) {
    const int32_t* wk = &w[static_cast<size_t>(x) * K];
    int16_t* dst = &packed[static_cast<size_t>(x / 2) * stride + (x & 1) * 8];
    for (int j = 0; j < K / 2; ++j)
      for (int c = 0; c < 3; ++c) {
        dst[32 * j + 2 * c] = static_cast<int16_t>(wk[2 * j] >> 11);
        dst[32 * j + 2 * c + 1] = static_cast<int16_t>(wk[2 * j + 1] >> 11);
        dst[32 * j + 16 + 2 * c] = static_cast<int16_t>(wk[2 * j] & 2047);
        dst[32 * j + 16 + 2 * c + 1] = static_cast<int16_t>(wk[2 * j + 1] & 2047);
      }
  }
}

template <int K>
TINYVIT_AVX2 inline __m256i hpass_load_avx2(const uint8_t* pa, const uint8_t* pb, int off) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pa + off))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(pb + off)), 1);
}

// Two output pixels (byte offsets oa, ob of their first taps) in R rows (in[r]): int32
// lanes (Ra, Ga, Ba, 0 | Rb, Gb, Bb, 0) of (sum + 2^21) >> 22, before clamping, into
// res[r]. Rows share the weight loads.
template <int K, int R>
TINYVIT_AVX2 inline void hpass_pair_avx2(const uint8_t* const* in, ptrdiff_t oa, ptrdiff_t ob,
                                                            const int16_t* wk, __m256i* res) {
  const __m256i s01 = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                       0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  const __m256i s23 = _mm256_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1,
                                       6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
#define TINYVIT_WV(j, l) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk + 32 * (j) + 16 * (l)))
  __m256i hi[R], lo[R];
  for (int r = 0; r < R; ++r) hi[r] = lo[r] = _mm256_setzero_si256();
  int j = 0;
  for (; 2 * j + 4 <= K; j += 2) {
    const __m256i h0 = TINYVIT_WV(j, 0), l0 = TINYVIT_WV(j, 1), h1 = TINYVIT_WV(j + 1, 0), l1 = TINYVIT_WV(j + 1, 1);
    for (int r = 0; r < R; ++r) {
      const __m256i v = hpass_load_avx2<K>(in[r] + oa, in[r] + ob, 6 * j);
      const __m256i x0 = _mm256_shuffle_epi8(v, s01), x1 = _mm256_shuffle_epi8(v, s23);
      hi[r] = _mm256_add_epi32(hi[r], _mm256_add_epi32(_mm256_madd_epi16(x0, h0), _mm256_madd_epi16(x1, h1)));
      lo[r] = _mm256_add_epi32(lo[r], _mm256_add_epi32(_mm256_madd_epi16(x0, l0), _mm256_madd_epi16(x1, l1)));
    }
  }
  if (K % 4) {
    const __m256i h1 = TINYVIT_WV(j, 0), l1 = TINYVIT_WV(j, 1);
    for (int r = 0; r < R; ++r) {
      const __m256i x1 = _mm256_shuffle_epi8(hpass_load_avx2<K>(in[r] + oa, in[r] + ob, 3 * K - 12), s23);
      hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(x1, h1));
      lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(x1, l1));
    }
  }
#undef TINYVIT_WV
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  for (int r = 0; r < R; ++r)
    res[r] = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi[r], 11), _mm256_add_epi32(lo[r], half)),
                               kPrecisionBits);
}

// Pixel pairs (a, b) and (c, d) -> 12 packed RGB bytes a b c d; the saturating packs clamp
// to [0, 255] as clip_fixed.
TINYVIT_AVX2 inline __m128i hpass_bytes_avx2(__m256i p, __m256i q) {
  // (Ra Ga Ba 0, Rc Gc Bc 0, Rb Gb Bb 0, Rd Gd Bd 0) bytes -> a b c d.
  const __m128i compact = _mm_setr_epi8(0, 1, 2, 8, 9, 10, 4, 5, 6, 12, 13, 14, -1, -1, -1, -1);
  const __m256i h = _mm256_packs_epi32(p, q);  // (a, c | b, d) int16
  return _mm_shuffle_epi8(_mm_packus_epi16(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)), compact);
}

// R rows at once. off has one byte offset per pixel pair slot ((out_w + 1) / 2 * 2
// entries; an odd width's spare slot repeats the last offset with zero weights).
template <int K, int R>
TINYVIT_AVX2 inline void hpass_rows_avx2(const uint8_t* const* in, uint8_t* const* out,
                                                            const ptrdiff_t* off, const int16_t* w0, int out_w) {
  constexpr int kStride = 16 * K;  // int16 per pixel pair
  const int16_t* wk = w0;
  int x = 0;
  for (; x + 4 <= out_w; x += 4, wk += 2 * kStride) {
    __m256i p[R], q[R];
    hpass_pair_avx2<K, R>(in, off[x], off[x + 1], wk, p);
    hpass_pair_avx2<K, R>(in, off[x + 2], off[x + 3], wk + kStride, q);
    for (int r = 0; r < R; ++r) {
      const __m128i v = hpass_bytes_avx2(p[r], q[r]);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out[r] + 3 * x), v);
      const uint32_t tail = static_cast<uint32_t>(_mm_extract_epi32(v, 2));
      std::memcpy(out[r] + 3 * x + 8, &tail, 4);
    }
  }
  if (x < out_w) {  // 1..3 pixels (pair slots past out_w exist, see above)
    __m256i p[R], q[R];
    hpass_pair_avx2<K, R>(in, off[x], off[x + 1], wk, p);
    if (x + 2 < out_w) hpass_pair_avx2<K, R>(in, off[x + 2], off[x + 3], wk + kStride, q);
    for (int r = 0; r < R; ++r) {
      const __m128i v = hpass_bytes_avx2(p[r], x + 2 < out_w ? q[r] : p[r]);
      alignas(16) uint8_t buf[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(buf), v);
      std::memcpy(out[r] + 3 * x, buf, static_cast<size_t>(out_w - x) * 3);
    }
  }
}

// rows rows from in0 (byte stride in_stride; every row readable for 4 bytes past its last
// tap) to out0 (out_stride).
template <int K>
TINYVIT_AVX2 void pass_horizontal_avx2(const uint8_t* in0, ptrdiff_t in_stride, int rows,
                                                         uint8_t* out0, ptrdiff_t out_stride,
                                                         const std::vector<ptrdiff_t>& off,
                                                         const std::vector<int16_t>& packed, int out_w) {
  // Two rows per weight load pays for K = 4 only; wider kernels run out of registers.
  constexpr int R = K <= 4 ? 2 : 1;
  int y = 0;
  for (; y + R <= rows; y += R) {
    const uint8_t* in[R];
    uint8_t* out[R];
    for (int r = 0; r < R; ++r) {
      in[r] = in0 + (y + r) * in_stride;
      out[r] = out0 + (y + r) * out_stride;
    }
    hpass_rows_avx2<K, R>(in, out, off.data(), packed.data(), out_w);
  }
  if (y < rows) {
    const uint8_t* in[1] = {in0 + y * in_stride};
    uint8_t* out[1] = {out0 + y * out_stride};
    hpass_rows_avx2<K, 1>(in, out, off.data(), packed.data(), out_w);
  }
}

#endif

// Runs the K-tap kernel (always inlined, so it is compiled inside each clone).
TINYVIT_HOT void run_horizontal_scalar(const ImageView& src, int row0, int row1, const std::vector<int>& start,
                                const std::vector<int32_t>& w, int K, int out_w, ImageU8& dst) {
  switch (K) {
    case 4: return pass_horizontal_k<4>(src, row0, row1, start, w, out_w, dst);
    case 6: return pass_horizontal_k<6>(src, row0, row1, start, w, out_w, dst);
    case 8: return pass_horizontal_k<8>(src, row0, row1, start, w, out_w, dst);
    case 10: return pass_horizontal_k<10>(src, row0, row1, start, w, out_w, dst);
    case 12: return pass_horizontal_k<12>(src, row0, row1, start, w, out_w, dst);
    default: return pass_horizontal_k<16>(src, row0, row1, start, w, out_w, dst);
  }
}

void run_horizontal(const ImageView& src, int row0, int row1, const std::vector<int>& start,
                    const std::vector<int32_t>& w, int K, int out_w, ImageU8& dst) {
#ifdef TINYVIT_X86_SIMD
  if (cpu_features().sse41) {
    const int last = std::min(row1, src.h - 1);  // rows with readable bytes after them
    if (cpu_features().avx2) {
      std::vector<int16_t> packed;
      pack_hpass_avx2_weights(w, K, out_w, packed);
      std::vector<ptrdiff_t> off(start.begin(), start.end());
      for (auto& o : off) o *= 3;
      if (out_w & 1) off.push_back(off.back());
      auto run = [&](const uint8_t* in0, ptrdiff_t in_stride, int rows, uint8_t* out0) {
        switch (K) {
          case 4: return pass_horizontal_avx2<4>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
          case 6: return pass_horizontal_avx2<6>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
          case 8: return pass_horizontal_avx2<8>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
          case 10: return pass_horizontal_avx2<10>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
          case 12: return pass_horizontal_avx2<12>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
          default: return pass_horizontal_avx2<16>(in0, in_stride, rows, out0, dst.stride(), off, packed, out_w);
        }
      };
      if (last > row0) run(src.row(row0), src.stride, last - row0, dst.row(0));
      // The image's last row (nothing readable after it): a copy with 16 spare bytes.
      for (int y = std::max(last, row0); y < row1; ++y) {
        const size_t n = static_cast<size_t>(src.w) * 3;
        thread_local std::vector<uint8_t> pad;
        pad.assign(n + 16, 0);
        std::memcpy(pad.data(), src.row(y), n);
        run(pad.data(), 0, 1, dst.row(y - row0));
      }
      return;
    } else if (last > row0) {
      switch (K) {
        case 4: pass_horizontal_sse<4>(src, row0, last, start, w, out_w, dst); break;
        case 6: pass_horizontal_sse<6>(src, row0, last, start, w, out_w, dst); break;
        case 8: pass_horizontal_sse<8>(src, row0, last, start, w, out_w, dst); break;
        case 10: pass_horizontal_sse<10>(src, row0, last, start, w, out_w, dst); break;
        case 12: pass_horizontal_sse<12>(src, row0, last, start, w, out_w, dst); break;
        default: pass_horizontal_sse<16>(src, row0, last, start, w, out_w, dst); break;
      }
    }
    if (last > row0) {
      if (last < row1) {
        ImageU8 tail(row1 - last, out_w);
        run_horizontal_scalar(src, last, row1, start, w, K, out_w, tail);
        std::memcpy(dst.row(last - row0), tail.data.data(), tail.data.size());
      }
      return;
    }
  }
#endif
  run_horizontal_scalar(src, row0, row1, start, w, K, out_w, dst);
}

#ifdef TINYVIT_X86_SIMD
// AVX2 vertical pass for bytes [0, n16) of each output row (n16 a multiple of 16): the
// same int32 sums as the scalar loop, all taps accumulated in registers (no accumulator
// array round trip per tap). 32 bytes per step in four independent accumulators, each fed
// by a zero-extending 8-byte load (no shuffle to split a 16-byte load); a 16-byte step
// takes the rest.
TINYVIT_AVX2 void pass_vertical_avx2(const ImageView& src, int row_offset,
                                                        const Coeffs& c, int out_h, int n16,
                                                        ImageU8& dst) {
  const __m256i half = _mm256_set1_epi32(1 << (kPrecisionBits - 1));
  // packs/packus work per 128-bit lane: dwords (0-3, 8-11, 16-19, 24-27 | 4-7, ...) -> in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto ld8 = [](const uint8_t* p) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)); };
  for (int y = 0; y < out_h; ++y) {
    const int32_t* wk = &c.w[static_cast<size_t>(y) * c.ksize];
    const int n = c.count[y];
    const uint8_t* row0 = src.row(c.start[y] - row_offset);
    uint8_t* out = dst.row(y);
    int i = 0;
    for (; i + 32 <= n16; i += 32) {
      __m256i a0 = half, a1 = half, a2 = half, a3 = half;
      const uint8_t* in = row0 + i;
      for (int k = 0; k < n; ++k, in += src.stride) {
        const __m256i wv = _mm256_set1_epi32(wk[k]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in)), wv));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in + 8)), wv));
        a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in + 16)), wv));
        a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in + 24)), wv));
      }
      // Saturating packs = clamp to [0, 255], as clip_fixed.
      const __m256i p01 = _mm256_packs_epi32(_mm256_srai_epi32(a0, kPrecisionBits), _mm256_srai_epi32(a1, kPrecisionBits));
      const __m256i p23 = _mm256_packs_epi32(_mm256_srai_epi32(a2, kPrecisionBits), _mm256_srai_epi32(a3, kPrecisionBits));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                          _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order));
    }
    for (; i < n16; i += 16) {
      __m256i a0 = half, a1 = half;
      const uint8_t* in = row0 + i;
      for (int k = 0; k < n; ++k, in += src.stride) {
        const __m256i wv = _mm256_set1_epi32(wk[k]);
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in)), wv));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(ld8(in + 8)), wv));
      }
      a0 = _mm256_srai_epi32(a0, kPrecisionBits);
      a1 = _mm256_srai_epi32(a1, kPrecisionBits);
      const __m128i w0 = _mm_packs_epi32(_mm256_castsi256_si128(a0), _mm256_extracti128_si256(a0, 1));
      const __m128i w1 = _mm_packs_epi32(_mm256_castsi256_si128(a1), _mm256_extracti128_si256(a1, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(w0, w1));
    }
  }
}
#endif

// Vertical pass: src row index = coefficient start - row_offset. The inner loop runs
// over a contiguous row of w*3 bytes, which compilers vectorise.
TINYVIT_HOT void pass_vertical_impl(const ImageView& src, int row_offset, const Coeffs& c, int out_h,
                                    ImageU8& dst) {
  const int n_bytes = src.w * 3;
  dst.reshape(out_h, src.w);  // every pixel is written below
  int first = 0;  // bytes below this were done by the AVX2 kernel
#ifdef TINYVIT_X86_SIMD
  if (cpu_features().avx2 && n_bytes >= 16) {
    first = n_bytes & ~15;
    pass_vertical_avx2(src, row_offset, c, out_h, first, dst);
    if (first == n_bytes) return;
  }
#endif
  std::vector<int32_t> acc(n_bytes);
  for (int y = 0; y < out_h; ++y) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* wk = &c.w[static_cast<size_t>(y) * c.ksize];
    int32_t* a = acc.data();
    for (int k = 0; k < c.count[y]; ++k) {
      const uint8_t* in = src.row(c.start[y] + k - row_offset);
      const int32_t wv = wk[k];
      for (int i = first; i < n_bytes; ++i) a[i] += in[i] * wv;
    }
    uint8_t* out = dst.row(y);
    for (int i = first; i < n_bytes; ++i) out[i] = clip_fixed(a[i]);
  }
}

}  // namespace

void pass_horizontal(const ImageView& src, int row0, int row1, const Coeffs& c, int out_w,
                     ImageU8& dst) {
  dst.reshape(row1 - row0, out_w);  // every pixel is written below
  int K = 1;
  for (int n : c.count) K = std::max(K, n);
  static const int kSizes[] = {4, 6, 8, 10, 12, 16};
  int padded = 0;
  for (int k : kSizes)
    if (!padded && K <= k) padded = k;
  if (padded && padded <= src.w) {
    K = padded;
    std::vector<int> start(out_w);
    std::vector<int32_t> w(static_cast<size_t>(out_w) * K, 0);
    for (int x = 0; x < out_w; ++x) {
      int s = c.start[x];
      if (s + K > src.w) s = src.w - K;  // shift left; leading taps get weight 0
      start[x] = s;
      for (int k = 0; k < c.count[x]; ++k)
        w[static_cast<size_t>(x) * K + (c.start[x] - s) + k] = c.w[static_cast<size_t>(x) * c.ksize + k];
    }
    return run_horizontal(src, row0, row1, start, w, K, out_w, dst);
  }
  for (int y = row0; y < row1; ++y) {
    const uint8_t* in = src.row(y);
    uint8_t* out = dst.row(y - row0);
    for (int x = 0; x < out_w; ++x)
      hpass_pixel(in + static_cast<ptrdiff_t>(c.start[x]) * 3, &c.w[static_cast<size_t>(x) * c.ksize], c.count[x],
                  out + 3 * x);
  }
}

void pass_vertical(const ImageView& src, int row_offset, const Coeffs& c, int out_h, ImageU8& dst) {
  pass_vertical_impl(src, row_offset, c, out_h, dst);
}

}  // namespace resize_detail
}  // namespace tinyvit
