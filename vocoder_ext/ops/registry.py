"""One way to register a fused op: `FusedOp(name, reference=..., fake=..., ...)`.

The op's schema (and `<name>_backward`'s, if it has one) is defined in C++ (csrc/schemas.h), so the
registrations below happen only when vocoder_ext._C is loaded; without it, calling the FusedOp runs the
reference. What one call does:
- the reference becomes the op's default kernel on every device (CompositeExplicitAutograd); compiled
  CPU/CUDA kernels in _C override it per dispatch key. Likewise the backward reference for the backward op;
- the fake kernels (shapes only) for torch.compile / torch.export;
- autograd: `setup_context(ctx, inputs, output)` saves what the backward needs, and
  `backward(ctx, backward_kernel, *grads)` (one grad per output) returns one gradient per input, where
  `backward_kernel` is `torch.ops.vocoder_ext.<name>_backward` (or, on the interpreted Triton path, the
  Triton backward);
- on CUDA tensors, a Python kernel that runs the candidates autotune chose per shape (runtime.autotune
  times each once): our CUDA C++ kernel (csrc/cuda, registered by _C; kept here as a handle, since this
  Python kernel takes its dispatch key), `triton_forward` / `triton_backward` when Triton is installed
  (same signatures as the schemas, importing vocoder_ext.kernels lazily), and the reference (cuDNN +
  eager). VOCODER_EXT_BACKEND=cuda|triton runs that one alone. Without Python (libtorch, AOTInductor),
  the C++ kernel is what the CUDA key runs;
- `runtime.backend.declare`, so backend choice, `vocoder_ext.backends()` and `info` know the op.

Calling the FusedOp dispatches: Triton on CPU tensors (VOCODER_EXT_BACKEND=triton under
TRITON_INTERPRET=1, how the tests run the GPU kernels without a GPU), else the registered op (one graph
node for torch.compile), else the reference. Input checks and autocast stay in the op's public wrapper.
"""
import warnings

import torch

from ..runtime import autotune, backend, extension

# Schema arguments laid out [B, C, T]: their T is bucketed in autotune keys, so variable-length audio
# does not time every new length. Name [B, C, T] arguments of new ops from this set.
TIME_ARGUMENTS = {"x", "residual", "accum", "grad_out", "audio", "skip", "cond", "wn_out", "grad_audio",
                  "grad_skip"}


class FusedOp:
    def __init__(self, name, *, reference, fake, setup_context=None, backward=None,
                 backward_reference=None, backward_fake=None, triton_forward=None, triton_backward=None,
                 chain_of=None):
        """See the module docstring. `backward=None`: the op has no gradient (an error if one is needed).
        `chain_of`: the op this one runs as a chain of where it has no kernel of its own (on Triton)."""
        self.name, self.reference, self.backward_reference = name, reference, backward_reference
        self.setup_context = setup_context or (lambda ctx, inputs, output: None)
        self.backward = backward
        self.triton_forward, self.triton_backward = triton_forward, triton_backward
        self._interpreted = None
        self.cpp_cuda = {}  # {op name: the CUDA C++ kernel (torch.library.get_kernel), for the chooser}
        backend.declare(name, triton=triton_forward is not None, chain_of=chain_of)
        if extension.loaded:
            self._register(fake, backward_fake)

    @property
    def op(self):
        return getattr(torch.ops.vocoder_ext, self.name)

    def __call__(self, *args):
        device_type = args[0].device.type
        if device_type == "cpu" and self.triton_forward is not None and backend.requested() == "triton":
            backend.resolve(self.name, "cpu")  # raises unless TRITON_INTERPRET=1 and triton is installed
            return self._interpreted_triton().apply(*args)
        if backend.use_registered_op(self.name, device_type):
            return self.op(*args)
        return self.reference(*args)

    # ---- the CUDA kernels: CUDA C++, Triton or cuDNN + eager, whichever autotune measured fastest ------
    def cuda_forward(self, *args):
        return _tuned(self.name, self.cpp_cuda.get(self.name), self.triton_forward, self.reference, args)

    def cuda_backward(self, *args):
        name = self.name + "_backward"
        return _tuned(name, self.cpp_cuda.get(name), self.triton_backward, self.backward_reference, args)

    def _register(self, fake, backward_fake):
        lib = f"vocoder_ext::{self.name}"
        torch.library.impl(lib, "CompositeExplicitAutograd")(self.reference)
        torch.library.register_fake(lib)(fake)
        if self.backward_reference is not None:
            torch.library.impl(lib + "_backward", "CompositeExplicitAutograd")(self.backward_reference)
            torch.library.register_fake(lib + "_backward")(backward_fake)
        torch.library.register_autograd(lib, self._autograd_backward, setup_context=self.setup_context)
        triton = self.triton_forward is not None and backend.triton_installed()  # kernels imported on first call
        self._register_cuda(self.name, self.cuda_forward, triton)
        if self.backward_reference is not None:
            self._register_cuda(self.name + "_backward", self.cuda_backward, triton and self.triton_backward is not None)

    def _register_cuda(self, name, chooser, triton):
        """Puts the chooser on `name`'s CUDA key where it has a candidate besides the reference."""
        lib = f"vocoder_ext::{name}"
        if torch._C._dispatch_has_kernel_for_dispatch_key(lib, "CUDA") and name not in backend.PYTHON_CUDA_KERNELS:
            self.cpp_cuda[name] = torch.library.get_kernel(lib, "CUDA")
            backend.CPP_CUDA_KERNELS.add(name)
        if name not in self.cpp_cuda and not triton:
            return
        with warnings.catch_warnings():  # replacing _C's CUDA kernel is the point: we keep its handle
            warnings.filterwarnings("ignore", message=".*[Oo]verrid")
            torch.library.impl(lib, "CUDA")(chooser)
        backend.PYTHON_CUDA_KERNELS.add(name)

    def _autograd_backward(self, ctx, *grads):
        if self.backward is None:
            raise RuntimeError(f"vocoder_ext::{self.name} has no backward; see vocoder_ext.ops.{self.name} for "
                               f"how gradients are computed instead")
        return self.backward(ctx, getattr(torch.ops.vocoder_ext, self.name + "_backward"), *grads)

    def _interpreted_triton(self):
        """An autograd.Function over the Triton kernels for CPU tensors: the registered op's CPU key
        belongs to the C++ kernel, so this path has its own autograd."""
        if self._interpreted is None:
            op = self

            class InterpretedTriton(torch.autograd.Function):
                @staticmethod
                def forward(ctx, *args):
                    out = op.triton_forward(*args)
                    op.setup_context(ctx, args, out)  # some ops save outputs (wn_layer's preact)
                    return out

                @staticmethod
                def backward(ctx, *grads):
                    return op.backward(ctx, op.triton_backward, *grads)

            InterpretedTriton.__name__ = f"{self.name}_interpreted_triton"
            self._interpreted = InterpretedTriton
        return self._interpreted


def _tuned(name, cpp_kernel, triton_fn, reference, args):
    """Runs `name` on CUDA tensors with the candidate autotune chose (or the one forced)."""
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    candidates = {}
    if triton_fn is not None and backend.triton_problem(name.removesuffix("_backward"), device.type) is None:
        candidates["triton"] = lambda: triton_fn(*args)
    if cpp_kernel is not None and device.type == "cuda":
        keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
        candidates["cuda"] = lambda: cpp_kernel.call_boxed(keys, *args)
    want = backend.requested()
    if want == "eager":  # reached through a compiled graph; FusedOp.__call__ skips the op otherwise
        return reference(*args)
    if want in ("cuda", "triton"):
        if want not in candidates:
            raise RuntimeError(f"VOCODER_EXT_BACKEND={want} cannot serve {name} on {device.type} tensors: "
                               f"{backend.why_not(name, want, device.type)}")
        return candidates[want]()
    candidates["eager"] = lambda: reference(*args)
    return candidates[autotune.choose(name, _shape_key(name, args), candidates, device)]()


def _shape_key(name, args):
    """The arguments as an autotune key: tensors by shape (T bucketed) and dtype, the rest by value."""
    parts = []
    for arg, value in zip(getattr(torch.ops.vocoder_ext, name).default._schema.arguments, args):
        if isinstance(value, torch.Tensor):
            shape = list(value.shape)
            if arg.name in TIME_ARGUMENTS:
                shape[-1] = f"~{autotune.bucket(shape[-1])}"
            value = f"{'x'.join(map(str, shape))} {str(value.dtype).removeprefix('torch.')}"
        parts.append(f"{arg.name} {value}")
    return ", ".join(parts)
