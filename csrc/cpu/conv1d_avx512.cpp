// conv1d kernel compiled for AVX-512 (16 floats per register, 32 registers: 6 x 4 accumulators).
#pragma GCC target("avx512f,avx512dq,avx512vl,fma,avx2")
#include <immintrin.h>

#include "conv1d_kernel.h"

namespace vocoder_ext::cpu {
namespace {

struct Avx512 {
  using Scalar = float;
  using Reg = __m512;
  static constexpr int kWidth = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  // v where gate > 0, v * slope elsewhere
  static Reg leaky_grad(Reg v, Reg gate, float slope) {
    const __mmask16 neg = _mm512_cmp_ps_mask(gate, _mm512_setzero_ps(), _CMP_NGT_UQ);
    return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(slope));
  }
};

constexpr int kNT = 4;

}  // namespace

void conv1d_tiles_avx512(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act) {
  conv1d_tiles<Avx512, kNT>(p, task_begin, task_end, act);
}

int64_t conv1d_block_avx512() { return Avx512::kWidth * kNT; }

}  // namespace vocoder_ext::cpu
