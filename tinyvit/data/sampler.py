"""Sampling and traversal order: which samples a pass visits, in which order, for which epoch.

* ``PairedSampler``: the student's order, both Mixup/CutMix partners back to back, sharded
  over ranks (the pure pairing functions are in ``tinyvit.augment.seeds``).
* ``EpochClock``: a loader's one trainer epoch and its passes (docs/loader.md, *Epochs*).
* ``LoaderBatchSampler``: ``loader.batch_sampler``.
* ``teacher_order`` / ``teacher_bounds``: the teacher's order (missing samples with their
  partners) and its batches (pairs never split).

Who moves the epoch, without the sampler knowing its loader: a loader's ``EpochClock`` binds
itself to a ``PairedSampler`` as its *epoch hook* (``bind_epoch``). ``sampler.set_epoch(e)``
then calls the hook, which validates ``e`` (store epochs), records it as the trainer epoch
and sets the sampler's *order* epoch (the data epoch: ``e % store.epochs`` with
``reuse_epochs``). The hook is the clock's ``set_epoch``; the clock holds the sampler and an
epoch policy (the store's), never a loader, so the references run loader -> clock -> sampler
and nothing points back at the loader. A foreign sampler (``DistributedSampler``) cannot be
hooked: the clock reads its ``.epoch`` when a pass begins and adopts a change.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler

from ..augment.seeds import mix_partners, pair_permutation

__all__ = ["PairedSampler", "EpochClock", "EpochError", "LoaderBatchSampler", "teacher_order",
           "teacher_bounds"]


from ..errors import EpochError  # noqa: E402  (defined with every error in tinyvit.errors)


class PairedSampler(Sampler):
    """Distributed sampler that yields both members of every Mixup/CutMix pair back to back.

    Pair slots k = 0 .. ceil(N/2) - 1 of the epoch permutation are dealt to ranks round-robin
    (slot k to rank k % world_size, like DistributedSampler); a slot yields
    ``pi(2k), pi(2k+1)`` (an odd N's last slot yields its lone sample twice, as a pair with
    itself). So with an even batch size every batch holds whole pairs and mixing needs no
    extra decode, and partners are identical under any world size (they depend only on
    (base_seed, epoch, N)). Unless drop_last, slots are padded by wrapping around so every
    rank gets the same number (DistributedSampler's rule, applied to pairs).

    World size and rank: when ``num_replicas`` / ``rank`` are not given they are read from
    torch.distributed every time the order is computed (``indices()``, ``__iter__``,
    ``__len__``), not frozen at construction, so a sampler (or loader) built before
    ``init_process_group`` -- Lightning, Accelerate -- shards correctly once the group
    exists. Explicit values that disagree with an initialised process group raise
    ValueError (every rank would otherwise read the same shard).

    Call ``set_epoch(e)`` before each epoch. A loader built on this sampler binds its epoch
    clock as the sampler's epoch hook (``bind_epoch``), so ``set_epoch`` here moves that
    loader's (and its store's) epoch. ``len()`` counts samples yielded on this rank.
    """

    def __init__(self, num_samples: int, base_seed: int, batch_size: Optional[int] = None,
                 num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 drop_last: bool = False):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
        if batch_size is not None and (batch_size < 2 or batch_size % 2):
            raise ValueError(f"batch_size must be even (pairs stay in one batch), got {batch_size}")
        if num_replicas is not None and num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if num_replicas is not None and rank is not None and not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas - 1}], got {rank}")
        if not 0 <= base_seed <= 0xFFFFFFFF:
            raise ValueError(f"base_seed must be in [0, 2**32 - 1], got {base_seed}")
        self.num_samples_total = num_samples
        self.base_seed = base_seed
        self.batch_size = batch_size
        self._replicas_arg, self._rank_arg = num_replicas, rank
        self.drop_last = drop_last
        self.epoch = 0
        self.num_pairs = (num_samples + 1) // 2
        self._epoch_hook: Optional[Callable[[int], None]] = None

    def bind_epoch(self, hook: Callable[[int], None]) -> None:
        """Route ``set_epoch(e)`` through ``hook(e)`` (an ``EpochClock.set_epoch``), which
        then sets this sampler's order epoch with ``set_order_epoch``. One hook per sampler:
        a second, different one raises ValueError (two loaders would fight over one epoch)."""
        if self._epoch_hook is not None and self._epoch_hook != hook:
            raise ValueError("this PairedSampler already drives another loader's epoch; "
                             "give each loader its own sampler")
        self._epoch_hook = hook

    def world(self):
        """``(num_replicas, rank)`` now: the explicit values, else torch.distributed's."""
        dist = torch.distributed
        ready = dist.is_available() and dist.is_initialized()
        world = dist.get_world_size() if ready else 1
        grank = dist.get_rank() if ready else 0
        n = world if self._replicas_arg is None else self._replicas_arg
        r = grank if self._rank_arg is None else self._rank_arg
        if ready and ((self._replicas_arg is not None and n != world)
                      or (self._rank_arg is not None and r != grank)):
            raise ValueError(f"PairedSampler was given num_replicas={self._replicas_arg}, "
                             f"rank={self._rank_arg} but the process group has world size "
                             f"{world}, rank {grank}; omit them to follow the process group")
        if not 0 <= r < n:
            raise ValueError(f"rank must be in [0, {n - 1}], got {r}")
        return n, r

    @property
    def num_replicas(self) -> int:
        return self.world()[0]

    @property
    def rank(self) -> int:
        return self.world()[1]

    def _pairs_per_rank(self, n: int) -> int:
        return self.num_pairs // n if self.drop_last else math.ceil(self.num_pairs / n)

    @property
    def pairs_per_rank(self) -> int:
        return self._pairs_per_rank(self.world()[0])

    def set_epoch(self, epoch: int) -> None:
        if self._epoch_hook is not None:
            self._epoch_hook(epoch)  # the loader's clock: validates, then set_order_epoch
        else:
            self.set_order_epoch(epoch)

    def set_order_epoch(self, epoch: int) -> None:
        """The epoch whose permutation ``indices()`` follows (no hook involved)."""
        epoch = int(epoch)
        if not 0 <= epoch <= 0xFFFFFFFF:
            raise ValueError(f"epoch must be in [0, 2**32 - 1], got {epoch}")
        self.epoch = epoch

    def slots(self) -> np.ndarray:
        """Pair slots of this rank, in order."""
        n, r = self.world()
        k = np.arange(self._pairs_per_rank(n), dtype=np.int64) * n + r
        return k % self.num_pairs

    def indices(self) -> np.ndarray:
        """The dataset indices this rank yields this epoch (int64)."""
        slots = self.slots()
        first = 2 * slots
        second = np.where(first + 1 < self.num_samples_total, first + 1, first)
        positions = np.stack([first, second], axis=1).reshape(-1)
        if positions.size == 0:
            return positions
        return pair_permutation(self.epoch, self.num_samples_total, self.base_seed, positions)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return 2 * self.pairs_per_rank


class EpochClock:
    """A loader's one trainer epoch and the passes over it (docs/loader.md, *Epochs*).

    ``set_epoch(e)`` (from the loader, its ``batch_sampler``, or a bound PairedSampler)
    checks ``e`` (``check(e)``: the store's rules), records it and sets the sampler's order
    epoch to ``data_epoch``; ``begin_pass()`` (at a pass's first ``next()``) adopts a foreign
    sampler's changed ``.epoch``, advances a repeated pass by one (``auto_advance``; else
    EpochError), checks the world and returns the data epoch. ``order()`` is that pass's
    index order. Holds the sampler and the policy callables, never a loader.
    """

    def __init__(self, sampler, *, epoch: int = 0, auto_advance: bool = True,
                 check: Optional[Callable[[int], None]] = None,
                 to_data: Optional[Callable[[int], int]] = None):
        self.sampler = sampler
        self.auto_advance = bool(auto_advance)
        self._check, self._to_data = check, to_data
        self._paired = isinstance(sampler, PairedSampler)
        if self._paired:
            sampler.bind_epoch(self.set_epoch)
        self.epoch: Optional[int] = None
        self._passes = 0           # passes started since the last set_epoch
        self._sampler_epoch = None  # a foreign sampler's .epoch as we last set it
        self.set_epoch(epoch)

    @property
    def data_epoch(self) -> int:
        """The epoch whose seeds, pairing (and stored records) a pass uses."""
        return self.epoch if self._to_data is None else self._to_data(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not hasattr(epoch, "__index__"):
            raise TypeError(f"epoch must be an integer, got {type(epoch).__name__}")
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if self._check is not None:
            self._check(epoch)
        self.epoch = epoch
        self._passes = 0
        if self._paired:
            self.sampler.set_order_epoch(self.data_epoch)
        elif hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self._sampler_epoch = getattr(self.sampler, "epoch", None)

    def begin_pass(self) -> int:
        """Settle this pass's epoch and the world; returns the data epoch."""
        if not self._paired:
            seen = getattr(self.sampler, "epoch", None)
            if seen is not None and seen != self._sampler_epoch:
                self.set_epoch(seen)  # the trainer set it on the sampler it knows (Lightning)
        if self._passes:
            if not self.auto_advance:
                raise EpochError(
                    f"a second pass over epoch {self.epoch} without set_epoch in between would "
                    "replay the same seeds and targets; call loader.set_epoch(epoch) each epoch "
                    "(or set_epoch(same) to replay on purpose)")
            self.set_epoch(self.epoch + 1)
        self._passes += 1
        self.check_world()
        return self.data_epoch

    def check_world(self) -> None:
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        if self._paired:
            self.sampler.world()  # resolves now; raises on explicit values that disagree
            return
        world = dist.get_world_size()
        got = getattr(self.sampler, "num_replicas", None)
        if got != world:
            raise ValueError(
                f"world size is {world} but the sampler {type(self.sampler).__name__} shards for "
                f"{got if got is not None else 'no'} replicas: every rank would read the same "
                "samples; use sampler=None (PairedSampler follows the process group) or a "
                "DistributedSampler built after init_process_group")

    def order(self) -> np.ndarray:
        """This pass's dataset indices (int64), fixed when the pass starts: a set_epoch
        during the pass must not give a sampler order of one epoch and partners of another."""
        if self._paired:
            return self.sampler.indices()
        return np.fromiter(iter(self.sampler), np.int64)


def pass_batches(order: np.ndarray, batch_size: int, drop_last: bool, skip: int = 0) -> List:
    """``order`` cut into batches of ``batch_size`` (the last short one unless drop_last),
    without the first ``skip``."""
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(skip * batch_size, stop, batch_size)]


def num_batches(num_indices: int, batch_size: int, drop_last: bool) -> int:
    return num_indices // batch_size if drop_last else -(-num_indices // batch_size)


class LoaderBatchSampler:
    """``loader.batch_sampler``: the batches (lists of dataset indices) of ``loader.sampler``,
    like torch's ``BatchSampler``. ``set_epoch`` is the loader's (its clock's), so timm's
    epoch hook and Lightning (``batch_sampler.set_epoch`` / ``batch_sampler.sampler.set_epoch``)
    move it. ``shape``: the loader's pass settings (``sampler``, ``batch_size``, ``drop_last``,
    ``clock``), read live; not the loader."""

    def __init__(self, shape):
        self._shape = shape

    sampler = property(lambda self: self._shape.sampler)
    batch_size = property(lambda self: self._shape.batch_size)
    drop_last = property(lambda self: self._shape.drop_last)

    def set_epoch(self, epoch: int) -> None:
        self._shape.clock.set_epoch(epoch)

    def __iter__(self):
        return iter(BatchSampler(self.sampler, self.batch_size, self.drop_last))

    def __len__(self) -> int:
        return num_batches(len(self.sampler), self.batch_size, self.drop_last)


def teacher_order(todo, epoch: int, num_samples: int, base_seed: int, mixing: bool,
                  rank: int = 0, world_size: int = 1):
    """The teacher's work for one epoch on one rank: ``(order, write_mask)``.

    ``todo``: samples whose record is missing. Every missing sample must be seen together
    with its Mixup partner (it mixes with the partner's image even when the partner's record
    exists), so the order lists whole pairs ``key, partner`` with key = min(i, partner(i));
    pairs are dealt to ranks by ``key % world_size`` (disjoint writes for any world size).
    ``write_mask[j]``: ``order[j]`` is missing and written by this rank (a sample in two
    missing pairs cannot happen: pairs are disjoint).
    """
    todo = np.unique(np.asarray(todo, np.int64))
    if not mixing or todo.size == 0:
        mine = todo[todo % world_size == rank]
        return mine, np.ones(mine.size, bool)
    part = mix_partners(epoch, todo, num_samples, base_seed).astype(np.int64)
    keys = np.unique(np.minimum(todo, part))
    keys = keys[keys % world_size == rank]
    kp = mix_partners(epoch, keys, num_samples, base_seed).astype(np.int64)
    pairs = np.stack([keys, kp], 1)
    keep = np.ones(pairs.shape, bool)
    keep[kp == keys, 1] = False  # an odd N's lone sample is its own partner: listed once
    order = pairs[keep]
    missing = np.zeros(num_samples, bool)
    missing[todo] = True
    return order, missing[order]


def teacher_bounds(order, epoch: int, num_samples: int, base_seed: int, mixing: bool,
                   batch_size: int) -> List[Tuple[int, int]]:
    """``(start, stop)`` batches of a ``teacher_order`` order, at most ``batch_size`` long
    (a pair is never split: a batch ends on a pair boundary)."""
    order = np.asarray(order, np.int64)
    n = len(order)
    if mixing and n:
        # a pair is (key, partner) with key < partner, listed back to back
        part = mix_partners(epoch, order, num_samples, base_seed).astype(np.int64)
        nxt = np.append(order[1:], -1)
        pair_start = (nxt == part) & (order < nxt)
    else:
        pair_start = np.zeros(n, bool)
    bounds, start, i = [], 0, 0
    while i < n:
        step = 2 if pair_start[i] else 1
        if i + step - start > batch_size and i > start:
            bounds.append((start, i))
            start = i
        i += step
    if start < n:
        bounds.append((start, n))
    return bounds
