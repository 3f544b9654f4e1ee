// The conv1d kernel on AVX512_BF16: vdpbf16ps multiplies pairs of bf16 values and adds both products to an
// fp32 lane, 32 multiply-adds per instruction where vfmadd231ps does 16. The pairs run along the input
// channels: the staged input holds (channel 2cp, channel 2cp + 1) at each time step, and the weights are
// packed the same way (gather_block_pairs), so each instruction covers two channels of one tap for
// 16 time steps. Accumulators, bias and epilogue stay fp32.
// The standard headers first, outside the target region (see conv1d_avx512.cpp).
#include <immintrin.h>
#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx512bf16,fma,avx2")

#include "conv1d_kernel.h"
#include "vec_math.h"

namespace vocoder_ext::cpu {
namespace {

#include "avx512_ops.h"

struct Avx512Bf16 : Avx512 {
  static constexpr bool kBf16Pairs = true;
  using Pairs = __m512i;
  static Pairs load_pairs(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static Pairs set1_pairs(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static Reg dot_pairs(Reg acc, Pairs w, Pairs x) { return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x); }

  // dst[j] = bf16(leaky(a[j])) | bf16(leaky(b[j])) << 16 for j < n; b == nullptr reads as zeros. a and b are
  // fp32, or bf16 bits (uint16_t: read as the fp32 values they are, so both give the same pairs).
  template <class T>
  static void stage_pairs(const T* a, const T* b, uint32_t* dst, int64_t n, float slope) {
    int64_t j = 0;
    for (; j + kWidth <= n; j += kWidth)
      _mm512_storeu_si512(dst + j, pack(leaky(load(a + j, kFull), slope), b ? leaky(load(b + j, kFull), slope) : zero()));
    if (j < n) {
      const __mmask16 tail = static_cast<__mmask16>((1u << (n - j)) - 1u);
      const Reg lo = leaky(load(a + j, tail), slope);
      const Reg hi = b ? leaky(load(b + j, tail), slope) : zero();
      _mm512_mask_storeu_epi32(dst + j, tail, pack(lo, hi));
    }
  }

 private:
  static constexpr __mmask16 kFull = 0xffff;
  static Reg load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static Reg load(const uint16_t* p, __mmask16 m) {  // bf16 bits are the high half of the fp32 value
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
  static Reg leaky(Reg v, float slope) { return leaky_grad(v, v, slope); }
  // Both rounded to nearest even, as bf16_bits rounds the weights.
  static Pairs pack(Reg lo, Reg hi) {
    const __m512i l = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
    const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
    return _mm512_or_si512(l, _mm512_slli_epi32(h, 16));
  }
};

constexpr int kNT = 4;  // 6 x 4 accumulators + 4 input pairs + 1 weight pair of the 32 registers

}  // namespace

void conv1d_tiles_avx512_bf16(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act) {
  conv1d_tiles<Avx512Bf16, kNT>(p, task_begin, task_end, act);
}

int64_t conv1d_block_avx512_bf16() { return Avx512Bf16::kWidth * kNT; }

}  // namespace vocoder_ext::cpu
