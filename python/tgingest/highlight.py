"""Highlighting search hits in result text (display only; matching happened in PostgreSQL)."""

from __future__ import annotations

import re

_QUOTED = re.compile(r'"([^"]*)"')


def query_terms(query: str) -> list[str]:
    """The literal pieces of a query worth highlighting (phrases, words; no operators)."""
    terms = [p for p in _QUOTED.findall(query) if p.strip()]
    rest = _QUOTED.sub(" ", query)
    for word in rest.split():
        if word == "OR" or word.startswith("-"):
            continue
        word = word.strip("#$@.,;:!?()[]{}'\"")
        if word:
            terms.append(word)
    return sorted(set(terms), key=len, reverse=True)


def highlight(
    text: str, query: str, *, start: str = "[", end: str = "]", width: int | None = 200
) -> str:
    """Wrap case-insensitive occurrences of the query's terms; trim around the first hit."""
    terms = query_terms(query)
    if not terms:
        return text if width is None else text[:width]
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    first = pattern.search(text)
    if width is not None and first and len(text) > width:
        lo = max(0, first.start() - width // 3)
        text = ("…" if lo else "") + text[lo : lo + width] + "…"
    elif width is not None and len(text) > width:
        text = text[:width] + "…"
    return pattern.sub(lambda m: f"{start}{m.group(0)}{end}", text)
