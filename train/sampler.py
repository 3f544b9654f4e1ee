"""Which utterances each rank trains on in each epoch: a seeded shuffle, split over the ranks.

The order depends only on (seed, epoch), so every rank agrees without talking, and a run resumed
in the middle of an epoch skips exactly the items it had already used.
"""
import torch


class EpochSampler(torch.utils.data.Sampler):
    def __init__(self, dataset_len, rank=0, world_size=1, seed=1234, shuffle=True):
        if dataset_len < 1:
            raise ValueError("EpochSampler: the dataset is empty")
        self.dataset_len, self.rank, self.world_size = dataset_len, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch, skip=0):
        """Items of `epoch` for this rank, less the first `skip` (already trained on before a resume)."""
        self.epoch, self.skip = epoch, skip

    def _indices(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 10_007 + self.epoch)
            order = torch.randperm(self.dataset_len, generator=g).tolist()
        else:
            order = list(range(self.dataset_len))
        per_rank = -(-self.dataset_len // self.world_size)
        order = (order * self.world_size)[:per_rank * self.world_size]  # wrap so every rank gets as many
        return order[self.rank::self.world_size]

    def __iter__(self):
        return iter(self._indices()[self.skip:])

    def __len__(self):
        return max(0, -(-self.dataset_len // self.world_size) - self.skip)
