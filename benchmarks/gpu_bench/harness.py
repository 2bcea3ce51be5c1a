"""Sections under one time budget: each guarded (a failure records its traceback and the next section runs), each
skipped or cut short when the budget runs low (saying so), and the whole report rewritten to disk after every row
(``report.md`` and ``results.json``), so a run killed from outside still leaves what it measured."""

from __future__ import annotations

import gc
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

STATUSES = ("ok", "partial", "failed", "skipped")
"""ok: ran to the end; partial: stopped early for the budget; failed: raised (traceback kept); skipped: never ran."""


@dataclass
class Table:
    """Rows of one measurement; ``columns`` are (row key, Markdown header) pairs."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(h for _, h in self.columns) + " |"]
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(format_value(row.get(k)) for k, _ in self.columns) + " |" for row in self.rows]
        return "\n".join(lines)


def format_value(value: Any) -> str:
    """A table cell: floats to 4 significant digits (whole numbers from 1000 up), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


class Section:
    """One guarded part of the report: tables, notes and free-form JSON data, written as they are added."""

    def __init__(self, report: Report, key: str, title: str) -> None:
        self.report, self.key, self.title = report, key, title
        self.status = "skipped"
        self.elapsed_s = 0.0
        self.notes: list[str] = []
        self.tables: list[Table] = []
        self.data: dict[str, Any] = {}
        self.error: str | None = None

    def table(self, title: str, columns: list[tuple[str, str]]) -> Table:
        self.tables.append(Table(title, columns))
        return self.tables[-1]

    def add(self, table: Table, **row: Any) -> dict[str, Any]:
        """Append a row and rewrite the report."""
        table.rows.append(row)
        self.report.flush()
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.report.flush()

    def has_time(self, need_s: float, what: str) -> bool:
        """Whether `need_s` seconds are left for `what`; if not, the section is marked partial, saying what was cut."""
        left = self.report.remaining()
        if left >= need_s:
            return True
        self.status = "partial"
        self.note(f"stopped for the time budget before {what}: {left:.0f} s left, about {need_s:.0f} s needed")
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "status": self.status, "elapsed_s": round(self.elapsed_s, 2), "notes": self.notes,
            "tables": [{"title": t.title, "columns": [k for k, _ in t.columns], "rows": t.rows} for t in self.tables],
            "data": self.data, "error": self.error,
        }  # fmt: skip

    def to_markdown(self) -> str:
        parts = [f"## {self.title}", f"Status: **{self.status}** ({self.elapsed_s:.1f} s)."]
        parts += [f"- {n}" for n in self.notes]
        parts += [t.to_markdown() for t in self.tables]
        if self.error:
            parts.append("Traceback:\n\n```\n" + self.error.rstrip() + "\n```")
        return "\n\n".join(parts)


class Report:
    """Sections run in order against a deadline; ``report.md`` and ``results.json`` in `out` after every change."""

    def __init__(self, out: Path, budget_s: float, meta: dict[str, Any]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.meta = dict(meta, budget_s=budget_s)
        self.sections: list[Section] = []

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def run(self, key: str, title: str, fn: Callable[[Section], None], need_s: float) -> Section:
        """Run ``fn(section)`` if about `need_s` seconds are left; record a raised exception's traceback."""
        left = self.remaining()
        if left < need_s:
            return self.skip(key, title, f"skipped for the time budget: {left:.0f} s left, about {need_s:.0f} s needed")
        section = Section(self, key, title)
        self.sections.append(section)
        section.status = "running"
        started = time.monotonic()
        try:
            fn(section)
            if section.status == "running":
                section.status = "ok"
        except Exception:
            section.status = "failed"
            section.error = traceback.format_exc()
        finally:
            section.elapsed_s = time.monotonic() - started
            release_memory()
            self.flush()
        return section

    def skip(self, key: str, title: str, reason: str) -> Section:
        """Record a section that does not run, and why."""
        section = Section(self, key, title)
        self.sections.append(section)
        section.note(reason)
        return section

    def to_json(self) -> dict[str, Any]:
        meta = dict(self.meta, elapsed_s=round(time.monotonic() - self.start, 1))
        return {"meta": meta, "sections": {s.key: s.to_json() for s in self.sections}}

    def to_markdown(self) -> str:
        head = ["# GPU benchmark report", ""] + [f"- {k}: {v}" for k, v in self.meta.items()]
        head.append(f"- elapsed: {time.monotonic() - self.start:.0f} s")
        return "\n".join(head) + "\n\n" + "\n\n".join(s.to_markdown() for s in self.sections) + "\n"

    def flush(self) -> None:
        """Rewrite both files (through a temporary file, so a reader never sees half of one)."""
        for name, text in (
            ("results.json", json.dumps(self.to_json(), indent=1, default=str)),
            ("report.md", self.to_markdown()),
        ):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.out / name)


def release_memory() -> None:
    """Collect garbage and hand cached CUDA blocks back, so one section's tensors do not weigh on the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
