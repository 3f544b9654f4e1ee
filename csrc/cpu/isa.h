// Which instruction-set build of the CPU kernels runs: the best the CPU supports, or the one
// VOCODER_EXT_CPU_ISA (avx512 | avx2 | generic) asks for, so tests can exercise every path.
#pragma once

namespace vocoder_ext::cpu {

enum class Isa { kGeneric, kAvx2, kAvx512 };

Isa selected_isa();          // throws (TORCH_CHECK) if the requested ISA is not supported here
const char* isa_name(Isa isa);

}  // namespace vocoder_ext::cpu
