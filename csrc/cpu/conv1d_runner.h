// Torch-side driver of the tiled conv1d kernels: weight packing, tiling, threads, ISA choice.
#pragma once

#include <ATen/ATen.h>

#include "conv1d_params.h"

namespace vocoder_ext::cpu {

// Runs every (batch item, time tile) task of p in parallel; sets p.tile_len.
void run_conv1d(Conv1dParamsT<float>& p);
void run_conv1d(Conv1dParamsT<double>& p);

}  // namespace vocoder_ext::cpu

namespace vocoder_ext::cpu {

// For callers that tile and thread themselves (the fused resblock): the ISA build that
// run_conv1d would use, run on the calling thread over all of p's tasks.
struct SerialConv1d {
  SerialConv1d();
  int64_t block;  // time steps per register block
  void operator()(Conv1dParams& p, float* scratch) const;  // p.tile_len must be set
 private:
  int isa_;
};

}  // namespace vocoder_ext::cpu
