#include "isa.h"

#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdlib>
#include <string>

namespace vocoder_ext::cpu {
namespace {

Isa best_supported() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16") ? Isa::kAvx512Bf16
                                                                                        : Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
  return Isa::kGeneric;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Bf16: return "avx512_bf16";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "generic";
  }
}

Isa selected_isa() {
  static const Isa best = best_supported();
  const char* env = std::getenv("VOCODER_EXT_CPU_ISA");
  if (env == nullptr || *env == '\0') return best;
  const std::string want(env);
  Isa isa;
  if (want == "avx512_bf16") isa = Isa::kAvx512Bf16;
  else if (want == "avx512") isa = Isa::kAvx512;
  else if (want == "avx2") isa = Isa::kAvx2;
  else if (want == "generic") isa = Isa::kGeneric;
  else TORCH_CHECK(false, "VOCODER_EXT_CPU_ISA must be avx512_bf16, avx512, avx2 or generic; got '", want, "'");
  TORCH_CHECK(static_cast<int>(isa) <= static_cast<int>(best), "VOCODER_EXT_CPU_ISA=", want,
              " but this CPU supports at most ", isa_name(best));
  return isa;
}

}  // namespace vocoder_ext::cpu

// So that Python asks the kernels which level they run at (vocoder_ext.cli.precision.bf16_kernels) instead of
// deciding it a second time from /proc/cpuinfo and the environment.
TORCH_LIBRARY_FRAGMENT(vocoder_ext, m) {
  m.def("cpu_isa() -> str", [] { return std::string(vocoder_ext::cpu::isa_name(vocoder_ext::cpu::selected_isa())); });
}
