"""Benchmark harness: every bench measures tgingest and its baseline in the same process and
records the ratio. With pytest-benchmark disabled (the default, and `make test`) the benches
run on small inputs as plain tests that check their results; `make bench` runs them at full
size and rewrites the table in benches/README.md."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RESULTS: list[Row] = []
TABLE_START = "<!-- bench-table:start -->"
TABLE_END = "<!-- bench-table:end -->"


@dataclass
class Row:
    bench: str
    ours: float
    baseline: float
    unit: str
    target: str
    note: str = ""
    higher_is_better: bool = False  # rates (msgs/s) vs costs (us/msg)
    goal: float | None = None  # the ratio the target asks for; None: the row only informs
    goal_ours: float | None = None  # a floor on tgingest's own number as well (e.g. msgs/s)

    @property
    def result(self) -> str:
        """met, missed (in bold, so a missed target is never read as a success) or a dash."""
        if self.goal is None and self.goal_ours is None:
            return "-"
        met = (self.goal is None or self.ratio >= self.goal) and (
            self.goal_ours is None or self.ours >= self.goal_ours
        )
        return "met" if met else "**missed**"

    @property
    def ratio(self) -> float:
        """How many times better tgingest is than the baseline (> 1 = better)."""
        num, den = (
            (self.ours, self.baseline) if self.higher_is_better else (self.baseline, self.ours)
        )
        return num / den if den else float("inf")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-write-table",
        action="store_true",
        help="rewrite the results table in benches/README.md",
    )


@pytest.fixture(scope="session")
def full(request: pytest.FixtureRequest) -> bool:
    """True under `make bench` (benchmarking enabled): full-size inputs."""
    return not request.config.getoption("benchmark_disable")


def cpu_median(fn: Callable[[], object], repeat: int) -> float:
    """Median process CPU seconds of `fn` (client CPU only: waiting on the server is free)."""
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def wall_median(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@pytest.fixture
def record() -> Callable[..., Row]:
    def add(
        bench: str,
        ours: float,
        baseline: float,
        unit: str,
        target: str,
        note: str = "",
        *,
        higher_is_better: bool = False,
        goal: float | None = None,
        goal_ours: float | None = None,
    ) -> Row:
        row = Row(
            bench,
            float(ours),
            float(baseline),
            unit,
            target,
            note,
            higher_is_better,
            goal,
            goal_ours,
        )
        RESULTS.append(row)
        print(
            f"\n{bench}: ours {ours:.4g} {unit}, baseline {baseline:.4g} {unit}, "
            f"ratio {row.ratio:.2f}x (target {target}: {row.result}) {note}"
        )
        return row

    return add


def _table() -> list[str]:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; medians; ratio = how many times better tgingest is.",
        "",
        "| bench | tgingest | baseline | ratio | target | result | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        lines.append(
            f"| {r.bench} | {r.ours:.4g} {r.unit} | {r.baseline:.4g} {r.unit} | "
            f"{r.ratio:.2f}x | {r.target} | {r.result} | {r.note} |"
        )
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.write_sep("-", "tgingest vs baselines (same run)")
        for line in _table():
            terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Rewrite the table in benches/README.md and its copy in the top-level README."""
    if not session.config.getoption("--bench-write-table", default=False) or not RESULTS:
        return
    here = Path(__file__).parent
    for readme, (start_mark, end_mark) in (
        (here / "README.md", (TABLE_START, TABLE_END)),
        (here.parent / "README.md", ("<!-- readme-bench:start -->", "<!-- readme-bench:end -->")),
    ):
        text = readme.read_text()
        start, end = text.index(start_mark), text.index(end_mark)
        readme.write_text(
            text[: start + len(start_mark)] + "\n" + "\n".join(_table()) + "\n" + text[end:]
        )
