"""Public fused ops. Each has an eager reference `<op>_ref` beside it (the ground truth), and is
registered through one call of registry.FusedOp (see CONTRIBUTING.md for adding one)."""
from .lrelu_conv1d import lrelu_conv1d, lrelu_conv1d_backward_ref, lrelu_conv1d_ref
from .lrelu_conv_transpose1d import (lrelu_conv_transpose1d, lrelu_conv_transpose1d_backward_ref,
                                     lrelu_conv_transpose1d_ref)
from .resblock import resblock, resblock_ref
from .conv1d_lrelu import conv1d_lrelu, conv1d_lrelu_backward_ref, conv1d_lrelu_ref
from .wn_layer import wn_layer, wn_layer_backward_ref, wn_layer_ref
from .affine_coupling import affine_coupling, affine_coupling_backward_ref, affine_coupling_ref
from .invertible_conv1x1 import invertible_conv1x1, invertible_conv1x1_backward_ref, invertible_conv1x1_ref

__all__ = ["lrelu_conv1d", "lrelu_conv1d_ref", "lrelu_conv1d_backward_ref",
           "lrelu_conv_transpose1d", "lrelu_conv_transpose1d_ref", "lrelu_conv_transpose1d_backward_ref",
           "resblock", "resblock_ref",
           "conv1d_lrelu", "conv1d_lrelu_ref", "conv1d_lrelu_backward_ref",
           "wn_layer", "wn_layer_ref", "wn_layer_backward_ref",
           "affine_coupling", "affine_coupling_ref", "affine_coupling_backward_ref",
           "invertible_conv1x1", "invertible_conv1x1_ref", "invertible_conv1x1_backward_ref"]
