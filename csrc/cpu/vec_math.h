// exp, sigmoid and tanh on SIMD registers, for the ISA-specific builds (no torch headers: see
// conv1d_kernel.h). libm has no vector versions we can call from a `#pragma GCC target` unit, and a
// scalar std::tanh per element would cost as much as the WN layer's convs; these take ~20 vector
// instructions and are accurate to a few ulp over the whole float range (tested against torch).
//
// V supplies the register type and: set1, add, sub, mul, div, fmadd, min, max, abs, copysign(mag,
// sign), round (to nearest), scale2(p, n) = p * 2^n for integral n in [-126, 127], and
// select_lt(x, c, a, b) = x < c ? a : b, lane-wise.
#pragma once

namespace vocoder_ext::cpu {

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7 (truncation ~5e-9
// relative), then scaled by 2^n. Clamped so that 2^n stays a normal float.
template <class V>
static inline typename V::Reg vexp(typename V::Reg x) {
  using R = typename V::Reg;
  x = V::min(V::max(x, V::set1(-87.3f)), V::set1(88.3f));
  const R n = V::round(V::mul(x, V::set1(1.44269504088896341f)));
  R r = V::fmadd(n, V::set1(-0.693145751953125f), x);  // ln2 split in two so n * ln2_hi is exact
  r = V::fmadd(n, V::set1(1.4286068203094173e-06f * -1), r);
  R p = V::set1(1.f / 5040);
  p = V::fmadd(p, r, V::set1(1.f / 720));
  p = V::fmadd(p, r, V::set1(1.f / 120));
  p = V::fmadd(p, r, V::set1(1.f / 24));
  p = V::fmadd(p, r, V::set1(1.f / 6));
  p = V::fmadd(p, r, V::set1(0.5f));
  p = V::fmadd(p, r, V::set1(1.f));
  p = V::fmadd(p, r, V::set1(1.f));
  return V::scale2(p, n);
}

template <class V>
static inline typename V::Reg vsigmoid(typename V::Reg x) {
  const typename V::Reg one = V::set1(1.f);
  return V::div(one, V::add(one, vexp<V>(V::sub(V::set1(0.f), x))));
}

// tanh|x| = -u / (u + 2) with u = e^(-2|x|) - 1: no overflow, and no cancellation near 0 because u
// comes from its own Taylor series there (e^y - 1 loses the low bits of a small y).
template <class V>
static inline typename V::Reg vtanh(typename V::Reg x) {
  using R = typename V::Reg;
  const R y = V::mul(V::min(V::abs(x), V::set1(9.f)), V::set1(-2.f));  // tanh(9) rounds to 1
  R q = V::set1(1.f / 362880);  // (e^y - 1) / y to y^8 for |y| < 0.5: truncation < 3e-10
  q = V::fmadd(q, y, V::set1(1.f / 40320));
  q = V::fmadd(q, y, V::set1(1.f / 5040));
  q = V::fmadd(q, y, V::set1(1.f / 720));
  q = V::fmadd(q, y, V::set1(1.f / 120));
  q = V::fmadd(q, y, V::set1(1.f / 24));
  q = V::fmadd(q, y, V::set1(1.f / 6));
  q = V::fmadd(q, y, V::set1(0.5f));
  q = V::fmadd(q, y, V::set1(1.f));
  const R small = V::mul(q, y);
  const R large = V::sub(vexp<V>(y), V::set1(1.f));
  const R u = V::select_lt(y, V::set1(-0.5f), large, small);
  const R t = V::div(V::sub(V::set1(0.f), u), V::add(u, V::set1(2.f)));
  return V::copysign(t, x);
}

}  // namespace vocoder_ext::cpu
