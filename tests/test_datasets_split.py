"""The split function on in-memory inputs: leakage-free across 1,000 seeded datasets
(hypothesis), deterministic, order-independent. The same function runs inside `dataset create`
(tests/test_datasets.py checks real datasets end to end)."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tgingest.datasets.split import (
    ChatGroups,
    assign,
    cut_index,
    hash_split,
    parse_ratios,
    time_cuts,
)
from tgingest.errors import InvalidInputError

BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@st.composite
def datasets(draw):
    """A seeded dataset: chats, messages with dates (ties included), near-duplicate clusters
    that may span chats, a split ratio, a mode and a seed."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    n = draw(st.integers(1, 300))
    n_chats = rng.randint(1, 12)
    n_clusters = rng.randint(0, max(1, n // 3))
    rows = []
    for i in range(n):
        chat = -1000 - rng.randrange(n_chats)
        date = BASE + dt.timedelta(hours=rng.randrange(max(1, n // 2)))  # ties on purpose
        cluster = rng.randrange(n_clusters) if n_clusters and rng.random() < 0.5 else None
        rows.append((chat, i + 1, date, cluster))
    ratios = draw(
        st.sampled_from([(80, 10, 10), (70, 15, 15), (90, 0, 10), (34, 33, 33), (0, 50, 50)])
    )
    by = draw(st.sampled_from(["cluster", "chat", "time"]))
    return rows, ratios, by, str(seed)


def _leaks(rows, splits, by) -> list[str]:
    where_cluster: dict[int, set[int]] = defaultdict(set)
    where_chat: dict[int, set[int]] = defaultdict(set)
    for (chat, _, _, cluster), s in zip(rows, splits, strict=True):
        if s is None:
            continue
        if cluster is not None:
            where_cluster[cluster].add(s)
        where_chat[chat].add(s)
    found = [f"cluster {c} in {s}" for c, s in where_cluster.items() if len(s) > 1]
    if by == "chat":
        found += [f"chat {c} in {s}" for c, s in where_chat.items() if len(s) > 1]
    if by == "time":
        dates: dict[int, list[dt.datetime]] = defaultdict(list)
        for (_, _, date, _), s in zip(rows, splits, strict=True):
            if s is not None:
                dates[s].append(date)
        for early, late in ((0, 1), (0, 2), (1, 2)):
            if dates[early] and dates[late] and max(dates[early]) >= min(dates[late]):
                found.append(f"split {early} reaches {max(dates[early])} >= {min(dates[late])}")
    return found


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(datasets())
def test_no_cluster_chat_or_time_leaks_across_1000_seeded_datasets(data) -> None:
    rows, ratios, by, seed = data
    splits = assign(rows, ratios, by, seed)
    assert _leaks(rows, splits, by) == []
    # A split with 0% gets nothing, and only the time split leaves rows out.
    for index, ratio in enumerate(ratios):
        if ratio == 0:
            assert index not in splits
    if by != "time":
        assert None not in splits
    # Deterministic and independent of the order rows come in.
    shuffled = list(zip(rows, splits, strict=True))
    random.Random(seed).shuffle(shuffled)
    again = assign([r for r, _ in shuffled], ratios, by, seed)
    assert again == [s for _, s in shuffled]


def test_time_split_leaves_out_near_duplicates_of_earlier_splits() -> None:
    rows = [(-1, i, BASE + dt.timedelta(days=i), None) for i in range(1, 11)]
    rows[9] = (-1, 10, rows[9][2], 7)  # the newest message (test) ...
    rows[0] = (-1, 1, rows[0][2], 7)  # ... is a near-duplicate of the oldest (train)
    splits = assign(rows, (80, 10, 10), "time")
    assert splits == [0] * 8 + [1, None]


def test_chat_groups_join_chats_through_shared_clusters() -> None:
    g = ChatGroups()
    g.link_clusters([(1, -5), (2, -7), (1, -6), (2, -6)])
    assert g.find(-5) == g.find(-6) == g.find(-7) == -7
    assert g.find(-9) == -9


def test_split_sizes_follow_the_ratios_for_many_small_groups() -> None:
    counts = [0, 0, 0]
    for i in range(20_000):
        counts[hash_split("", f"m1/{i}", (80, 10, 10))] += 1
    assert 15_400 < counts[0] < 16_600 and 1_700 < counts[1] < 2_300 and 1_700 < counts[2] < 2_300


def test_time_cuts_are_percentile_disc() -> None:
    dates = [BASE + dt.timedelta(days=i) for i in range(10)]
    assert time_cuts(dates, (80, 10, 10)) == (dates[7], dates[8])
    assert cut_index(10, 0) == -1 and cut_index(3, 80) == 2 and cut_index(1, 10) == 0


@pytest.mark.parametrize(
    ("text", "ok"),
    [("80/10/10", (80, 10, 10)), ("90/10", (90, 0, 10)), ("0/0/100", (0, 0, 100))],
)
def test_ratios(text, ok) -> None:
    assert parse_ratios(text) == ok


@pytest.mark.parametrize("text", ["80/10", "80/10/5", "a/b/c", "100", "-10/60/50", "50/25/25/0"])
def test_bad_ratios_are_refused(text) -> None:
    with pytest.raises(InvalidInputError, match="--split"):
        parse_ratios(text)
