// Torch-side driver of the tiled conv1d kernels: weight packing, tiling, threads, ISA choice.
#pragma once

#include <ATen/ATen.h>

#include "conv1d_params.h"
#include "gate_params.h"

namespace vocoder_ext::cpu {

// Runs every (batch item, time tile) task of p in parallel; sets p.tile_len.
void run_conv1d(Conv1dParamsT<float>& p);
void run_conv1d(Conv1dParamsT<double>& p);

}  // namespace vocoder_ext::cpu

namespace vocoder_ext::cpu {

// For callers that tile and thread themselves (the fused resblock and WN layer): the ISA build
// that run_conv1d would use, run on the calling thread over tasks [task_begin, task_end) of p
// (all of them by default), and the WN gate of the same build.
struct SerialConv1d {
  SerialConv1d();
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
};

}  // namespace vocoder_ext::cpu
