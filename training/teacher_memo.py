"""A frozen teacher that remembers its outputs per input sample.

Distilling from the VGG teacher on a CPU costs a teacher forward per training draw (~40-80 ms
per 256x341 image on one thread: ~45 minutes of a ten-pass run on the 2-core host, the student's
own training ~10). With the plain recipe's input pipeline (fixed shape, flips only) a run draws
the same few thousand (image, flip) tensors over and over, so ``MemoTeacher`` keys every sample
of a batch by a hash of its exact bytes and runs the teacher only on samples it has not seen:
one forward per distinct tensor. The teacher is in eval mode (batch-norm running statistics),
so a sample's output does not depend on the rest of its batch and the memo is exact; with random
augmentation every draw is new and the memo only costs the hashing (and memory: ~9 KB per sample
for the 34 region logits and 64-d features; ``max_entries`` bounds it).

Turned on by ``TrainConfig.teacher_memo`` (``crossval run --set teacher_memo=true``).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def sample_key(sample: torch.Tensor) -> bytes:
    """A digest of one sample's values (any memory format: channels-last batches give the same key)."""
    return hashlib.blake2b(sample.detach().contiguous().cpu().numpy().tobytes(), digest_size=16).digest()


class MemoTeacher(nn.Module):
    def __init__(self, teacher: nn.Module, max_entries: int = 200_000):
        super().__init__()
        self.teacher = teacher.eval()
        self.max_entries = max_entries
        self.memo: dict[bytes, tuple[torch.Tensor, ...]] = {}
        self.hits = self.misses = 0
        self._kind = None  # the teacher's output type (RegionOutput)

    def train(self, mode: bool = True) -> "MemoTeacher":
        self.teacher.eval()  # always frozen: an output in train mode would depend on the batch
        return super().train(False)

    @torch.inference_mode()
    def forward(self, x: torch.Tensor):
        batch = x.detach().contiguous().cpu()  # one copy per batch, not one per sample (channels-last input)
        keys = [sample_key(s) for s in batch]
        new = {}  # unseen key -> its first index in the batch (a sample drawn twice runs once)
        for i, k in enumerate(keys):
            if k not in self.memo:
                new.setdefault(k, i)
        self.hits, self.misses = self.hits + len(keys) - len(new), self.misses + len(new)
        fresh = {}
        if new:
            out = self.teacher(x[list(new.values())])
            self._kind = type(out)
            fresh = {k: tuple(t[j].clone() for t in out) for j, k in enumerate(new)}
            if len(self.memo) + len(fresh) <= self.max_entries:
                self.memo.update(fresh)
        rows = [fresh.get(k) or self.memo[k] for k in keys]
        return self._kind(*(torch.stack(parts) for parts in zip(*rows)))
