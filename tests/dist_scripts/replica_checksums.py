"""torchrun --nproc_per_node 2: replicas_agree on equal tensors, on one entry off by one ulp on one rank, on
swapped entries, and on a different number of tensors. Writes OUT_DIR/rank{r}.json."""

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from teardown import finish

from hf_spectral.distributed import replicas_agree

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
same = [torch.randn(6, 5), torch.randn(7)]
off_by_one_ulp = [t.clone() for t in same]
if rank == 1:
    off_by_one_ulp[0][2, 3] = torch.nextafter(off_by_one_ulp[0][2, 3], torch.tensor(float("inf")))
swapped = [t.clone() for t in same]
if rank == 1:
    swapped[1][[0, 1]] = swapped[1][[1, 0]]
fewer = same if rank == 0 else same[:1]
report = {
    "same": replicas_agree(same),
    "off_by_one_ulp": replicas_agree(off_by_one_ulp),
    "swapped": replicas_agree(swapped),
    "fewer": replicas_agree(fewer),
    "none": replicas_agree([]),
}
Path(os.environ["OUT_DIR"], f"rank{rank}.json").write_text(json.dumps(report))
finish()
