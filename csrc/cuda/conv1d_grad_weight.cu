// Weight gradients of every conv here as one kernel (see GradWeightParams in kernels.h): the product
// of the [m, time] operand a with the k shifted copies of the [n_c, time] operand b, summed over
// batch and time, with b's shifted, activated copies formed on the fly (no im2col tensor).
//
// A block owns a 64 x 64 tile of the [m, n_c * K] gradient and a 512-step slice of one batch item's
// time; it stages 16 steps of both operands at a time in shared memory, each thread accumulates a
// 4 x 4 tile in registers, and the block adds its partial sums atomically (the caller zeroes `out`).
#include "../pointwise.h"
#include "dtype.cuh"

namespace vocoder_ext::cuda {
namespace {

constexpr int kM = 64, kN = 64, kStage = 16, kThreads = 256;
constexpr int64_t kTimePerBlock = 512;

template <class T>
__global__ void __launch_bounds__(kThreads) grad_weight_kernel(const GradWeightParams p) {
  using A = typename AccOf<T>::type;
  __shared__ A as[kStage][kM + 1];  // +1: the staging writes (time fastest) hit distinct banks
  __shared__ A bs[kStage][kN + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t n0 = int64_t(blockIdx.x) * kN, m0 = int64_t(blockIdx.y) * kM;
  const int64_t splits = ceil_div(p.t_len, kTimePerBlock);
  const int64_t b = blockIdx.z / splits, ts = (blockIdx.z % splits) * kTimePerBlock;
  const int64_t te = min(p.t_len, ts + kTimePerBlock), n_total = p.n_c * p.k;
  const T* a = static_cast<const T*>(p.a.ptr) + b * p.a.batch;
  const T* bsrc = static_cast<const T*>(p.b.ptr) + b * p.b.batch;
  const A a_slope = A(p.a_slope), b_slope = A(p.b_slope);

  A acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = A(0);

  for (int64_t t0 = ts; t0 < te; t0 += kStage) {
    __syncthreads();
    for (int i = threadIdx.x; i < kStage * kM; i += kThreads) {
      const int t = i % kStage, m = i / kStage;
      const int64_t tt = t0 + t;
      as[t][m] = (tt < te && m0 + m < p.m) ? leaky_relu(load<A>(a + (m0 + m) * p.a.row + tt), a_slope) : A(0);
    }
    for (int i = threadIdx.x; i < kStage * kN; i += kThreads) {
      const int t = i % kStage, n = i / kStage;
      const int64_t tt = t0 + t, col = n0 + n;
      A v = A(0);
      if (tt < te && col < n_total) {
        const int64_t c = col / p.k, kk = col % p.k;
        const int64_t pos = tt * p.step + kk * p.dilation - p.pad;
        if (pos >= 0 && pos < p.t_b) {
          const T* at = bsrc + c * p.b.row + pos;
          v = p.b_prologue == Prologue::kGate ? gate_from_preact(load<A>(at), load<A>(at + p.n_c * p.b.row))
                                              : leaky_relu(load<A>(at), b_slope);
        }
      }
      bs[t][n] = v;
    }
    __syncthreads();
#pragma unroll 4
    for (int t = 0; t < kStage; ++t) {
      A av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = as[t][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = bs[t][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
  }

  A* out = static_cast<A*>(p.out);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= p.m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx + 16 * j;
      if (n < n_total) atomicAdd(out + m * n_total + n, acc[i][j]);
    }
  }
}

}  // namespace

const char* conv1d_grad_weight(const GradWeightParams& p, cudaStream_t stream) {
  if (p.t_len <= 0 || p.batch <= 0 || p.m <= 0 || p.n_c <= 0) return nullptr;
  const int64_t z = p.batch * ceil_div(p.t_len, kTimePerBlock);
  if (z > 65535) return "conv1d_grad_weight: batch * ceil(T / 512) exceeds the grid's 65535 limit";
  dispatch(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    const dim3 grid(static_cast<unsigned>(ceil_div(p.n_c * p.k, kN)), static_cast<unsigned>(ceil_div(p.m, kM)),
                    static_cast<unsigned>(z));
    VX_LAUNCH(grad_weight_kernel<T>, grid, kThreads, 0, stream)(p);
  });
  return nullptr;
}

}  // namespace vocoder_ext::cuda
