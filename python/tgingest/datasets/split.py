"""Deterministic, leakage-free train/validation/test splits (pure: no I/O).

A split is decided per *group*, never per row, and by a hash, never by a random generator or by
row order, so the same rows with the same seed always land in the same splits, whatever order
they were read in and whatever else the dataset holds:

- `cluster` (default): a group is a near-duplicate cluster (`dedupe_clusters`); a message with no
  cluster row is its own group, named by the id its cluster would get (the cluster id derives
  from the first member's key), so it keeps its split when a near-duplicate joins it. No two
  near-duplicates are ever in different splits.
- `chat`: a group is a chat, and chats joined by a near-duplicate cluster (a repost across chats)
  are one group (union-find), so neither a chat nor a cluster is ever in two splits. A corpus
  whose chats all share clusters therefore ends up in one split: the datasheet shows it.
- `time`: a date cut. With n rows sorted by date, the train cut is the date of row
  ceil(n * train% / 100) (PostgreSQL's percentile_disc), the validation cut likewise at
  train% + validation%; a row goes to the first split whose cut is not before its date. Every
  train message is strictly older than every validation message, which is strictly older than
  every test message (one timestamp never straddles a cut). A near-duplicate of a message in an
  earlier split is left out (counted in the manifest as `excluded_near_duplicates`): a test set
  must hold only content the model has not seen.

Hash: the first 8 bytes of sha256(seed NUL group) as a number in [0, 2^64) picks the split by
cumulative percentage, so the sizes approach the ratios as groups get many and small.
`Assigner.split` is the one function both the database path (tgingest.datasets.create) and the
property tests use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tgingest.errors import InvalidInputError

SPLITS = ("train", "validation", "test")
MODES = ("cluster", "chat", "time")


def parse_ratios(text: str) -> tuple[int, int, int]:
    """ "80/10/10" (train/validation/test) or "90/10" (train/test), whole percentages adding up
    to 100."""
    parts = text.split("/")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or any(v < 0 for v in values) or sum(values) != 100:
        raise InvalidInputError(
            f"--split {text!r}: give whole percentages adding up to 100, "
            "train/validation/test (80/10/10) or train/test (90/10)"
        )
    if len(values) == 2:
        values = [values[0], 0, values[1]]
    return (values[0], values[1], values[2])


def hash_split(seed: str, group: str, ratios: tuple[int, int, int]) -> int:
    """The split of a group: its hash as a point in [0, 100) against the cumulative ratios."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") * 100  # compared against cum * 2^64
    cum = 0
    for index, ratio in enumerate(ratios):
        cum += ratio
        if point < cum << 64:
            return index
    return len(ratios) - 1  # unreachable when the ratios add up to 100


def singleton_id(chat_id: int, message_id: int) -> int:
    """The cluster id of a message alone: as tgingest.dedupe.clusters.cluster_id and SQL
    tgingest_cluster_id() (first 8 bytes of sha256 of both keys as big-endian int8, signed)."""
    digest = hashlib.sha256(struct.pack(">qq", chat_id, message_id)).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def cut_index(n: int, percent: int) -> int:
    """0-based position of the cut row among n rows sorted by date (percentile_disc), or -1
    when the cut keeps nothing (0%)."""
    return (percent * n + 99) // 100 - 1


class ChatGroups:
    """Union-find over chats: chats sharing a near-duplicate cluster are one group."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}

    def find(self, chat: int) -> int:
        parent = self._parent.setdefault(chat, chat)
        if parent == chat:
            return chat
        root = self.find(parent)
        self._parent[chat] = root
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller id is the root: the group's name does not depend on order
            self._parent[max(ra, rb)] = min(ra, rb)

    def link_clusters(self, pairs: Iterable[tuple[int, int]]) -> None:
        """(cluster_id, chat_id) pairs, in any order."""
        first: dict[int, int] = {}
        for cluster, chat in pairs:
            if cluster in first:
                self.union(first[cluster], chat)
            else:
                first[cluster] = chat
                self.find(chat)


@dataclass
class Assigner:
    """Decides each row's split (None: left out, see `time`). Built from what the whole
    selection implies (chat groups, time cuts, each cluster's first date), then called per row."""

    ratios: tuple[int, int, int]
    by: str = "cluster"
    seed: str = ""
    chats: ChatGroups = field(default_factory=ChatGroups)
    cuts: tuple[dt.datetime | None, dt.datetime | None] = (None, None)
    cluster_first: dict[int, dt.datetime] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.by not in MODES:
            raise InvalidInputError(f"--by {self.by!r}: one of {', '.join(MODES)}")

    def by_date(self, date: dt.datetime) -> int:
        train_cut, validation_cut = self.cuts
        if train_cut is not None and date <= train_cut:
            return 0
        if validation_cut is not None and date <= validation_cut:
            return 1
        return 2

    def split(
        self, chat_id: int, message_id: int, date: dt.datetime, cluster_id: int | None
    ) -> int | None:
        if self.by == "time":
            here = self.by_date(date)
            if cluster_id is not None and cluster_id in self.cluster_first:
                if self.by_date(self.cluster_first[cluster_id]) != here:
                    return None
            return here
        if self.by == "chat":
            group = f"g{self.chats.find(chat_id)}"
        else:
            # A message with no cluster row is the singleton cluster whose id it would get as a
            # cluster's first member (the id derives from the first member's key): so it keeps
            # its split when a near-duplicate of it appears later, even outside the selection.
            group = (
                f"c{cluster_id if cluster_id is not None else singleton_id(chat_id, message_id)}"
            )
        return hash_split(self.seed, group, self.ratios)


Row = tuple[int, int, dt.datetime, int | None]  # chat_id, message_id, date, cluster_id


def time_cuts(
    dates_sorted: Sequence[dt.datetime], ratios: tuple[int, int, int]
) -> tuple[dt.datetime | None, dt.datetime | None]:
    n = len(dates_sorted)
    out: list[dt.datetime | None] = []
    for percent in (ratios[0], ratios[0] + ratios[1]):
        at = cut_index(n, percent)
        out.append(dates_sorted[at] if at >= 0 and n else None)
    return out[0], out[1]


def assigner_for(
    rows: Sequence[Row], ratios: tuple[int, int, int], by: str = "cluster", seed: str = ""
) -> Assigner:
    """The Assigner the database path would build for these rows (in memory: tests, small
    inputs)."""
    a = Assigner(ratios, by, seed)
    if by == "chat":
        a.chats.link_clusters((c, chat) for chat, _, _, c in rows if c is not None)
    elif by == "time":
        a.cuts = time_cuts(sorted(r[2] for r in rows), ratios)
        for _, _, date, cluster in rows:
            if cluster is not None and (
                cluster not in a.cluster_first or date < a.cluster_first[cluster]
            ):
                a.cluster_first[cluster] = date
    return a


def assign(
    rows: Sequence[Row], ratios: tuple[int, int, int], by: str = "cluster", seed: str = ""
) -> list[int | None]:
    """The split of every row (None: left out), in the order given."""
    a = assigner_for(rows, ratios, by, seed)
    return [a.split(*row) for row in rows]
