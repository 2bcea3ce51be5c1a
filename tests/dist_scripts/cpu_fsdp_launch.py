"""Test-only launcher: run an unmodified training script under accelerate's FSDP on CPU (gloo).

accelerate enables FSDP only for multi-accelerator runs (a CPU multi-process run becomes MULTI_CPU, i.e. DDP), so
on a CPU-only CI machine the FSDP2 code path through Trainer + accelerate cannot be reached as it is. This shim
flips that one decision — after AcceleratorState is built for MULTI_CPU with an FSDP plugin, it marks the state as
FSDP — and then runs the script exactly as `accelerate launch` would. Nothing else is changed.

    accelerate launch --config_file CONFIG --cpu tests/dist_scripts/cpu_fsdp_launch.py SCRIPT.py ARGS...
"""

import runpy
import sys

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_original_init = AcceleratorState.__init__


def _init(self, *args, fsdp_plugin=None, **kwargs):
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


AcceleratorState.__init__ = _init

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")
