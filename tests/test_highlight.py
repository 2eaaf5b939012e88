"""Highlighting goes through the Rust query parser and tokenizer: what is marked is what the
search matched (case, width forms, Traditional/Simplified, CJK bigrams, phrases)."""

from __future__ import annotations

from tgingest import highlight_spans
from tgingest.highlight import highlight


def test_marks_what_the_search_matches() -> None:
    assert highlight("PostgreSQL backup finished", "BACKUP") == "PostgreSQL [backup] finished"
    assert highlight("這個頻道的資料庫備份", "资料库") == "這個頻道的[資料庫]備份"
    assert highlight("Ｂａｃｋｕｐ ok", "backup") == "[Ｂａｃｋｕｐ] ok"
    assert highlight("backup finished; finished backup", '"backup finished"') == (
        "[backup finished]; finished backup"
    )
    assert highlight("postgres mysql", "postgres -mysql") == "[postgres] mysql"


def test_trims_around_the_first_hit_and_marks_the_cut() -> None:
    text = "x" * 300 + " needle " + "y" * 300
    shown = highlight(text, "needle", start="<", end=">", width=100)
    assert shown.startswith("…") and shown.endswith("…")
    assert "<needle>" in shown and len(shown) == 100 + 2 + 2
    assert highlight("short", "absent") == "short"
    assert highlight("a" * 250, "absent", width=200) == "a" * 200 + "…"


def test_spans_are_character_offsets_of_the_text_as_given() -> None:
    text = "🚀 e\u0301te\u0301 rocket"
    ((a, b),) = highlight_spans(text, "rocket")
    assert text[a:b] == "rocket"
    # Markup escaping before highlighting (as the CLI does with rich) keeps the marks whole.
    assert highlight(r"\[x] rocket", "rocket", start="{", end="}") == r"\[x] {rocket}"
