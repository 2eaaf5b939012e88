"""Highlighting search hits in result text (display only; matching happened in PostgreSQL).

Which characters to mark comes from the Rust core (`highlight_spans`): the query is split by
the parser that built the tsquery and both sides are tokenized by the code that built the
stored tokens, so a highlight is what the search matched (case, full-width forms,
Traditional/Simplified Chinese, CJK bigrams, phrases at their distances), never a guess by a
second parser here.
"""

from __future__ import annotations

from tgingest._core import highlight_spans


def highlight(
    text: str, query: str, *, start: str = "[", end: str = "]", width: int | None = 200
) -> str:
    """Wrap what the query matched in `start`/`end`; with `width`, trim the text to that many
    characters around the first hit (… marks a cut)."""
    spans = highlight_spans(text, query)
    lo, hi = 0, len(text)
    if width is not None and len(text) > width:
        lo = max(0, spans[0][0] - width // 3) if spans else 0
        hi = min(len(text), lo + width)
    out = ["…" if lo else ""]
    at = lo
    for a, b in spans:
        a, b = max(a, lo), min(b, hi)
        if a >= b:
            continue
        out += [text[at:a], start, text[a:b], end]
        at = b
    out += [text[at:hi], "…" if hi < len(text) else ""]
    return "".join(out)
