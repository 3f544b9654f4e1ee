"""Training entry points, run from the repository root: `python -m train.hifigan` (see train/hifigan.py).

data.py (segments and mels), sampler.py (who trains on what each epoch), distributed.py (torchrun's
DDP), checkpoints.py (atomic pairs, resume), monitor.py (tqdm, TensorBoard, JSON lines).
"""
