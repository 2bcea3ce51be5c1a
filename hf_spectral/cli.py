"""The ``hf-spectral`` command (also ``python -m hf_spectral``).

hf-spectral train RECIPE.yaml [--set KEY=VALUE ...] [--output-dir DIR] [--quick]
                                         train a recipe with Trainer into a run directory
hf-spectral compare RECIPE.yaml [--optim a,b,c] [--seeds N] [--set ...] [--output-dir DIR] [--quick]
                                         run it per optimizer and seed; write a loss / p figure and a table
hf-spectral check RECIPE.yaml [--set ...] [--quick]
                                         validate a recipe; print it resolved and its accelerate command
hf-spectral run SCRIPT.py [ARGS...]      run an unmodified HF training script with our --optim names active
hf-spectral run -m MODULE [ARGS...]      the same for a module
hf-spectral optimizers                   list the --optim names and --optim_args keys

Multi-GPU: accelerate launch --config_file recipes/accelerate/fsdp2.yaml -m hf_spectral train RECIPE.yaml
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. training.max_steps=100 (value read as YAML); repeatable",
    )
    parser.add_argument("--quick", action="store_true", help="apply the recipe's `quick` overrides (a smoke test)")


def _load(ns: argparse.Namespace) -> Any:
    from .recipes import load_recipe, parse_set

    overrides = [parse_set(item) for item in ns.sets]
    if getattr(ns, "optim", None):
        overrides.append(("compare.optimizers", [name.strip() for name in ns.optim.split(",") if name.strip()]))
    if getattr(ns, "seeds", None) is not None:
        overrides.append(("compare.seeds", ns.seeds))
    return load_recipe(ns.recipe, overrides, quick=ns.quick)


def _train(ns: argparse.Namespace) -> None:
    from .recipes.runner import default_run_dir, train

    recipe = _load(ns)
    run_dir = Path(ns.output_dir) if ns.output_dir else default_run_dir(recipe)
    if recipe.launch.accelerate_config:
        print(f"hf-spectral: on GPUs, launch with: {recipe.launch.command(ns.recipe)}")
    print(f"hf-spectral: training {ns.recipe} with {recipe.optimizer.name} → {run_dir}", flush=True)
    record = train(recipe, run_dir)
    print(f"hf-spectral: {record.describe()} → run directory {run_dir}")


def _compare(ns: argparse.Namespace) -> None:
    from .recipes.compare import compare
    from .recipes.runner import default_run_dir

    recipe = _load(ns)
    out = Path(ns.output_dir) if ns.output_dir else default_run_dir(recipe, "-compare")
    optimizers = ", ".join(recipe.compare.optimizers)
    print(f"hf-spectral: comparing {optimizers} ({recipe.compare.seeds} seed(s) each) → {out}", flush=True)
    result = compare(recipe, out)
    print("\n" + result.table.read_text(encoding="utf-8"))
    print(f"hf-spectral: wrote {result.table}, {result.loss_plot}")


def _check(ns: argparse.Namespace) -> None:
    from .recipes import dump_recipe

    recipe = _load(ns)
    print(dump_recipe(recipe), end="")
    print(f"# valid. Launch: {recipe.launch.command(ns.recipe)}")


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
    train = sub.add_parser("train", help="train a recipe with Trainer into a run directory")
    _recipe_arguments(train)
    train.add_argument("--output-dir", help="run directory (default: training.output_dir, else runs/RECIPE_NAME)")
    cmp = sub.add_parser("compare", help="run a recipe per optimizer and seed; write a figure and a table")
    _recipe_arguments(cmp)
    cmp.add_argument("--optim", help="comma-separated optimizer names (default: compare.optimizers)")
    cmp.add_argument("--seeds", type=int, help="runs per optimizer (default: compare.seeds)")
    cmp.add_argument("--output-dir", help="output directory (default: runs/RECIPE_NAME-compare)")
    check = sub.add_parser("check", help="validate a recipe; print it resolved and its launch command")
    _recipe_arguments(check)
    ns = parser.parse_args(argv)
    if ns.command == "run":
        _run(ns.target, ns.args, ns.module)
        return 0
    if ns.command == "optimizers":
        _list_optimizers()
        return 0
    from .recipes import RecipeError

    try:
        {"train": _train, "compare": _compare, "check": _check}[ns.command](ns)
    except RecipeError as err:  # from validation, or from the data (e.g. a missing text column) once loaded
        parser.exit(2, f"hf-spectral {ns.command}: error: {err if err.file else err.in_file(ns.recipe)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
