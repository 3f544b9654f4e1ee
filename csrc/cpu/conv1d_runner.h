// Torch-side driver of the tiled conv1d kernels: weight packing, tiling, threads, ISA choice.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "conv1d_params.h"
#include "gate_params.h"

namespace vocoder_ext::cpu {

// Whether a conv on x computes with bf16 products (fp32 sums): x is bf16, or x is fp32 and PyTorch's switch for
// letting fp32 convolutions compute in bf16 is on (torch.backends.mkldnn.conv.fp32_precision = "bf16", read
// at each call). True only where the bf16 kernel can run (VOCODER_EXT_CPU_ISA / the CPU at avx512_bf16);
// elsewhere the fp32 kernels run, with one warning where bf16 was asked for.
bool bf16_compute(const at::Tensor& x);

// Runs every (batch item, time tile) task of p in parallel; sets p.tile_len. bf16: the bf16 kernel
// (bf16_compute's answer, never true for float64).
void run_conv1d(Conv1dParamsT<float>& p, bool bf16 = false);
void run_conv1d(Conv1dParamsT<double>& p, bool bf16 = false);

// Gathers p's weights for every task (p.w_packed, or p.w_pairs for the bf16 kernel) into `store`, which
// must outlive the runs that use p.
void pack_weights(Conv1dParams& p, bool bf16, std::vector<float>& store);

}  // namespace vocoder_ext::cpu

namespace vocoder_ext::cpu {

// For callers that tile and thread themselves (the fused resblock and WN layer): the ISA build
// that run_conv1d would use, run on the calling thread over tasks [task_begin, task_end) of p
// (all of them by default), and the WN gate of the same build. bf16: the bf16 conv kernel (p.w_pairs).
struct SerialConv1d {
  explicit SerialConv1d(bool bf16 = false);
  int64_t block;  // time steps per register block of the float build
  int64_t block_double;
  void operator()(Conv1dParams& p, float* scratch, int64_t task_begin = 0, int64_t task_end = -1) const;
  void operator()(Conv1dParamsT<double>& p, double* scratch, int64_t task_begin = 0, int64_t task_end = -1) const;
  void gate(const GateParams& p) const;
  void gate(const GateParamsT<double>& p) const;
  template <class S>
  int64_t block_of() const { return sizeof(S) == sizeof(double) ? block_double : block; }

 private:
  int isa_;
  bool bf16_;
};

}  // namespace vocoder_ext::cpu
