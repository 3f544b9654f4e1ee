// The CPU kernels compiled for AVX-512: conv1d (16 floats per register, 32 registers: 6 x 4
// accumulators) and the WN gate.
// The standard headers first, outside the target region: libstdc++'s always_inline members compiled with
// the ISA's target cannot be inlined into code without it (GCC 13: "target specific option mismatch").
#include <immintrin.h>
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#pragma GCC target("avx512f,avx512dq,avx512vl,fma,avx2")

#include "conv1d_kernel.h"
#include "gate_kernel.h"
#include "vec_math.h"

namespace vocoder_ext::cpu {
namespace {

#include "avx512_ops.h"

constexpr int kNT = 4;

}  // namespace

void conv1d_tiles_avx512(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act) {
  conv1d_tiles<Avx512, kNT>(p, task_begin, task_end, act);
}

void wn_gate_avx512(const GateParams& p) { gate_rows<Avx512>(p); }

int64_t conv1d_block_avx512() { return Avx512::kWidth * kNT; }

}  // namespace vocoder_ext::cpu
