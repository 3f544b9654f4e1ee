// The direct conv1d kernel every CUDA op here is built from (see ConvParams in kernels.h): HiFi-GAN's
// dilated convs and their input gradients, the transposed convs' phases, WaveGlow's in/res/skip convs
// with the gate in the prologue (forward) or the epilogue (backward), the invertible 1x1 conv.
//
// A block computes 64 output channels x 64 output steps of one batch item; each of its 256 threads
// holds a 4 x 4 register tile (channels ty + 16 i, steps tx + 16 j: a warp's shared-memory reads are
// broadcasts or consecutive, its global stores consecutive). Input channels go in chunks: the chunk's
// weights and its activated input span (halo included) are staged in shared memory once, so the
// prologue runs once per input element per block, in fp32 (fp64 for fp64 I/O).
#include "../pointwise.h"
#include "dtype.cuh"

namespace vocoder_ext::cuda {
namespace {

constexpr int kCo = 64, kT = 64, kThreads = 256;
constexpr int kSmemBudget = 24 * 1024;  // bytes a block stages: leaves room for several blocks per SM

// fp64 accumulators need twice the registers: allow one block per SM's worth (ptxas otherwise caps the
// fp64 instance at 64 registers on sm_8x and spills).
template <class T>
__global__ void __launch_bounds__(kThreads, sizeof(T) == 8 ? 1 : 2) conv1d_kernel(const ConvParams p, const int chunk, const int span) {
  using A = typename AccOf<T>::type;
  VX_DYNAMIC_SMEM(double, smem);  // double: aligned for either accumulation type
  A* ws = reinterpret_cast<A*>(smem);           // [chunk * k][kCo]
  A* xs = ws + static_cast<int64_t>(chunk) * p.k * kCo;  // [chunk][span]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t b = blockIdx.z, co0 = int64_t(blockIdx.y) * kCo, t0 = int64_t(blockIdx.x) * kT;
  const T* x = static_cast<const T*>(p.x.ptr) + b * p.x.batch;
  const A* w = static_cast<const A*>(p.w);
  const int64_t p0 = t0 * p.x_step - p.pad;  // input position of xs[.][0]
  const int k = static_cast<int>(p.k), dil = static_cast<int>(p.dilation), step = static_cast<int>(p.x_step);
  const A slope = A(p.slope);

  A acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = A(0);

  for (int64_t ci0 = 0; ci0 < p.c_in; ci0 += chunk) {
    const int nc = static_cast<int>(min(int64_t(chunk), p.c_in - ci0));
    __syncthreads();  // the previous chunk is consumed
    for (int i = threadIdx.x; i < nc * k * kCo; i += kThreads) {
      const int r = i / kCo, m = i % kCo;
      ws[i] = co0 + m < p.c_out ? w[(ci0 * k + r) * p.c_out + co0 + m] : A(0);
    }
    for (int i = threadIdx.x; i < nc * span; i += kThreads) {
      const int c = i / span, j = i % span;
      const int64_t pos = p0 + j;
      A v = A(0);
      if (pos >= 0 && pos < p.t_in) {
        const T* at = x + (ci0 + c) * p.x.row + pos;
        v = p.prologue == Prologue::kGate ? gate_from_preact(load<A>(at), load<A>(at + p.c_in * p.x.row))
                                          : leaky_relu(load<A>(at), slope);
      }
      xs[i] = v;
    }
    __syncthreads();
    for (int c = 0; c < nc; ++c) {
      for (int kk = 0; kk < k; ++kk) {
        const A* wr = ws + (c * k + kk) * kCo + ty;
        const A* xr = xs + c * span + kk * dil + tx * step;
        A wv[4], xv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) wv[i] = wr[16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) xv[j] = xr[16 * j * step];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fma(wv[i], xv[j], acc[i][j]);
      }
    }
  }

  T* y = static_cast<T*>(p.y) + b * p.y_batch;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t co = co0 + ty + 16 * i;
    if (co >= p.c_out) continue;
    const A bias = p.bias ? static_cast<const A*>(p.bias)[co] : A(0);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t t = t0 + tx + 16 * j;
      if (t >= p.t_out) continue;
      A v = acc[i][j] + bias;
      T* out = y + co * p.y_row + p.y_off + t * p.y_step;
      if (p.gate_grad.ptr) {
        const T* pa = static_cast<const T*>(p.gate_grad.ptr) + b * p.gate_grad.batch + co * p.gate_grad.row + t;
        A grad_t, grad_s;
        gate_grad(v, vx_tanh(load<A>(pa)), sigmoid(load<A>(pa + p.c_out * p.gate_grad.row)), grad_t, grad_s);
        store(out, grad_t);
        store(out + p.c_out * p.y_row, grad_s);
        continue;
      }
      if (p.tanh_out) v = vx_tanh(v);
      if (p.tanh_grad_of.ptr) {
        const T* g = static_cast<const T*>(p.tanh_grad_of.ptr) + b * p.tanh_grad_of.batch + co * p.tanh_grad_of.row + t;
        store(out, tanh_grad(load<A>(g), v));
        continue;
      }
      if (p.gate.ptr)
        v = leaky_relu_grad(v, load<A>(static_cast<const T*>(p.gate.ptr) + b * p.gate.batch + co * p.gate.row + t),
                            A(p.gate_slope));
      if (p.residual.ptr)
        v += load<A>(static_cast<const T*>(p.residual.ptr) + b * p.residual.batch + co * p.residual.row +
                     p.residual_off + t);
      v *= A(p.scale);
      if (p.accum.ptr) v += load<A>(static_cast<const T*>(p.accum.ptr) + b * p.accum.batch + co * p.accum.row + t);
      if (p.leaky_out) v = leaky_relu(v, A(p.out_slope));
      store(out, v);
    }
  }
}

}  // namespace

const char* conv1d(const ConvParams& p, cudaStream_t stream) {
  if (p.t_out <= 0 || p.c_out <= 0 || p.batch <= 0) return nullptr;
  const char* error = nullptr;
  dispatch(p.dtype, [&](auto tag) {
    using T = decltype(tag);
    using A = typename AccOf<T>::type;
    const int64_t span = (kT - 1) * p.x_step + (p.k - 1) * p.dilation + 1;
    const int64_t per_channel = (p.k * kCo + span) * int64_t(sizeof(A));
    if (per_channel > 48 * 1024) {
      error = "conv1d: the input span of one tile (dilation * (K - 1) + 64 * stride) exceeds shared memory";
      return;
    }
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(p.c_in, kSmemBudget / per_channel));
    const dim3 grid(static_cast<unsigned>(ceil_div(p.t_out, kT)), static_cast<unsigned>(ceil_div(p.c_out, kCo)),
                    static_cast<unsigned>(p.batch));
    VX_LAUNCH(conv1d_kernel<T>, grid, kThreads, chunk * per_channel, stream)(p, static_cast<int>(chunk),
                                                                              static_cast<int>(span));
  });
  return error;
}

}  // namespace vocoder_ext::cuda
