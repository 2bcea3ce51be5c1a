"""Training recipes: YAML files that say what to train, on what, with which optimizer and Trainer arguments.

    load_recipe(path, overrides, quick=False) → Recipe      schema.py, load.py (validation, --set, --quick)
    train(recipe, run_dir)                                  runner.py (one Trainer run → a run directory)
    compare(recipe, output_dir)                             compare.py (per optimizer and seed → table, figures)

Heavy libraries (transformers, datasets, peft, matplotlib) are imported when a function needs them.
"""

from .errors import RecipeError
from .load import dump_recipe, load_recipe, parse_set
from .schema import Recipe

__all__ = ["Recipe", "RecipeError", "compare", "dump_recipe", "load_recipe", "parse_set", "train"]


def __getattr__(name: str):
    if name == "train":
        from .runner import train

        return train
    if name == "compare":
        from .compare import compare

        return compare
    raise AttributeError(f"module 'hf_spectral.recipes' has no attribute {name!r}")
