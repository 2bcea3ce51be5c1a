"""The sections of ``benchmarks/gpu.py``: the GPU tests, the shaping kernels, the optimizer step, Trainer end to
end and a short quality run, under one time budget (harness.py) with the sizes of sizes.py."""
