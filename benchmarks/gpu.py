"""The GPU measurements in one command, for a session that is lent a GPU for a few minutes.

    python benchmarks/gpu.py --out $OUT                  # one H100/H200, about 5–8 minutes (budget 450 s)
    python benchmarks/gpu.py --out /tmp/gpu --tiny       # the same code on tiny sizes, CPU, under a minute

Sections, in order, each guarded (a failure keeps its traceback and the next one runs) and skipped or cut short
when the time budget runs low (the report says so):

    a. pytest -m gpu: the CUDA tests of tests/test_gpu.py (mixed / bf16 kernels, stacked shaping, out_dtype,
       DTensor on one rank) against float64 SVD references;
    b. shaping kernels: Polar Express, NS5 and TNS in mixed and bf16 vs torch.optim.Muon's Newton–Schulz;
    c. optimizer step on a TinyLlama-shaped 1.1 B model: AdamW, torch.optim.Muon + AdamW, our Muon, DynMuon,
       SpectralAdam (time, ratios, state, peak memory);
    d. transformers.Trainer end to end on that model, full fine-tuning and LoRA, adamw_torch / muon / dynmuon
       (step time, the optimizer's share);
    e. a short quality run on a 56 M-parameter model (eval loss of AdamW, Muon, DynMuon);
    f. with the time left: b's float64 reference (built from a known SVD) against a float64 SVD.

``report.md`` and ``results.json`` in --out are rewritten after every measured row. Needs torch, transformers,
peft, tokenizers and pytest, not `datasets` or a hub: the text is the standard library's source and the tokenizer
is trained here.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # hf_spectral from this checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench.data import TokenCorpus
from gpu_bench.gpu_tests import run_gpu_tests
from gpu_bench.harness import Report
from gpu_bench.kernels import run_kernels, run_reference_check
from gpu_bench.sizes import FULL, TINY
from gpu_bench.steps import run_optimizer_step
from gpu_bench.training import run_quality, run_trainer
from timing import describe_device

SECTION_KEYS = ("pytest", "kernels", "optimizer_step", "trainer", "quality", "reference")


def versions() -> dict[str, str]:
    import peft
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda),
            "transformers": transformers.__version__, "peft": peft.__version__}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for report.md and results.json")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes and few steps (a CPU check of the script)")
    ap.add_argument("--budget", type=float, help="seconds for the whole run (default 450, --tiny 240)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sections", default=",".join(SECTION_KEYS), help=f"comma-separated subset of {SECTION_KEYS}")
    args = ap.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    selected = args.sections.split(",")
    if unknown := set(selected) - set(SECTION_KEYS):
        ap.error(f"--sections: unknown {sorted(unknown)}; choose from {SECTION_KEYS}")
    device = torch.device(args.device)
    meta = {"mode": sizes.name, "device": describe_device(device), **versions(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv)}  # fmt: skip
    report = Report(args.out, args.budget if args.budget is not None else sizes.budget_s, meta)
    workdir = Path(tempfile.mkdtemp(prefix="hf_spectral_gpu_"))
    corpus = TokenCorpus(workdir, sizes.tokenizer_vocab, sizes.corpus_chars)
    sections = {
        "pytest": ("a. GPU tests (pytest -m gpu)", lambda s: run_gpu_tests(s, sizes), 30.0),
        "kernels": ("b. Shaping kernels", lambda s: run_kernels(s, sizes, device), 30.0),
        "optimizer_step": ("c. Optimizer step", lambda s: run_optimizer_step(s, sizes, device, corpus), 40.0),
        "trainer": ("d. Trainer end to end", lambda s: run_trainer(s, sizes, device, corpus), 60.0),
        "quality": ("e. Short quality run", lambda s: run_quality(s, sizes, device, corpus), 60.0),
        "reference": ("f. Float64 SVD check of b's reference", lambda s: run_reference_check(s, sizes, device), 60.0),
    }
    try:
        for key, (title, fn, need_s) in sections.items():
            if key not in selected:
                report.skip(key, title, "not selected (--sections)")
                continue
            print(f"[{time.monotonic() - report.start:6.0f} s] {title} ...", flush=True)
            section = report.run(key, title, fn, need_s)
            print(f"[{time.monotonic() - report.start:6.0f} s] {title}: {section.status}", flush=True)
            if section.error:
                print(section.error, file=sys.stderr, flush=True)
    finally:
        report.flush()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"report: {args.out / 'report.md'}, {args.out / 'results.json'}")
    return 1 if any(s.status == "failed" for s in report.sections) else 0


if __name__ == "__main__":
    sys.exit(main())
