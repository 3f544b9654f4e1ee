// CUDA kernel of vocoder_ext::resblock: the block as a chain of fused conv launches, each reading the
// previous one's output: leaky-ReLU in each conv's prologue, the group's residual in the epilogue of
// the conv that closes it, and the MRF average (accum + scale * block) in the last conv's epilogue.
// A GPU has the bandwidth for the intermediates, so unlike the CPU kernel nothing is tiled across
// convs; the chain still saves every separate activation, add and scale pass.
#include <optional>

#include "../checks.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

at::Tensor resblock_cuda(const at::Tensor& x_in, at::TensorList weights, at::TensorList biases,
                         at::IntArrayRef dilations, int64_t group, double slope, const std::optional<at::Tensor>& accum,
                         double scale) {
  checks::check_resblock(kDevice, x_in, weights, biases, dilations, group, accum);
  const DeviceGuard guard(x_in.device());
  const int64_t n = static_cast<int64_t>(weights.size()), k = weights[0].size(2);
  at::Tensor group_in = unit_time(x_in), prev = group_in;
  const at::Tensor acc = accum ? unit_time(*accum) : at::Tensor();
  for (int64_t i = 0; i < n; ++i) {
    const bool closes_group = (i + 1) % group == 0, last = i + 1 == n;
    const at::Tensor packed = pack_taps(weights[i].permute({1, 2, 0}), prev);
    const at::Tensor b = biases[i].to(acc_type(prev)).contiguous();
    at::Tensor y = at::empty_like(prev, at::MemoryFormat::Contiguous);
    ConvParams p = same_conv(prev, packed, k, dilations[i], slope, y);
    p.bias = b.const_data_ptr();
    if (closes_group) p.residual = operand(group_in);
    if (last) {
      p.scale = scale;
      if (accum) p.accum = operand(acc);
    }
    launched(conv1d(p, stream()));
    prev = y;
    if (closes_group) group_in = y;
  }
  return prev;
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) { m.impl("resblock", &resblock_cuda); }

}  // namespace vocoder_ext::cuda
