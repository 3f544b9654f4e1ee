// I/O dtype <-> accumulation type, the dispatch of a launcher over Dtype, and the two spellings that
// differ when the .cu files are compiled as C++ for the CPU emulation the tests run (emulate.h):
// launching a kernel and declaring its dynamic shared memory.
#pragma once

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels.h"

#ifdef VOCODER_EXT_EMULATE_CUDA
#include "emulate.h"
#define VX_LAUNCH(kernel, grid, threads, smem, stream) ::vocoder_ext::cuda::emulate::launch(kernel, grid, threads, smem)
#define VX_DYNAMIC_SMEM(type, name) type* name = ::vocoder_ext::cuda::emulate::dynamic_smem<type>()
#else
#define VX_LAUNCH(kernel, grid, threads, smem, stream) kernel<<<grid, threads, smem, stream>>>
#define VX_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif

namespace vocoder_ext::cuda {

template <class T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

template <class A>
__device__ __forceinline__ A load(const float* p) { return A(*p); }
template <class A>
__device__ __forceinline__ A load(const double* p) { return A(*p); }
template <class A>
__device__ __forceinline__ A load(const __half* p) { return A(__half2float(*p)); }
template <class A>
__device__ __forceinline__ A load(const __nv_bfloat16* p) { return A(__bfloat162float(*p)); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Calls f(T{}) with T the C++ type of `dtype`.
template <class F>
void dispatch(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::kFloat: f(float{}); break;
    case Dtype::kHalf: f(__half{}); break;
    case Dtype::kBFloat16: f(__nv_bfloat16{}); break;
    case Dtype::kDouble: f(double{}); break;
  }
}

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace vocoder_ext::cuda
