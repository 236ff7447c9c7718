// Involution (Li et al., CVPR 2021): forward, backward-input and backward-weight kernels.
//
// Compiled at run time by CuPy (NVRTC) with name expressions such as
// "invnas::involution_forward<float>"; the tests also compile this exact file with nvcc and,
// through host_shim.h, with g++ for the host.
//
// Layouts (all contiguous, NCHW):
//   input  (B, C, H, W)      output / grad_out (B, C, Ho, Wo)
//   weight (B, G, KH*KW, Ho, Wo), channel c uses group c / (C / G)
// Every kernel is a grid-stride loop over its output elements, with 64-bit linear indices, and
// takes its sizes as arguments so that one compiled module serves every shape.

#ifndef INVNAS_HOST_SHIM
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace invnas {

using index_t = long long;

// Parameter list shared by the three kernels. Ho and Wo follow from the others; the caller
// passes them so that kernels do no shape arithmetic beyond index decomposition.
#define INVNAS_SHAPE_PARAMS                                                                 \
  index_t B, index_t C, index_t H, index_t W, index_t G, index_t KH, index_t KW, index_t Ho, \
      index_t Wo, index_t sh, index_t sw, index_t ph, index_t pw, index_t dh, index_t dw

template <typename T>
struct Accumulator {
  using type = float;
};
template <>
struct Accumulator<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
#ifndef INVNAS_HOST_SHIM
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
#endif

__device__ __forceinline__ index_t first_index() {
  return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ index_t grid_stride() {
  return static_cast<index_t>(blockDim.x) * gridDim.x;
}

// out[b,c,i,j] = sum_{u,v} weight[b,g,u*KW+v,i,j] * input[b,c,i*sh-ph+u*dh, j*sw-pw+v*dw]
template <typename T>
__global__ void involution_forward(const T* __restrict__ input, const T* __restrict__ weight,
                                   T* __restrict__ output, INVNAS_SHAPE_PARAMS) {
  using Acc = typename Accumulator<T>::type;
  const index_t in_plane = H * W;
  const index_t out_plane = Ho * Wo;
  const index_t taps = KH * KW;
  const index_t channels_per_group = C / G;
  const index_t total = B * C * out_plane;
  for (index_t idx = first_index(); idx < total; idx += grid_stride()) {
    const index_t j = idx % Wo;
    const index_t i = (idx / Wo) % Ho;
    const index_t bc = idx / out_plane;
    const index_t b = bc / C;
    const index_t g = (bc % C) / channels_per_group;
    const T* in = input + bc * in_plane;
    const T* w = weight + (b * G + g) * taps * out_plane + i * Wo + j;
    Acc acc = 0;
    for (index_t u = 0; u < KH; ++u) {
      const index_t y = i * sh - ph + u * dh;
      if (y < 0 || y >= H) continue;
      for (index_t v = 0; v < KW; ++v) {
        const index_t x = j * sw - pw + v * dw;
        if (x < 0 || x >= W) continue;
        acc += to_acc(w[(u * KW + v) * out_plane]) * to_acc(in[y * W + x]);
      }
    }
    store(output + idx, acc);
  }
}

// Gather form: each thread owns one input element and visits the (i, j, u, v) that read it,
// so no atomics are needed. Output row i reads row y through tap u iff i*sh = y+ph-u*dh.
template <typename T>
__global__ void involution_backward_input(const T* __restrict__ grad_out,
                                          const T* __restrict__ weight,
                                          T* __restrict__ grad_input, INVNAS_SHAPE_PARAMS) {
  using Acc = typename Accumulator<T>::type;
  const index_t in_plane = H * W;
  const index_t out_plane = Ho * Wo;
  const index_t taps = KH * KW;
  const index_t channels_per_group = C / G;
  const index_t total = B * C * in_plane;
  for (index_t idx = first_index(); idx < total; idx += grid_stride()) {
    const index_t x = idx % W;
    const index_t y = (idx / W) % H;
    const index_t bc = idx / in_plane;
    const index_t b = bc / C;
    const index_t g = (bc % C) / channels_per_group;
    const T* go = grad_out + bc * out_plane;
    const T* w = weight + (b * G + g) * taps * out_plane;
    Acc acc = 0;
    for (index_t u = 0; u < KH; ++u) {
      const index_t ti = y + ph - u * dh;
      if (ti < 0 || ti % sh != 0) continue;
      const index_t i = ti / sh;
      if (i >= Ho) continue;
      for (index_t v = 0; v < KW; ++v) {
        const index_t tj = x + pw - v * dw;
        if (tj < 0 || tj % sw != 0) continue;
        const index_t j = tj / sw;
        if (j >= Wo) continue;
        const index_t o = i * Wo + j;
        acc += to_acc(go[o]) * to_acc(w[(u * KW + v) * out_plane + o]);
      }
    }
    store(grad_input + idx, acc);
  }
}

// One thread per weight element; it sums over the channels of its group.
template <typename T>
__global__ void involution_backward_weight(const T* __restrict__ grad_out,
                                           const T* __restrict__ input,
                                           T* __restrict__ grad_weight, INVNAS_SHAPE_PARAMS) {
  using Acc = typename Accumulator<T>::type;
  const index_t in_plane = H * W;
  const index_t out_plane = Ho * Wo;
  const index_t taps = KH * KW;
  const index_t channels_per_group = C / G;
  const index_t total = B * G * taps * out_plane;
  for (index_t idx = first_index(); idx < total; idx += grid_stride()) {
    const index_t o = idx % out_plane;
    const index_t j = o % Wo;
    const index_t i = o / Wo;
    const index_t tap = (idx / out_plane) % taps;
    const index_t bg = idx / (taps * out_plane);
    const index_t b = bg / G;
    const index_t g = bg % G;
    const index_t y = i * sh - ph + (tap / KW) * dh;
    const index_t x = j * sw - pw + (tap % KW) * dw;
    Acc acc = 0;
    if (y >= 0 && y < H && x >= 0 && x < W) {
      const index_t first_bc = b * C + g * channels_per_group;
      const T* go = grad_out + first_bc * out_plane + o;
      const T* in = input + first_bc * in_plane + y * W + x;
      for (index_t c = 0; c < channels_per_group; ++c) {
        acc += to_acc(go[c * out_plane]) * to_acc(in[c * in_plane]);
      }
    }
    store(grad_weight + idx, acc);
  }
}

#undef INVNAS_SHAPE_PARAMS

}  // namespace invnas
