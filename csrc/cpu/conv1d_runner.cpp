#include "conv1d_runner.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "conv1d_kernel.h"
#include "isa.h"

namespace vocoder_ext::cpu {
namespace {

int64_t block_len(Isa isa, bool is_double) {
  if (is_double) return conv1d_block_generic();
  switch (isa) {
    case Isa::kAvx512: return conv1d_block_avx512();
    case Isa::kAvx2: return conv1d_block_avx2();
    default: return conv1d_block_generic();
  }
}

// Time tile: the staged input (c_in rows) should fill about 1 MiB of the L2, with enough tasks
// to keep every thread busy.
int64_t choose_tile(int64_t batch, int64_t c_in, int64_t t_out, int64_t halo, int64_t block, size_t elem) {
  const int64_t budget = (int64_t(1) << 20) / int64_t(elem);
  int64_t tile = std::max<int64_t>(block, budget / std::max<int64_t>(c_in, 1) - halo);
  tile = std::min<int64_t>(tile, 4096);
  const int64_t want_tasks = 4 * at::get_num_threads();
  while (tile > block && batch * ((t_out + tile - 1) / tile) < want_tasks) tile /= 2;
  return std::max<int64_t>(block, tile / block * block);
}

template <class S>
void run(Conv1dParamsT<S>& p) {
  constexpr bool is_double = std::is_same_v<S, double>;
  const Isa isa = is_double ? Isa::kGeneric : selected_isa();
  const int64_t block = block_len(isa, is_double);
  const int64_t halo = (p.k - 1) * p.dilation;
  p.tile_len = choose_tile(p.batch, p.c_in, p.t_out, halo, block, sizeof(S));
  const int64_t tasks = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  const int64_t row = act_row_len(p.tile_len, block, p.k, p.dilation);
  // Gather the weights once for all tasks (short tiles would otherwise repeat it per task).
  const int64_t groups = p.groups > 1 ? p.groups : 1;
  const int64_t blocks = (p.c_out + kConvMO - 1) / kConvMO, per_block = p.c_in * p.k * kConvMO;
  std::vector<S> packed(static_cast<size_t>(groups * blocks * per_block));
  at::parallel_for(0, groups * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      gather_block(p, (i % blocks) * kConvMO, packed.data() + i * per_block, i / blocks);
  });
  p.w_packed = packed.data();
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<S> act(static_cast<size_t>(p.c_in * row + p.c_in * p.k * kConvMO));
    if constexpr (is_double) {
      conv1d_tiles_generic(p, begin, end, act.data());
    } else if (isa == Isa::kAvx512) {
      conv1d_tiles_avx512(p, begin, end, act.data());
    } else if (isa == Isa::kAvx2) {
      conv1d_tiles_avx2(p, begin, end, act.data());
    } else {
      conv1d_tiles_generic(p, begin, end, act.data());
    }
  });
}

}  // namespace

SerialConv1d::SerialConv1d()
    : block(block_len(selected_isa(), false)), block_double(block_len(Isa::kGeneric, true)),
      isa_(static_cast<int>(selected_isa())) {}

void SerialConv1d::operator()(Conv1dParams& p, float* scratch, int64_t task_begin, int64_t task_end) const {
  if (task_end < 0) task_end = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  switch (static_cast<Isa>(isa_)) {
    case Isa::kAvx512: conv1d_tiles_avx512(p, task_begin, task_end, scratch); break;
    case Isa::kAvx2: conv1d_tiles_avx2(p, task_begin, task_end, scratch); break;
    default: conv1d_tiles_generic(p, task_begin, task_end, scratch);
  }
}

void SerialConv1d::operator()(Conv1dParamsT<double>& p, double* scratch, int64_t task_begin,
                              int64_t task_end) const {
  if (task_end < 0) task_end = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  conv1d_tiles_generic(p, task_begin, task_end, scratch);
}

void SerialConv1d::gate(const GateParams& p) const {
  switch (static_cast<Isa>(isa_)) {
    case Isa::kAvx512: wn_gate_avx512(p); break;
    case Isa::kAvx2: wn_gate_avx2(p); break;
    default: wn_gate_generic(p);
  }
}

void SerialConv1d::gate(const GateParamsT<double>& p) const { wn_gate_generic(p); }

void run_conv1d(Conv1dParamsT<float>& p) { run(p); }
void run_conv1d(Conv1dParamsT<double>& p) { run(p); }

}  // namespace vocoder_ext::cpu
