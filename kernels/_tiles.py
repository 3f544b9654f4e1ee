"""The autotune tile sets of the Triton kernels (HiFi-GAN's two conv modules share theirs; WaveGlow's below).

Every tl.dot's inner size (BLOCK_CI; BLOCK_T in the weight-gradient kernels) is at least 16: Triton 3.6
refuses less at compile time (seen on an H100, 2026-11-25), though the interpreter and Triton 3.8 take 8.
Each set is per operand width (see _launch.tuned): IEEE fp32 `tl.dot` runs as FMAs with both operand
tiles in registers, 16-bit operands run on the tensor cores; kernels without tl.dot have one plain list
for every width (_launch.tuned_one_set). Every config here compiles without register spills for sm_80
and sm_90, for every launcher variant of every module, with generic and contiguous arguments
(`python -m vocoder_ext bench --static`); a config added here must keep that true.
"""
import triton

CONV_CONFIGS = {
    # FMAs with operands in registers: C_in blocks as narrow as tl.dot allows. With 16-wide C_in blocks, 64x64
    # and 16x128 tiles at 4 warps, 64x128 and 32x256 at 8 spill on sm_90 (Triton 3.8's ptxas report).
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=3),
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
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 16}, num_warps=4, num_stages=3),
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

# ---- WaveGlow (kernels/wn_layer.py, affine_coupling.py, invertible_conv1x1.py) ----------------------
# The WN layer's gate kernel (WN_GATE_CONFIGS in fp32, below) and its 1x1 res/skip kernel each hold two
# [BLOCK_CO, BLOCK_T] fp32 accumulators (tanh and sigmoid rows; audio and skip rows), twice a plain
# conv's, so their tiles have about half the area per warp of CONV_CONFIGS'.
WN_CONFIGS = {
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=8, num_stages=2),
    ],
    # Tensor cores. 64x64 tiles at 4 warps, and any 128-row tile, spill on sm_80 here (two accumulators
    # plus the gate's fp32 epilogue): 8 warps for 64x64, or 32-row tiles.
    "fp16": [
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
    ],
}
# The gate kernel (the dilated in-conv) runs WN_CONFIGS' 16-bit tiles and fp32 tiles of its own. With
# keep_preact it also stores both pre-activation tiles, so its tiles are small (64x128 was at 255
# registers even without it).
WN_GATE_CONFIGS = {
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=8, num_stages=2),
    ],
    "fp16": WN_CONFIGS["fp16"],
}
# wn_layer's grad_audio runs lrelu_conv1d's conv kernel with neither prologue nor bias, adding grad_audio
# in its epilogue; in that variant the fp32 64x128 tile at 8 warps spills on sm_80 (ptxas holds it to
# 128 registers), so it is tuned over CONV_CONFIGS less that tile.
WN_GRAD_AUDIO_CONFIGS = {
    "fp32": [c for c in CONV_CONFIGS["fp32"]
             if (c.kwargs["BLOCK_CO"], c.kwargs["BLOCK_T"], c.num_warps) != (64, 128, 8)],
    "fp16": CONV_CONFIGS["fp16"],
}
# The gate's backward: one accumulator (grad_acts, rs_w^T over the incoming gradients), then the gate
# recomputed from the two preact tiles in its epilogue. (These tiles date from when it also reran the
# in-conv, with three accumulators; they stay spill-free, not retuned.)
WN_BACKWARD_CONFIGS = {
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=8, num_stages=2),
    ],
    "fp16": [
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
    ],
}
# Elementwise (affine coupling): memory-bound, long time tiles. 2048+ steps per program spill on sm_90.
ELEMENTWISE_CONFIGS = [
    triton.Config({"BLOCK_T": 1024}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_T": 1024}, num_warps=8, num_stages=1),
    triton.Config({"BLOCK_T": 512}, num_warps=4, num_stages=1),
]
# The invertible 1x1 conv's c x c mix (c <= 16, padded to C_PAD) over time tiles, in fp32 FMAs.
MIX_CONFIGS = [
    triton.Config({"BLOCK_T": 256}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_T": 512}, num_warps=4, num_stages=1),
]
# Its weight gradient sums g x^T over time as a [C_PAD, C_PAD, BLOCK_T] product per block.
OUTER_CONFIGS = [
    triton.Config({"BLOCK_T": 64}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_T": 128}, num_warps=4, num_stages=1),
]
INTERPRETER_WN_CONFIG = {"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 32}
INTERPRETER_ELEMENTWISE_CONFIG = {"BLOCK_T": 64}
INTERPRETER_MIX_CONFIG = {"BLOCK_T": 32}

# ---- The discriminators' conv1d_lrelu (kernels/conv1d_lrelu.py) -------------------------------------
# Its conv kernels (the forward and grad_x) reduce over a flattened (channel, tap) axis: BLOCK_CI is the
# dot's depth there, as in CONV_CONFIGS. Each element of their gathered tiles has index math of its own
# (a div/mod per row and column), and grad_x loads two tiles (grad_out and out) per step: in fp32 the
# 128-wide time tiles need 8 warps (at 4, grad_x spills on sm_90). 16-row tiles serve conv_post
# (C_out = 1) and the MSD's narrow groups. Spill-free on sm_80 and sm_90 for generic and contiguous
# arguments (checked with static_compile's compile + ptxas -v, 2026-11-26; the module is not yet in
# `bench --static`'s default set).
CONV1D_LRELU_CONFIGS = {
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 128}, num_warps=8, num_stages=2),
    ],
    "fp16": [
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 32, "BLOCK_T": 128}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_CO": 128, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=3),
    ],
}
# Its weight gradient: [BLOCK_CO, BLOCK_CI of (channel, tap)] tiles, reducing over (time, column) with
# BLOCK_T the dot's depth, as GRAD_WEIGHT_CONFIGS; at 4 warps the 32x32 (fp32) and 16x64 tiles spill on sm_90.
CONV1D_LRELU_GRAD_WEIGHT_CONFIGS = {
    "fp32": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 16}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 64, "BLOCK_T": 16}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 64, "BLOCK_T": 16}, num_warps=8, num_stages=2),
    ],
    "fp16": [
        triton.Config({"BLOCK_CO": 32, "BLOCK_CI": 32, "BLOCK_T": 64}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_CO": 64, "BLOCK_CI": 64, "BLOCK_T": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_CO": 16, "BLOCK_CI": 64, "BLOCK_T": 64}, num_warps=8, num_stages=3),
    ],
}
# All three kernels under the interpreter: 16 everywhere (tl.dot's minimum depth), so that the tests'
# small shapes still span several blocks of every axis.
INTERPRETER_CONV1D_LRELU_CONFIG = {"BLOCK_CO": 16, "BLOCK_CI": 16, "BLOCK_T": 16}
