// A CPU emulation of the small part of CUDA our kernels use, so the tests can run the real .cu sources
// (kernels, launchers and the torch glue) on machines without a GPU: python_tests/cuda_emulation.py
// compiles them as C++ with -DVOCODER_EXT_EMULATE_CUDA. Never part of the shipped extension.
//
// A launch runs the grid's blocks one after another; a block's threads are real std::threads meeting
// at a std::barrier for __syncthreads(), so shared memory, barriers and atomics behave as on a GPU
// (up to scheduling: any data race or missing barrier a kernel has can show up here too). Slow: for
// small shapes only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time, so a function-local static is exactly one block's shared array.
#define __shared__ static

inline thread_local dim3 threadIdx, blockIdx;
inline thread_local dim3 gridDim, blockDim;

template <class T>
inline T min(T a, T b) { return b < a ? b : a; }
template <class T>
inline T max(T a, T b) { return a < b ? b : a; }

namespace vocoder_ext::cuda::emulate {

inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local void* block_smem = nullptr;

template <class T>
T* dynamic_smem() { return static_cast<T*>(block_smem); }

// kernel<<<grid, threads, smem>>>(args...) as launch(kernel, grid, threads, smem)(args...).
template <class... P>
auto launch(void (*kernel)(P...), dim3 grid, unsigned threads, size_t smem) {
  return [=](auto&&... args) {
    std::vector<double> shared((smem + sizeof(double) - 1) / sizeof(double));
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
          std::barrier<> barrier(threads);
          std::vector<std::thread> block;
          for (unsigned t = 0; t < threads; ++t)
            block.emplace_back([&, t] {
              threadIdx = dim3(t, 0, 0), blockIdx = dim3(x, y, z), gridDim = grid, blockDim = dim3(threads, 1, 1);
              block_barrier = &barrier, block_smem = shared.data();
              kernel(args...);
            });
          for (std::thread& th : block) th.join();
        }
  };
}

}  // namespace vocoder_ext::cuda::emulate

inline void __syncthreads() { vocoder_ext::cuda::emulate::block_barrier->arrive_and_wait(); }

template <class T>
inline T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
