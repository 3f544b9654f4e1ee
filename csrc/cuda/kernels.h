// The plain-data interface between the torch glue (csrc/cuda/*.cpp: checks, layouts, dtypes, streams)
// and the CUDA kernels (csrc/cuda/*.cu: kernels and launchers only). No torch headers here or in the
// .cu files, so nvcc compiles them in seconds.
//
// Tensors cross as raw pointers in their I/O dtype (`Dtype`), laid out [batch, rows, time] with unit
// time stride and the given batch and row strides. Weights and biases cross already converted to the
// accumulation type (fp32, or fp64 for fp64 I/O) and packed by the glue.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace vocoder_ext::cuda {

enum class Dtype : int { kFloat = 0, kHalf = 1, kBFloat16 = 2, kDouble = 3 };

// A [batch, rows, time] operand: element (b, r, t) at ptr[b * batch + r * row + t].
struct Operand {
  const void* ptr = nullptr;
  int64_t batch = 0, row = 0;
};

enum class Prologue : int {
  kLeaky = 0,  // act = leaky_relu(x, slope) (slope 1: the identity)
  kGate = 1,   // act = tanh(x[ci]) * sigmoid(x[ci + c_in]): WaveGlow's gate, x has 2 c_in rows
};

// y[b, co, y_off + t * y_step] = epilogue(sum_{ci, k} w[ci * K + k][co] * act(x[b, ci, t * x_step + k * dilation - pad]))
// with act = prologue(x), zero outside [0, t_in). The epilogue, in order: + bias[co], tanh, leaky'(gate) *,
// + residual, then accum + scale * v, then leaky_relu(., out_slope) if leaky_out. With tanh_grad_of set, the output is tanh_grad_of * tanh'(.) instead
// (the tanh epilogue's backward, recomputing the forward). With gate_grad set (WaveGlow's backward), v is dL/dacts and the
// output has 2 c_out rows: y[co] = dL/da_t, y[c_out + co] = dL/da_s, from the pre-activation gate_grad.
struct ConvParams {
  Dtype dtype = Dtype::kFloat;
  Operand x;
  int64_t t_in = 0, x_step = 1;
  Prologue prologue = Prologue::kLeaky;
  double slope = 1.0;
  const void* w = nullptr;     // [c_in * k][c_out], accumulation type
  const void* bias = nullptr;  // [c_out], accumulation type, or nullptr
  bool tanh_out = false;
  Operand tanh_grad_of;
  Operand gate;                // multiply by leaky'(gate, gate_slope) where set
  double gate_slope = 1.0;
  Operand gate_grad;           // WaveGlow gate backward from this pre-activation (2 c_out rows)
  Operand residual;
  int64_t residual_off = 0;
  Operand accum;
  double scale = 1.0;
  bool leaky_out = false;
  double out_slope = 1.0;
  void* y = nullptr;
  int64_t y_batch = 0, y_row = 0, y_off = 0, y_step = 1;
  int64_t batch = 0, c_in = 0, c_out = 0, k = 1, dilation = 1, pad = 0, t_out = 0;
};
// Launchers return nullptr, or why the shape cannot run (the glue raises it).
const char* conv1d(const ConvParams& p, cudaStream_t stream);

// out[m][c * K + k] += sum_{b, t < t_len} act_a(a[b, m, t]) * act_b(bsrc[b, c, t * step + k * dilation - pad])
// (zero outside [0, t_b)): every conv weight gradient here is one such product. out is [m][n_c * K] in
// the accumulation type, zeroed by the caller (blocks split time and add atomically).
struct GradWeightParams {
  Dtype dtype = Dtype::kFloat;
  Operand a;
  double a_slope = 1.0;
  Operand b;
  Prologue b_prologue = Prologue::kLeaky;
  double b_slope = 1.0;
  int64_t batch = 0, m = 0, n_c = 0, k = 1, t_len = 0, t_b = 0, step = 1, dilation = 1, pad = 0;
  void* out = nullptr;
};
const char* conv1d_grad_weight(const GradWeightParams& p, cudaStream_t stream);

// Affine coupling over [batch, n, t] x and [batch, 2n, t] wn_out = [b; log_s], all contiguous.
struct AffineParams {
  Dtype dtype = Dtype::kFloat;
  const void* x = nullptr;
  const void* wn_out = nullptr;
  const void* grad_out = nullptr;  // backward only
  void* y = nullptr;               // forward: the output; backward: grad_x
  void* grad_wn_out = nullptr;     // backward only
  int64_t batch = 0, n = 0, t = 0;
  bool reverse = false;
};
const char* affine_coupling(const AffineParams& p, cudaStream_t stream);
const char* affine_coupling_backward(const AffineParams& p, cudaStream_t stream);

}  // namespace vocoder_ext::cuda
