// The CPU kernels in portable C++ (the compiler's baseline ISA): float for CPUs without AVX2, and
// double, so float64 inputs (gradcheck) run the same tiling and indexing code as the fast paths;
// libm's tanh and exp serve the gate.
#include <cmath>

#include "conv1d_kernel.h"
#include "gate_kernel.h"

namespace vocoder_ext::cpu {
namespace {

template <class S>
struct ScalarOps {  // a "vector" of one element
  using Scalar = S;
  using Reg = S;
  static constexpr int kWidth = 1;
  static Reg zero() { return S(0); }
  static Reg set1(S v) { return v; }
  static Reg loadu(const S* p) { return *p; }
  static void storeu(S* p, Reg v) { *p = v; }
  static Reg add(Reg a, Reg b) { return a + b; }
  static Reg fmadd(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg sub(Reg a, Reg b) { return a - b; }
  static Reg mul(Reg a, Reg b) { return a * b; }
  static Reg tanh(Reg x) { return vx_tanh(x); }
  static Reg sigmoid(Reg x) { return vocoder_ext::sigmoid(x); }
  static Reg leaky_grad(Reg v, Reg gate, S slope) { return leaky_relu_grad(v, gate, slope); }
};

constexpr int kNT = 4;

}  // namespace

void conv1d_tiles_generic(const Conv1dParams& p, int64_t task_begin, int64_t task_end, float* act) {
  conv1d_tiles<ScalarOps<float>, kNT>(p, task_begin, task_end, act);
}

void conv1d_tiles_generic(const Conv1dParamsT<double>& p, int64_t task_begin, int64_t task_end, double* act) {
  conv1d_tiles<ScalarOps<double>, kNT>(p, task_begin, task_end, act);
}

void wn_gate_generic(const GateParams& p) { gate_rows<ScalarOps<float>>(p); }
void wn_gate_generic(const GateParamsT<double>& p) { gate_rows<ScalarOps<double>>(p); }

int64_t conv1d_block_generic() { return kNT; }

}  // namespace vocoder_ext::cpu
