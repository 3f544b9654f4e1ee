"""The `stream` section of the bench (`--stream-only`): vocoder_ext.stream's latency per chunk size against
vocoding the whole utterance at once, for each config (fused model, weight norm removed, batch 1).

Each row feeds the whole mel to a Stream in pieces of `chunk` frames, as fast as it takes them, and times
the first audio out (the compute behind it: in a service the first chunk and its lookahead must also have
arrived) and the whole utterance. Whole-utterance and chunk rows run round-robin in one process.

Then what a lookahead below the exact right context costs in fidelity: the demo checkpoint (trained; skipped
where absent) streams the first validation utterance at each lookahead, SNR against its whole-utterance output.
"""
import os
import statistics
import time

import torch

from ... import audio
from ...filelist import read_filelist
from ...models.hifigan import HiFiGAN
from ...streaming import Stream, receptive_field, stream
from ..common import DEFAULT_SAMPLING_RATE
from ..precision import snr_db
from .fidelity import DATA, DEMO_FOLDER, FILELIST, demo_checkpoint
from .timing import fmt, frames_for, log, table

CHUNKS = (8, 16, 32, 64)
LOOKAHEAD_CHUNK = 16


def _whole(model, mel):
    start = time.perf_counter()
    audio = model(mel)
    seconds = time.perf_counter() - start
    return audio, seconds, seconds


def _streamed(model, mel, chunk):
    """-> (audio, seconds to the first audio, seconds to the last)."""
    start, first, pieces = time.perf_counter(), None, []
    state = Stream(model, chunk)
    for piece in torch.split(mel, chunk, 2):
        audio = state.push(piece)
        if audio.shape[2]:
            pieces.append(audio)
            first = first if first is not None else time.perf_counter() - start
    pieces.append(state.flush())
    total = time.perf_counter() - start
    return torch.cat(pieces, 2), (first if first is not None else total), total


def stream_section(configs, settings):
    rows = []
    for name, h in configs:
        torch.manual_seed(settings["seed"])
        model = HiFiGAN(h, fused=True).remove_weight_norm().eval()
        frames = frames_for(h, settings["seconds"])
        mel = torch.randn(1, h["num_mels"], frames, generator=torch.Generator().manual_seed(settings["seed"]))
        runs = {"whole": lambda: _whole(model, mel)}
        runs.update({chunk: (lambda c=chunk: _streamed(model, mel, c)) for chunk in CHUNKS})
        log(f"stream: {name}, {frames} frames, chunks {', '.join(map(str, CHUNKS))}")
        samples = {key: ([], []) for key in runs}
        with torch.inference_mode():
            reference = runs["whole"]()[0]
            exact = {key: torch.equal(run()[0], reference) for key, run in runs.items()}  # also the warm-up
            for _ in range(settings["repeats"]):
                for key, run in runs.items():
                    _, first, total = run()
                    samples[key][0].append(first)
                    samples[key][1].append(total)
        audio_seconds = frames * model.hop_length / h.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        whole = statistics.median(samples["whole"][1])
        _, right = receptive_field(model)
        for key, (firsts, totals) in samples.items():
            total = statistics.median(totals)
            rows.append({"config": name, "chunk_frames": key, "lookahead_frames": None if key == "whole" else right,
                         "first_audio_s": statistics.median(firsts), "total_s": total,
                         "x_real_time": audio_seconds / total, "vs_whole": total / whole, "exact": exact[key],
                         "first_audio_samples": firsts, "total_samples": totals, "audio_seconds": audio_seconds})
    return {"latency": rows, "lookahead": lookahead_rows()}


@torch.inference_mode()
def lookahead_rows():
    checkpoint = demo_checkpoint()
    if not checkpoint or not os.path.isfile(FILELIST):
        return [{"status": f"skipped: no generator in {DEMO_FOLDER}/ or no {FILELIST} (run from the repository root)"}]
    model = HiFiGAN.from_pretrained(checkpoint, fused=True).remove_weight_norm().eval()
    path = read_filelist(FILELIST, DATA)[0]
    wav, _ = audio.load_wav(path, sampling_rate=model.sampling_rate)
    mel = model.mel_spectrogram(wav)
    whole = model(mel)
    _, right = receptive_field(model)
    log(f"stream: lookahead 0..{right} on the demo checkpoint, {os.path.basename(path)}")
    rows = []
    for lookahead in sorted({0, 1, 2, 4, 8, right // 2, right}):
        out = torch.cat(list(stream(model, torch.split(mel, LOOKAHEAD_CHUNK, 2), LOOKAHEAD_CHUNK, lookahead)), 2)
        rows.append({"source": checkpoint, "utterance": path, "chunk_frames": LOOKAHEAD_CHUNK,
                     "lookahead_frames": lookahead, "exact": torch.equal(out, whole),
                     "snr_db": snr_db(out, whole), "max_abs_error": (out - whole).abs().max().item()})
    return rows


def render_stream(report, settings):
    rows = report["latency"]
    lines = [f"## Streaming: time to first audio and speed per chunk size, {settings['seconds']:g} s of audio, "
             "batch 1", "",
             "vocoder_ext.stream on the fused model (weight norm removed, inference mode), the mel pushed in pieces "
             "of `chunk` frames as fast as the stream takes them; lookahead = the model's exact right context "
             "(receptive_field). first audio = compute time until the first audio comes out (in a service the "
             "first chunk and its lookahead must also have arrived); total = the whole utterance; vs whole = "
             "total / the whole-utterance forward's time (the cost of the recomputed context); exact = the joined "
             "audio equals the whole-utterance output bit for bit. Medians of the repeats, rows round-robin.", ""]
    body = [[r["config"], r["chunk_frames"], "-" if r["lookahead_frames"] is None else r["lookahead_frames"],
             fmt(r["first_audio_s"] * 1e3), fmt(r["total_s"] * 1e3), fmt(r["x_real_time"]), fmt(r["vs_whole"]),
             "yes" if r["exact"] else "NO"] for r in rows]
    lines += [table(["config", "chunk frames", "lookahead frames", "first audio ms", "total ms", "x real-time",
                     "vs whole", "exact"], body)]
    looks = report["lookahead"]
    lines += ["", f"A shorter lookahead, chunks of {LOOKAHEAD_CHUNK} frames, against the whole-utterance output:"]
    if looks and "status" in looks[0]:
        return "\n".join(lines + ["", looks[0]["status"]])
    lines += [f"the demo checkpoint ({looks[0]['source']}) on {os.path.basename(looks[0]['utterance'])}.", ""]
    body = [[r["lookahead_frames"], "exact" if r["snr_db"] is None else fmt(r["snr_db"]), fmt(r["max_abs_error"])]
            for r in looks]
    return "\n".join(lines + [table(["lookahead frames", "SNR dB vs whole", "max abs error"], body)])
