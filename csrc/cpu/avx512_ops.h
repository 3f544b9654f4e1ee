// The AVX-512 vector operations the kernel templates use (16 floats per register). Included by the
// AVX-512 translation units after their `#pragma GCC target`, inside their anonymous namespace.
#pragma once

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
  static Reg sub(Reg a, Reg b) { return _mm512_sub_ps(a, b); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static Reg div(Reg a, Reg b) { return _mm512_div_ps(a, b); }
  static Reg min(Reg a, Reg b) { return _mm512_min_ps(a, b); }
  static Reg max(Reg a, Reg b) { return _mm512_max_ps(a, b); }
  static Reg abs(Reg a) { return _mm512_abs_ps(a); }
  static Reg copysign(Reg mag, Reg sign) {
    const Reg m = _mm512_castsi512_ps(_mm512_set1_epi32(0x80000000));
    return _mm512_or_ps(_mm512_andnot_ps(m, mag), _mm512_and_ps(m, sign));
  }
  static Reg round(Reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static Reg scale2(Reg p, Reg n) { return _mm512_scalef_ps(p, n); }
  static Reg select_lt(Reg x, Reg c, Reg a, Reg b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, c, _CMP_LT_OQ), b, a);
  }
  static Reg tanh(Reg x) { return vtanh<Avx512>(x); }
  static Reg sigmoid(Reg x) { return vsigmoid<Avx512>(x); }
  // v where gate > 0, v * slope elsewhere
  static Reg leaky_grad(Reg v, Reg gate, float slope) {
    const __mmask16 neg = _mm512_cmp_ps_mask(gate, _mm512_setzero_ps(), _CMP_NGT_UQ);
    return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(slope));
  }
};
