"""PyTorch's own distributed engine, as torchrun sets it up (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

NCCL between GPUs, gloo between CPU processes. A plain `python -m train.hifigan` is world size 1 and
never touches torch.distributed.
"""
import os

import torch
import torch.distributed as dist


class Context:
    """rank / world_size / device of this process; `main` is rank 0, which logs and checkpoints."""

    def __init__(self, device_arg="auto"):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is available here")
        if want_cuda:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.distributed:
            dist.init_process_group("nccl" if want_cuda else "gloo")

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def main(self):
        return self.rank == 0

    def mean(self, values):
        """{name: float} averaged over the ranks (for logging only)."""
        if not self.distributed or not values:
            return dict(values)
        t = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist()))

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
