"""Training entry points, run from the repository root: `python -m train.hifigan` and `python -m train.waveglow`.

What both recipes share: data.py (segments and mels, both front ends), sampler.py (who trains on what
each epoch), distributed.py (torchrun's DDP), checkpoints.py (atomic pairs, resume), monitor.py (tqdm,
TensorBoard, JSON lines), loop.py (the step loop: logging, validation and checkpoints on time) and
cli.py (usage errors, flag checks, the exit status).
"""
