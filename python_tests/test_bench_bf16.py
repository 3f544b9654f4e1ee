"""python -m vocoder_ext bench, its bf16 side: the bf16 engines of the end-to-end table (with their SNR against
fp32 eager), --precision choosing the engines, and the --fidelity table. Tiny settings, one thread; no timing
is asserted."""
import json
import math
import statistics
from pathlib import Path

import pytest

from test_bench import REPO, md_table, run_bench, run_bench_from_repo
from vocoder_ext.cli import build_parser, main
from vocoder_ext.cli.bench.fidelity import VARIANTS
from vocoder_ext.cli.bench.options import resolve_settings
from vocoder_ext.cli.precision import bf16_kernels

# bf16 error bounds: bf16 keeps 8 significant bits (~48 dB per rounding); a generator's dozens of layers
# land a few dB under that. Exact fp32 would be > 100 dB, a broken kernel < 20.
BF16_SNR = (30.0, 70.0)
needs_bf16 = pytest.mark.skipif(not bf16_kernels(), reason="no AVX512_BF16: the kernels compute bf16 in fp32")


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_bf16")
    code, _ = run_bench("--quick", "--e2e-only", "--no-train", "--threads", 1, "--engines",
                        "fused,fused_bf16,eager_bf16,openvino_bf16", "--out", out)
    assert code == 0
    return (out / "bench.md").read_text(), json.loads((out / "bench.json").read_text())


def test_bf16_engines_run_beside_fp32_ones_with_their_snr(e2e):
    markdown, report = e2e
    rows = report["e2e"]
    assert [(r["engine"], r["precision"]) for r in rows] == [
        ("eager", "fp32"), ("fused", "fp32"), ("fused_bf16", "bf16"), ("eager_bf16", "bf16"), ("openvino_bf16", "bf16")]
    assert report["settings"]["precision"] == "all" and report["bf16_kernels"] == bf16_kernels()
    by_engine = {r["engine"]: r for r in rows}
    assert by_engine["eager"]["snr_db_vs_eager"] is None  # the reference itself: exact
    assert by_engine["fused"]["snr_db_vs_eager"] > 100
    assert BF16_SNR[0] < by_engine["eager_bf16"]["snr_db_vs_eager"] < BF16_SNR[1]  # PyTorch's bf16, on any CPU
    ov = by_engine["openvino_bf16"]
    assert ov["status"] == "ok" or ov["status"].startswith("skipped:"), ov["status"]
    # all engines of a case are timed in the same rounds
    assert {len(r["seconds"]) for r in rows if r["status"] == "ok"} == {2}
    table = {cells["engine"]: cells for cells in md_table(markdown, "End to end")}
    assert table["eager"]["SNR dB vs eager"] == "exact"
    for engine in ("fused", "fused_bf16", "eager_bf16"):
        assert float(table[engine]["SNR dB vs eager"]) == pytest.approx(by_engine[engine]["snr_db_vs_eager"], abs=0.06)


@needs_bf16
def test_fused_bf16_computes_in_bf16(e2e):
    row = next(r for r in e2e[1]["e2e"] if r["engine"] == "fused_bf16")
    assert BF16_SNR[0] < row["snr_db_vs_eager"] < BF16_SNR[1]
    assert row["max_abs_diff_vs_eager"] > 1e-5


def settings(*argv):
    return resolve_settings(build_parser().parse_args(["bench", *argv]))


def test_precision_keeps_one_precisions_engines_and_eager():
    assert settings("--quick")["engines"] == ["eager", "fused", "fused_bf16"]
    assert settings("--quick", "--precision", "bf16")["engines"] == ["eager", "fused_bf16"]
    assert settings("--quick", "--precision", "fp32")["engines"] == ["eager", "fused"]
    assert settings("--precision", "bf16")["engines"] == ["eager", "fused_bf16", "eager_bf16", "openvino_bf16"]
    assert settings("--precision", "fp32", "--engines", "fused_bf16,compile")["engines"] == ["eager", "compile"]


@pytest.mark.parametrize("argv, fragment", [
    (["--precision", "fp32", "--engines", "fused_bf16"], "none of the e2e engines"),
    (["--precision", "bf16", "--disc-only"], "--precision"),
    (["--precision", "bf16", "--fidelity"], "--precision"),
    (["--fidelity-utterances", "2"], "only applies to --fidelity"),
    (["--fidelity", "--fidelity-utterances", "0"], "--fidelity-utterances"),
])
def test_bad_precision_combinations_are_user_errors(tmp_path, capsys, argv, fragment):
    assert main(["bench", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and fragment in err
    assert not (tmp_path / "bench.json").exists()


def test_precision_value_is_checked_by_argparse(capsys):
    assert main(["bench", "--precision", "fp16"]) == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


# ---- --fidelity -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fidelity(tmp_path_factory):
    return run_bench_from_repo(tmp_path_factory.mktemp("bench_fidelity"), "--fidelity", "--quick", "--threads", 1)


def test_fidelity_table_covers_every_model_and_variant(fidelity):
    stdout, markdown, report, have_checkpoint = fidelity
    assert markdown.strip() in stdout and report["settings"]["sections"] == ["fidelity"]
    section = report["fidelity"]
    stems = [Path(line).stem for line in (REPO / "data/filelists/validation.txt").read_text().split()][:2]
    assert section["utterances"] == stems  # --quick: the first two
    models = (["demo checkpoint"] if have_checkpoint else []) + ["v2 (random)"]
    ok = [r for r in section["rows"] if r["status"] == "ok"]
    assert [(r["model"], r["variant"]) for r in ok] == [(m, v) for m in models for v in VARIANTS]
    table = md_table(markdown, "Fidelity")
    assert len(table) == len(section["rows"])
    for row, cells in zip(section["rows"], table):
        if row["status"] != "ok":
            continue
        snrs = [u["snr_db"] for u in row["per_utterance"]]
        assert [u["utterance"] for u in row["per_utterance"]] == stems and row["utterances"] == 2
        if None not in snrs:
            assert row["snr_db_min"] == min(snrs) and math.isclose(row["snr_db_mean"], statistics.mean(snrs))
            assert float(cells["SNR min dB"]) == pytest.approx(row["snr_db_min"], abs=0.06)
        assert row["mel_l1_mean"] == pytest.approx(statistics.mean(u["mel_l1"] for u in row["per_utterance"]))
        assert row["audio_s"] > 3  # two utterances of ~1.8 s
    eager = [r for r in ok if r["variant"] == "eager_bf16"]
    assert all(BF16_SNR[0] < r["snr_db_min"] < BF16_SNR[1] and r["mel_l1_mean"] > 0 for r in eager)
    if have_checkpoint:  # a trained model's audio is far closer to the recording than random weights' noise
        assert ok[0]["fp32_mel_l1_vs_recording"] < ok[-1]["fp32_mel_l1_vs_recording"] / 2


@needs_bf16
def test_fidelity_of_our_bf16_kernels(fidelity):
    rows = {(r["model"], r["variant"]): r for r in fidelity[2]["fidelity"]["rows"] if r["status"] == "ok"}
    for model in {m for m, _ in rows}:
        compute, tensors = rows[model, "fused_bf16"], rows[model, "fused_bf16_tensors"]
        for row in (compute, tensors):
            assert BF16_SNR[0] < row["snr_db_min"] <= row["snr_db_mean"] < BF16_SNR[1]
        # same kernels; bf16 tensors also round every activation between layers: a little more error
        assert compute["snr_db_mean"] > tensors["snr_db_mean"]
