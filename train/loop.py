"""The step loop both recipes run: epochs of micro-batches, logging, validation and checkpoints on time.

A recipe's trainer provides `steps`, `epoch`, `batches_in_epoch` (micro-batches of the current epoch
already trained on: a resumed run skips exactly those), `step(micro_batches) -> {name: scalar}`,
`end_epoch()` and `learning_rate()`; the recipe says when to validate and to save (`Every`), and how.
"""
import time
from dataclasses import dataclass

import torch

from .cli import UsageError
from .sampler import EpochSampler


@dataclass
class Data:
    """A rank's training data: the dataset, its sampler and loader, and the run's length in optimizer steps."""
    dataset: torch.utils.data.Dataset
    sampler: EpochSampler
    loader: torch.utils.data.DataLoader
    steps_per_epoch: int
    total_steps: int


def training_data(dataset, ctx, args):
    """Data for -bs/--batch_size x --grad_accumulation segments per rank and step, over --epochs (or
    --max_steps); full optimizer steps only, so every step sees as many segments."""
    sampler = EpochSampler(len(dataset), ctx.rank, ctx.world_size, seed=args.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=args.num_workers, pin_memory=ctx.device.type == "cuda")
    steps_per_epoch = len(sampler) // args.batch_size // args.grad_accumulation
    if steps_per_epoch == 0:
        raise UsageError(f"--batch_size {args.batch_size} x --grad_accumulation {args.grad_accumulation} segments per "
                         f"rank exceed the {len(sampler)} training utterances each of the {ctx.world_size} rank(s) "
                         f"gets; lower them")
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)
    return Data(dataset, sampler, loader, steps_per_epoch, total_steps)


@dataclass
class Every:
    """When something happens: every `steps` optimizer steps and/or at the end of every `epochs`-th epoch."""
    steps: int = None
    epochs: int = None

    def __call__(self, step, epochs_done, epoch_done):
        return bool((self.steps and step % self.steps == 0)
                    or (self.epochs and epoch_done and epochs_done % self.epochs == 0))


def run_steps(trainer, data, ctx, monitor, args, segment_samples, validate_when, validate, save_when, save):
    """Train until data.total_steps. Rank 0 calls validate() and save() when their `Every` says, and both
    at the last step; every rank logs (averaged over the ranks) every --log_interval steps and at the last."""
    segments_per_step = args.batch_size * args.grad_accumulation * ctx.world_size
    saved_at = trainer.steps
    try:
        while trainer.steps < data.total_steps:
            data.sampler.set_epoch(trainer.epoch, skip=trainer.batches_in_epoch * args.batch_size)
            data.dataset.set_epoch(trainer.epoch)
            batches = iter(data.loader)
            while trainer.steps < data.total_steps:
                t0 = time.perf_counter()
                micro = [[t.to(ctx.device, non_blocking=True) for t in next(batches) if isinstance(t, torch.Tensor)]
                         for _ in range(args.grad_accumulation)]
                logs = trainer.step(micro)
                trainer.steps += 1
                trainer.batches_in_epoch += args.grad_accumulation
                epoch_done = trainer.batches_in_epoch // args.grad_accumulation >= data.steps_per_epoch
                if epoch_done:
                    trainer.end_epoch()
                    trainer.epoch, trainer.batches_in_epoch = trainer.epoch + 1, 0
                last = trainer.steps == data.total_steps
                if trainer.steps % args.log_interval == 0 or last:
                    if ctx.device.type == "cuda":
                        torch.cuda.synchronize(ctx.device)
                    seconds = time.perf_counter() - t0
                    scalars = ctx.mean({k: float(v) for k, v in logs.items()})
                    scalars.update(lr=trainer.learning_rate(), step_seconds=seconds,
                                   segments_per_s=segments_per_step / seconds,
                                   audio_samples_per_s=segments_per_step * segment_samples / seconds)
                    monitor.train_step(trainer.steps, trainer.epoch, scalars)
                when = (trainer.steps, trainer.epoch, epoch_done)
                if ctx.main and (validate_when(*when) or last):
                    validate()
                if ctx.main and (save_when(*when) or last):
                    save()
                    saved_at = trainer.steps
                    monitor.event("checkpoint", step=trainer.steps, epoch=trainer.epoch)
                if epoch_done:
                    break
    finally:
        monitor.event("stop", step=trainer.steps, saved_step=saved_at)
        monitor.close()
    ctx.barrier()
