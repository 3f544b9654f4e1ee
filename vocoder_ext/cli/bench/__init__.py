"""`python -m vocoder_ext bench`: kernel microbenchmarks and end-to-end speed tables.

Seven sections, each a Markdown table on stdout; together in OUT/bench.md, and every raw timing in
OUT/bench.json (with the settings and the machine):

  ops    lrelu_conv1d (with a residual, as in the resblocks) at each distinct (C, T, K, dilation) of each
         config's upsampling stages, and lrelu_conv_transpose1d at each upsampling layer: the eager
         reference (`vocoder_ext.ops.*_ref`) vs the registered op (`torch.ops.vocoder_ext.*`, served by
         whatever backend `vocoder_ext.backends()` names). ms, speedup, GFLOP/s (2*C_in*C_out*K*T*B / time).
  e2e    the generator (weight norm removed, eval, no autograd), per config and batch size:
         eager (HiFiGAN(fused=False)), torch.compile (inductor with freezing, of the eager model),
         ONNX Runtime and OpenVINO (fp32, from one ONNX export of the eager model per config) and
         fused (HiFiGAN(fused=True)); and in bf16 fused_bf16 (the fused model inside compute_in_bf16()),
         eager_bf16 (the eager model .to(torch.bfloat16)) and openvino_bf16 (bf16 precision hint), each
         with its SNR against the fp32 eager output (--precision bf16|fp32 keeps one precision's engines).
         x real-time = audio seconds / wall seconds; kHz = output samples per second / 1000.
  train  one generator training step (forward, L1 loss against a random target, backward; weight norm
         on), eager vs fused: step time, and peak memory measured in a fresh child process per engine.
  gan    the recipe's whole training step (train.hifigan: discriminator step + generator step), eager vs
         --fused: step time, steps/s, peak memory. Needs the `train` package (run from the repo root).
  disc   the discriminators alone (MPD + MSD forward + backward at the gan section's batch, eager vs
         fused=True), then each of their conv layers: conv1d_lrelu's forward and backward, eager vs the
         op, with GFLOP/s (`--disc-only` runs just this section).
  fidelity  only with --fidelity (and alone): bf16 vs fp32 audio of the demo checkpoint and random
         --configs models on the validation utterances: SNR (min, mean) and log-mel L1 (fidelity.py).
  stream only with --stream-only: vocoder_ext.stream's time to first audio and speed per chunk size
         against the whole-utterance forward, per config (streaming.py).

--static runs none of these, only the static GPU resource report of the Triton kernels (registers,
shared memory, spills per kernel/variant/autotune config/target, from an ahead-of-time compile and
ptxas -v; no GPU needed), then of the CUDA C++ kernels (per kernel instance and --cuda-archs arch, from
nvcc -Xptxas -v; and which archs, kernels and PTX the installed _C holds): OUT/static.md and
OUT/static.json, see vocoder_ext/cli/bench/static.py and static_cuda.py.

--waveglow runs none of these, only the WaveGlow tables (NVIDIA's config, --waveglow-channels, default 256):
its ops alone (wn_layer, conditioning, affine_coupling, invertible_conv1x1; eager reference vs fused op: ms,
speedup, GFLOP/s), end-to-end inference at --waveglow-batches (nvidia-equivalent eager WaveGlow(fused=False),
torch.compile of it, fused: x real-time, GFLOP/s), one training step with peak memory (eager vs fused), and
the fp16/bf16 error: OUT/bench_waveglow.md and OUT/bench_waveglow.json, see vocoder_ext/cli/bench/waveglow.py.

--device cuda runs none of these, only the end-to-end inference table on a GPU (eager, torch.compile
reduce-overhead, fused, and cuda = the fused model with VOCODER_EXT_BACKEND=cuda; fp32 and fp16):
OUT/bench_cuda.md and OUT/bench_cuda.json, see vocoder_ext/cli/bench/cuda.py.

How it times: every engine first runs --warmup times (torch.compile compiles then; that time is kept
in the JSON as `first_call_s`, never in the medians). Then come --repeats rounds; each round runs every
engine once, one after the other (round-robin), so slow drifts of a shared machine hit all engines
alike. Round r feeds input r mod --inputs (a few different random inputs of the same shape). The table
shows medians; the JSON has every sample. Timings are wall clock (time.perf_counter) on the CPU.

The modules of this package, by what they measure: ops.py, inference.py (e2e), training.py (train,
gan), discriminators.py (disc), fidelity.py (fidelity), streaming.py (stream), cuda.py + cuda_markdown.py +
forced.py (--device cuda), static.py + static_compile.py (--static, Triton) + static_cuda.py, static_cuda_parse.py,
static_cuda_binary.py (--static, CUDA C++; ptxas_log.py for both), waveglow.py + waveglow_ops.py,
waveglow_infer.py, waveglow_train.py, waveglow_common.py (--waveglow); options.py holds the settings and
timing.py the helpers they all share (timing discipline, machine info, Markdown).
"""
import datetime
import warnings

import torch

from ...models.config import resolve_config
from ...runtime import backends
from ...runtime.backend import OPS
from ..common import UserError, write_outputs
from ..precision import bf16_kernels
from . import cuda, waveglow
from .discriminators import disc_section, render_disc
from .fidelity import fidelity_section, render_fidelity
from .inference import ENGINES, QUICK_ENGINES, e2e_section, render_e2e
from .ops import ops_section, render_ops
from .options import DEFAULT_OUT, FULL, PRECISION_CHOICES, QUICK, resolve_settings
from .streaming import render_stream, stream_section
from .timing import config_name, load_average, machine_info, versions
from .training import gan_section, render_gan, render_train, train_section


def add_arguments(p):
    p.add_argument("--configs", help=f"comma-separated presets or config.json paths (default: {FULL['configs']})")
    p.add_argument("--batches", help=f"comma-separated batch sizes for the e2e table (default: {FULL['batches']})")
    p.add_argument("--seconds", type=float,
                   help=f"audio seconds per item; sets T of the op shapes too (default: {FULL['seconds']:g})")
    p.add_argument("--repeats", type=int, help=f"timed rounds; the median is reported (default: {FULL['repeats']})")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each engine first (default: 1)")
    p.add_argument("--inputs", type=int, default=3,
                   help="different random inputs of each shape, used in turn (default: 3)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads, and the threads of "
                                                          "ONNX Runtime and OpenVINO (default: 2)")
    p.add_argument("--engines", help=f"comma-separated subset of {','.join(ENGINES)} for the e2e table; with "
                                     f"--waveglow, of eager,compile,fused; with --device cuda, of "
                                     f"{','.join(cuda.CUDA_ENGINES)} (default: all; with --quick: "
                                     f"{','.join(QUICK_ENGINES)})")
    p.add_argument("--precision", choices=PRECISION_CHOICES,
                   help="keep only the e2e engines that compute in this precision: fp32 (eager, compile, "
                        "onnxruntime, openvino, fused) or bf16 (fused_bf16, eager_bf16, openvino_bf16, plus "
                        "eager, the fp32 reference of their SNR); applied to --engines or the default set. "
                        "Default: all, both precisions in the same round-robin. The other sections are fp32 "
                        "and do not take it")
    p.add_argument("--op-batch", type=int, default=1, help="batch size B of the op shapes (default: 1)")
    p.add_argument("--train-batch", type=int, help=f"training-step batch (default: {FULL['train_batch']})")
    p.add_argument("--train-frames", type=int,
                   help=f"training-step mel frames per item (default: {FULL['train_frames']}, i.e. 8192 samples "
                        f"at hop 256)")
    p.add_argument("--gan-batch", type=int, help=f"batch of the recipe's training step (default: {FULL['gan_batch']})")
    p.add_argument("--gan-frames", type=int,
                   help=f"mel frames per item of the recipe's training step (default: {FULL['gan_frames']})")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--ops-only", action="store_true", help="only the op tables")
    only.add_argument("--disc-only", action="store_true",
                      help="only the discriminator table (MPD + MSD eager vs fused, whole and per layer)")
    only.add_argument("--train-only", action="store_true",
                      help="only the training tables: train, gan and disc")
    only.add_argument("--e2e-only", action="store_true", help="only the end-to-end tables (inference, training)")
    only.add_argument("--fidelity", action="store_true",
                      help="only the bf16 fidelity table: the demo checkpoint and random --configs models vocode "
                           "the validation utterances at fp32 and at bf16 (fused_bf16, fused bf16 tensors, "
                           "eager_bf16); SNR against fp32 (min, mean) and log-mel L1 (vocoder_ext/cli/bench/"
                           "fidelity.py)")
    only.add_argument("--stream-only", action="store_true",
                      help="only the streaming table: vocoder_ext.stream's time to first audio and speed per chunk "
                           "size (8, 16, 32, 64 frames) against the whole-utterance forward, per --configs "
                           "(vocoder_ext/cli/bench/streaming.py)")
    only.add_argument("--static", action="store_true",
                      help="only the static GPU resource report of the Triton kernels (registers, shared "
                           "memory, spills from an ahead-of-time compile for sm_80/sm_90 + ptxas -v; no GPU "
                           "needed) and of the CUDA C++ kernels (nvcc -Xptxas -v per --cuda-archs, and what "
                           "the installed _C holds): OUT/static.md and OUT/static.json "
                           "(vocoder_ext/cli/bench/static.py, static_cuda.py)")
    only.add_argument("--waveglow", action="store_true",
                      help=f"only the WaveGlow tables: its ops eager vs fused, inference (--seconds, default "
                           f"{waveglow.DEFAULT_SECONDS:g}) nvidia-equivalent eager vs torch.compile vs fused, a "
                           f"training step with peak memory, and the fp16/bf16 error: OUT/bench_waveglow.md and "
                           f".json (vocoder_ext/cli/bench/waveglow.py)")
    waveglow.add_arguments(p)  # --waveglow-channels, --waveglow-batches, --waveglow-train-batch/-samples
    p.add_argument("--cuda-archs", help="with --static: the archs the CUDA C++ kernels are compiled for, "
                                        "comma-separated (default: 80,86,89,90; sm_90, 9.0 and 90a also do)")
    p.add_argument("--fidelity-utterances", type=int,
                   help="with --fidelity: only the first N validation utterances (default: all)")
    p.add_argument("--no-train", action="store_true", help="leave out the training-step tables")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and inputs (default: 0)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder for bench.md and bench.json (default: {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true",
                   help="tiny run for tests: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " (each unless given)")
    cuda.add_arguments(p)  # --device (cpu: this bench; cuda: cuda.py's GPU table), --dtypes, --tf32


def run(args):
    if getattr(args, "cuda_archs", None) is not None and not getattr(args, "static", False):
        raise UserError("--cuda-archs only applies to --static (the archs its CUDA C++ kernels are compiled for)")
    if getattr(args, "precision", None) is not None and (
            getattr(args, "device", "cpu") != "cpu" or any(getattr(args, name, False) for name in (
                "static", "waveglow", "ops_only", "disc_only", "train_only", "fidelity", "stream_only"))):
        raise UserError("--precision selects the CPU end-to-end table's engines; this run has no such table")
    if getattr(args, "fidelity_utterances", None) is not None and not getattr(args, "fidelity", False):
        raise UserError("--fidelity-utterances only applies to --fidelity")
    if getattr(args, "device", "cpu") != "cpu":  # the GPU table: vocoder_ext/cli/bench/cuda.py
        cuda.run_cuda(args)
        return
    if getattr(args, "static", False):
        # Imported here, not at the top: the static report's child process, `python -m vocoder_ext.cli.bench.static`,
        # imports this package first, and runpy warns when a package has already imported the module it runs.
        from .static import run_static
        from .static_cuda import DEFAULT_ARCHS, parse_archs
        try:
            cuda_archs = parse_archs(args.cuda_archs) if getattr(args, "cuda_archs", None) else DEFAULT_ARCHS
        except ValueError as e:
            raise UserError(f"--cuda-archs: {e}") from None
        run_static(args.out, cuda_archs=cuda_archs)
        return
    settings = resolve_settings(args)
    if getattr(args, "waveglow", False) and args.seconds is None and not args.quick:
        settings["seconds"] = waveglow.DEFAULT_SECONDS
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings["threads"])
    try:
        with warnings.catch_warnings():
            # The header says which backend serves each op; the per-op fallback warning would only repeat it.
            warnings.filterwarnings("ignore", message="vocoder_ext: no fused kernel", category=RuntimeWarning)
            if getattr(args, "waveglow", False):
                waveglow.run_waveglow(settings, args)
                return
            report = run_sections(settings)
    finally:
        torch.set_num_threads(previous_threads)  # main() may be called in-process (tests)
    write_outputs(settings["out"], "bench", render_markdown(report), report)


def run_sections(settings):
    configs = [(config_name(c), resolve_config(c)) for c in settings["configs"]]
    report = {"command": settings["command"],
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "settings": settings, "machine": machine_info(), "versions": versions(),
              "backends": {op: backends()[op]["cpu"] for op in OPS}, "bf16_kernels": bf16_kernels(),
              "load_average": {"start": load_average()}}
    if "ops" in settings["sections"]:
        report["ops"] = ops_section(configs, settings)
    if "e2e" in settings["sections"]:
        report["e2e"] = e2e_section(configs, settings)
    if "train" in settings["sections"]:
        report["train"] = train_section(configs, settings)
    if "gan" in settings["sections"]:
        report["gan"] = gan_section(configs, settings)
    if "disc" in settings["sections"]:
        report["disc"] = disc_section(settings)
    if "fidelity" in settings["sections"]:
        report["fidelity"] = fidelity_section(configs, settings)
    if "stream" in settings["sections"]:
        report["stream"] = stream_section(configs, settings)
    report["load_average"]["end"] = load_average()
    return report


def render_markdown(report):
    s, m, v = report["settings"], report["machine"], report["versions"]
    optional = ", ".join(f"{p} {v[p] or 'not installed'}" for p in ("onnx", "onnxscript", "onnxruntime", "openvino"))
    lines = [
        "# vocoder_ext benchmark",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}",
        f"- machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable), "
        f"torch CPU capability {m['torch_cpu_capability']}; {m['platform']}",
        f"- threads: {s['threads']} (torch.set_num_threads; ONNX Runtime intra-op threads; OpenVINO "
        f"INFERENCE_NUM_THREADS)",
        f"- versions: vocoder_ext {v['vocoder_ext']}, torch {v['torch']}, python {m['python']}; {optional}",
        f"- load average (1, 5, 15 min) at start: {report['load_average']['start']}, at end: "
        f"{report['load_average']['end']} (other work on the machine skews timings; the JSON has every sample)",
        "- fused ops served on CPU by: " + "; ".join(f"{op}: {b}" for op, b in report["backends"].items()),
        "- bf16 compute (fused_bf16, bf16 tensors): " + (
            "the CPU kernels multiply in bf16 (AVX512_BF16)" if report["bf16_kernels"] else
            "no AVX512_BF16 here (or VOCODER_EXT_CPU_ISA below it): the CPU kernels compute in fp32"),
        f"- timing: median of {s['repeats']} samples after {s['warmup']} warm-up run(s); engines interleaved "
        f"round-robin within each repeat; {s['inputs']} different random inputs of each shape used in turn",
    ]
    if "ops" in report:
        lines += ["", render_ops(report["ops"], s)]
    if "e2e" in report:
        lines += ["", render_e2e(report["e2e"], s)]
    if "train" in report:
        lines += ["", render_train(report["train"], s)]
    if "gan" in report:
        lines += ["", render_gan(report["gan"], s)]
    if "disc" in report:
        lines += ["", render_disc(report["disc"], s)]
    if "fidelity" in report:
        lines += ["", render_fidelity(report["fidelity"], s)]
    if "stream" in report:
        lines += ["", render_stream(report["stream"], s)]
    return "\n".join(lines)
