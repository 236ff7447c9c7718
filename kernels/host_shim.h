// Lets a host C++17 compiler build kernels/involution.cu unchanged, for tests without a GPU.
//
//   #include "host_shim.h"
//   #include "involution.cu"
//   invnas_host::launch(dim3(grid), dim3(block), &invnas::involution_forward<float>, args...);
//
// A launch runs every (block, thread) of the grid one after another on the calling thread.
// That is exact for kernels that use no shared memory, barriers or warp intrinsics, which is
// all involution.cu needs; under the shim only its float and double instantiations exist.
#pragma once

#define INVNAS_HOST_SHIM 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// __restrict__ is already a g++/clang keyword.

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace invnas_host {

template <typename... Params, typename... Args>
void launch(dim3 grid, dim3 block, void (*kernel)(Params...), Args... args) {
  gridDim = grid;
  blockDim = block;
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx)
        for (unsigned int tz = 0; tz < block.z; ++tz)
          for (unsigned int ty = 0; ty < block.y; ++ty)
            for (unsigned int tx = 0; tx < block.x; ++tx) {
              blockIdx = uint3{bx, by, bz};
              threadIdx = uint3{tx, ty, tz};
              kernel(args...);
            }
}

}  // namespace invnas_host
