// Torch-side driver of the tiled conv1d kernels: weight packing, tiling, threads, ISA choice.
#pragma once

#include <ATen/ATen.h>

#include "conv1d_params.h"

namespace vocoder_ext::cpu {

// Runs every (batch item, time tile) task of p in parallel; sets p.tile_len.
void run_conv1d(Conv1dParamsT<float>& p);
void run_conv1d(Conv1dParamsT<double>& p);

}  // namespace vocoder_ext::cpu
