// WaveGlow's affine coupling, forward and backward: one elementwise pass reading b and log_s where
// the WN wrote them (no split, no exp tensor), in fp32 (fp64 for fp64 I/O).
#include "../pointwise.h"
#include "dtype.cuh"

namespace vocoder_ext::cuda {
namespace {

constexpr int kThreads = 256;

// Element e of x ([batch, n, t]) and the offsets of its b and log_s in wn_out ([batch, 2n, t]).
struct Coupled {
  int64_t b_off, l_off;
  __device__ Coupled(int64_t e, int64_t nt) {
    b_off = (e / nt) * 2 * nt + e % nt;
    l_off = b_off + nt;
  }
};

template <class T>
__global__ void __launch_bounds__(kThreads) affine_kernel(const AffineParams p) {
  using A = typename AccOf<T>::type;
  const int64_t nt = p.n * p.t, total = p.batch * nt;
  const T* x = static_cast<const T*>(p.x);
  const T* o = static_cast<const T*>(p.wn_out);
  for (int64_t e = blockIdx.x * int64_t(kThreads) + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    const Coupled at(e, nt);
    store(static_cast<T*>(p.y) + e, ::vocoder_ext::affine_coupling(load<A>(x + e), load<A>(o + at.b_off), load<A>(o + at.l_off),
                                                                  p.reverse));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) affine_backward_kernel(const AffineParams p) {
  using A = typename AccOf<T>::type;
  const int64_t nt = p.n * p.t, total = p.batch * nt;
  const T* x = static_cast<const T*>(p.x);
  const T* o = static_cast<const T*>(p.wn_out);
  const T* g = static_cast<const T*>(p.grad_out);
  T* gx = static_cast<T*>(p.y);
  T* go = static_cast<T*>(p.grad_wn_out);
  for (int64_t e = blockIdx.x * int64_t(kThreads) + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    const Coupled at(e, nt);
    A grad_x, grad_b, grad_l;
    affine_coupling_grad(load<A>(g + e), load<A>(x + e), load<A>(o + at.b_off), load<A>(o + at.l_off), p.reverse,
                         grad_x, grad_b, grad_l);
    store(gx + e, grad_x);
    store(go + at.b_off, grad_b);
    store(go + at.l_off, grad_l);
  }
}

unsigned blocks(const AffineParams& p) {
  return static_cast<unsigned>(std::min<int64_t>(ceil_div(p.batch * p.n * p.t, kThreads), 65535));
}

}  // namespace

const char* affine_coupling(const AffineParams& p, cudaStream_t stream) {
  if (p.batch * p.n * p.t == 0) return nullptr;
  dispatch(p.dtype, [&](auto tag) { VX_LAUNCH(affine_kernel<decltype(tag)>, blocks(p), kThreads, 0, stream)(p); });
  return nullptr;
}

const char* affine_coupling_backward(const AffineParams& p, cudaStream_t stream) {
  if (p.batch * p.n * p.t == 0) return nullptr;
  dispatch(p.dtype, [&](auto tag) { VX_LAUNCH(affine_backward_kernel<decltype(tag)>, blocks(p), kThreads, 0, stream)(p); });
  return nullptr;
}

}  // namespace vocoder_ext::cuda
