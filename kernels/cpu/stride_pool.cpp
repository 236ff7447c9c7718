// The kernel generator's average pool by the stride, and its gradient.
#include "geometry.h"

namespace invnas_cpu {

// ---------------------------------------------------------------------------------------------
// The kernel generator's average pool: windows of stride x stride, the last one cut at the border
// (ceil mode), averaged over the pixels they hold. Same arithmetic as torch's avg_pool2d with
// kernel = stride, ceil_mode=True, count_include_pad=False: the window summed row by row, then
// divided by its pixel count; so the results are bit-identical.

// One output row: windows [j * sw, j * sw + sw) of input rows [y0, y1), the last cut at W.
// Full 2x2 windows (RedNet's stride) get a loop the compiler vectorises.
template <typename T>
INVNAS_INLINE void stride_pool_row(const T* src, T* dst, int64_t W, int64_t WO, int64_t y0,
                                   int64_t y1, int64_t sw) {
  int64_t j = 0;
  if (sw == 2 && y1 - y0 == 2) {
    const T* r0 = src + y0 * W;
    const T* r1 = r0 + W;
    for (; j < W / 2; ++j) {
      T sum = 0;
      sum += r0[2 * j];
      sum += r0[2 * j + 1];
      sum += r1[2 * j];
      sum += r1[2 * j + 1];
      dst[j] = sum / T(4);
    }
  }
  for (; j < WO; ++j) {
    const int64_t x0 = j * sw, x1 = std::min(W, x0 + sw);
    T sum = 0;
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t c = x0; c < x1; ++c) sum += src[y * W + c];
    dst[j] = sum / static_cast<T>((y1 - y0) * (x1 - x0));
  }
}

template <typename T>
INVNAS_INLINE void stride_pool_planes(const T* x, T* out, int64_t planes, int64_t H, int64_t W,
                                        int64_t sh, int64_t sw) {
  const int64_t HO = (H + sh - 1) / sh, WO = (W + sw - 1) / sw;
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t i = 0; i < HO; ++i)
      stride_pool_row(x + plane * H * W, out + (plane * HO + i) * WO, W, WO, i * sh,
                      std::min(H, i * sh + sh), sw);
}

// Every input pixel gets its window's gradient divided by the window's pixel count.
template <typename T>
INVNAS_INLINE void stride_pool_grad_planes(const T* gout, T* gx, int64_t planes, int64_t H,
                                             int64_t W, int64_t sh, int64_t sw) {
  const int64_t HO = (H + sh - 1) / sh, WO = (W + sw - 1) / sw;
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t y = 0; y < H; ++y) {
      const int64_t i = y / sh, rows = std::min(H, i * sh + sh) - i * sh;
      const T* src = gout + (plane * HO + i) * WO;
      T* dst = gx + (plane * H + y) * W;
      int64_t j = 0;
      if (sw == 2 && rows == 2) {
        for (; j < W / 2; ++j) {
          const T value = src[j] / T(4);
          dst[2 * j] = value;
          dst[2 * j + 1] = value;
        }
      }
      for (; j < WO; ++j) {
        const int64_t x0 = j * sw, x1 = std::min(W, x0 + sw);
        const T value = src[j] / static_cast<T>(rows * (x1 - x0));
        for (int64_t c = x0; c < x1; ++c) dst[c] = value;
      }
    }
  }
}

#define INVNAS_POOL_ENTRIES(T)                                                                 \
  INVNAS_CLONES void stride_pool_any(const T* x, T* out, int64_t planes, int64_t H, int64_t W,   \
                                     int64_t sh, int64_t sw) {                                  \
    stride_pool_planes<T>(x, out, planes, H, W, sh, sw);                                        \
  }                                                                                             \
  INVNAS_CLONES void stride_pool_grad_any(const T* g, T* gx, int64_t planes, int64_t H,          \
                                          int64_t W, int64_t sh, int64_t sw) {                  \
    stride_pool_grad_planes<T>(g, gx, planes, H, W, sh, sw);                                    \
  }
INVNAS_POOL_ENTRIES(float)
INVNAS_POOL_ENTRIES(double)



}  // namespace invnas_cpu
