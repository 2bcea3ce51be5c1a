"""The ``hf-spectral`` command (also ``python -m hf_spectral``).

hf-spectral run SCRIPT.py [ARGS...]      run an unmodified HF training script with our --optim names active
hf-spectral run -m MODULE [ARGS...]      the same for a module
hf-spectral optimizers                   list the --optim names and --optim_args keys
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path


def _run(target: str, args: Sequence[str], module: bool) -> None:
    import _hf_spectral_autoload

    _hf_spectral_autoload.install(force=True)
    sys.argv = [target, *args]
    if module:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, str(Path(target).resolve().parent))  # as `python SCRIPT.py` does
        runpy.run_path(target, run_name="__main__")


def _list_optimizers() -> None:
    from .integrations.optim_args import KEYS, OPTIMIZER_NAMES

    print("--optim names:")
    for name, entry in OPTIMIZER_NAMES.items():
        print(f"  {name:<14} {entry.description}")
    print("\n--optim_args keys (key=value, comma separated):")
    for key, spec in KEYS.items():
        print(f"  {key:<18} {spec.help} [default: {spec.default}]")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="hf-spectral", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a training script with hf_spectral's --optim names registered")
    run.add_argument("-m", dest="module", action="store_true", help="TARGET is a module name, as in python -m")
    run.add_argument("target", help="script path (or module name with -m)")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    sub.add_parser("optimizers", help="list the --optim names and --optim_args keys")
    ns = parser.parse_args(argv)
    if ns.command == "run":
        _run(ns.target, ns.args, ns.module)
    else:
        _list_optimizers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
