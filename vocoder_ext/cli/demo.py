"""`python -m vocoder_ext demo` (what `make demo` runs): the bundled corpus through one model, twice.

Every validation utterance is turned into a mel and vocoded by the same model (same weights) on the
fused path (model.fused = True) and on the eager path (model.fused = False). Both wavs are written,
and a table gives each path's speed (x real-time = audio seconds / wall seconds, the median of
--repeats timed runs after one warm-up on the same mel) and how far apart the two outputs are (max |fused - eager|,
and the SNR of the fused audio against the eager). The table is also written as demo.json next to the wavs.

--precision bf16 runs the fused path with bf16 compute (vocoder_ext.runtime.precision); the eager path stays
fp32, the exact reference, so the comparison measures what bf16 costs in fidelity and what it gains in speed
over PyTorch fp32 (whose CPU convs ignored the switch anyway, measured on torch 2.14). demo.json records
each path's precision.

The model is --checkpoint if given, else checkpoints/demo/ if it exists, else a seeded random
--config model -- which is UNTRAINED, and the output says so at the top and the bottom.
Then one WaveGlow row (demo_waveglow.py): an UNTRAINED WaveGlow on the first utterance, fused vs eager.
"""
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings

import torch

from .. import __version__, audio
from ..filelist import read_filelist as _read_filelist
from ..models import HiFiGAN
from ..runtime import backends
from ..runtime.backend import OPS
from ..runtime.precision import precision_context
from . import precision
from .common import UserError, choose_device, model_sampling_rate, stem
from .demo_waveglow import waveglow_row

DEFAULT_CHECKPOINT = os.path.join("checkpoints", "demo")  # the trained demo generator (its README); used where it exists
DEFAULT_CONFIG = "v2"  # small and fast: the whole demo stays well under a minute on 2 cores


def add_arguments(p):
    p.add_argument("--data", default="data", help="corpus root that the filelist's paths are relative to")
    p.add_argument("--filelist", default=os.path.join("data", "filelists", "validation.txt"),
                   help="one utterance a line: wavs/<ID>.wav, or LJSpeech style <ID>|text")
    p.add_argument("--out", default=os.path.join("out", "demo"), help="folder for the wavs and demo.json")
    p.add_argument("--checkpoint", help=f"generator checkpoint (default: {DEFAULT_CHECKPOINT}/ if it exists, "
                                        f"else an untrained model)")
    p.add_argument("--config", help=f"v1 | v2 | v3 | config.json: the untrained model's config "
                                    f"(default {DEFAULT_CONFIG}), or an override of the checkpoint's")
    p.add_argument("--seed", type=int, default=1234, help="seed of the untrained model's random weights")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs per utterance and path, after one warm-up; the median is reported (default: 3)")
    p.add_argument("--limit", type=int, help="only the first N utterances")
    p.add_argument("--waveglow-channels", type=int, default=256,
                   help="WN channels of the WaveGlow row (random weights; NVIDIA's checkpoint has 256); 0 leaves "
                        "the row out (default: 256)")
    precision.add_argument(p, "the fused path runs (the eager path stays fp32, the reference; the WaveGlow row "
                              "is fp32)")


def run(args):
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    if args.waveglow_channels < 0 or args.waveglow_channels % 2:
        raise UserError(f"--waveglow-channels must be an even number >= 0, got {args.waveglow_channels}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    precision.check_device(args.precision, args.device)
    device = choose_device(args.device)
    wavs = read_filelist(args.filelist, args.data)[:args.limit]
    if not wavs:
        raise UserError(f"no utterances to vocode (filelist {args.filelist}, --limit {args.limit})")
    model, source, untrained = build_model(args)
    model.remove_weight_norm().eval().to(device)
    notice = (f"NOTE: the model is UNTRAINED (random weights: {source}), so the audio is noise; this run only "
              f"demonstrates the pipeline and that the fused and eager paths agree." if untrained else None)
    served = {op: backends()[op].get(device.type, "eager (no kernels for this device type)") for op in OPS}

    if notice:
        print(notice)
    print(f"model: {source}")
    print(f"device: {device}, torch threads: {args.threads}; x RT = audio seconds / wall seconds, "
          f"median of {args.repeats} run(s) after a warm-up")
    for op, backend in served.items():
        print(f"fused path: {op} served by {backend}")
    precisions = path_precisions(args.precision)
    print(f"precision: fused path {precisions['fused']}, eager path {precisions['eager']}")
    print()

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        # The header says which backend serves each op; the per-op fallback warning would only repeat it.
        warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
        try:
            mels = [utterance_mel(path, model) for path in wavs]
            rows = vocode_both_ways(model, wavs, mels, device, args.out, args.repeats, args.precision)
            waveglow = (waveglow_row(wavs[0], args.waveglow_channels, device, args.out, args.repeats, args.seed,
                                     timed) if args.waveglow_channels else None)
        finally:
            torch.set_num_threads(previous_threads)  # main() may be called in-process (tests)

    print_table(rows, waveglow)
    write_json(os.path.join(args.out, "demo.json"), args, device, source, untrained, served, rows, waveglow,
               precisions)
    print(f"\nwrote {2 * (len(wavs) + bool(waveglow))} wavs and demo.json to {args.out}")
    if notice:
        print(notice)


def read_filelist(filelist, data):
    """Wav paths of a filelist (see vocoder_ext.filelist); its errors become UserErrors."""
    try:
        return _read_filelist(filelist, data)
    except (FileNotFoundError, ValueError) as e:  # no filelist, an empty one, a listed wav missing
        raise UserError(str(e)) from e


def build_model(args):
    """-> (model, description of where its weights came from, untrained?)."""
    checkpoint = args.checkpoint or (DEFAULT_CHECKPOINT if os.path.isdir(DEFAULT_CHECKPOINT) else None)
    if checkpoint:
        return HiFiGAN.from_pretrained(checkpoint, config=args.config), f"checkpoint {checkpoint}", False
    config = args.config or DEFAULT_CONFIG
    with torch.random.fork_rng():  # seed only this model, not the caller's random stream
        torch.manual_seed(args.seed)
        model = HiFiGAN(config)
    return model, f"--config {config}, seed {args.seed}", True


def utterance_mel(path, model):
    """The mel the model expects: its config's audio settings (HiFi-GAN's defaults where absent), hop = model's."""
    h = model.config
    sampling_rate = model_sampling_rate(model)
    try:
        y, _ = audio.load_wav(path, sampling_rate=sampling_rate)
        return audio.mel_spectrogram(y, n_fft=h.get("n_fft", 1024), num_mels=h["num_mels"],
                                     sampling_rate=sampling_rate, hop_size=model.hop_length,
                                     win_size=h.get("win_size", 1024), fmin=h.get("fmin", 0),
                                     fmax=h.get("fmax", 8000))
    except (FileNotFoundError, ValueError) as e:  # missing, unreadable, wrong rate, too short for one frame
        raise UserError(f"cannot make the mel of {path}: {str(e).removeprefix('load_wav: ')}") from e


def path_precisions(requested):
    """What each path computes in: the fused one as asked (fp32 where the CPU cannot do bf16: the kernels
    fall back), the eager one always fp32, the reference the fused path is measured against."""
    fused = requested
    if requested == "bf16" and not precision.bf16_kernels():
        fused = "fp32 (bf16 asked for, but this CPU has no AVX512_BF16 or VOCODER_EXT_CPU_ISA is below it)"
    return {"requested": requested, "fused": fused, "eager": "fp32", "waveglow": "fp32"}


@torch.inference_mode()
def vocode_both_ways(model, wavs, mels, device, out_dir, repeats, compute="fp32"):
    """Time each utterance on both paths (the fused one at `compute` precision); write both wavs; -> table rows."""
    os.makedirs(out_dir, exist_ok=True)
    sampling_rate = model_sampling_rate(model)
    rows = []
    for path, mel in zip(wavs, mels):
        mel = mel.unsqueeze(0).to(device)
        with precision_context(compute):
            fused_audio, fused_s = timed_forward(model, mel, True, device, repeats)
        eager_audio, eager_s = timed_forward(model, mel, False, device, repeats)
        name = stem(path)
        audio.save_wav(os.path.join(out_dir, f"{name}_fused.wav"), fused_audio, sampling_rate)
        audio.save_wav(os.path.join(out_dir, f"{name}_eager.wav"), eager_audio, sampling_rate)
        rows.append({"utterance": name, "audio_s": fused_audio.numel() / sampling_rate,
                     "fused_s": fused_s, "eager_s": eager_s,
                     "max_abs_diff": (fused_audio - eager_audio).abs().max().item(),
                     "snr_db": precision.snr_db(fused_audio, eager_audio)})
    return rows


def timed_forward(model, mel, fused, device, repeats):
    """-> (float32 CPU audio [T], median wall seconds of `repeats` forward passes after one warm-up)."""
    model.fused = fused
    return timed(lambda: model(mel)[0, 0].float().cpu(), device, repeats)


def timed(fn, device, repeats):
    """-> (fn()'s output, median wall seconds of `repeats` calls after one warm-up).

    The warm-up runs on the same input: CPU convolutions set themselves up once per new input length,
    a cost that would otherwise land on whichever path happens to run first."""
    out = fn()
    seconds = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        out = fn()
        _synchronize(device)  # CUDA runs asynchronously: wait for the work before reading the clock
        seconds.append(time.perf_counter() - start)
    return out, statistics.median(seconds)


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def total_row(rows):
    return {"utterance": "total", "audio_s": sum(r["audio_s"] for r in rows),
            "fused_s": sum(r["fused_s"] for r in rows), "eager_s": sum(r["eager_s"] for r in rows),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows), "snr_db": worst_snr(rows)}


def worst_snr(rows):
    """The lowest SNR of the utterances (None, exact, when every one is)."""
    values = [r["snr_db"] for r in rows if r.get("snr_db") is not None]
    return min(values) if values else None


def print_table(rows, waveglow=None):
    print(f"{'utterance':<16} {'audio s':>8} {'x RT fused':>11} {'x RT eager':>11} {'max |fused-eager|':>18} "
          f"{'SNR dB':>7}")
    for row in rows + [total_row(rows)]:
        if row["utterance"] == "total":  # its SNR is the worst utterance's
            print("-" * 76)
        _print_row(row)
    if waveglow:
        print(f"\n{waveglow['vocoder']} (Tacotron2 mel, same z on both paths):")
        _print_row(waveglow)


def _print_row(row):
    print(f"{row['utterance']:<16} {row['audio_s']:>8.2f} {row['audio_s'] / row['fused_s']:>11.2f} "
          f"{row['audio_s'] / row['eager_s']:>11.2f} {row['max_abs_diff']:>18.2e} {_snr_cell(row):>7}")


def _snr_cell(row):
    if "snr_db" not in row:  # the WaveGlow row measures only the max difference
        return "-"
    return "exact" if row["snr_db"] is None else f"{row['snr_db']:.1f}"


def write_json(path, args, device, source, untrained, served, rows, waveglow=None, precisions=None):
    def with_speed(row):
        return {**row, "x_realtime_fused": row["audio_s"] / row["fused_s"],
                "x_realtime_eager": row["audio_s"] / row["eager_s"]}

    report = {
        "command": "python -m vocoder_ext " + shlex.join(getattr(args, "argv", sys.argv[1:])),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(),
                    "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "vocoder_ext": __version__,
        "model": {"source": source, "untrained": untrained},
        "precision": precisions or path_precisions("fp32"),
        "backends": served,
        "utterances": [with_speed(r) for r in rows],
        "total": with_speed(total_row(rows)),
        "waveglow": with_speed(waveglow) if waveglow else None,
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
