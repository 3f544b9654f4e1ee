"""The `train` and `gan` sections of the bench: training steps, eager vs fused.

  train  one generator training step (forward, L1 loss against a random target, backward; weight norm
         on): step time, and peak memory measured in a fresh child process per engine.
  gan    the recipe's whole training step (train.hifigan: discriminator step + generator step), eager vs
         --fused: step time, steps/s, peak memory. Needs the `train` package (run from the repo root).
"""
import concurrent.futures
import importlib.util
import multiprocessing
import resource
import statistics
import warnings

import torch
import torch.nn.functional as F

from ...models.config import AUDIO_DEFAULTS
from ...models.hifigan import HiFiGAN
from .timing import fmt, log, round_robin, table, warm_up

MIB = 2 ** 20


# ---- end to end: training step --------------------------------------------------------------
def train_section(configs, settings):
    rows = []
    batch, frames = settings["train_batch"], settings["train_frames"]
    for name, h in configs:
        log(f"train: {name} batch {batch} x {frames} frames")
        torch.manual_seed(settings["seed"])
        models = {"eager": HiFiGAN(h, fused=False).train(), "fused": HiFiGAN(h, fused=True).train()}
        models["fused"].load_state_dict(models["eager"].state_dict())
        hop = models["eager"].hop_length
        gen = torch.Generator().manual_seed(settings["seed"])
        inputs = [(torch.randn(batch, h["num_mels"], frames, generator=gen),
                   2 * torch.rand(batch, 1, frames * hop, generator=gen) - 1) for _ in range(settings["inputs"])]
        engines = {engine: training_step(model) for engine, model in models.items()}
        outputs, first_call, failed = warm_up(engines, inputs[0], settings["warmup"])
        engines = {e: fn for e, fn in engines.items() if e not in failed}
        timings = round_robin(engines, inputs, settings["repeats"])
        del models, engines
        eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
        for engine in ("eager", "fused"):
            row = {"config": name, "batch": batch, "frames": frames, "samples": frames * hop, "engine": engine}
            if engine in timings:
                seconds = statistics.median(timings[engine]["seconds"])
                row.update(status="ok", median_s=seconds, speedup_vs_eager=eager_s / seconds if eager_s else None,
                           max_abs_diff_vs_eager=(outputs[engine] - outputs["eager"]).abs().max().item()
                           if "eager" in outputs else None,
                           first_call_s=first_call[engine], seconds=timings[engine]["seconds"])
                row["memory"] = peak_memory_in_child(_generator_step_setup, h, engine == "fused", batch, frames,
                                                     settings)
            else:
                row["status"] = f"failed: {failed[engine]}"
            rows.append(row)
    return rows


def training_step(model):
    """fn((mel, target)) -> output: one forward + L1 loss + backward, gradients freshly allocated."""
    def fn(inp):
        mel, target = inp
        model.zero_grad(set_to_none=True)
        out = model(mel)
        F.l1_loss(out, target).backward()
        return out.detach()
    return fn


MEMORY_METHOD = ("peak resident memory (RSS) of a fresh spawned process, over its RSS after building the model "
                 "and inputs: the peak is reset there (Linux /proc/self/clear_refs) and read after two training "
                 "steps (VmHWM, /proc/self/status)")
MEMORY_METHOD_FALLBACK = ("peak RSS (getrusage ru_maxrss) of a fresh spawned process after two training steps, "
                          "less its RSS after building the model and inputs (the peak could not be reset, so a "
                          "higher earlier peak would hide the step's)")


def peak_memory_in_child(setup, h, fused, batch, frames, settings):
    """{"peak_increase_mib", "method"} of two training steps, each engine alone in a fresh process.

    setup(h, fused, batch, frames) -> (step function, its input), run in the child (module level, picklable)."""
    context = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(_child_peak_memory, setup, h, fused, batch, frames, settings["threads"],
                               settings["seed"]).result()
    except Exception as e:  # e.g. no way to start a process here: report, keep the timings
        return {"peak_increase_mib": None, "method": f"failed: {type(e).__name__}: {e}"[:300]}


def _generator_step_setup(h, fused, batch, frames):
    model = HiFiGAN(h, fused=fused).train()
    mel = torch.randn(batch, h["num_mels"], frames)
    target = 2 * torch.rand(batch, 1, frames * model.hop_length) - 1
    return training_step(model), (mel, target)


def _child_peak_memory(setup, h, fused, batch, frames, threads, seed):
    warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    step, inp = setup(h, fused, batch, frames)
    baseline = _rss_bytes()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
        method = MEMORY_METHOD
    except OSError:
        method = MEMORY_METHOD_FALLBACK
    for _ in range(2):
        step(inp)
    if method == MEMORY_METHOD:
        peak = _proc_status_kib("VmHWM") * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"peak_increase_mib": max(0, peak - baseline) / MIB, "method": method}


# ---- end to end: the recipe's training step (python -m train.hifigan) -------------------------
GAN_SKIPPED = "skipped: the train package is not importable (run from the repository root)"


# The recipe's flags per engine: the fused generator, real and generated audio in one discriminator pass, the
# fused discriminators; then the same under --amp (bf16 autocast on CPU), eager and all fused.
ALL_FUSED = ("--fused", "--fused_discriminators", "--concat_fwd")
GAN_ENGINES = {"eager": (), "fused": ("--fused",), "fused+concat_fwd": ("--fused", "--concat_fwd"),
               "fused+fused_discriminators+concat_fwd": ALL_FUSED,
               "eager amp": ("--amp",), "fused+fused_discriminators+concat_fwd amp": (*ALL_FUSED, "--amp")}


def gan_section(configs, settings):
    """Trainer.step of train.hifigan (D step + G step, MPD + MSD, all losses), eager vs GAN_ENGINES' flags."""
    if importlib.util.find_spec("train") is None or importlib.util.find_spec("train.hifigan") is None:
        return [{"status": GAN_SKIPPED}]
    rows = []
    batch, frames = settings["gan_batch"], settings["gan_frames"]
    for name, h in configs:
        log(f"gan: {name} batch {batch} x {frames} frames")
        trainers = {engine: _gan_step_setup(h, flags, batch, frames, settings["seed"])[0]
                    for engine, flags in GAN_ENGINES.items()}  # same seed: same initial weights
        inputs = [_gan_input(h, batch, frames, settings["seed"] + i) for i in range(settings["inputs"])]
        outputs, first_call, failed = warm_up(trainers, inputs[0], settings["warmup"])
        engines = {e: fn for e, fn in trainers.items() if e not in failed}
        timings = round_robin(engines, inputs, settings["repeats"])
        del trainers, engines
        eager_s = statistics.median(timings["eager"]["seconds"]) if "eager" in timings else None
        eager_amp_s = statistics.median(timings["eager amp"]["seconds"]) if "eager amp" in timings else None
        for engine, flags in GAN_ENGINES.items():
            row = {"config": name, "batch": batch, "frames": frames, "samples": frames * h["hop_size"],
                   "engine": engine, "flags": " ".join(flags)}
            if engine in timings:
                seconds = statistics.median(timings[engine]["seconds"])
                row.update(status="ok", median_s=seconds, steps_per_s=1 / seconds,
                           speedup_vs_eager=eager_s / seconds if eager_s else None,
                           speedup_vs_eager_amp=eager_amp_s / seconds if "--amp" in flags and eager_amp_s else None,
                           first_step_losses=outputs[engine].tolist(), first_call_s=first_call[engine],
                           seconds=timings[engine]["seconds"])
                row["memory"] = peak_memory_in_child(_gan_step_setup, h, flags, batch, frames, settings)
            else:
                row["status"] = f"failed: {failed[engine]}"
            rows.append(row)
    return rows


def _gan_step_setup(h, flags, batch, frames, seed=0):
    """A train.hifigan Trainer (seeded weights, the recipe's `flags`) -> (fn(micro-batch) -> [D loss, G loss],
    an input)."""
    from train.distributed import Context
    from train.hifigan import Trainer, build_parser
    args = build_parser().parse_args(["-o", "unused", *flags, "--seed", str(seed)])
    trainer = Trainer(args, Context("cpu"), {**AUDIO_DEFAULTS, **h})

    def step(inp):
        logs = trainer.step([inp])
        return torch.stack([logs["loss_disc_all"], logs["loss_gen_all"]]).detach()
    return step, _gan_input(h, batch, frames, seed)


def _gan_input(h, batch, frames, seed):
    """(mel, audio, loss mel) of random audio, as the training data pipeline gives them."""
    from ...audio import mel_spectrogram
    h = {**AUDIO_DEFAULTS, **h}
    gen = torch.Generator().manual_seed(seed)
    audio = 2 * torch.rand(batch, frames * h["hop_size"], generator=gen) - 1
    mels = [mel_spectrogram(audio, h["n_fft"], h["num_mels"], h["sampling_rate"], h["hop_size"], h["win_size"],
                            h["fmin"], fmax) for fmax in (h["fmax"], h["fmax_for_loss"])]
    return mels[0], audio.unsqueeze(1), mels[1]


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _rss_bytes():
    try:
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def render_gan(rows, s):
    header = ["## GAN training step of the recipe: `python -m train.hifigan`, eager vs its fused flags", "",
              "train.hifigan's Trainer.step: the discriminator step (MPD + MSD on G(x).detach()) then the generator "
              "step (LSGAN + 2 x feature matching + 45 x mel L1, AdamW), fp32, or bf16 autocast where the engine says amp "
              "(--amp). Every engine starts from the same seeded weights. fused = --fused (the generator's ops); "
              "+concat_fwd = real and generated audio in one discriminator pass; +fused_discriminators = the "
              "discriminators on conv1d_lrelu. Speedups against fp32 eager, and the amp engines against eager amp "
              "too. Peak memory as in the table above.", ""]
    if rows and rows[0]["status"] == GAN_SKIPPED:
        return "\n".join(header + [GAN_SKIPPED])
    body = []
    for r in rows:
        if r["status"] == "ok":
            mem = r["memory"]["peak_increase_mib"]
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], fmt(1e3 * r["median_s"]),
                         fmt(r["steps_per_s"]), fmt(r["speedup_vs_eager"]),
                         fmt(r["speedup_vs_eager_amp"]) if r["speedup_vs_eager_amp"] else "",
                         fmt(mem) if mem is not None else r["memory"]["method"]])
        else:
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], r["status"], "", "", "", ""])
    return "\n".join(header + [table(["config", "batch x samples", "engine", "median step ms", "steps/s",
                                     "speedup vs eager", "vs eager amp", "peak memory MiB"], body)])


def render_train(rows, s):
    body = []
    for r in rows:
        if r["status"] == "ok":
            mem = r["memory"]["peak_increase_mib"]
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], fmt(1e3 * r["median_s"]),
                         fmt(r["speedup_vs_eager"]), fmt(mem) if mem is not None else r["memory"]["method"],
                         fmt(r["max_abs_diff_vs_eager"], 2)])
        else:
            body.append([r["config"], f"{r['batch']} x {r['samples']}", r["engine"], r["status"], "", "", ""])
    methods = sorted({r["memory"]["method"] for r in rows if r.get("memory", {}).get("peak_increase_mib") is not None})
    return "\n".join([
        "## Training step: generator forward + L1 loss + backward, weight norm on",
        "",
        "eager = HiFiGAN(fused=False), fused = HiFiGAN(fused=True), same weights, train mode, gradients set to None "
        "before each step. Peak memory: " + ("; ".join(methods) if methods else "-") + ".",
        "",
        table(["config", "batch x samples", "engine", "median step ms", "speedup vs eager", "peak memory MiB",
               "max abs diff vs eager"], body),
    ])
