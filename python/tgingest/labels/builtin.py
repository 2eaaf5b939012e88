"""The labeler tgingest ships: `script`, the dominant writing system of a message's text.

Cheap enough to label millions of messages (one `str.translate` and a few `str.count` per text,
all in C) and exact about what it says: a script, not a language guess. Han with kana is
`japanese`; Han alone `han` (Chinese, or Japanese written in kanji only); Hangul `hangul`.
`datasets` also uses it for the datasheet's scripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tgingest.labels.labelers import LabelInput, LabelOutput

# (label, ranges of code points) in the order ties are broken.
_RANGES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("latin", ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x1E00, 0x1EFF))),
    ("cyrillic", ((0x400, 0x52F),)),
    ("han", ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))),
    ("kana", ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F))),
    ("hangul", ((0xAC00, 0xD7AF), (0x1100, 0x11FF), (0x3130, 0x318F))),
    ("arabic", ((0x600, 0x6FF), (0x750, 0x77F))),
    ("hebrew", ((0x590, 0x5FF),)),
    ("greek", ((0x370, 0x3FF),)),
    ("devanagari", ((0x900, 0x97F),)),
    ("thai", ((0xE00, 0xE7F),)),
)
_CODES = "abcdefghij"  # one marker character per script, in _RANGES order
# Every BMP code point is in the table (None drops it), so str.translate looks each character
# up in C; only characters beyond the BMP (emoji) reach _Only.__missing__ in Python.
_TABLE: dict[int, str | None] = dict.fromkeys(range(0x10000))
for _code, (_name, _spans) in zip(_CODES, _RANGES, strict=True):
    for _lo, _hi in _spans:
        for _cp in range(_lo, _hi + 1):
            _TABLE[_cp] = _code


class _Only(dict):  # type: ignore[type-arg]
    """A translate table that drops every character it does not name."""

    def __missing__(self, key: int) -> None:
        return None


_TRANSLATE = _Only(_TABLE)
_NAMES = {code: name for code, (name, _) in zip(_CODES, _RANGES, strict=True)}


def script_of(text: str) -> str | None:
    """The dominant script of `text` (None when it has no letters of a known script), judged on
    its first 512 characters (a long message does not change script half way often enough to
    pay for reading all of it)."""
    # Every character maps to its script's marker or to nothing.
    marks = text[:512].translate(_TRANSLATE)
    if not marks:
        return None
    counts = {code: marks.count(code) for code in _CODES if code in marks}
    best = max(counts, key=lambda c: counts[c])
    name = _NAMES[best]
    if name in ("han", "kana") and "d" in counts:
        return "japanese"
    return name


def script(messages: Sequence[LabelInput]) -> Iterable[LabelOutput]:
    """Labeler entry point: one label per message with letters, confidence = the share of its
    letters in that script."""
    for m in messages:
        text = m.text[:512]  # as script_of judges it
        marks = text.translate(_TRANSLATE)
        if not marks:
            yield None
            continue
        label = script_of(text)
        assert label is not None
        if label == "japanese":
            share = (marks.count("c") + marks.count("d")) / len(marks)
        else:
            share = marks.count(_CODES[[n for n, _ in _RANGES].index(label)]) / len(marks)
        yield (label, round(share, 3))
