"""The runtime under the ops: loading the compiled extension vocoder_ext._C (extension.py), which
backend serves which op on which device (backend.py), and the per-shape Triton-vs-cuDNN choice on the
GPU (autotune.py). Nothing here imports the ops, the models or the CLI."""
from . import autotune, backend, extension


def backends():
    """{op: {device_type: backend}} as `auto` would choose now, plus extension and autotune status."""
    report = {"extension": "loaded" if extension.loaded else f"not loaded ({extension.load_error})",
              "requested": backend.requested(), "autotune": autotune.status()}
    for op in backend.OPS:
        report[op] = {}
        for dev in ("cpu", "cuda"):
            try:
                served, why = backend.resolve(op, dev)
                report[op][dev] = served if why is None else f"{served} ({why})"
                if dev == "cuda" and served != "eager" and backend.requested() == "auto" and autotune.enabled():
                    found = backend.cuda_candidates(op)
                    report[op][dev] = (f"{', '.join(found[:-1])} or cuDNN + eager, whichever autotune measured "
                                       f"fastest per shape (default {found[0]})")
            except RuntimeError as e:
                report[op][dev] = f"unavailable ({e})"
    return report
