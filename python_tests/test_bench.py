"""python -m vocoder_ext bench, run in-process with --quick: the tables, the JSON, and that every derived
number (speedup, x real-time, kHz, GFLOP/s) follows from the raw timings. No timing is asserted."""
import contextlib
import io
import json
import math
import runpy
import statistics
import sys

import pytest

from vocoder_ext.cli import main
from vocoder_ext.models import PRESETS

V2 = PRESETS["v2"]


def run_bench(*argv):
    """-> (exit code, stdout) of `python -m vocoder_ext bench ARGV`, in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", *map(str, argv)])
    return code, out.getvalue()


def md_table(markdown, title_start):
    """The first Markdown table after the heading that starts with `title_start`, as a list of dicts."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## " + title_start)) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    rows = [line for line in lines[start:end] if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[2:]]


def close(table_value, exact, rel=0.02):
    """A 3-significant-digit table cell agrees with the exact number."""
    return math.isclose(float(table_value), exact, rel_tol=rel)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench")
    code, stdout = run_bench("--quick", "--out", out_dir)
    assert code == 0
    markdown = (out_dir / "bench.md").read_text()
    report = json.loads((out_dir / "bench.json").read_text())
    return stdout, markdown, report


def test_quick_writes_the_same_markdown_it_prints_and_states_the_setup(quick):
    stdout, markdown, report = quick
    assert markdown.strip() in stdout
    for fragment in ("threads: 2", "torch " + report["versions"]["torch"], "fused ops served on CPU by: lrelu_conv1d:",
                     "command: `python -m vocoder_ext bench --quick", report["machine"]["cpu"]):
        assert fragment in markdown
    s = report["settings"]
    assert (s["configs"], s["batches"], s["repeats"], s["seconds"], s["engines"]) == (["v2"], [1], 2, 0.2,
                                                                                       ["eager", "fused"])
    assert s["sections"] == ["ops", "e2e", "train", "gan"]
    assert report["machine"]["logical_cpus"] >= 1 and report["date"]


def test_op_tables_cover_every_distinct_shape_and_speedups_follow_from_raw_timings(quick):
    _, markdown, report = quick
    frames = round(0.2 * 22050 / 256)
    conv = report["ops"]["lrelu_conv1d"]
    # v2: 4 stages x 3 kernel sizes x dilations {1, 3, 5} (the dilation-1 second convs are the same shape).
    expected = {(128 // 2 ** (i + 1), frames * math.prod(V2["upsample_rates"][:i + 1]), k, d)
                for i in range(4) for k in V2["resblock_kernel_sizes"] for d in (1, 3, 5)}
    assert {(r["channels"], r["length"], r["kernel"], r["dilation"]) for r in conv} == expected
    assert sum(r["convs"] for r in conv) == 4 * 3 * 6  # every resblock conv of a forward pass
    table = md_table(markdown, "Ops: lrelu_conv1d")
    assert len(table) == len(conv)
    assert list(table[0]) == ["config", "stage", "C", "T", "K", "dilation", "convs", "eager ms", "fused ms",
                              "speedup", "eager GFLOP/s", "fused GFLOP/s", "fused GB/s", "max abs diff"]
    for row, cells in zip(conv, table):
        eager = statistics.median(row["timings"]["eager"]["seconds"])
        fused = statistics.median(row["timings"]["fused"]["seconds"])
        assert len(row["timings"]["eager"]["seconds"]) == len(row["timings"]["fused"]["seconds"]) == 2
        assert math.isclose(row["speedup"], eager / fused, rel_tol=1e-9)
        assert row["flop"] == 2 * row["channels"] ** 2 * row["kernel"] * row["length"] * row["batch"]
        assert math.isclose(row["fused_gflops"], row["flop"] / fused / 1e9, rel_tol=1e-9)
        assert close(cells["eager ms"], 1e3 * eager) and close(cells["fused ms"], 1e3 * fused)
        assert close(cells["speedup"], row["speedup"])
        assert close(cells["speedup"], float(cells["eager ms"]) / float(cells["fused ms"]), rel=0.03)
        assert row["max_abs_diff"] < 1e-4

    transpose = report["ops"]["lrelu_conv_transpose1d"]
    assert [(r["in_channels"], r["out_channels"], r["kernel"], r["stride"]) for r in transpose] == [
        (128, 64, 16, 8), (64, 32, 16, 8), (32, 16, 4, 2), (16, 8, 4, 2)]
    table = md_table(markdown, "Ops: lrelu_conv_transpose1d")
    assert len(table) == 4
    for row, cells in zip(transpose, table):
        eager = statistics.median(row["timings"]["eager"]["seconds"])
        fused = statistics.median(row["timings"]["fused"]["seconds"])
        assert math.isclose(row["speedup"], eager / fused, rel_tol=1e-9)
        assert close(cells["speedup"], row["speedup"])


def test_e2e_table_rows_and_derived_numbers(quick):
    _, markdown, report = quick
    rows = report["e2e"]
    assert [(r["config"], r["batch"], r["engine"]) for r in rows] == [("v2", 1, "eager"), ("v2", 1, "fused")]
    table = md_table(markdown, "End to end")
    assert list(table[0]) == ["config", "batch", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
                              "max abs diff vs eager", "first call s"]
    eager = statistics.median(rows[0]["seconds"])
    for row, cells in zip(rows, table):
        seconds = statistics.median(row["seconds"])
        assert row["status"] == "ok" and len(row["seconds"]) == 2
        assert row["output_samples"] == row["frames"] * 256 and row["frames"] == 17
        assert math.isclose(row["x_realtime"], row["output_samples"] / 22050 / seconds, rel_tol=1e-9)
        assert math.isclose(row["khz"], row["output_samples"] / seconds / 1e3, rel_tol=1e-9)
        assert math.isclose(row["speedup_vs_eager"], eager / seconds, rel_tol=1e-9)
        assert close(cells["median ms"], 1e3 * seconds) and close(cells["speedup vs eager"], eager / seconds)
        assert row["max_abs_diff_vs_eager"] < 1e-4


def test_training_table_has_step_times_and_peak_memory(quick):
    _, markdown, report = quick
    rows = report["train"]
    assert [(r["engine"], r["batch"], r["samples"]) for r in rows] == [("eager", 1, 2048), ("fused", 1, 2048)]
    table = md_table(markdown, "Training step")
    assert [c["engine"] for c in table] == ["eager", "fused"]
    eager = statistics.median(rows[0]["seconds"])
    for row, cells in zip(rows, table):
        assert math.isclose(row["speedup_vs_eager"], eager / statistics.median(row["seconds"]), rel_tol=1e-9)
        assert row["memory"]["peak_increase_mib"] > 0  # a training step allocates activations and gradients
        assert close(cells["peak memory MiB"], row["memory"]["peak_increase_mib"])
    assert "Peak memory: peak resident memory" in markdown or "Peak memory: peak RSS" in markdown


def test_gan_table_times_the_recipes_whole_step(quick):
    _, markdown, report = quick
    rows = report["gan"]
    assert [(r["engine"], r["status"], r["samples"]) for r in rows] == [("eager", "ok", 2048), ("fused", "ok", 2048)]
    table = md_table(markdown, "GAN training step")
    eager = statistics.median(rows[0]["seconds"])
    for row, cells in zip(rows, table):
        seconds = statistics.median(row["seconds"])
        assert math.isclose(row["speedup_vs_eager"], eager / seconds, rel_tol=1e-9)
        assert close(cells["steps/s"], 1 / seconds) and row["memory"]["peak_increase_mib"] > 0
    # same seeded weights and input: the first step's losses agree between the two paths
    assert rows[1]["first_step_losses"] == pytest.approx(rows[0]["first_step_losses"], rel=1e-4)


def test_missing_optional_packages_give_skipped_rows(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    code, stdout = run_bench("--quick", "--e2e-only", "--no-train", "--engines", "onnxruntime,openvino",
                             "--out", tmp_path)
    assert code == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["e2e"]
    assert {r["engine"]: r["status"] for r in rows} == {
        "eager": "ok", "onnxruntime": "skipped: onnxruntime not installed",
        "openvino": "skipped: openvino not installed"}
    assert "| v2 | 1 | openvino | skipped: openvino not installed |" in stdout
    assert "## Ops" not in stdout and "## Training" not in stdout


def test_onnx_engines_match_eager(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    code, _ = run_bench("--quick", "--e2e-only", "--no-train", "--engines", "eager,onnxruntime,openvino",
                        "--out", tmp_path)
    assert code == 0
    rows = json.loads((tmp_path / "bench.json").read_text())["e2e"]
    assert [r["engine"] for r in rows] == ["eager", "onnxruntime", "openvino"]
    for row in rows:
        assert row["status"] == "ok", row["status"]
        assert row["max_abs_diff_vs_eager"] < 1e-4
    assert rows[1]["onnx_export"]["exporter"] in ("dynamo", "legacy")


def test_legacy_onnx_exporter_without_onnxscript(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    code, _ = run_bench("--quick", "--e2e-only", "--no-train", "--engines", "onnxruntime", "--out", tmp_path)
    assert code == 0
    row = json.loads((tmp_path / "bench.json").read_text())["e2e"][1]
    assert row["status"] == "ok" and row["max_abs_diff_vs_eager"] < 1e-4
    assert row["onnx_export"]["exporter"] == "legacy"
    assert row["onnx_export"]["errors"] == {"dynamo": "onnxscript not installed"}


@pytest.mark.parametrize("argv, fragment", [
    (["--engines", "eager,tensorrt"], "--engines"),
    (["--configs", "v9"], "v9"),
    (["--batches", "1,x"], "--batches"),
    (["--repeats", "0"], "--repeats"),
    (["--threads", "0"], "--threads"),
])
def test_bad_arguments_are_user_errors(tmp_path, capsys, argv, fragment):
    assert main(["bench", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and fragment in err
    assert not (tmp_path / "bench.json").exists()


def test_module_entry_point_forwards_to_the_cli(tmp_path, capsys, monkeypatch):
    """`python -m vocoder_ext bench ...` (run here through runpy) goes through the CLI and exits with its status."""
    monkeypatch.setattr(sys, "argv", ["vocoder_ext", "bench", "--quick", "--out", str(tmp_path), "--threads", "0"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("vocoder_ext", run_name="__main__")
    assert exited.value.code == 2
    assert "--threads" in capsys.readouterr().err


def test_waveglow_table(tmp_path, capsys):
    code = main(["bench", "--waveglow", "--quick", "--waveglow-channels", "8", "--out", str(tmp_path)])
    assert code == 0
    report = json.loads((tmp_path / "bench_waveglow.json").read_text())
    assert [r["engine"] for r in report["timings"]] == ["eager", "fused"]
    assert all(r["x_realtime"] > 0 and r["max_abs_diff_vs_eager"] < 1e-5 for r in report["timings"])
    assert [r["dtype"] for r in report["precision"]] == ["float16", "bfloat16"]
    assert all(r["finite"] and r["rms_err_rel"] < 0.1 for r in report["precision"])
    assert (tmp_path / "bench_waveglow.md").read_text().startswith("# WaveGlow inference, CPU")
