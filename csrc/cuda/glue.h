// Torch-side helpers of the CUDA ops (csrc/cuda/*.cpp): dtypes, operands, weight packing, launches,
// and what differs under the tests' CPU emulation (VOCODER_EXT_EMULATE_CUDA, see emulate.h): the
// device the glue accepts, the device guard and stream, and the library the kernels register in.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "kernels.h"

#ifdef VOCODER_EXT_EMULATE_CUDA
#define VX_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(vocoder_ext_emulated, CPU, m)
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define VX_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(vocoder_ext, CUDA, m)
#endif

namespace vocoder_ext::cuda {

#ifdef VOCODER_EXT_EMULATE_CUDA
constexpr c10::DeviceType kDevice = c10::DeviceType::CPU;
struct DeviceGuard {
  explicit DeviceGuard(c10::Device) {}
};
inline cudaStream_t stream() { return nullptr; }
inline void launched(const char* error) { TORCH_CHECK(error == nullptr, error); }
#else
constexpr c10::DeviceType kDevice = c10::DeviceType::CUDA;
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }
inline void launched(const char* error) {
  TORCH_CHECK(error == nullptr, error);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}
#endif

inline Dtype dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return Dtype::kFloat;
    case at::kHalf: return Dtype::kHalf;
    case at::kBFloat16: return Dtype::kBFloat16;
    case at::kDouble: return Dtype::kDouble;
    default: TORCH_CHECK(false, "vocoder_ext CUDA kernels take float32, float16, bfloat16 or float64, got ", t.scalar_type());
  }
}

// Weights, biases and the accumulation: fp32, or fp64 for fp64 I/O.
inline at::ScalarType acc_type(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

// t with a unit time stride (what the kernels index), copied only where it has none.
inline at::Tensor unit_time(const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// A [B, rows, T] tensor with a unit time stride as a kernel operand.
inline Operand operand(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.dim() == 3 && t.stride(2) == 1);
  return {t.const_data_ptr(), t.stride(0), t.stride(1)};
}

// Conv taps as the kernels read them: taps [c_in, K, c_out] (any strides) -> [c_in * K, c_out],
// contiguous, in the accumulation type of `like`.
inline at::Tensor pack_taps(const at::Tensor& taps, const at::Tensor& like) {
  return taps.to(acc_type(like)).contiguous().view({taps.size(0) * taps.size(1), taps.size(2)});
}

// The "same"-padded dilated conv of act(x) ([B, c_in, T]) with packed taps, into a fresh [B, c_out, T].
// The params point into `packed`: it must outlive the launch (hence no temporaries).
inline ConvParams same_conv(const at::Tensor& x, at::Tensor&& packed, int64_t k, int64_t dilation, double slope,
                            at::Tensor& y) = delete;
inline ConvParams same_conv(const at::Tensor& x, const at::Tensor& packed, int64_t k, int64_t dilation, double slope,
                            at::Tensor& y) {
  ConvParams p;
  p.dtype = dtype_of(x);
  p.x = operand(x);
  p.t_in = p.t_out = x.size(2);
  p.slope = slope;
  p.w = packed.const_data_ptr();
  p.y = y.mutable_data_ptr();
  p.y_batch = y.stride(0), p.y_row = y.stride(1);
  p.batch = x.size(0), p.c_in = x.size(1), p.c_out = packed.size(1), p.k = k, p.dilation = dilation;
  p.pad = dilation * (k - 1) / 2;
  return p;
}

// sum over batch and time of act_a(a[b, m, t]) * act_b(b[b, c, t * step + k * dilation - pad]) -> [m, n_c, K]
// in the accumulation type (GradWeightParams): every conv weight gradient here. With the gate prologue,
// b holds 2 n_c rows (the pre-activation).
inline at::Tensor grad_weight(const at::Tensor& a, double a_slope, const at::Tensor& b, Prologue b_prologue,
                              double b_slope, int64_t k, int64_t step = 1, int64_t dilation = 1, int64_t pad = 0) {
  GradWeightParams q;
  q.dtype = dtype_of(a);
  q.a = operand(a), q.a_slope = a_slope;
  q.b = operand(b), q.b_prologue = b_prologue, q.b_slope = b_slope;
  q.batch = a.size(0), q.m = a.size(1), q.n_c = b_prologue == Prologue::kGate ? b.size(1) / 2 : b.size(1);
  q.k = k, q.t_len = a.size(2), q.t_b = b.size(2), q.step = step, q.dilation = dilation, q.pad = pad;
  at::Tensor out = at::zeros({q.m, q.n_c, k}, a.options().dtype(acc_type(a)));
  q.out = out.mutable_data_ptr();
  launched(conv1d_grad_weight(q, stream()));
  return out;
}

}  // namespace vocoder_ext::cuda
