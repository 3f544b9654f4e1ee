"""python -m vocoder_ext bench --device cuda (vocoder_ext/cli/bench/cuda.py) without a GPU: the command refuses
with "no CUDA device"; the settings; and the whole timing/table/JSON path run on CPU tensors with a tiny
config (eager + fused), which is the same code the GPU run goes through except the CUDA-only timer and
torch.compile mode. The CUDA-event round robin runs against fake events. No timing is asserted."""
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vocoder_ext.cli import build_parser, main
from vocoder_ext.cli.bench import cuda as bench_cuda
from vocoder_ext.cli.common import UserError
from vocoder_ext.runtime import backends
from vocoder_ext.runtime.backend import OPS

REPO = Path(__file__).resolve().parents[1]
TINY = {"resblock": "1", "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
        "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5],
        "resblock_dilation_sizes": [[1, 3], [1, 2]]}
TINY_HOP = 8
HEADERS = ["config", "batch", "dtype", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
           "max abs diff vs eager", "first call s"]


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
        ["v1", "v2", "v3"], [1, 8], ["fp32", "fp16"], ["eager", "compile", "fused"])
    assert (s["seconds"], s["repeats"], s["warmup"], s["warmup_asked"], s["tf32"]) == (10.0, 20, 3, 1, False)
    assert s["command"] == "python -m vocoder_ext bench --device cuda"
    q = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", "--quick", "--warmup", "5", "--tf32"))
    assert (q["configs"], q["batches"], q["repeats"], q["engines"], q["warmup"], q["tf32"]) == (
        ["v2"], [1], 2, ["eager", "fused"], 5, True)
    # eager is always timed (every number is relative to it); fp32 goes first (the other dtypes are compared to it)
    e = bench_cuda.resolve_cuda_settings(bench_args("--device", "cuda", "--engines", "compile",
                                                    "--dtypes", "bf16,fp32"))
    assert e["engines"] == ["eager", "compile"] and e["dtypes"] == ["fp32", "bf16"]


@pytest.mark.parametrize("argv, fragment", [
    (["--engines", "eager,openvino"], "--engines: with --device cuda"),
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
        "--engines", "eager,fused", "--seconds", 0.05, "--repeats", 3, "--inputs", 2, "--out", out_dir))
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        returned = bench_cuda.benchmark(settings, torch.device("cpu"))
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
    for fragment in ("# vocoder_ext GPU benchmark", "command: `python -m vocoder_ext bench --device cuda --configs",
                     "fused ops served on cpu by: lrelu_conv1d:",
                     "median of 3 samples after 3 warm-up run(s) (--warmup 1 raised to the minimum)",
                     "## End to end on cpu: inference, 0.05 s of audio"):
        assert fragment in markdown


def test_cpu_run_rows_cover_every_case_and_numbers_follow_from_the_samples(cpu_run):
    _, markdown, report, _ = cpu_run
    rows = report["e2e"]
    assert [(r["config"], r["batch"], r["dtype"], r["engine"]) for r in rows] == [
        ("tiny", b, d, e) for b in (1, 2) for d in ("fp32", "fp16") for e in ("eager", "fused")]
    table = md_table(markdown)
    assert list(table[0]) == HEADERS and len(table) == len(rows)
    frames = round(0.05 * 22050 / TINY_HOP)
    for row, cells in zip(rows, table):
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
    rows = cpu_run[2]["e2e"]
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
