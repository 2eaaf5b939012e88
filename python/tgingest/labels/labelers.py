"""Automatic labelers: Python functions registered as entry points in the group
`tgingest.labelers`, run by `tgingest label run NAME --set SET [filters]`.

A labeler takes a batch of messages and returns, for each in order, a label, a (label,
confidence) pair, or None for "no label":

    # mypkg/labelers.py
    def has_link(messages):
        return [("link", 1.0) if "http" in m.text else None for m in messages]

    # mypkg's pyproject.toml
    [project.entry-points."tgingest.labelers"]
    has_link = "mypkg.labelers:has_link"

Its labels go through the set's label schema like imported ones (a label the schema refuses is
quarantined) with annotator "labeler:NAME", and the run makes a new version of the set.
tgingest ships `script` (tgingest.labels.builtin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from tgingest.errors import InvalidInputError

GROUP = "tgingest.labelers"


@dataclass(frozen=True)
class LabelInput:
    chat_id: int
    message_id: int
    date: dt.datetime
    kind: str
    text: str


LabelOutput = str | tuple[str, float | None] | None
Labeler = Callable[[Sequence[LabelInput]], Iterable[LabelOutput]]


def available() -> dict[str, str]:
    """name -> "module:function" of every registered labeler."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(name: str) -> Labeler:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        names = ", ".join(sorted(available())) or "none"
        raise InvalidInputError(f"no labeler {name!r} is installed (registered: {names})")
    try:
        fn = found[0].load()
    except Exception as e:  # a broken plugin is the plugin's error, said in one line
        raise InvalidInputError(
            f"labeler {name!r} ({found[0].value}) cannot be loaded: {type(e).__name__}: {e}"
        ) from None
    if not callable(fn):
        raise InvalidInputError(f"labeler {name!r} ({found[0].value}) is not a function")
    return fn  # type: ignore[no-any-return]


def outputs(name: str, fn: Labeler, batch: Sequence[LabelInput]) -> list[LabelOutput]:
    """The labeler's answers for a batch, checked for count; its exceptions in one line."""
    try:
        out = list(fn(batch))
    except Exception as e:
        raise InvalidInputError(f"labeler {name!r} failed: {type(e).__name__}: {e}") from None
    if len(out) != len(batch):
        raise InvalidInputError(
            f"labeler {name!r} returned {len(out)} answers for {len(batch)} messages"
        )
    return out
