"""Run by torch.distributed.run in tests/test_data.py: one rank of a DDP-style data loop.

Usage: python -m torch.distributed.run --nproc-per-node 2 tests/ddp_data_worker.py CACHE FRACTALS OUT EPOCH
Each rank writes OUT/rank-<r>.json: {index: sha1 of the item's tensor} for its
share of the epoch, with a DistributedSampler built from the process group.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusemix.data import DiffuseMixDataset, to_tensor  # noqa: E402


class Indexed(torch.utils.data.Dataset):
    def __init__(self, inner: DiffuseMixDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        return i, self.inner[i][0]


def main() -> None:
    cache, fractals, out, epoch = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    dist.init_process_group("gloo")
    warnings.simplefilter("ignore", UserWarning)
    ds = DiffuseMixDataset(cache, fractals=fractals, transform=to_tensor, include_originals=True)
    sampler = DistributedSampler(ds, shuffle=True)
    sampler.set_epoch(epoch)
    ds.set_epoch(epoch)
    got = {}
    for idx, a in DataLoader(Indexed(ds), batch_size=3, sampler=sampler, num_workers=1):
        for i, t in zip(idx.tolist(), a):
            got[i] = hashlib.sha1(t.numpy().tobytes()).hexdigest()
    (out / f"rank-{dist.get_rank()}.json").write_text(json.dumps(got))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
