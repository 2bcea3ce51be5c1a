"""Training recipes: YAML files that say what to train, on what, with which optimizer and Trainer arguments.

    load_recipe(path, overrides, quick=False) → Recipe      schema.py, load.py (validation, --set, --quick)
    train(recipe, run_dir)                                  runner.py (one Trainer run → a run directory)
    compare(recipe, output_dir)                             compare.py (per optimizer and seed → table, figure)

Heavy libraries (transformers, datasets, peft, matplotlib) are imported when a function needs them.
"""

from .compare import compare
from .errors import RecipeError
from .load import dump_recipe, load_recipe, parse_set
from .runner import train
from .schema import Recipe

__all__ = ["Recipe", "RecipeError", "compare", "dump_recipe", "load_recipe", "parse_set", "train"]
