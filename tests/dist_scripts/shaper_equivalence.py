"""torchrun --nproc_per_node 2: the distributed Shaper equals single-process shaping.

FSDP2-style DTensor row shards (uneven, a matrix with fewer rows than ranks, empty local shards, split blocks,
a conv kernel) and DDP-style replicated matrices; checks results, statistics and the work split per rank.
Writes a JSON report per rank to $OUT_DIR."""

import json
import os

import torch
import torch.distributed as dist
from teardown import finish
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

from hf_spectral.distributed.sharding import shard_spec
from hf_spectral.shaper import Shaper, ShapingItem
from hf_spectral.stats import UpdateStats
from hf_spectral.updates import MatrixLayout, ShapingSettings

SHAPES = [(18, 16), (1, 8), (3, 5), (7, 40), (40, 7), (24, 24), (24, 24), (6, 2, 3, 3)]
SPLITS = {5: {"split_rows": (8, 8, 8)}}


def fsdp1_errors():
    """FSDP1 flat parameters (with and without use_orig_params) must be refused, never trained by AdamW."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    from hf_spectral import SpectralOptimizer

    messages = []
    for use_orig_params in (False, True):
        model = torch.nn.Sequential(torch.nn.Linear(16, 18), torch.nn.Linear(18, 4))
        wrapped = FullyShardedDataParallel(model, use_orig_params=use_orig_params, device_id=torch.device("cpu"))
        try:
            SpectralOptimizer(wrapped)
            messages.append(None)
        except ValueError as err:
            messages.append(str(err))
    return messages


def main():
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    g = torch.Generator().manual_seed(0)
    full = [torch.randn(*s, generator=g) for s in SHAPES]
    layouts = [MatrixLayout(tuple(t.shape), **SPLITS.get(i, {})) for i, t in enumerate(full)]
    report = {"rank": rank, "checks": []}
    for name, settings in {
        "tns p=-0.25": ShapingSettings(p=-0.25, method="tns", precision="fp32"),
        "auto p=0.5 rms": ShapingSettings(p=0.5),
        "polar bf16": ShapingSettings(p=0.0, method="polar", precision="bf16", scale="spectral"),
    }.items():
        reference_stats = UpdateStats(svd_tensors=3)
        whole = [ShapingItem(t, layout, sampled=i < 3) for i, (t, layout) in enumerate(zip(full, layouts, strict=True))]
        reference = Shaper().shape_whole(whole, settings, reference_stats)

        dtensors = [distribute_tensor(t, mesh, [Shard(0)]) for t in full]
        shaper, stats = Shaper(), UpdateStats(svd_tensors=3)
        items = [ShapingItem(d.to_local(), layout, shard_spec(d)) for d, layout in zip(dtensors, layouts, strict=True)]
        local = shaper(items, settings, stats)
        gathered = [
            DTensor.from_local(block.float(), mesh, [Shard(0)], shape=d.shape, stride=d.stride()).full_tensor()
            for d, block in zip(dtensors, local, strict=True)
        ]
        sharded_err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(gathered, reference, strict=True))

        replicated = Shaper()
        replicated.replica_group = dist.group.WORLD
        rep_stats = UpdateStats(svd_tensors=3)
        rep = replicated([ShapingItem(t, layout) for t, layout in zip(full, layouts, strict=True)], settings, rep_stats)
        rep_err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(rep, reference, strict=True))
        everyone = [torch.zeros(1, dtype=torch.long) for _ in range(world)]
        dist.all_gather(everyone, torch.tensor([replicated.matrices_shaped]))
        report["checks"].append({
            "settings": name,
            "sharded_max_abs_err": sharded_err,
            "replicated_max_abs_err": rep_err,
            "sharded_matrices_here": shaper.matrices_shaped,
            "replicated_matrices_per_rank": [int(e) for e in everyone],
            "total_matrices": sum(len(layout.block_shapes()) for layout in layouts),
            "stats_reference": reference_stats.summary(),
            "stats_sharded": stats.summary(),
            "stats_replicated": rep_stats.summary(),
        })  # fmt: skip
    report["fsdp1_errors"] = fsdp1_errors()
    with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    finish(0)


if __name__ == "__main__":
    main()
