#include "conv1d_runner.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

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
    case Isa::kAvx512Bf16:  // same register blocking as the fp32 AVX-512 kernel
    case Isa::kAvx512: return conv1d_block_avx512();
    case Isa::kAvx2: return conv1d_block_avx2();
    default: return conv1d_block_generic();
  }
}

void fp32_tiles(Isa isa, const Conv1dParams& p, int64_t begin, int64_t end, float* scratch) {
  switch (isa) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: conv1d_tiles_avx512(p, begin, end, scratch); break;
    case Isa::kAvx2: conv1d_tiles_avx2(p, begin, end, scratch); break;
    default: conv1d_tiles_generic(p, begin, end, scratch);
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
void pack(Conv1dParamsT<S>& p, bool bf16, std::vector<S>& store) {
  const int64_t groups = p.groups > 1 ? p.groups : 1;
  const int64_t blocks = (p.c_out + kConvMO - 1) / kConvMO;
  const int64_t rows = bf16 ? (p.c_in + 1) / 2 : p.c_in, per_block = rows * p.k * kConvMO;
  static_assert(sizeof(uint32_t) == sizeof(float));
  store.resize(static_cast<size_t>(groups * blocks * per_block));
  at::parallel_for(0, groups * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if constexpr (std::is_same_v<S, float>) {
        if (bf16) {
          gather_block_pairs(p, (i % blocks) * kConvMO, reinterpret_cast<uint32_t*>(store.data()) + i * per_block,
                             i / blocks);
          continue;
        }
      }
      gather_block(p, (i % blocks) * kConvMO, store.data() + i * per_block, i / blocks);
    }
  });
  if (bf16) p.w_pairs = reinterpret_cast<const uint32_t*>(store.data());
  else p.w_packed = store.data();
}

template <class S>
void run(Conv1dParamsT<S>& p, bool bf16) {
  TORCH_CHECK(bf16 || p.x_bf16 == nullptr, "run_conv1d: only the bf16 kernel reads bf16 inputs");
  constexpr bool is_double = std::is_same_v<S, double>;
  const Isa isa = is_double ? Isa::kGeneric : selected_isa();
  const int64_t block = block_len(isa, is_double);
  const int64_t halo = (p.k - 1) * p.dilation;
  // The bf16 kernel stages 2-byte values: twice the tile for the same L2 budget.
  p.tile_len = choose_tile(p.batch, p.c_in, p.t_out, halo, block, bf16 ? sizeof(S) / 2 : sizeof(S));
  const int64_t tasks = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  const int64_t row = act_row_len(p.tile_len, block, p.k, p.dilation);
  // Gather the weights once for all tasks (short tiles would otherwise repeat it per task).
  std::vector<S> packed;
  pack(p, bf16, packed);
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<S> act(static_cast<size_t>(p.c_in * row + p.c_in * p.k * kConvMO));
    if constexpr (is_double) {
      conv1d_tiles_generic(p, begin, end, act.data());
    } else if (bf16) {
      conv1d_tiles_avx512_bf16(p, begin, end, act.data());
    } else {
      fp32_tiles(isa, p, begin, end, act.data());
    }
  });
}

}  // namespace

bool bf16_compute(const at::Tensor& x) {
  const bool asked =
      x.scalar_type() == at::kBFloat16 ||
      (x.scalar_type() == at::kFloat &&
       at::globalContext().float32Precision(at::Float32Backend::MKLDNN, at::Float32Op::CONV) ==
           at::Float32Precision::BF16);
  if (!asked) return false;
  if (selected_isa() == Isa::kAvx512Bf16) return true;
  TORCH_WARN_ONCE("vocoder_ext: bf16 compute was asked for (", x.scalar_type() == at::kBFloat16 ? "bf16 input" :
                  "torch.backends.mkldnn.conv.fp32_precision = 'bf16'", ") but the CPU kernels run at ISA level ",
                  isa_name(selected_isa()), ", without AVX512_BF16: computing in fp32");
  return false;
}

void pack_weights(Conv1dParams& p, bool bf16, std::vector<float>& store) { pack(p, bf16, store); }

SerialConv1d::SerialConv1d(bool bf16)
    : block(block_len(selected_isa(), false)), block_double(block_len(Isa::kGeneric, true)),
      isa_(static_cast<int>(selected_isa())), bf16_(bf16) {
  TORCH_CHECK(!bf16 || selected_isa() == Isa::kAvx512Bf16, "SerialConv1d: the bf16 kernel needs avx512_bf16");
}

void SerialConv1d::operator()(Conv1dParams& p, float* scratch, int64_t task_begin, int64_t task_end) const {
  if (task_end < 0) task_end = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  if (bf16_) conv1d_tiles_avx512_bf16(p, task_begin, task_end, scratch);
  else fp32_tiles(static_cast<Isa>(isa_), p, task_begin, task_end, scratch);
}

void SerialConv1d::operator()(Conv1dParamsT<double>& p, double* scratch, int64_t task_begin,
                              int64_t task_end) const {
  if (task_end < 0) task_end = p.batch * ((p.t_out + p.tile_len - 1) / p.tile_len);
  conv1d_tiles_generic(p, task_begin, task_end, scratch);
}

void SerialConv1d::gate(const GateParams& p) const {
  switch (static_cast<Isa>(isa_)) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: wn_gate_avx512(p); break;
    case Isa::kAvx2: wn_gate_avx2(p); break;
    default: wn_gate_generic(p);
  }
}

void SerialConv1d::gate(const GateParamsT<double>& p) const { wn_gate_generic(p); }

void run_conv1d(Conv1dParamsT<float>& p, bool bf16) { run(p, bf16); }
void run_conv1d(Conv1dParamsT<double>& p, bool bf16) {
  TORCH_CHECK(!bf16, "run_conv1d: no bf16 kernel for float64 inputs");
  run(p, false);
}

}  // namespace vocoder_ext::cpu
