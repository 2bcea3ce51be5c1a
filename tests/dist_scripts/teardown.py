"""How a torchrun test script ends."""

from __future__ import annotations

import os
import sys

import torch.distributed as dist


def finish(code: int = 0) -> None:
    """Barrier, destroy the process group, and exit without interpreter finalization.

    Under load, a 2-rank gloo run aborted at exit now and then ("terminate called without an active exception",
    SIGABRT) after both ranks had written their results: torch's gloo worker threads can still hold tensors when the
    interpreter finalizes, and freeing them then aborts (pytorch/pytorch#179291). Nothing is left to run, so the
    process leaves with os._exit once the group is down and the output is flushed."""
    dist.barrier()  # neither rank tears the group down while the other still uses it
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
