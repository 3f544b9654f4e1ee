// The vocoder_ext op library: its schemas (csrc/schemas.h). Kernels register per device in csrc/cpu and
// csrc/cuda; the eager reference (vocoder_ext/ops/*_ref) is registered from Python as the
// CompositeExplicitAutograd kernel, so a device without a fused kernel still runs.
#include <torch/library.h>

#include "schemas.h"

TORCH_LIBRARY(vocoder_ext, m) { vocoder_ext::define_schemas(m); }
