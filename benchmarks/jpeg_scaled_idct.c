/* Why the C++ replay path does not use libjpeg-turbo's M/8 IDCT scaling for crops between
 * 1x and 2x the output: full-image decode time per image at scale M/8, M = 8..3.
 *
 *   python benchmarks/bench_loader.py      # makes the 200-image set in benchmarks/data/imagenet_like
 *   cc -O2 benchmarks/jpeg_scaled_idct.c -o /tmp/jsi -ljpeg && /tmp/jsi [DIR] [N]
 *
 * Measured 2026-11-25 (AMD EPYC, libjpeg-turbo 2.1.5, 200 images of ~470x400 q90), ms/img:
 * 8/8 0.61, 7/8 1.22, 6/8 0.94, 5/8 0.82, 4/8 0.46, 3/8 0.52. Only the power-of-two scales
 * have SIMD IDCTs; the others run plain C and cost more than decoding at full size.
 */
#include <stdio.h>  /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <time.h>

#include <jpeglib.h>

static unsigned char* read_all(const char* path, long* n) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* b = malloc((size_t)*n);
  if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) { free(b); b = NULL; }
  fclose(f);
  return b;
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "benchmarks/data/imagenet_like";
  int n = argc > 2 ? atoi(argv[2]) : 200;
  unsigned char** bufs = calloc((size_t)n, sizeof *bufs);
  long* lens = calloc((size_t)n, sizeof *lens);
  char path[4096];
  for (int i = 0; i < n; ++i) {
    snprintf(path, sizeof path, "%s/img_%05d.jpg", dir, i);
    if (!(bufs[i] = read_all(path, &lens[i]))) { fprintf(stderr, "cannot read %s\n", path); return 1; }
  }
  unsigned char* row = malloc(1 << 16);
  printf("scale  ms/img (best of 3)\n");
  for (int m = 8; m >= 3; --m) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      clock_t t0 = clock();
      for (int i = 0; i < n; ++i) {
        struct jpeg_decompress_struct ci;
        struct jpeg_error_mgr err;
        ci.err = jpeg_std_error(&err);
        jpeg_create_decompress(&ci);
        jpeg_mem_src(&ci, bufs[i], (unsigned long)lens[i]);
        jpeg_read_header(&ci, TRUE);
        ci.scale_num = (unsigned)m;
        ci.scale_denom = 8;
        ci.dct_method = JDCT_ISLOW;  /* as the replay path */
        ci.out_color_space = JCS_RGB;
        jpeg_start_decompress(&ci);
        JSAMPROW rows[1] = {row};
        while (ci.output_scanline < ci.output_height) jpeg_read_scanlines(&ci, rows, 1);
        jpeg_finish_decompress(&ci);
        jpeg_destroy_decompress(&ci);
      }
      double ms = (double)(clock() - t0) / CLOCKS_PER_SEC / n * 1e3;
      if (ms < best) best = ms;
    }
    printf("%d/8    %.3f\n", m, best);
  }
  return 0;
}
