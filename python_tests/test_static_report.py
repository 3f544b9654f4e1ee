"""vocoder_ext.cli.bench.static (+ static_compile): ahead-of-time compile of the Triton kernels + ptxas -v,
no GPU needed.

The compile runs in a child process without TRITON_INTERPRET (conftest.py sets it for the session, and
Triton decides interpreter vs compiler when the kernel modules are imported).
"""
import pytest

from vocoder_ext.cli.bench import static as S
from vocoder_ext.cli.bench import static_compile as C

PTXAS_SAMPLE = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_conv_kernel' for 'sm_80'
ptxas info    : Function properties for _conv_kernel
    16 bytes stack frame, 24 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 16 bytes cumulative stack size, 480 bytes cmem[0]
ptxas info    : Compile time = 261.216 ms
ptxas info    : Compiling entry function '_other' for 'sm_90a'
ptxas info    : Function properties for _other
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 96 registers, 1024 bytes smem, 400 bytes cmem[0]
"""


def test_rows_take_the_kernels_numbers_from_the_ptxas_log():
    """The Triton rows read ptxas's log with the CUDA C++ rows' parser (ptxas_log.py, tested in
    test_static_cuda.py); what they take from it, per kernel."""
    numbers = ("arch", "registers", "smem_bytes", "spill_stores", "spill_loads", "stack_frame")
    conv = C.kernel_resources(PTXAS_SAMPLE, "_conv_kernel")
    assert [conv[k] for k in numbers] == ["sm_80", 255, 0, 24, 12, 16]
    other = C.kernel_resources(PTXAS_SAMPLE, "_other")
    assert [other[k] for k in numbers] == ["sm_90a", 96, 1024, 0, 0, 0]
    assert C.kernel_resources(PTXAS_SAMPLE, "_not_in_the_log") == conv
    assert C.kernel_resources("ptxas fatal   : Unresolved extern function", "_conv_kernel") is None


def test_variants_cover_every_kernel_constexpr():
    """Each variant's flags + DOT_DTYPE + the config's blocks name every constexpr of its kernel, and the
    pointer dtypes name every pointer argument (read from the source, so no Triton import is needed)."""
    import ast
    import importlib.util
    import pathlib
    for module in C.KERNEL_MODULES:
        path = pathlib.Path(importlib.util.find_spec("vocoder_ext.kernels").submodule_search_locations[0])
        tree = ast.parse((path / f"{module}.py").read_text())
        params = {f.name: [(a.arg, ast.unparse(a.annotation) if a.annotation else None) for a in f.args.args]
                  for f in tree.body if isinstance(f, ast.FunctionDef)}
        for mod, kernel, variant, pointers, flags, _ in C._variants():
            if mod != module:
                continue
            constexprs = {n for n, ann in params[kernel] if ann == "tl.constexpr"}
            assert constexprs - {"DOT_DTYPE", "BLOCK_CO", "BLOCK_CI", "BLOCK_T"} == set(flags), (kernel, variant)
            assert {n for n, _ in params[kernel] if n.endswith("_ptr")} == set(pointers), (kernel, variant)


def test_compiles_each_kernel_for_sm90():
    ptxas = C.find_ptxas()
    if ptxas is None:
        pytest.skip("no ptxas found ($PTXAS, $CUDA_HOME/bin, /usr/local/cuda/bin or PATH): the static "
                    "report needs the CUDA toolkit's ptxas")
    result = S.report(first_config=True, variant_per_kernel=True, targets=(90,), dtypes=("fp16",),
                      workers=1, timeout_s=240)
    rows = result["rows"]
    kernels = {(r["module"], r["kernel"]) for r in rows}
    assert kernels == {(m, k) for m in C.KERNEL_MODULES for k in ("_conv_kernel", "_grad_weight_kernel")}
    assert len(rows) == 8, [(r["module"], r["kernel"], r["variant"], r["inputs"]) for r in rows]
    assert sorted(r["inputs"] for r in rows) == ["contiguous"] * 4 + ["generic"] * 4
    for r in rows:
        assert r["status"] == "ok", r
        assert r["ptxas_arch"] == "sm_90a", r
        assert 0 < r["registers"] <= 255, r
        assert r["smem_bytes"] > 0 and r["triton_num_warps"] == r["num_warps"], r
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, r  # the config sets are chosen spill-free
    markdown = S.render_markdown(result)
    assert "| kernel | variant |" in markdown and "static: 8 combinations" in markdown
