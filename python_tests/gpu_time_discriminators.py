"""The recipe's whole GAN step (train.hifigan's Trainer.step: D step + G step) on a GPU, eager vs the fused
flags, fp32 and --amp (fp16 on CUDA, bf16 autocast on CPU): `python python_tests/gpu_time_discriminators.py`
(run by gpu_session.sh; `--device cpu` times the same on CPU, without peak memory).

CUDA-event medians of --repeats steps after --warmup, the engines round-robin in one process; peak memory
per engine from torch.cuda.max_memory_allocated over its own steps (reset before each engine's round)."""
import argparse
import statistics
import sys
import time

import torch

sys.path.insert(0, ".")  # train/ from the repo root
ENGINES = {"eager": [], "fused": ["--fused"], "fused+disc": ["--fused", "--fused_discriminators"],
           "fused+disc+concat": ["--fused", "--fused_discriminators", "--concat_fwd"]}


def timed(fn, cuda):
    """Milliseconds of fn(): CUDA events around it (device synchronized before and after), else wall clock."""
    if not cuda:
        t0 = time.perf_counter()
        fn()
        return 1e3 * (time.perf_counter() - t0)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def warm_up(trainer, batch, steps, most=40):
    """`steps` steps, then on until both GradScalers kept their scale for two steps in a row (at most
    `most`): while fp16 gradients overflow, the per-shape choice stores nothing (a non-finite reference
    decides nothing), so stopping earlier would leave its timing races inside the timed steps."""
    scales = lambda: (trainer.scaler_g.get_scale(), trainer.scaler_d.get_scale())  # noqa: E731 (1.0 when off)
    steady = 0
    for i in range(most):
        before = scales()
        trainer.step(batch)
        steady = steady + 1 if scales() == before else 0
        if i + 1 >= steps and steady >= 2:
            return


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="v1")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=32)  # 32 frames x 256 = 8192 samples, the recipe's segment
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cuda", help="cpu: a smoke test of this script (wall clock, no peak memory)")
    args = p.parse_args()
    from train.distributed import Context
    from train.hifigan import Trainer, build_parser
    from vocoder_ext.cli.bench.training import _gan_input
    from vocoder_ext.models.config import AUDIO_DEFAULTS, resolve_config
    h = {**AUDIO_DEFAULTS, **resolve_config(args.config)}
    ctx = Context(args.device)
    cuda = ctx.device.type == "cuda"
    mel, audio, mel_loss = (t.to(ctx.device) for t in _gan_input(h, args.batch, args.frames, 0))
    print(f"{torch.cuda.get_device_name() if cuda else 'CPU'}, {args.config} batch {args.batch} x "
          f"{args.frames * h['hop_size']} samples")
    print("| precision | engine | ms/step | vs eager | peak GiB |\n|---|---|---|---|---|")
    for amp in (False, True):
        trainers = {}
        for name, flags in ENGINES.items():
            targs = build_parser().parse_args(["-o", "unused", "--seed", "0", *flags, *(["--amp"] if amp else [])])
            trainers[name] = Trainer(targs, ctx, h)
        ms, peak = {n: [] for n in trainers}, {}
        for name, trainer in trainers.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            warm_up(trainer, [(mel, audio, mel_loss)], args.warmup)
            peak[name] = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else float("nan")
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                ms[name].append(timed(lambda: trainer.step([(mel, audio, mel_loss)]), cuda))
        base = statistics.median(ms["eager"])
        for name in trainers:
            m = statistics.median(ms[name])
            print(f"| {('amp fp16' if cuda else 'amp bf16') if amp else 'fp32'} | {name} | {m:.1f} | {base / m:.2f}x | {peak[name]:.2f} |")
        del trainers


if __name__ == "__main__":
    main()
