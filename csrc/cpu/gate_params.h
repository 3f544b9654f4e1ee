// The plain-data interface of the WN gate kernels (acts = tanh(a[:C]) * sigmoid(a[C:]) and its
// derivative), between the torch glue (wn_layer.cpp) and the ISA-specific builds. No torch headers.
#pragma once

#include <cstdint>

namespace vocoder_ext::cpu {

template <class S>
struct GateParamsT {
  const S* a;           // 2C rows of len, a_row apart: the tanh half [0, C), then the sigmoid half
  int64_t a_row;
  const S* grad_acts;   // backward: dL/dacts, C rows; nullptr in the forward
  int64_t grad_acts_row;
  S* acts;              // C rows, or nullptr (backward without acts)
  int64_t acts_row;
  S* grad_a;            // backward: dL/da, 2C rows (the conditioning's gradient too)
  int64_t grad_a_row;
  int64_t c, len;
};
using GateParams = GateParamsT<float>;

void wn_gate_avx512(const GateParams& p);
void wn_gate_avx2(const GateParams& p);
void wn_gate_generic(const GateParams& p);
void wn_gate_generic(const GateParamsT<double>& p);

}  // namespace vocoder_ext::cpu
