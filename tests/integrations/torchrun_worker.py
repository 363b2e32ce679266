"""torchrun worker: a plain DDP loop over a DistillLoader built BEFORE init_process_group
(no set_epoch calls: auto-advance) and one built AFTER it (``loader.sampler.set_epoch``, as a
DistributedSampler user writes). Each rank logs every store read to OUT/{before,after}.RANK.jsonl.

    torchrun --nproc_per_node 2 torchrun_worker.py STORE OUT
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helpers  # noqa: E402

import tinyvit  # noqa: E402


def run(loader, model, opt, crit, use_sampler_hook):
    for epoch in range(3):
        if use_sampler_hook:
            loader.sampler.set_epoch(epoch)
        for x, t in loader:
            loss = crit(model(x.flatten(1)), t)
            opt.zero_grad()
            loss.backward()
            opt.step()


def main():
    helpers.env_threads()
    store_path, out = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])
    ds = helpers.synthetic(32)
    crit = tinyvit.SparseSoftCrossEntropy()
    before = tinyvit.DistillLoader(
        ds, helpers.open_recording(store_path, os.path.join(out, f"before.{rank}.jsonl")),
        helpers.CFG, batch_size=4, epochs=3)
    assert not torch.distributed.is_initialized()
    torch.distributed.init_process_group("gloo")
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3 * 16 * 16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run(before, model, opt, crit, use_sampler_hook=False)
    after = tinyvit.DistillLoader(
        ds, helpers.open_recording(store_path, os.path.join(out, f"after.{rank}.jsonl")),
        helpers.CFG, batch_size=4, epochs=3)
    run(after, model, opt, crit, use_sampler_hook=True)
    # explicit sharding that disagrees with the process group is refused, not silently wrong
    bad = tinyvit.data.sampler.PairedSampler(32, 7, batch_size=4, num_replicas=1, rank=0)
    try:
        list(tinyvit.DistillLoader(ds, store_path, helpers.CFG, batch_size=4, sampler=bad))
    except ValueError as e:
        assert "world size 2" in str(e), e
    else:
        raise AssertionError("a 1-replica sampler under a 2-rank group was accepted")
    # so is a sampler that does not shard at all (every rank would read all samples)
    plain = torch.utils.data.RandomSampler(range(32))
    try:
        next(iter(tinyvit.DistillLoader(ds, store_path, helpers.CFG, batch_size=4, sampler=plain)))
    except ValueError as e:
        assert "every rank would read the same samples" in str(e), e
    else:
        raise AssertionError("a non-distributed sampler under a 2-rank group was accepted")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
