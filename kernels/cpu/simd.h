// SIMD helpers of the CPU involution kernels: 64-byte vectors and their transposes.
#pragma once

#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define INVNAS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define INVNAS_CLONES
#endif
#define INVNAS_INLINE inline __attribute__((always_inline))

namespace invnas_cpu {


// 64-byte vectors (one AVX-512 register, two AVX2 ones) of L floats or doubles.
//
// lo<M>(a, c) and hi<M>(a, c) split both vectors into blocks of 2M lanes and take from each
// block the first (lo) or last (hi) M lanes of a, then those of c. From these:
//   transpose(r)  r[i][j] <- r[j][i] for L vectors: swaps the off-diagonal M x M blocks of every
//                 2M x 2M block, for M = L/2 .. 1;
//   sum8(p)       result[k] = the sum of the lanes of p[k], k < 8: a transpose-and-add tree,
//                 where lo<M>(a, c) + hi<M>(a, c) halves the partial sums of a and c and packs
//                 them into one vector. The inputs enter in the order that leaves the sums in
//                 natural order.
template <typename T>
struct Simd;

template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef float V8 __attribute__((vector_size(32)));
  static constexpr int L = 16;

  template <int M>
  static INVNAS_INLINE V lo(V a, V c) {
    if constexpr (M == 8) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    } else if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26,
                                     27);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28,
                                     29);
    } else {
      return __builtin_shufflevector(a, c, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14,
                                     30);
    }
  }
  template <int M>
  static INVNAS_INLINE V hi(V a, V c) {
    if constexpr (M == 8) {
      return __builtin_shufflevector(a, c, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                     31);
    } else if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30,
                                     31);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30,
                                     31);
    } else {
      return __builtin_shufflevector(a, c, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15,
                                     31);
    }
  }
  template <int M>
  static INVNAS_INLINE V fold(V a, V c) {
    return lo<M>(a, c) + hi<M>(a, c);
  }
  static INVNAS_INLINE V8 sum8(const V* p) {
    const V s = fold<2>(fold<4>(fold<8>(p[0], p[4]), fold<8>(p[2], p[6])),
                        fold<4>(fold<8>(p[1], p[5]), fold<8>(p[3], p[7])));
    return __builtin_shufflevector(s, s, 0, 2, 4, 6, 8, 10, 12, 14) +
           __builtin_shufflevector(s, s, 1, 3, 5, 7, 9, 11, 13, 15);
  }
};

template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef double V8 __attribute__((vector_size(64)));
  static constexpr int L = 8;

  template <int M>
  static INVNAS_INLINE V lo(V a, V c) {
    if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 8, 9, 10, 11);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 0, 1, 8, 9, 4, 5, 12, 13);
    } else {
      return __builtin_shufflevector(a, c, 0, 8, 2, 10, 4, 12, 6, 14);
    }
  }
  template <int M>
  static INVNAS_INLINE V hi(V a, V c) {
    if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 4, 5, 6, 7, 12, 13, 14, 15);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 2, 3, 10, 11, 6, 7, 14, 15);
    } else {
      return __builtin_shufflevector(a, c, 1, 9, 3, 11, 5, 13, 7, 15);
    }
  }
  template <int M>
  static INVNAS_INLINE V fold(V a, V c) {
    return lo<M>(a, c) + hi<M>(a, c);
  }
  static INVNAS_INLINE V8 sum8(const V* p) {  // one level less than for float
    return fold<1>(fold<2>(fold<4>(p[0], p[4]), fold<4>(p[2], p[6])),
                   fold<2>(fold<4>(p[1], p[5]), fold<4>(p[3], p[7])));
  }
};

template <typename T, int M>
INVNAS_INLINE void swap_blocks(typename Simd<T>::V* r) {
  for (int i = 0; i < Simd<T>::L; i += 2 * M) {
    for (int k = i; k < i + M; ++k) {
      const typename Simd<T>::V a = r[k], c = r[k + M];
      r[k] = Simd<T>::template lo<M>(a, c);
      r[k + M] = Simd<T>::template hi<M>(a, c);
    }
  }
}

template <typename T>
INVNAS_INLINE void transpose(typename Simd<T>::V* r) {
  if constexpr (Simd<T>::L == 16) swap_blocks<T, 8>(r);
  swap_blocks<T, 4>(r);
  swap_blocks<T, 2>(r);
  swap_blocks<T, 1>(r);
}

}  // namespace invnas_cpu
