"""The one error a recipe raises: it names the key (``training.max_steps``) and, once known, the file."""

from __future__ import annotations


class RecipeError(ValueError):
    """An unknown key or a bad value in a recipe. ``str()`` reads ``FILE: KEY: what is wrong``."""

    def __init__(self, key: str, message: str, file: str | None = None) -> None:
        self.key, self.message, self.file = key, message, file
        super().__init__(f"{file}: {key}: {message}" if file else f"{key}: {message}")

    def in_file(self, file: str) -> RecipeError:
        """The same error, naming `file`."""
        return RecipeError(self.key, self.message, file)


def unknown_key(key: str, accepted: list[str], what: str = "key", listed_in: str | None = None) -> RecipeError:
    """'unknown key', with the closest accepted name and the accepted names (or where they are listed)."""
    import difflib

    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], accepted, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return RecipeError(key, f"unknown {what}{hint}; accepted: {listed_in or ', '.join(accepted)}")
