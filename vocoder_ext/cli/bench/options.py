"""The bench's settings: the defaults (FULL, and QUICK for --quick) and the command line -> the settings
dict every section reads (also what bench.json records). The GPU table (cuda.py) validates its shared
options with `resolve_settings` too.
"""
import os
import shlex

from ...models.config import ConfigError, resolve_config
from ..common import UserError
from .inference import ENGINES, QUICK_ENGINES, engine_precision

DEFAULT_OUT = os.path.join("out", "bench")

# Settings that --quick changes (unless given explicitly): tiny sizes, for tests.
FULL = {"configs": "v1,v2,v3", "batches": "1,4", "seconds": 10.0, "repeats": 5,
        "engines": ",".join(ENGINES), "train_batch": 4, "train_frames": 32,
        "gan_batch": 2, "gan_frames": 32, "fidelity_utterances": None}
QUICK = {"configs": "v2", "batches": "1", "seconds": 0.2, "repeats": 2,
         "engines": ",".join(QUICK_ENGINES), "train_batch": 1, "train_frames": 8,
         "gan_batch": 1, "gan_frames": 8, "fidelity_utterances": 2}
# --precision keeps the e2e engines of one precision; "all", the default, keeps both.
PRECISION_CHOICES = ("fp32", "bf16", "all")


def resolve_settings(args):
    """The command line -> a plain dict of every setting (also what bench.json records)."""
    defaults = QUICK if args.quick else FULL

    def pick(name):
        value = getattr(args, name)
        return defaults[name] if value is None else value

    engines = list(dict.fromkeys(e.strip() for e in pick("engines").split(",") if e.strip()))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise UserError(f"--engines: expected a comma-separated subset of {','.join(ENGINES)}, got {pick('engines')!r}")
    precision = getattr(args, "precision", None) or "all"
    if precision != "all":
        engines = [e for e in engines if engine_precision(e) == precision]
        if not engines:
            raise UserError(f"--precision {precision}: none of the e2e engines {pick('engines')} computes in "
                            f"{precision}")
    if "eager" not in engines:
        engines.insert(0, "eager")  # the reference every other engine is compared with
    configs = [c.strip() for c in pick("configs").split(",") if c.strip()]
    if not configs:
        raise UserError("--configs: expected at least one config")
    for name, minimum in (("threads", 1), ("warmup", 0), ("inputs", 1), ("op_batch", 1)):
        if getattr(args, name) < minimum:
            raise UserError(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(args, name)}")
    for name in ("repeats", "train_batch", "train_frames", "gan_batch", "gan_frames", "fidelity_utterances"):
        if pick(name) is not None and pick(name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {pick(name)}")
    if not pick("seconds") > 0:
        raise UserError(f"--seconds must be positive, got {pick('seconds')}")
    for c in configs:  # fail on a bad config now, not after minutes of benchmarking
        try:
            resolve_config(c)
        except ConfigError as e:
            raise UserError(str(e)) from e
    return {
        "configs": configs, "batches": positive_ints("batches", pick("batches")), "seconds": float(pick("seconds")),
        "repeats": pick("repeats"), "warmup": args.warmup, "inputs": args.inputs, "threads": args.threads,
        "engines": engines, "op_batch": args.op_batch, "train_batch": pick("train_batch"),
        "train_frames": pick("train_frames"), "gan_batch": pick("gan_batch"), "gan_frames": pick("gan_frames"),
        "seed": args.seed, "out": args.out, "quick": args.quick, "precision": precision,
        "fidelity_utterances": pick("fidelity_utterances"),
        "sections": sections(args),
        "command": "python -m vocoder_ext " + shlex.join(getattr(args, "argv", None) or ["bench"]),
    }


def positive_ints(name, text):
    """"1,4" -> [1, 4]; UserError naming --name otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"--{name}: expected positive integers, got {text!r}")
    return values


def sections(args):
    if args.ops_only:
        return ["ops"]
    if getattr(args, "disc_only", False):
        return ["disc"]
    if getattr(args, "fidelity", False):
        return ["fidelity"]
    if getattr(args, "stream_only", False):
        return ["stream"]
    if getattr(args, "train_only", False):
        return ["train", "gan", "disc"]
    chosen = ["e2e"] if args.e2e_only else ["ops", "e2e"]
    return chosen if args.no_train else chosen + ["train", "gan", "disc"]
