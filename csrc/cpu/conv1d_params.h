// The plain-data interface between the torch glue (lrelu_conv1d.cpp) and the ISA-specific
// conv1d kernels. No torch headers here: the kernels are compiled for AVX-512 / AVX2 targets.
#pragma once

#include <cstdint>

namespace vocoder_ext::cpu {

constexpr int kConvMO = 6;  // output channels per register block

template <class S>
struct Conv1dParamsT {
  const S* x;             // [B, c_in, t_in], rows x_row apart
  const uint16_t* x_bf16;  // the bf16 kernel only, optional: the input as bf16 bits, laid out as x; read instead
  const S* w;             // tap u of (co, ci) at w[co * w_co + ci * w_ci + u * w_k]: any layout,
  int64_t w_co, w_ci, w_k;  // so transposed / flipped / phase-sliced weights need no copy
  const S* w_packed;      // optional: w already gathered as [groups][ceil(c_out / kConvMO)][c_in][k][kConvMO]
  const uint32_t* w_pairs;  // the bf16 kernel's weights (required there): bf16 pairs of input channels (2cp low,
                            // 2cp + 1 high, 0 past c_in) as [groups][ceil(c_out / kConvMO)][ceil(c_in / 2)][k][kConvMO]
  int64_t groups;         // 0 or 1: one weight set. g > 1: batch item b uses group b % g's weights, at
  int64_t w_group;        // w + (b % g) * w_group and bias + (b % g) * c_out: a grouped conv as [B * g, C / g, T]
  const S* bias;          // [c_out] or nullptr
  const S* residual;      // laid out like y (or by res_row/res_off), or nullptr: added last
  const S* gate;          // laid out like y, or nullptr: output *= (gate > 0 ? 1 : gate_slope)
  S* y;                   // output j of row (b, co) at y[(b * c_out + co) * y_row + y_off + j * y_step]
  int64_t batch, c_in, c_out, k, dilation;
  int64_t t_in;           // input length
  int64_t x_row;          // input row stride (>= t_in)
  int64_t t_out;          // outputs per row: y[j] = sum_k w[k] * act(x[j + k*dilation - pad])
  int64_t pad;            // left offset of the first tap (may be negative); zeros outside [0, t_in)
  int64_t y_row, y_off, y_step;
  int64_t res_row, res_off;  // residual j of row (b, co) at [(b * c_out + co) * res_row + res_off + j * y_step]
                             // when res_row > 0 (a residual read from another tensor than y); 0: y's layout
  int64_t tile_len;       // outputs per task
  S slope;                // leaky-ReLU slope applied to x as it is staged (1 = identity)
  S gate_slope;
  bool tanh_out;          // tanh after bias (before gate and residual)
  bool leaky_out;         // leaky-ReLU(out_slope) last, after the residual (the discriminators' convs)
  S out_slope;
};
using Conv1dParams = Conv1dParamsT<float>;

// Length of one staged input row: the tile rounded up to whole register blocks, plus the halo.
inline int64_t act_row_len(int64_t tile_len, int64_t block, int64_t k, int64_t dilation) {
  return (tile_len + block - 1) / block * block + (k - 1) * dilation;
}

// Each processes tasks [task_begin, task_end) (task = b * tiles + tile) using `act` as scratch:
// c_in * act_row_len(...) staged inputs, then c_in * k * kConvMO weights.
void conv1d_tiles_avx512(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act);
// bf16 products, fp32 sums (AVX512_BF16's vdpbf16ps): inputs and weights rounded to bf16 (nearest even),
// accumulation, bias and epilogue in fp32. Reads p.w_pairs, not p.w.
void conv1d_tiles_avx512_bf16(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act);
void conv1d_tiles_avx2(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act);
// Portable builds (no ISA pragma): float for CPUs without AVX2, double for float64 inputs.
void conv1d_tiles_generic(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act);
void conv1d_tiles_generic(const Conv1dParamsT<double>& p, int64_t task_begin, int64_t task_end, double* act);
// Time steps per register block of each build (for sizing the scratch rows).
int64_t conv1d_block_avx512();
int64_t conv1d_block_avx512_bf16();
int64_t conv1d_block_avx2();
int64_t conv1d_block_generic();

}  // namespace vocoder_ext::cpu
