"""vocoder_ext.cli.bench.static_cuda (+ ptxas_log, static_cuda_parse, static_cuda_binary): the CUDA C++
kernels' registers, spills, stack, shared and constant memory per arch from `nvcc -cubin -Xptxas -v`, and
the cubins the installed extension holds (ptxas_log reads the Triton half's logs too). No GPU needed: the
compile tests need nvcc, the extension test a CUDA build of _C and cuobjdump (requirements.txt:
nvidia-cuda-cuobjdump); each skips with its reason.
"""
import ast
import json
import pathlib
import shutil

import pytest

from vocoder_ext.cli.bench import static as triton_static
from vocoder_ext.cli.bench import static_cuda as S
from vocoder_ext.cli.bench import static_cuda_binary as B
from vocoder_ext.cli.bench.ptxas_log import first_error, parse_ptxas_log
from vocoder_ext.cli.bench.static_cuda_parse import demangle, split_demangled
from vocoder_ext.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMPILED_ARCHS = ("sm_80", "sm_90")  # the test's subset of the report's default archs: Ampere and Hopper


def ptxas_properties(name, stack=0, stores=0, loads=0):
    return (f"ptxas info    : Function properties for {name}\n"
            f"    {stack} bytes stack frame, {stores} bytes spill stores, {loads} bytes spill loads\n")


def ptxas_entry(name, arch, used, **frame):
    """ptxas -v's lines for one entry function; `used` is the rest of its "Used N registers" line."""
    return (f"ptxas info    : Compiling entry function '{name}' for '{arch}'\n" + ptxas_properties(name, **frame)
            + f"ptxas info    : Used {used}\nptxas info    : Compile time = 2.957 ms\n")


# ptxas 13.0 -v, sm_80: a kernel that spills (forced by -maxrregcount=32), one with static shared memory,
# one whose stack is a non-inlined device function's (which ptxas lists after the entries).
PTXAS_LOG = (
    "ptxas info    : Overriding maximum register limit 256 for '_Z12spill_kernelIfEvPKT_PS0_i' with  32 of "
    "maxrregcount option\n"
    "ptxas info    : 64 bytes gmem, 256 bytes cmem[3], 8 bytes cmem[4]\n"
    + ptxas_entry("_Z12spill_kernelIfEvPKT_PS0_i", "sm_80", "32 registers, used 0 barriers, 720 bytes cumulative "
                  "stack size, 372 bytes cmem[0]", stack=720, stores=936, loads=1260)
    + ptxas_entry("_Z11conv_kernelIfLi7EEvPKT_S2_PS0_if", "sm_80",
                  "20 registers, used 1 barriers, 1024 bytes smem, 384 bytes cmem[0]")
    + ptxas_entry("_Z2k1Pf1PILi100EE", "sm_80", "32 registers, used 0 barriers, 32 bytes cumulative stack size, "
                  "760 bytes cmem[0], 8 bytes cmem[2]", stack=32)
    + ptxas_properties("_Z6helperPfi", stack=8))

# The same tools' sm_90 lines: ptxas 13 prints no cmem there.
PTXAS_LOG_SM90 = "ptxas info    : 0 bytes gmem\n" + ptxas_entry(
    "_Z11conv_kernelIfLi3EEvPKT_S2_PS0_if", "sm_90", "16 registers, used 1 barriers, 1024 bytes smem")


def fatbin_section(kind, arch, body, version="[1,8]"):
    """One section of `cuobjdump --dump-resource-usage` on a library."""
    return (f"\nFatbin {kind} code:\n================\narch = {arch}\ncode version = {version}\nhost = linux\n"
            f"compile_size = 64bit\n{body}")


def resource_usage(common, *functions):
    """A cubin's resource usage (all that cuobjdump prints of a bare cubin); functions: (mangled, fields)."""
    return (f"\nResource usage:\n Common:\n  {common}\n"
            + "".join(f" Function {name}:\n  {fields} TEXTURE:0 SURFACE:0 SAMPLER:0\n" for name, fields in functions))


ANON_KERNEL = "_ZN38_GLOBAL__N__445d6bb8_7_anon_cu__Z2goPf2akILi3EEEvPf"
SM80_USAGE = resource_usage("GLOBAL:64 CONSTANT[3]:256",
                            (ANON_KERNEL, "REG:168 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:372"),
                            ("_Z2skPf", "REG:20 STACK:16 SHARED:1024 LOCAL:0 CONSTANT[2]:8 CONSTANT[0]:384"))
# `cuobjdump --dump-resource-usage` of a library built for sm_80 and sm_90 + PTX 9.0 (cuobjdump 13.5),
# with the empty sm_75 cubin that a statically linked CUDA runtime brings.
CUOBJDUMP_LIBRARY = (
    fatbin_section("elf", "sm_75", resource_usage("GLOBAL:0"))
    + fatbin_section("elf", "sm_80", SM80_USAGE)
    + fatbin_section("ptx", "sm_90", "compressed\nptxasOptions = \n", version="[9,0]")
    + fatbin_section("elf", "sm_90", resource_usage(
        "GLOBAL:0", ("_Z2skPf", "REG:16 STACK:0 SHARED:2048 LOCAL:0 CONSTANT[0]:560"))))

SPILLING_CU = r"""
#include "probe.h"
// 64 live floats per thread: under -maxrregcount=32 they go to local memory.
template <typename T>
__global__ void spill_kernel(const T* __restrict__ x, T* __restrict__ y, int n) {
  float v[64];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
#pragma unroll
  for (int k = 0; k < 64; ++k) v[k] = float(x[(i * 64 + k) % n]);
  float acc = 0.f;
#pragma unroll
  for (int k = 0; k < 64; ++k) acc += v[k] * v[63 - k] + v[(k * 7) % 64];
#pragma unroll
  for (int k = 0; k < 64; ++k) y[(i * 64 + k) % n] = T(acc * v[k]) + T(kOffset);
}
template __global__ void spill_kernel<float>(const float*, float*, int);
"""


# ---- parsing ------------------------------------------------------------------------------------------

def test_parse_ptxas_log():
    parsed = parse_ptxas_log(PTXAS_LOG)
    f = parsed["functions"]
    assert list(f) == ["_Z12spill_kernelIfEvPKT_PS0_i", "_Z11conv_kernelIfLi7EEvPKT_S2_PS0_if",
                       "_Z2k1Pf1PILi100EE", "_Z6helperPfi"]
    assert f["_Z12spill_kernelIfEvPKT_PS0_i"] == dict(
        kind="kernel", arch="sm_80", registers=32, barriers=0, stack_frame=720, spill_stores=936,
        spill_loads=1260, smem_bytes=0, cmem={0: 372})
    assert f["_Z11conv_kernelIfLi7EEvPKT_S2_PS0_if"] == dict(
        kind="kernel", arch="sm_80", registers=20, barriers=1, stack_frame=0, spill_stores=0, spill_loads=0,
        smem_bytes=1024, cmem={0: 384})
    assert f["_Z2k1Pf1PILi100EE"]["stack_frame"] == 32 and f["_Z2k1Pf1PILi100EE"]["cmem"] == {0: 760, 2: 8}
    # The device function: its own stack, no registers line (its caller's count includes it).
    assert f["_Z6helperPfi"] == dict(kind="function", arch="sm_80", registers=None, barriers=None, stack_frame=8,
                                     spill_stores=0, spill_loads=0, smem_bytes=0, cmem={})
    assert parsed["module"] == dict(gmem=64, cmem={3: 256, 4: 8})

    sm90 = parse_ptxas_log(PTXAS_LOG_SM90)["functions"]["_Z11conv_kernelIfLi3EEvPKT_S2_PS0_if"]
    assert (sm90["arch"], sm90["registers"], sm90["smem_bytes"], sm90["cmem"]) == ("sm_90", 16, 1024, {})
    assert parse_ptxas_log("x.cu(3): error: identifier \"y\" is undefined\n") == dict(
        functions={}, module=dict(gmem=None, cmem={}))


def test_first_error_is_the_status_of_a_failed_compile():
    log = "In file x.cu:\nx.cu(3): error: identifier \"y|z\" is undefined\n1 error detected\n"
    assert first_error(log, 1) == 'x.cu(3): error: identifier "y/z" is undefined'  # "|" would split the table cell
    assert first_error("ptxas fatal   : Unresolved extern function 'f'\n  \n", 255) == \
        "ptxas fatal   : Unresolved extern function 'f'"
    assert first_error("", 137) == "rc 137"


@pytest.mark.parametrize("text, parts", [
    ("void conv_kernel<float, 3>(float const*, float const*, float*, int, float)",
     ("conv_kernel", "<float, 3>", "(float const*, float const*, float*, int, float)")),
    ("void vocoder_ext::cuda::(anonymous namespace)::conv1d_kernel<__half>(vocoder_ext::cuda::ConvParams, int, int)",
     ("vocoder_ext::cuda::(anonymous namespace)::conv1d_kernel", "<__half>",
      "(vocoder_ext::cuda::ConvParams, int, int)")),
    ("void k<Tile<4, 8>, (Mode)1>(float*)", ("k", "<Tile<4, 8>, (Mode)1>", "(float*)")),
    ("k1(float*, P<100>)", ("k1", "", "(float*, P<100>)")),
    ("_Z5weird", ("_Z5weird", "", "")),  # not demangled: kept whole
])
def test_split_demangled(text, parts):
    assert split_demangled(text) == parts


def test_demangle_with_cxxfilt():
    if shutil.which("c++filt") is None:
        pytest.skip("no c++filt (binutils): the report shows mangled names then")
    names = demangle(["_Z11conv_kernelIfLi3EEvPKT_S2_PS0_if", "_ZN2vx2k2I6__halfEEvPT_"])
    assert names == {"_Z11conv_kernelIfLi3EEvPKT_S2_PS0_if":
                     "void conv_kernel<float, 3>(float const*, float const*, float*, int, float)",
                     "_ZN2vx2k2I6__halfEEvPT_": "void vx::k2<__half>(__half*)"}


def test_parse_archs():
    assert S.parse_archs("80,8.6,sm_89, 90a;sm_90") == ("sm_80", "sm_86", "sm_89", "sm_90a", "sm_90")
    assert S.parse_archs([80, "sm_80", "compute_90"]) == ("sm_80", "sm_90")
    for bad in ("", "ampere", "sm_8", "80,x"):
        with pytest.raises(ValueError, match="expected"):
            S.parse_archs(bad)


def test_parse_resource_usage_of_a_library():
    sections = B.parse_resource_usage(CUOBJDUMP_LIBRARY)
    assert [(s["kind"], s["arch"]) for s in sections] == [("elf", "sm_75"), ("elf", "sm_80"), ("ptx", "sm_90"),
                                                          ("elf", "sm_90")]
    assert sections[1]["common"] == {"GLOBAL": 64, "CONSTANT[3]": 256}
    assert sections[1]["functions"]["_Z2skPf"] == {"REG": 20, "STACK": 16, "SHARED": 1024, "LOCAL": 0,
                                                   "CONSTANT[2]": 8, "CONSTANT[0]": 384, "TEXTURE": 0,
                                                   "SURFACE": 0, "SAMPLER": 0}
    assert sections[3]["functions"]["_Z2skPf"]["REG"] == 16
    # A bare cubin has no fatbin headers: one elf section of unknown arch.
    bare = B.parse_resource_usage(SM80_USAGE)
    assert [(s["kind"], s["arch"], sorted(s["functions"])) for s in bare] == [("elf", None, ["_Z2skPf", ANON_KERNEL])]
    # An anonymous namespace's hashes differ between compiles of the same kernel (after an edit of its
    # file, with other flags); names compare without them, but with the file name.
    assert B.normalize(ANON_KERNEL) == \
        B.normalize("_ZN38_GLOBAL__N__5d10d669_7_anon_cu__Z2goPf2akILi3EEEvPf") != \
        "_ZN38_GLOBAL__N__5d10d669_7_anon_cu__Z2goPf2akILi3EEEvPf"
    kernel = "_ZN11vocoder_ext4cuda41_GLOBAL__N__{}_9_{}_cu_{}13conv1d_kernelIdEEvNS0_10ConvParamsEii"
    assert B.normalize(kernel.format("1fdc7233", "conv1d", "1ebf6a0e")) == \
        B.normalize(kernel.format("578d680f", "conv1d", "0badf00d")) == \
        kernel.format("xxxxxxxx", "conv1d", "xxxxxxxx") != B.normalize(kernel.format("578d680f", "convXd", "1ebf6a0e"))
    assert B.normalize("_Z2skPf") == "_Z2skPf"


def test_mark_extension_finds_missing_and_stale_kernels(tmp_path):
    """Rows against a library read from cuobjdump's text: present, MISSING, arch not built, unknown."""
    ext = dict(path="x.so", cuobjdump="cuobjdump", status="ok", ptx_archs=["sm_90"], cubins=[
        dict(arch=s["arch"], functions={B.normalize(n): u for n, u in s["functions"].items()})
        for s in B.parse_resource_usage(CUOBJDUMP_LIBRARY) if s["kind"] == "elf"])
    ext["built_archs"] = ["sm_80", "sm_90"]

    def row(mangled, arch, registers):
        return dict(source="a.cu", arch=arch, mangled=mangled, name="k", instance="", params="", kind="kernel",
                    status="ok", registers=registers)
    anon = "_ZN38_GLOBAL__N__0badf00d_7_anon_cu__Z2goPf2akILi3EEEvPf"  # another compile's hash
    result = dict(rows=[row("_Z2skPf", "sm_80", 20), row("_Z2skPf", "sm_90", 17), row(anon, "sm_80", 168),
                        row(anon, "sm_90", 168), row("_Z2skPf", "sm_86", 20)], extension=ext)
    S.mark_extension(result)
    assert [(r["arch"], r["in_extension"], r["extension_registers"]) for r in result["rows"]] == [
        ("sm_80", "yes", 20), ("sm_90", "yes", 16), ("sm_80", "yes", 168), ("sm_90", "MISSING", None),
        ("sm_86", "arch not built", None)]
    assert ext["missing"] == {"sm_90": [B.normalize(anon)]} and ext["unknown_kernels"] == []
    markdown = S.render_markdown(dict(S.report(sources=[], check_extension=False), rows=result["rows"],
                                      status="ok", extension=ext, jobs=[], archs=["sm_80", "sm_90", "sm_86"]))
    assert "yes (16 registers there)" in markdown and "MISSING from the sm_90 cubins" in markdown
    assert "cubins for sm_80, sm_90; PTX embedded: compute_90" in markdown


def test_build_flags_are_the_builds():
    """The report compiles with what setup.py and torch's cpp_extension give nvcc (read, not imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    assigned = {n.targets[0].id: n.value for n in ast.walk(tree)
                if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    opt_release = ast.literal_eval(assigned["opt"].orelse)  # opt = [-O0 -g] if DEBUG else [-O3]
    nvcc = assigned["nvcc"]
    assert isinstance(nvcc, ast.BinOp) and ast.unparse(nvcc.left) == "opt", ast.unparse(nvcc)
    assert S.SETUP_NVCC_FLAGS == tuple(opt_release + ast.literal_eval(nvcc.right))
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    assert S.TORCH_NVCC_FLAGS == tuple(COMMON_NVCC_FLAGS)


# ---- compiling ----------------------------------------------------------------------------------------

def need_nvcc():
    if S.find_nvcc() is None:
        pytest.skip("no nvcc ($CUDA_HOME/bin, /usr/local/cuda/bin or PATH): the CUDA static report needs it")


def test_report_flags_a_spilling_kernel_and_a_broken_source(tmp_path):
    """The whole path on a small source of the test's own: include folder, a forced spill, a compile error."""
    need_nvcc()
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "probe.h").write_text("constexpr int kOffset = 1;\n")
    (tmp_path / "spill.cu").write_text(SPILLING_CU)
    (tmp_path / "broken.cu").write_text("__global__ void k(float* y) { y[0] = undefined_name; }\n")
    result = S.report(archs="80", sources=[tmp_path / "spill.cu", tmp_path / "broken.cu"],
                      include_dirs=[tmp_path / "inc"], extra_flags=["-maxrregcount=32"], check_extension=False)
    rows = {r["source"].rsplit("/", 1)[-1]: r for r in result["rows"]}
    spill = rows["spill.cu"]
    assert (spill["name"], spill["instance"], spill["arch"], spill["status"]) == (
        "spill_kernel", "<float>", "sm_80", "ok")
    assert spill["registers"] <= 32 and spill["spill_stores"] > 0 and spill["spill_loads"] > 0, spill
    assert spill["cmem"].get(0, 0) > 0, spill  # the kernel parameters' bank
    assert rows["broken.cu"]["status"].startswith("compile failed:") and "undefined_name" in rows["broken.cu"]["status"]
    markdown = S.render_markdown(result)
    assert "| SPILLS |" in markdown and "Spilling (the requirement is that no kernel spills):" in markdown
    assert "1 failed, 1 spill" in S.summary(result)[0]


@pytest.fixture(scope="module")
def compiled():
    """The real csrc/cuda/*.cu for sm_80 and sm_90, once for this file's tests (about 15 s on 2 cores)."""
    need_nvcc()
    if not S.cuda_sources():
        pytest.skip("no csrc/cuda/*.cu to compile")
    return S.report(archs=COMPILED_ARCHS, check_extension=False)


def test_cuda_kernels_do_not_spill_or_use_stack(compiled):
    rows = compiled["rows"]
    assert [r for r in rows if r["status"] != "ok"] == []
    kernels = [r for r in rows if r["kind"] == "kernel"]
    assert kernels, "no __global__ function in csrc/cuda/*.cu"
    by_kernel = {}
    for r in kernels:
        by_kernel.setdefault((r["source"], r["mangled"]), set()).add(r["arch"])
    assert {k: archs for k, archs in by_kernel.items() if archs != set(COMPILED_ARCHS)} == {}
    line = S.summary(compiled)[0]
    bad = [f"{r['name']}{r['instance']} {r['arch']}: {r['registers']} registers, {r['spill_stores']}/"
           f"{r['spill_loads']} B spill stores/loads, {r['stack_frame']} B stack" for r in rows
           if r["spill_stores"] or r["spill_loads"] or r["stack_frame"]
           or (r["kind"] == "kernel" and not 0 < (r["registers"] or 0) <= 255)]
    assert bad == [], line


def test_installed_extension_holds_every_kernel(compiled):
    """Each kernel that csrc/cuda/*.cu compiles to is in the installed _C's cubin of every arch it was built for."""
    import torch
    import vocoder_ext  # noqa: F401 -- loads _C, which registers the ops' kernels
    from vocoder_ext.runtime import backend
    # The CUDA key alone does not tell: with triton installed, ops/registry.py puts the Triton kernels
    # (Python) there too, which backend.PYTHON_CUDA_KERNELS records.
    compiled_cuda = (torch._C._dispatch_has_kernel_for_dispatch_key("vocoder_ext::lrelu_conv1d", "CUDA")
                     and "lrelu_conv1d" not in backend.PYTHON_CUDA_KERNELS)
    cuobjdump = B.find_cuobjdump()
    if cuobjdump is None:
        pytest.skip("no cuobjdump to read the extension's cubins: pip install nvidia-cuda-cuobjdump (requirements.txt)")
    info = B.inspect_extension(cuobjdump=cuobjdump)
    if info["status"] == "no device code" and not compiled_cuda:
        pytest.skip("the installed extension is a CPU-only build (no device code, no compiled CUDA kernel)")
    assert info["status"] == "ok" and info["built_archs"], (info["path"], info["status"])
    wanted = {B.normalize(r["mangled"]) for r in compiled["rows"] if r["kind"] == "kernel"}
    held = B.kernels_by_arch(info)
    missing = {arch: sorted(wanted - set(held[arch])) for arch in info["built_archs"] if wanted - set(held[arch])}
    assert missing == {}, f"{info['path']}: kernels of csrc/cuda/*.cu missing from its cubins (stale build?)"


# ---- the command line ---------------------------------------------------------------------------------

def test_bench_static_adds_the_cuda_section(tmp_path, monkeypatch):
    """`bench --static --cuda-archs ...`: the Triton part as before (its JSON keys at the top), then the
    CUDA section; both compiles replaced by stand-ins here (the real ones are tested above)."""
    triton_result = dict(rows=[], ptxas="ptxas", ptxas_version="13.0", triton_version="3.8.0", ptxas_flags=["-v"])
    monkeypatch.setattr(triton_static, "report", lambda **kwargs: triton_result)
    asked, real_report = [], S.report

    def cuda_report(archs):
        asked.append(archs)
        return real_report(archs=archs, sources=[], check_extension=False)
    monkeypatch.setattr(S, "report", cuda_report)
    assert main(["bench", "--static", "--cuda-archs", "8.0,sm_89", "--out", str(tmp_path)]) == 0
    assert asked == [("sm_80", "sm_89")]
    markdown = (tmp_path / "static.md").read_text()
    assert markdown.index("of the Triton kernels") < markdown.index("of the CUDA C++ kernels")
    assert "Not compiled: no CUDA C++ sources" in markdown
    saved = json.loads((tmp_path / "static.json").read_text())
    assert saved["rows"] == [] and saved["triton_version"] == "3.8.0" and "summary" in saved
    assert saved["cuda"]["archs"] == ["sm_80", "sm_89"] and saved["cuda"]["status"].startswith("no CUDA C++ sources")


@pytest.mark.parametrize("argv, fragment", [
    (["--cuda-archs", "80"], "--cuda-archs only applies to --static"),
    (["--static", "--cuda-archs", "ampere"], "--cuda-archs: expected CUDA archs"),
])
def test_bench_cuda_archs_errors(tmp_path, capsys, argv, fragment):
    assert main(["bench", "--out", str(tmp_path), *argv]) == 2
    assert fragment in capsys.readouterr().err
