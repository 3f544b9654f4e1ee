"""The `stream` section of the bench (`--stream-only`): vocoder_ext.stream's latency per chunk size against
vocoding the whole utterance at once, for each config (fused model, weight norm removed, batch 1).

Each row feeds the whole mel to a Stream in pieces of `chunk` frames, as fast as it takes them, and times
the first audio out (the compute behind it: in a service the first chunk and its lookahead must also have
arrived) and the whole utterance. Whole-utterance and chunk rows run round-robin in one process.
"""
import statistics
import time

import torch

from ...models.hifigan import HiFiGAN
from ...streaming import Stream, receptive_field
from ..common import DEFAULT_SAMPLING_RATE
from .timing import fmt, frames_for, log, table

CHUNKS = (8, 16, 32, 64)


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
    return rows


def render_stream(rows, settings):
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
    return "\n".join(lines + [table(["config", "chunk frames", "lookahead frames", "first audio ms", "total ms",
                                     "x real-time", "vs whole", "exact"], body)])
