"""What a quality check reports: findings with a severity, a count, examples and the command
that repairs them, and the exit code scripts read from `tgingest quality check`.

Exit codes (documented in the README): 0 nothing at warning level or above, 3 warnings only,
4 at least one error-level finding; 1 stays "tgingest itself failed" and 2 "usage error", as
for every command, so a script can tell a damaged warehouse from a check that could not run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")
RANK = {name: i for i, name in enumerate(SEVERITIES)}

EXIT_CLEAN = 0
EXIT_WARNINGS = 3
EXIT_ERRORS = 4


@dataclass
class Finding:
    check: str  # the check's name (`--check NAME` of check and repair)
    severity: str  # info | warning | error
    count: int  # how many things are affected (rows, ranges, files, chat-days)
    summary: str  # one line a person reads
    examples: list[dict[str, Any]] = field(default_factory=list)
    repair: str | None = None  # the exact command that repairs it (None: nothing to repair)
    chats: list[int] = field(default_factory=list)  # every chat affected (for per-chat repair)

    def __post_init__(self) -> None:
        assert self.severity in RANK, self.severity

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("chats")
        return out


def repair_command(check: str, chat_id: int | None = None) -> str:
    """The repair command for one check, narrowed to one chat when the finding is one chat's."""
    where = f" --chat {chat_id}" if chat_id is not None else ""
    return f"tgingest quality repair --check {check}{where}"


def narrowed(check: str, chats: list[int]) -> str:
    return repair_command(check, chats[0] if len(set(chats)) == 1 else None)


def exit_code(findings: list[Finding]) -> int:
    worst = max((RANK[f.severity] for f in findings if f.count), default=0)
    if worst >= RANK["error"]:
        return EXIT_ERRORS
    if worst >= RANK["warning"]:
        return EXIT_WARNINGS
    return EXIT_CLEAN
