"""Section a: ``pytest -m gpu tests/test_gpu.py`` in a subprocess with a timeout, one row per test (JUnit XML)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from .harness import Section
from .sizes import Sizes

ROOT = Path(__file__).resolve().parents[2]
OUTCOMES = ("passed", "failed", "error", "skipped")


def junit_rows(path: Path) -> list[dict[str, object]]:
    """(test, outcome, seconds, message) for every test case of a JUnit XML file."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "failed" if child.tag == "failure" else child.tag
                message = (child.get("message") or "").splitlines()[0][:200] if child.get("message") else ""
        rows.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0.0),
                     "message": message})  # fmt: skip
    return rows


def run_gpu_tests(section: Section, sizes: Sizes) -> None:
    """Run the GPU tests; the section fails if any test fails or errors (their output is kept)."""
    timeout = max(10.0, min(sizes.pytest_timeout_s, section.report.remaining() - 10.0))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}"]  # fmt: skip
        section.note(f"Command: `{' '.join(cmd[1:-1])}` (timeout {timeout:.0f} s).")
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            raise RuntimeError(f"pytest did not finish in {timeout:.0f} s; its output:\n{output[-4000:]}") from None
        rows = junit_rows(xml) if xml.exists() else []
    counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
    section.data.update(returncode=proc.returncode, counts=counts)
    summary = section.table("Counts", [("returncode", "exit code"), *[(o, o) for o in OUTCOMES]])
    section.add(summary, returncode=proc.returncode, **counts)
    table = section.table("Tests", [("test", "test"), ("outcome", "outcome"), ("seconds", "s"), ("message", "message")])
    for row in rows:
        table.rows.append(row)
    if proc.returncode != 0 or counts["failed"] or counts["error"] or not rows:
        section.status = "failed"
        section.error = f"pytest exit code {proc.returncode}; last output:\n{(proc.stdout + proc.stderr)[-6000:]}"
