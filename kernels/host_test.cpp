// Host build of kernels/involution.cu for tests: C entry points that run each kernel through
// the grid loops of host_shim.h. Build: g++ -std=c++17 -shared -fPIC host_test.cpp -o lib.so
//
// Every entry point takes (a, b, out, shape, grid, block) where shape holds the 15 sizes in
// the kernels' order (B, C, H, W, G, KH, KW, Ho, Wo, sh, sw, ph, pw, dh, dw) and grid / block
// are the 1-D launch sizes to emulate.
#include "host_shim.h"

#include "involution.cu"

namespace {

using invnas::index_t;

template <typename T, typename KernelT>
void run(KernelT kernel, const T* a, const T* b, T* out, const index_t* s, unsigned int grid,
         unsigned int block) {
  invnas_host::launch(dim3(grid), dim3(block), kernel, a, b, out, s[0], s[1], s[2], s[3], s[4],
                      s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13], s[14]);
}

}  // namespace

#define INVNAS_HOST_ENTRY(KERNEL, SUFFIX, T)                                                 \
  extern "C" void KERNEL##_##SUFFIX(const T* a, const T* b, T* out, const index_t* shape, \
                                    unsigned int grid, unsigned int block) {               \
    run<T>(&invnas::KERNEL<T>, a, b, out, shape, grid, block);                           \
  }

INVNAS_HOST_ENTRY(involution_forward, f32, float)
INVNAS_HOST_ENTRY(involution_forward, f64, double)
INVNAS_HOST_ENTRY(involution_backward_input, f32, float)
INVNAS_HOST_ENTRY(involution_backward_input, f64, double)
INVNAS_HOST_ENTRY(involution_backward_weight, f32, float)
INVNAS_HOST_ENTRY(involution_backward_weight, f64, double)
