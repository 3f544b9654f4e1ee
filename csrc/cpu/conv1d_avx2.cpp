// conv1d kernel compiled for AVX2 + FMA (8 floats per register, 16 registers: 6 x 2 accumulators).
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include "conv1d_kernel.h"

namespace vocoder_ext::cpu {
namespace {

struct Avx2 {
  using Scalar = float;
  using Reg = __m256;
  static constexpr int kWidth = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg leaky_grad(Reg v, Reg gate, float slope) {
    const Reg pos = _mm256_cmp_ps(gate, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(slope)), v, pos);
  }
};

constexpr int kNT = 2;

}  // namespace

void conv1d_tiles_avx2(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act) {
  conv1d_tiles<Avx2, kNT>(p, task_begin, task_end, act);
}

int64_t conv1d_block_avx2() { return Avx2::kWidth * kNT; }

}  // namespace vocoder_ext::cpu
