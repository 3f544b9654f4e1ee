"""Public fused ops. Each has an eager reference `<op>_ref` beside it (the ground truth), and is
registered through one call of registry.FusedOp (see CONTRIBUTING.md for adding one)."""
from .lrelu_conv1d import lrelu_conv1d, lrelu_conv1d_backward_ref, lrelu_conv1d_ref
from .lrelu_conv_transpose1d import (lrelu_conv_transpose1d, lrelu_conv_transpose1d_backward_ref,
                                     lrelu_conv_transpose1d_ref)
from .resblock import resblock, resblock_ref

__all__ = ["lrelu_conv1d", "lrelu_conv1d_ref", "lrelu_conv1d_backward_ref",
           "lrelu_conv_transpose1d", "lrelu_conv_transpose1d_ref", "lrelu_conv_transpose1d_backward_ref",
           "resblock", "resblock_ref"]
