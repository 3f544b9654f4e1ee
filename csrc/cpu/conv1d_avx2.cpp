// The CPU kernels compiled for AVX2 + FMA: conv1d (8 floats per register, 16 registers: 6 x 2
// accumulators) and the WN gate.
// The standard headers first, outside the target region: libstdc++'s always_inline members compiled with
// the ISA's target cannot be inlined into code without it (GCC 13: "target specific option mismatch").
#include <immintrin.h>
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#pragma GCC target("avx2,fma")

#include "conv1d_kernel.h"
#include "gate_kernel.h"
#include "vec_math.h"

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
  static Reg sub(Reg a, Reg b) { return _mm256_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm256_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm256_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm256_max_ps(a, b); }
  static Reg abs(Reg a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = _mm256_set1_ps(-0.f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sign));
  }
  static Reg round(Reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Reg scale2(Reg p, Reg n) {  // 2^n built in the exponent field; n in [-126, 127]
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  static Reg select_lt(Reg x, Reg c, Reg a, Reg b) { return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, c, _CMP_LT_OQ)); }
  static Reg tanh(Reg x) { return vtanh<Avx2>(x); }
  static Reg sigmoid(Reg x) { return vsigmoid<Avx2>(x); }
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

void wn_gate_avx2(const GateParams& p) { gate_rows<Avx2>(p); }

int64_t conv1d_block_avx2() { return Avx2::kWidth * kNT; }

}  // namespace vocoder_ext::cpu
