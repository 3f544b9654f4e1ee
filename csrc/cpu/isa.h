// Which instruction-set build of the CPU kernels runs: the best the CPU supports, or the one
// VOCODER_EXT_CPU_ISA (avx512_bf16 | avx512 | avx2 | generic) asks
// for, so tests can exercise every path.
#pragma once

namespace vocoder_ext::cpu {

// Ordered: each level runs every kernel of the ones below it. kAvx512Bf16 adds the bf16 conv kernel;
// its fp32 kernels are kAvx512's.
enum class Isa { kGeneric, kAvx2, kAvx512, kAvx512Bf16 };

Isa selected_isa();          // throws (TORCH_CHECK) if the requested ISA is not supported here
const char* isa_name(Isa isa);

}  // namespace vocoder_ext::cpu
