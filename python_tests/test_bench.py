"""python -m vocoder_ext bench, run in-process with --quick: the tables, the JSON, and that every derived
number (speedup, x real-time, kHz, GFLOP/s) follows from the raw timings. No timing is asserted."""
import contextlib
import io
import json
import math
import runpy
import statistics
import sys
from pathlib import Path

import pytest
import torch

from vocoder_ext.cli import main
from vocoder_ext.cli.bench.fidelity import demo_checkpoint
from vocoder_ext.models import PRESETS

V2 = PRESETS["v2"]
REPO = Path(__file__).resolve().parents[1]


def run_bench(*argv):
    """-> (exit code, stdout) of `python -m vocoder_ext bench ARGV`, in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", *map(str, argv)])
    return code, out.getvalue()


def run_bench_from_repo(out, *argv):
    """`bench ARGV --out OUT` run from the repository root, where the corpus and checkpoints/demo/ are found;
    -> (stdout, bench.md, bench.json, whether there was a demo generator). It must succeed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        code, stdout = run_bench(*argv, "--out", out)
        have_demo = demo_checkpoint() is not None
    assert code == 0
    return stdout, (out / "bench.md").read_text(), json.loads((out / "bench.json").read_text()), have_demo


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
    assert (s["configs"], s["batches"], s["repeats"], s["seconds"], s["engines"]) == (
        ["v2"], [1], 2, 0.2, ["eager", "fused", "fused_bf16"])
    assert s["sections"] == ["ops", "e2e", "train", "gan", "disc"]
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
    assert [(r["config"], r["batch"], r["engine"], r["precision"]) for r in rows] == [
        ("v2", 1, "eager", "fp32"), ("v2", 1, "fused", "fp32"), ("v2", 1, "fused_bf16", "bf16")]
    table = md_table(markdown, "End to end")
    assert list(table[0]) == ["config", "batch", "engine", "median ms", "x real-time", "kHz", "speedup vs eager",
                              "max abs diff vs eager", "SNR dB vs eager", "first call s"]
    eager = statistics.median(rows[0]["seconds"])
    for row, cells in zip(rows, table):
        seconds = statistics.median(row["seconds"])
        assert row["status"] == "ok" and len(row["seconds"]) == 2
        assert row["output_samples"] == row["frames"] * 256 and row["frames"] == 17
        assert math.isclose(row["x_realtime"], row["output_samples"] / 22050 / seconds, rel_tol=1e-9)
        assert math.isclose(row["khz"], row["output_samples"] / seconds / 1e3, rel_tol=1e-9)
        assert math.isclose(row["speedup_vs_eager"], eager / seconds, rel_tol=1e-9)
        assert close(cells["median ms"], 1e3 * seconds) and close(cells["speedup vs eager"], eager / seconds)
        if row["precision"] == "fp32":  # the bf16 rows' error: test_bench_bf16.py
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
    engines = ["eager", "fused", "fused+concat_fwd", "fused+fused_discriminators+concat_fwd", "eager amp",
               "fused+fused_discriminators+concat_fwd amp"]
    assert [(r["engine"], r["status"], r["samples"]) for r in rows] == [(e, "ok", 2048) for e in engines]
    table = md_table(markdown, "GAN training step")
    assert [c["engine"] for c in table] == engines
    eager, eager_amp = (statistics.median(rows[i]["seconds"]) for i in (0, 4))
    for row, cells in zip(rows, table):
        seconds = statistics.median(row["seconds"])
        assert math.isclose(row["speedup_vs_eager"], eager / seconds, rel_tol=1e-9)
        assert close(cells["steps/s"], 1 / seconds) and row["memory"]["peak_increase_mib"] > 0
        if row["engine"].endswith(" amp"):
            assert math.isclose(row["speedup_vs_eager_amp"], eager_amp / seconds, rel_tol=1e-9)
            assert close(cells["vs eager amp"], row["speedup_vs_eager_amp"])
        else:
            assert row["speedup_vs_eager_amp"] is None and cells["vs eager amp"] == ""
    # same seeded weights and input: the first step's losses agree between the paths (concat_fwd runs one
    # spectral-norm power iteration per pass instead of two: close, not equal; bf16 autocast: within its rounding)
    assert rows[1]["first_step_losses"] == pytest.approx(rows[0]["first_step_losses"], rel=1e-4)
    for row in rows[2:4]:
        assert row["first_step_losses"] == pytest.approx(rows[0]["first_step_losses"], rel=1e-2)
    assert rows[3]["first_step_losses"] == pytest.approx(rows[2]["first_step_losses"], rel=1e-4)
    for row in rows[4:]:
        assert row["first_step_losses"] == pytest.approx(rows[0]["first_step_losses"], rel=5e-2)


def test_discriminator_table_times_the_whole_pass_and_each_layer(quick):
    _, markdown, report = quick
    whole, layers = report["disc"]["whole"], report["disc"]["layers"]
    assert (whole["batch"], whole["samples"]) == (2, 2048)
    assert whole["speedup"] == pytest.approx(whole["eager_s"] / whole["fused_s"], rel=1e-9)
    assert whole["loss_rel_diff"] < 1e-4  # same weights and audio: fused == eager
    assert whole["speedup_amp"] == pytest.approx(whole["eager_amp_s"] / whole["fused_amp_s"], rel=1e-9)
    for r in layers:  # the bf16 columns of every layer were timed
        assert all(r[f"{e}_bf16_{p}_ms"] > 0 for e in ("eager", "fused") for p in ("forward", "backward"))
    # --quick: the period-2 MPD and the first MSD sub-discriminator, conv_post included
    assert [r["layer"] for r in layers] == [f"mpd p2 conv{i}" for i in range(6)] + [f"msd s0 conv{i}" for i in range(8)]
    mpd = layers[3]  # 512 -> 1024, K 5, stride 3, over the folded [B, C, T/2, 2]
    assert (mpd["x_shape"][1], mpd["x_shape"][3], mpd["weight_shape"], mpd["stride"]) == (512, 2, [1024, 512, 5], 3)
    msd = layers[6 + 4]  # 512 -> 1024, K 41, stride 4, 16 groups
    assert (msd["weight_shape"], msd["stride"], msd["groups"]) == ([1024, 32, 41], 4, 16)
    t_out = (msd["x_shape"][2] + 2 * 20 - 41) // 4 + 1
    assert msd["flop"] == 2 * 2 * 1024 * 32 * 41 * t_out
    table = md_table(markdown, "Discriminators")
    assert len(table) == len(layers) + 1 and table[-1]["layer"] == "all layers"
    for row, cells in zip(layers, table):
        for name in ("forward", "backward"):
            fused = statistics.median(row["timings"][f"fused {name}"]["seconds"])
            assert row[f"fused_{name}_ms"] == pytest.approx(1e3 * fused, rel=1e-9)
            short = {"forward": "fwd", "backward": "bwd"}[name]
            assert close(cells[f"fused {short} ms"], 1e3 * fused)
        assert row["fused_backward_gflops"] == pytest.approx(2 * row["flop"] / row["fused_backward_ms"] / 1e6)


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


# ---- bench --waveglow ------------------------------------------------------------------------
# One thread: on a shared 2-core host, two OpenMP threads of tiny 8-channel ops spend most of their time
# waiting for each other (a --quick run takes minutes instead of seconds).
WAVEGLOW_QUICK = ("--waveglow", "--quick", "--waveglow-channels", "8", "--threads", "1")


@pytest.fixture(scope="module")
def waveglow_quick(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench_waveglow")
    code, stdout = run_bench(*WAVEGLOW_QUICK, "--out", out_dir)
    assert code == 0
    report = json.loads((out_dir / "bench_waveglow.json").read_text())
    return stdout, (out_dir / "bench_waveglow.md").read_text(), report


def nvidia_infer_flop_per_second(channels):
    """FLOP (2 per multiply-add) of NVIDIA's WaveGlow inference per audio second, counted from its layers:
    12 flows over 8, 8, 8, 8, 6, ..., 4, 4 grouped channels, 8 WN layers of kernel 3, the mel upsampling."""
    c, t = channels, 22050 / 8  # grouped time steps per second
    total = 2 * 80 * 80 * 1024 * 22050 / 256  # ConvTranspose1d(80, 80, 1024, stride 256) per mel frame
    for k in range(12):
        n = 8 - 2 * (k // 4)
        per_t = n // 2 * c + 2 * c * 8 * 640 + n * c + n * n  # start, conditioning, end, inverse 1x1 conv
        per_t += 7 * (2 * c * c * 3 + 2 * c * c) + (2 * c * c * 3 + c * c)  # WN layers; the last: C skip rows
        total += 2 * per_t * t
    return total


def test_waveglow_header_states_the_setup_and_the_flop_count(waveglow_quick):
    stdout, markdown, report = waveglow_quick
    assert markdown.strip() in stdout and markdown.startswith("# WaveGlow, CPU")
    s = report["settings"]
    assert (s["seconds"], s["repeats"], s["threads"], s["quick"]) == (0.2, 2, 1, True)
    assert s["waveglow"]["channels"] == 8 and s["waveglow"]["batches"] == [1, 4]
    assert report["machine"]["torch_threads"] == 1 and report["date"]
    assert set(report["backends"]) == {"wn_layer", "lrelu_conv1d", "affine_coupling", "invertible_conv1x1"}
    assert math.isclose(report["flop_per_audio_second"], nvidia_infer_flop_per_second(8), rel_tol=1e-9)
    for fragment in ("command: `python -m vocoder_ext bench --waveglow --quick", "torch threads 1",
                     f"{report['flop_per_audio_second'] / 1e9:.1f} GFLOP per second of audio", "Achieved: "):
        assert fragment in markdown
    assert [h[3:].split(":")[0] for h in markdown.splitlines() if h.startswith("## ")] == [
        "Ops", "End to end", "Training step", "Precision"]


def test_waveglow_op_rows_and_derived_numbers(waveglow_quick):
    _, markdown, report = waveglow_quick
    rows = report["ops"]
    assert [r["op"] for r in rows] == ["wn_layer (middle)", "wn_layer (last)", "conditioning", "affine_coupling",
                                       "invertible_conv1x1"]
    t, c = round(0.2 * 22050 / 8), 8
    assert all(r["length"] == t and r["batch"] == 1 for r in rows)
    assert [r["flop"] for r in rows] == [2 * t * (2 * c * c * 3 + 2 * c * c), 2 * t * (2 * c * c * 3 + c * c),
                                         2 * t * 2 * c * 8 * 640, 3 * 4 * t, 2 * t * 8 * 8]
    table = md_table(markdown, "Ops: WaveGlow")
    assert [cells["op"] for cells in table] == [r["op"] for r in rows]
    for row, cells in zip(rows, table):
        eager = statistics.median(row["timings"]["eager"]["seconds"])
        fused = statistics.median(row["timings"]["fused"]["seconds"])
        assert eager > 0 and fused > 0 and len(row["timings"]["fused"]["seconds"]) == 2
        assert math.isclose(row["speedup"], eager / fused, rel_tol=1e-9)
        assert math.isclose(row["eager_gflops"], row["flop"] / eager / 1e9, rel_tol=1e-9)
        assert math.isclose(row["fused_gflops"], row["flop"] / fused / 1e9, rel_tol=1e-9)
        assert close(cells["fused ms"], 1e3 * fused) and close(cells["speedup"], row["speedup"])
        assert row["max_abs_diff"] < 1e-4


def test_waveglow_e2e_rows_cover_every_engine_and_batch(waveglow_quick):
    _, markdown, report = waveglow_quick
    rows = report["e2e"]
    assert [(r["batch"], r["engine"]) for r in rows] == [(b, e) for b in (1, 4) for e in ("eager", "compile", "fused")]
    table = md_table(markdown, "End to end")
    assert [cells["engine"] for cells in table[:3]] == ["nvidia-equivalent eager", "torch.compile", "fused"]
    for row, cells in zip(rows, table):
        if row["engine"] == "compile":  # --quick leaves it out, and says so
            assert row["status"].startswith("skipped: --quick") and cells["median s"] == row["status"]
            continue
        eager = statistics.median(next(r for r in rows if r["batch"] == row["batch"])["seconds"])
        seconds = statistics.median(row["seconds"])
        assert row["status"] == "ok" and seconds > 0 and row["first_call_s"] > 0 and len(row["seconds"]) == 2
        assert row["frames"] == 17 and math.isclose(row["audio_s"], 17 * 256 / 22050)
        assert math.isclose(row["x_realtime"], row["audio_s"] * row["batch"] / seconds, rel_tol=1e-9)
        assert math.isclose(row["speedup_vs_eager"], eager / seconds, rel_tol=1e-9)
        assert row["flop"] == pytest.approx(nvidia_infer_flop_per_second(8) * row["audio_s"] * row["batch"])
        assert math.isclose(row["gflops"], row["flop"] / seconds / 1e9, rel_tol=1e-9)
        assert close(cells["median s"], seconds) and close(cells["GFLOP/s"], row["gflops"])
        assert row["max_abs_diff_vs_eager"] < 1e-4


def test_waveglow_training_rows_have_step_times_and_peak_memory(waveglow_quick):
    _, markdown, report = waveglow_quick
    rows = report["train"]
    assert [(r["engine"], r["status"], r["batch"], r["samples"], r["frames"]) for r in rows] == [
        ("eager", "ok", 1, 2048, 9), ("fused", "ok", 1, 2048, 9)]
    table = md_table(markdown, "Training step: WaveGlow")
    assert [cells["engine"] for cells in table] == ["eager", "fused"]
    for row, cells in zip(rows, table):
        assert statistics.median(row["seconds"]) > 0
        assert row["memory"]["peak_increase_mib"] > 0, row["memory"]["method"]
        assert close(cells["peak memory MiB"], row["memory"]["peak_increase_mib"])
        assert math.isfinite(row["first_step_loss"]) and row["loss_diff_vs_eager"] < 1e-4
    assert "Peak memory: peak resident memory" in markdown or "Peak memory: peak RSS" in markdown


def test_waveglow_precision_rows(waveglow_quick):
    _, markdown, report = waveglow_quick
    rows = report["precision"]
    assert [(r["engine"], r["dtype"]) for r in rows] == [("eager", "float16"), ("eager", "bfloat16"),
                                                         ("fused", "float16"), ("fused", "bfloat16")]
    assert all(r["finite"] and 0 < r["rms_err_rel"] < 0.1 for r in rows)
    assert len(md_table(markdown, "Precision")) == 4


def test_waveglow_compile_falls_back_to_the_wn_modules():
    """If compiling the whole infer fails, each flow's WN is compiled instead and the engine says so."""
    from vocoder_ext.cli.bench.waveglow_common import build_model
    from vocoder_ext.cli.bench.waveglow_infer import PER_WN, CompiledInfer, inference

    compiled = []

    def fake_compile(fn, **kwargs):
        if fn.__name__ == "infer":
            def broken(*args):
                raise RuntimeError("Unsupported: a graph break in infer")
            return broken
        compiled.append(fn)
        return fn

    model = build_model(4, seed=1, fused=False)
    mel = torch.randn(1, 80, 3)
    inp = (mel, torch.randn(model.noise_shape(mel)))
    engine = CompiledInfer(model, compile=fake_compile)
    assert torch.equal(engine(inp), inference(model)(inp))
    assert engine.mode == PER_WN and engine.whole_error == "RuntimeError: Unsupported: a graph break in infer"
    assert len(compiled) == 12  # one per flow, on a copy of the model:
    assert all("forward" not in vars(wn) for wn in model.WN)  # the eager engine's model is left uncompiled


@pytest.mark.parametrize("argv, fragment", [
    (["--waveglow-channels", "7"], "--waveglow-channels"),
    (["--waveglow-batches", "1,x"], "--waveglow-batches"),
    (["--waveglow-train-samples", "4"], "--waveglow-train-samples"),
    (["--engines", "eager,onnxruntime"], "--engines with --waveglow"),
])
def test_waveglow_bad_arguments_are_user_errors(tmp_path, capsys, argv, fragment):
    assert main(["bench", *WAVEGLOW_QUICK, "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and fragment in err
    assert not (tmp_path / "bench_waveglow.json").exists()
