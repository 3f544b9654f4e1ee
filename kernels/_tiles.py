"""The autotune tile sets of the Triton kernels (both kernel modules: same tile shapes, same limits).

Each set is per operand width (see _launch.tuned): IEEE fp32 `tl.dot` runs as FMAs with both operand
tiles in registers, 16-bit operands run on the tensor cores. Every config here compiles without register
spills for sm_80 and sm_90, for every launcher variant of both modules, with generic and contiguous
arguments (`python -m vocoder_ext bench --static`); a config added here must keep that true.
"""
import triton

CONV_CONFIGS = {
    # FMAs with operands in registers: narrow C_in blocks.
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 8, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 8, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 8, "BLOCK_T": 256}, num_warps=8, num_stages=3),
    ],
    # Tensor cores. 128-wide C_out tiles for the early stages' 256..512 channels; 16..32 for the late
    # stages' 32..64 channels, long T and conv_post's C_out = 1.
    "fp16": [
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 128, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=4, num_stages=3),
    ],
}
GRAD_WEIGHT_CONFIGS = {
    # The reduction runs over time (BLOCK_T is the dot's inner size): short for the FMA path.
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 16}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 64, "BLOCK_T": 16}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 8}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 16}, num_warps=4, num_stages=2),
    ],
    "fp16": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 64, "BLOCK_T": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 64, "BLOCK_T": 32}, num_warps=8, num_stages=3),
    ],
}
# Under the interpreter: small tiles (it runs each program in numpy), still >= 16 for tl.dot. Tests pick
# shapes larger than these so that every loop and mask runs across several blocks.
INTERPRETER_CONV_CONFIG = {"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 32}
INTERPRETER_GRAD_WEIGHT_CONFIG = {"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 32}
