"""python -m vocoder_ext bench --device cuda (vocoder_ext/cli/bench/cuda.py) without a GPU: the command refuses
with "no CUDA device"; the settings; and the whole timing/table/JSON path run on CPU tensors with a tiny
config (eager + fused + cuda), which is the same code the GPU run goes through except the CUDA-only timer and
torch.compile mode. The cuda engine (the fused model with VOCODER_EXT_BACKEND=cuda) cannot serve CPU tensors,
so its rows say why; with the runtime told that the CUDA kernels serve (the CPU kernels then run), its rows
have numbers and every op call it makes sees VOCODER_EXT_BACKEND=cuda. The CUDA-event round robin runs against
fake events. No timing is asserted."""
import contextlib
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vocoder_ext.cli import build_parser, main
from vocoder_ext.cli.bench import cuda as bench_cuda, forced
from vocoder_ext.cli.common import UserError
from vocoder_ext.runtime import backend, backends
from vocoder_ext.runtime.backend import OPS

REPO = Path(__file__).resolve().parents[1]
TINY = {"resblock": "1", "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
        "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3], [1, 2]]}
TINY_HOP = 8
HEADERS = ["config", "batch", "dtype", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
           "max abs diff vs eager", "first call s"]
# What VOCODER_EXT_BACKEND=cuda says on CPU tensors (vocoder_ext.runtime.backend.resolve), for the first op
# HiFiGAN runs; the model's two other ops are counted after it.
CUDA_ON_CPU = ("unavailable: VOCODER_EXT_BACKEND=cuda cannot serve lrelu_conv_transpose1d on cpu tensors (it serves "
               "CUDA tensors) (and 2 more op(s))")


def bench_args(*argv):
    """The parsed command line, as cli.main hands it to the command."""
    argv = ["bench", *map(str, argv)]
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args


def md_table(markdown):
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[2:]]


# ---- the command without a GPU ----------------------------------------------------------------
def test_device_cuda_without_a_gpu_is_a_clear_user_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no CUDA device: --device cuda runs the GPU benchmark and needs a GPU")
    assert list(tmp_path.iterdir()) == []  # nothing timed, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_module_command_exits_non_zero_with_no_cuda_device(tmp_path):
    done = subprocess.run([sys.executable, "-m", "vocoder_ext", "bench", "--device", "cuda", "--out", str(tmp_path)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("error: no CUDA device:")


def test_device_defaults_to_cpu_and_cuda_dispatches_to_the_gpu_bench(tmp_path, monkeypatch):
    assert bench_args().device == "cpu" and bench_args().dtypes is None and not bench_args().tf32
    called = []
    monkeypatch.setattr(bench_cuda, "run_cuda", lambda args: called.append(args.device))
    assert main(["bench", "--device", "cuda:1", "--out", str(tmp_path)]) == 0
    assert called == ["cuda:1"]


@pytest.mark.parametrize("argv, fragment", [
    (["--device", "cuda", "--ops-only"], "--ops-only"),
    (["--device", "cuda", "--static"], "--static needs no GPU"),
])
def test_sections_the_gpu_bench_does_not_have_are_refused(tmp_path, capsys, argv, fragment):
    assert main(["bench", "--out", str(tmp_path), *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_device_must_be_cpu_or_cuda(capsys):
    assert main(["bench", "--device", "mps"]) == 2
    assert "expected cpu, cuda or cuda:N" in capsys.readouterr().err


# ---- settings -----------------------------------------------------------------------------------
def test_gpu_defaults_and_quick():
    s = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda"))
    assert (s["configs"], s["batches"], s["dtypes"], s["engines"]) == (
        ["v1", "v2", "v3"], [1, 8], ["fp32", "fp16"], ["eager", "compile", "fused", "cuda"])
    assert (s["seconds"], s["repeats"], s["warmup"], s["warmup_asked"], s["tf32"]) == (10.0, 20, 3, 1, False)
    assert s["command"] == "python -m vocoder_ext bench --device cuda"
    q = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", "--quick", "--warmup", "5", "--tf32"))
    assert (q["configs"], q["batches"], q["repeats"], q["engines"], q["warmup"], q["tf32"]) == (
        ["v2"], [1], 2, ["eager", "fused", "cuda"], 5, True)
    # eager is always timed (every number is relative to it); fp32 goes first (the other dtypes are compared to it)
    e = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", "--engines", "compile",
                                                    "--dtypes", "bf16,fp32"))
    assert e["engines"] == ["eager", "compile"] and e["dtypes"] == ["fp32", "bf16"]
    c = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", "--engines", " cuda,fused,cuda"))
    assert c["engines"] == ["eager", "cuda", "fused"]


@pytest.mark.parametrize("argv, fragment", [
    (["--engines", "eager,openvino"], "--engines: with --device cuda"),
    (["--engines", "eager,triton"], "subset of eager,compile,fused,cuda, got 'eager,triton'"),
    (["--engines", ","], "--engines: with --device cuda"),
    (["--dtypes", "fp32,fp8"], "--dtypes"),
    (["--dtypes", ","], "--dtypes"),
    (["--configs", "v9"], "v9"),
    (["--batches", "0"], "--batches"),
])
def test_bad_gpu_settings_are_user_errors(argv, fragment):
    with pytest.raises(UserError, match=fragment):
        bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", *argv))


# ---- the whole path on CPU tensors ------------------------------------------------------------
@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench_cuda")
    config = out_dir / "tiny.json"
    config.write_text(json.dumps(TINY))
    settings = bench_cuda.resolve_cuda_settings(bench_args(
        "--device", "cuda", "--configs", config, "--batches", "1,2", "--dtypes", "fp16,fp32",
        "--engines", "eager,fused,cuda", "--seconds", 0.05, "--repeats", 3, "--inputs", 2, "--out", out_dir))
    environment = os.environ.get("VOCODER_EXT_BACKEND")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        returned = bench_cuda.benchmark(settings, torch.device("cpu"))
    assert os.environ.get("VOCODER_EXT_BACKEND") == environment  # the cuda engine put it back
    markdown = (out_dir / "bench_cuda.md").read_text()
    report = json.loads((out_dir / "bench_cuda.json").read_text())
    return stdout.getvalue(), markdown, report, returned


def test_cpu_run_prints_and_writes_the_table_and_states_the_setup(cpu_run):
    stdout, markdown, report, returned = cpu_run
    assert markdown.strip() in stdout and report == json.loads(json.dumps(returned))
    assert report["device"] == {"type": "cpu", "index": None}
    assert report["backends"] == {op: backends()[op]["cpu"] for op in OPS}
    assert report["versions"]["torch"] == torch.__version__ and "triton" in report["versions"]
    assert report["settings"]["warmup"] == 3 and report["settings"]["dtypes"] == ["fp32", "fp16"]
    served = report["forced_backends"]["cuda"]["served_by"]
    assert report["forced_backends"]["cuda"]["backend"] == "cuda" and list(served) == list(bench_cuda.HIFIGAN_OPS)
    for op, text in served.items():
        assert text == (f"unavailable (VOCODER_EXT_BACKEND=cuda cannot serve {op} on cpu tensors (it serves CUDA "
                        "tensors))")
    for fragment in ("# vocoder_ext GPU benchmark", "command: `python -m vocoder_ext bench --device cuda --configs",
                     "fused ops served on cpu by: lrelu_conv1d:",
                     "- cuda engine = the fused model with VOCODER_EXT_BACKEND=cuda; its ops served by: "
                     "lrelu_conv_transpose1d: unavailable (VOCODER_EXT_BACKEND=cuda cannot serve",
                     "cuda = the fused model with VOCODER_EXT_BACKEND=cuda for each call",
                     "median of 3 samples after 3 warm-up run(s) (--warmup 1 raised to the minimum)",
                     "## End to end on cpu: inference, 0.05 s of audio"):
        assert fragment in markdown


def test_cpu_run_rows_cover_every_case_and_numbers_follow_from_the_samples(cpu_run):
    _, markdown, report, _ = cpu_run
    rows = report["e2e"]
    assert [(r["config"], r["batch"], r["dtype"], r["engine"]) for r in rows] == [
        ("tiny", b, d, e) for b in (1, 2) for d in ("fp32", "fp16") for e in ("eager", "fused", "cuda")]
    table = md_table(markdown)
    assert list(table[0]) == HEADERS and len(table) == len(rows)
    frames = round(0.05 * 22050 / TINY_HOP)
    for row, cells in zip(rows, table):
        if row["engine"] == "cuda":  # no CUDA kernels serve CPU tensors: the row says why instead of numbers
            assert row["status"] == CUDA_ON_CPU and "seconds" not in row and "median_s" not in row
            assert cells["engine"] == "cuda" and cells["median ms"] == CUDA_ON_CPU
            assert [cells[h] for h in HEADERS[5:]] == [""] * 5
            continue
        eager = next(r for r in rows if (r["batch"], r["dtype"], r["engine"]) == (row["batch"], row["dtype"], "eager"))
        seconds = statistics.median(row["seconds"])
        assert row["status"] == "ok" and len(row["seconds"]) == 3 and row["timer"] == "perf_counter"
        assert row["frames"] == frames and row["output_samples"] == row["batch"] * frames * TINY_HOP
        assert math.isclose(row["median_s"], seconds, rel_tol=1e-12)
        assert math.isclose(row["x_realtime"], row["output_samples"] / 22050 / seconds, rel_tol=1e-9)
        assert math.isclose(row["khz"], row["output_samples"] / seconds / 1e3, rel_tol=1e-9)
        assert math.isclose(row["speedup_vs_eager"], statistics.median(eager["seconds"]) / seconds, rel_tol=1e-9)
        assert row["first_call_s"] > 0
        assert [cells[k] for k in ("config", "batch", "dtype", "engine")] == [
            "tiny", str(row["batch"]), row["dtype"], row["engine"]]
        assert math.isclose(float(cells["median ms"]), 1e3 * seconds, rel_tol=0.02)
        assert math.isclose(float(cells["kHz"]), row["khz"], rel_tol=0.02)
        assert math.isclose(float(cells["speedup vs eager"]), row["speedup_vs_eager"], rel_tol=0.02)


def test_cpu_run_outputs_agree_with_eager_and_half_is_really_half(cpu_run):
    rows = [r for r in cpu_run[2]["e2e"] if r["engine"] != "cuda"]
    for row in rows:
        if row["engine"] == "eager":
            assert row["max_abs_diff_vs_eager"] == 0
        limit = 1e-5 if row["dtype"] == "fp32" else 1e-2
        assert row["max_abs_diff_vs_eager"] < limit and row["max_abs_diff_vs_fp32_eager"] < limit
        if row["dtype"] == "fp16":  # the half model ran in half: its audio differs from fp32's by rounding
            assert row["max_abs_diff_vs_fp32_eager"] > 0
        elif row["engine"] == "eager":
            assert row["max_abs_diff_vs_fp32_eager"] == 0


def test_gpu_header_and_cuda_graph_footnote(cpu_run):
    """The GPU-only parts of the Markdown, from the CPU report dressed as a GPU one."""
    report = json.loads(json.dumps(cpu_run[2]))
    report["device"] = {"type": "cuda", "index": 0, "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0],
                        "memory_gib": 79.2, "multiprocessors": 132, "torch_cuda": "12.8", "cudnn": 91000,
                        "cudnn_benchmark": False, "tf32": {"cudnn": False, "matmul": False}}
    report["e2e"][1]["engine"], report["e2e"][1]["cudagraph_skips"] = "compile", 2
    markdown = bench_cuda.render_markdown(report)
    assert ("- GPU: NVIDIA H100 80GB HBM3 (cuda:0), compute capability 9.0, 79 GiB, 132 SMs; CUDA 12.8, "
            "cuDNN 91000 (benchmark mode off); TF32 off in cuDNN, off in matmuls") in markdown
    assert "CUDA events around each call" in markdown and 'mode="reduce-overhead"' in markdown
    assert md_table(markdown)[1]["engine"] == "compile*"
    assert "fell back from CUDA graphs for part of the model" in markdown and "tiny batch 1 fp32" in markdown


# ---- the CUDA timer, against fake events ------------------------------------------------------
def test_cuda_round_robin_interleaves_engines_rotates_inputs_and_times_with_events(monkeypatch):
    clock, calls = [0.0], []

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing

        def record(self):
            self.t = clock[0]

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return (end.t - self.t) * 1e3  # ms, as CUDA events report

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))

    def engine(name, cost):
        def fn(x):
            calls.append((name, x))
            clock[0] += cost
        return fn

    device = torch.device("cuda", 0)
    timings = bench_cuda.cuda_round_robin({"eager": engine("eager", 0.004), "fused": engine("fused", 0.001)},
                                          ["a", "b", "c"], 4, device)
    assert [c for c in calls if c[0] != "sync"] == [
        ("eager", "a"), ("fused", "a"), ("eager", "b"), ("fused", "b"), ("eager", "c"), ("fused", "c"),
        ("eager", "a"), ("fused", "a")]
    assert calls[0] == ("sync", device) and calls.count(("sync", device)) == 8  # idle device before each sample
    assert timings["eager"]["seconds"] == pytest.approx([0.004] * 4)
    assert timings["fused"]["seconds"] == pytest.approx([0.001] * 4)
    assert timings["fused"]["timer"] == "cuda events" and len(timings["fused"]["wall_seconds"]) == 4


# ---- the cuda engine: VOCODER_EXT_BACKEND=cuda around each call ------------------------------------
def run_tiny(tmp_path, engines, dtypes="fp32,fp16", batches="1"):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    settings = bench_cuda.resolve_cuda_settings(bench_args(
        "--device", "cuda", "--configs", config, "--batches", batches, "--dtypes", dtypes, "--engines", engines,
        "--seconds", 0.05, "--repeats", 2, "--inputs", 2, "--out", tmp_path / "out"))
    with contextlib.redirect_stdout(io.StringIO()):
        report = bench_cuda.benchmark(settings, torch.device("cpu"))
    return report, (tmp_path / "out" / "bench_cuda.md").read_text()


def test_hifigan_ops_are_the_ops_the_fused_model_calls():
    """The cuda engine is declared available when the CUDA backend serves these: they must be all the model runs."""
    source = (REPO / "vocoder_ext" / "models" / "hifigan.py").read_text()
    assert set(re.findall(r"\bops\.(\w+)\(", source)) == set(bench_cuda.HIFIGAN_OPS)
    assert set(bench_cuda.HIFIGAN_OPS) <= set(OPS)


def test_cuda_engine_runs_the_fused_model_with_the_cuda_backend_forced(tmp_path, monkeypatch):
    """The runtime is told the CUDA kernels serve (CPU tensors: the C++ CPU kernels then run): the cuda rows get
    numbers, equal the fused rows' outputs, and each op call of the cuda engine, and only of it, sees cuda."""
    real_resolve, real_use = backend.resolve, backend.use_registered_op
    calls = []  # (op, VOCODER_EXT_BACKEND) of each op call the models make

    def resolve(op, device_type):
        return ("cuda", None) if backend.requested() == "cuda" else real_resolve(op, device_type)

    def use_registered_op(op, device_type):
        calls.append((op, backend.requested()))
        return real_use(op, device_type)

    monkeypatch.setattr(backend, "resolve", resolve)
    monkeypatch.setattr(backend, "use_registered_op", use_registered_op)
    monkeypatch.setenv("VOCODER_EXT_BACKEND", "auto")
    report, markdown = run_tiny(tmp_path, "fused,cuda")
    assert os.environ["VOCODER_EXT_BACKEND"] == "auto"
    assert report["forced_backends"]["cuda"]["served_by"] == {op: "cuda" for op in bench_cuda.HIFIGAN_OPS}
    rows = {(r["dtype"], r["engine"]): r for r in report["e2e"]}
    assert sorted(rows) == [(d, e) for d in ("fp16", "fp32") for e in ("cuda", "eager", "fused")]
    for dtype in ("fp32", "fp16"):
        cuda, fused = rows[dtype, "cuda"], rows[dtype, "fused"]
        assert cuda["status"] == "ok" and len(cuda["seconds"]) == 2 and cuda["first_call_s"] > 0
        assert math.isclose(cuda["speedup_vs_eager"],
                            statistics.median(rows[dtype, "eager"]["seconds"]) / statistics.median(cuda["seconds"]))
        assert cuda["max_abs_diff_vs_eager"] == fused["max_abs_diff_vs_eager"]  # the same kernels ran
    cells = [c for c in md_table(markdown) if c["engine"] == "cuda"]
    assert len(cells) == 2 and all(float(c["median ms"]) > 0 and float(c["speedup vs eager"]) > 0 for c in cells)
    forced_calls = [op for op, requested in calls if requested == "cuda"]
    ambient_calls = [op for op, requested in calls if requested == "auto"]
    assert len(calls) == len(forced_calls) + len(ambient_calls)
    # both engines ran the same model the same number of times (3 warm-up calls + 2 samples per dtype)
    assert forced_calls and sorted(forced_calls) == sorted(ambient_calls)
    assert {"lrelu_conv_transpose1d", "lrelu_conv1d"} <= set(forced_calls) <= set(bench_cuda.HIFIGAN_OPS)


def test_a_forced_backend_that_refuses_at_call_time_fails_its_rows_not_the_run(tmp_path, monkeypatch):
    """With the check before timing fooled, the op calls themselves meet VOCODER_EXT_BACKEND=cuda on CPU tensors:
    the runtime's refusal proves the variable was set during the call; the row reports it, the others run."""
    monkeypatch.setattr(forced, "problem", lambda name, device_type, ops: None)
    report, markdown = run_tiny(tmp_path, "cuda", dtypes="fp32")
    eager, cuda = report["e2e"]
    assert eager["engine"] == "eager" and eager["status"] == "ok"
    assert cuda["engine"] == "cuda" and cuda["status"].startswith(  # conv_pre, the fused forward's first op
        "failed: RuntimeError: VOCODER_EXT_BACKEND=cuda cannot serve lrelu_conv1d on cpu tensors")
    assert md_table(markdown)[1]["median ms"] == cuda["status"]


@pytest.mark.parametrize("before", [None, "triton"])
def test_forced_sets_the_variable_for_the_call_and_puts_it_back(monkeypatch, before):
    if before is None:
        monkeypatch.delenv("VOCODER_EXT_BACKEND", raising=False)
    else:
        monkeypatch.setenv("VOCODER_EXT_BACKEND", before)
    seen = []

    def fn(x):
        seen.append(os.environ.get("VOCODER_EXT_BACKEND"))
        if x == "raise":
            raise RuntimeError("kernel failed")
        return x
    call = forced.engine(fn, "cuda")
    assert call("mel") == "mel" and os.environ.get("VOCODER_EXT_BACKEND") == before
    with pytest.raises(RuntimeError, match="kernel failed"):
        call("raise")
    assert seen == ["cuda", "cuda"] and os.environ.get("VOCODER_EXT_BACKEND") == before
