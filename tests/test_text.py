"""Normalization, search tokens and hashes through the public API, pinned by golden vectors
shared with the cargo tests (tests/fixtures/*.json)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tgingest

from helpers import load_fixture

NORMALIZE = load_fixture("normalize.json")
TOKENIZE = load_fixture("tokenize.json")
QUERY = load_fixture("query.json")
HASH = load_fixture("hash.json")


@pytest.mark.parametrize("case", NORMALIZE, ids=lambda c: c["name"])
def test_normalize_golden(case: dict) -> None:
    assert tgingest.normalize([case["input"]]) == [case["normalized"]]
    assert tgingest.content_keys([case["input"]]) == [case["content_key"]]


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_normalize_is_idempotent(text: str) -> None:
    once = tgingest.normalize([text])[0]
    assert tgingest.normalize([once]) == [once]
    assert "\x00" not in once


def test_lone_surrogates_are_repaired_visibly() -> None:
    out = tgingest.normalize(["a\ud800b\x00c"])[0]
    assert out == "a\ufffdb\u2400c"


def test_none_reads_as_empty_and_bad_types_are_refused() -> None:
    assert tgingest.normalize([None, "x"]) == ["", "x"]
    with pytest.raises(TypeError, match="sequence of str"):
        tgingest.normalize("not a list")
    with pytest.raises(TypeError, match="sequence of str"):
        tgingest.normalize([1, 2])


@pytest.mark.parametrize("case", TOKENIZE, ids=lambda c: c["name"])
def test_search_tokens_golden(case: dict) -> None:
    expected = {lexeme for lexeme, _ in case["lexemes"]}
    assert set(tgingest.search_tokens([case["input"]])[0]) == expected


@pytest.mark.parametrize("case", QUERY, ids=lambda c: c["query"])
def test_query_golden(case: dict) -> None:
    assert tgingest.query_tsquery(case["query"]) == case["tsquery"]


def test_traditional_and_simplified_share_tokens() -> None:
    trad, simp = tgingest.search_tokens(["資料庫備份", "资料库备份"])
    assert trad == simp
    assert tgingest.query_tsquery("資料庫") == tgingest.query_tsquery("资料库")


# content_hashes() hashes the content key; vectors that are their own key pin it from Python
# (the others are pinned on the raw digest function by the cargo tests).
OWN_KEY = [c for c in HASH["content"] if tgingest.content_keys([c["input"]]) == [c["input"]]]


@pytest.mark.parametrize("case", OWN_KEY, ids=lambda c: repr(c["input"])[:30])
def test_content_hash_golden(case: dict) -> None:
    assert tgingest.content_hashes([case["input"]]).hex() == case["content_digest"]


def test_most_hash_vectors_are_checked_from_python() -> None:
    assert len(OWN_KEY) >= len(HASH["content"]) - 4


def test_content_hash_ignores_tracking_and_layout() -> None:
    a, b, c = (
        tgingest.content_hashes([t])
        for t in [
            "See https://Example.com/x?utm_source=tg&id=1 by @Alice",
            "See  https://example.com/x?id=1   by @alice",
            "See https://example.com/x?id=2 by @alice",
        ]
    )
    assert a == b != c


def test_version_keys_golden() -> None:
    vectors = HASH["version_key"]
    keys = tgingest.version_keys(
        [v["chat_id"] for v in vectors],
        [v["message_id"] for v in vectors],
        [v["edit_date"] or None for v in vectors],
    )
    got = [int.from_bytes(keys[i * 8 : i * 8 + 8], "little") for i in range(len(vectors))]
    assert got == [int(v["version_key"]) for v in vectors]


def test_simhash_near_duplicates_are_close() -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    a, b, c = tgingest.simhashes([base, base + " again", "совершенно другой текст про базы"])
    assert bin(a ^ b).count("1") < bin(a ^ c).count("1")


def test_sha256_files_and_bytes(tmp_path) -> None:
    data = b"media bytes" * 100_000
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert tgingest.sha256_files([p, str(p)]) == [hashlib.sha256(data).digest()] * 2
    assert tgingest.sha256_bytes(data) == hashlib.sha256(data).digest()
    with pytest.raises(OSError) as e:
        tgingest.sha256_files([tmp_path / "missing"])
    assert isinstance(e.value, tgingest.TgIngestError)
    assert "missing" in str(e.value)


def test_batch_functions_agree_with_the_fused_hot_path() -> None:
    from array import array

    texts = ["Hello #World https://T.me/x?utm_source=a", "我们讨论資料庫", "Встреча @Alice"]
    batch = tgingest.RawBatch.from_columns(
        chat_id=[1, 1, 1], message_id=[1, 2, 3], date=[0, 0, 0], text=texts
    )
    result = tgingest.process_batch(batch)
    assert result.digests == tgingest.content_hashes(texts)
    assert list(array("Q", result.simhashes)) == tgingest.simhashes(texts)
