"""Exact reposts: the same content in the same chat within 7 days of the first is marked.

The rule is a function of the stored rows alone, so arrival order cannot change it: for one
chat and one content digest, sort the messages by (date, message_id); the first is an original,
every later one within WINDOW of that original is a repost of it (`reposts.repost_of`), and the
first one past the window starts a new window as an original. Messages are never dropped.

Both steps run inside the transaction that stores a batch (store/writer.py):
1. `judge`, before the rows: take a transaction-level advisory lock per chat of the batch, so
   two workers committing the same content at once judge one after the other (each statement
   then sees what the other committed). Then probe which of the batch's digests have another
   stored message within WINDOW of the batch's dates (or repeat within the batch). A message
   with none is an original and changes no other mark (a window only reaches WINDOW forward),
   which is the common case and costs one query over the one or two monthly partitions the
   dates touch, before the batch's own rows are there to read. With Redis, the shared window
   (dedupe/window.py) answers "not seen" for live messages first and the probe only asks about
   the rest.
2. `settle`, after the rows: for the digests with company, recompute the chain from the batch's
   earliest message of that digest on (an early message arriving late, an export after live,
   moves every window after it) and write only the marks that changed. The state before that
   point is the stored mark of the last message before it; after it, when the batch comes
   after everything stored in its chat (an import in date order), the chain is the batch's
   own rows, not read back.
Edited messages may leave their digest: their old company is recomputed too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import asyncpg

from tgingest._core import BatchResult
from tgingest.dedupe.digest_lookup import find_digest, find_last_before

if TYPE_CHECKING:
    from tgingest.dedupe.window import RepostWindow

WINDOW = dt.timedelta(days=7)
# XXH3-128 of the empty content key: every empty or media-only text has it (migration 0010's
# partial index names the same literal).
EMPTY = bytes.fromhex("99aa06d3014798d86001c324468d497f")
# Texts shorter than this many non-space characters are never reposts ("ok", "+1", an emoji).
MIN_CHARS = 4
# pg_advisory_xact_lock(int4, int4) namespace: "re" + "po".
_LOCK_NS = 0x7265_706F

_LOCK_SQL = "SELECT pg_advisory_xact_lock($1, hashint8($2))"

# Their marks: one key lookup each (`message_id = ANY($2)` may be planned as a scan testing
# every row against every id, from statistics that lag behind the rows just written).
_MARKS_SQL = """
SELECT r.message_id, r.repost_of, r.first_date
FROM unnest($2::bigint[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT message_id, repost_of, first_date FROM reposts
    WHERE chat_id = $1 AND message_id = u.id
    OFFSET 0
) r
"""

# Every digest with company in one chat (`dedupe run --reposts`).
_GROUPS_SQL = """
SELECT content_hash FROM messages
WHERE chat_id = $1 AND kind = 'message'
  AND content_hash <> '\\x99aa06d3014798d86001c324468d497f'::bytea
  AND char_length(regexp_replace(text, '\\s', '', 'g')) >= 4
GROUP BY content_hash HAVING count(*) > 1
"""

# Marks that involve edited messages (as repost or as original): their digests may have changed.
_INVOLVED_SQL = """
SELECT r.message_id, m.content_hash
FROM reposts r JOIN messages m ON m.chat_id = r.chat_id AND m.message_id = r.message_id
WHERE r.chat_id = $1 AND (r.message_id = ANY($2::bigint[]) OR r.repost_of = ANY($2::bigint[]))
"""

_CURRENT_SQL = """
SELECT content_hash FROM messages
WHERE chat_id = $1 AND message_id = ANY($2::bigint[]) AND kind = 'message'
  AND char_length(regexp_replace(text, '\\s', '', 'g')) >= 4
"""

_UPSERT_SQL = """
INSERT INTO reposts (chat_id, message_id, repost_of, date, first_date, batch_id)
SELECT $1, u.message_id, u.repost_of, u.date, u.first_date, $6
FROM unnest($2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
     AS u(message_id, repost_of, date, first_date)
ON CONFLICT (chat_id, message_id) DO UPDATE
SET repost_of = EXCLUDED.repost_of, first_date = EXCLUDED.first_date,
    date = EXCLUDED.date, batch_id = EXCLUDED.batch_id
"""

# Below this many new marks, the upsert's one statement costs less than a COPY's round trips.
_COPY_MIN = 64
_COPY_COLUMNS = ("chat_id", "message_id", "repost_of", "date", "first_date", "batch_id")

# The marks in a range of ids: one range scan of the key (a batch's new messages, which
# normally have none, without a lookup per message).
_MARKS_BETWEEN_SQL = """
SELECT message_id, repost_of, first_date FROM reposts
WHERE chat_id = $1 AND message_id BETWEEN $2 AND $3
"""

# The chat's last stored message in key order: one descent of each partition's key.
_LAST_KEY_SQL = """
SELECT date, message_id FROM messages WHERE chat_id = $1
ORDER BY date DESC, message_id DESC LIMIT 1
"""

# Below this many digests with company, reading the chains back costs less than the check
# that allows not to (a live batch; an import batch has thousands).
_APPEND_MIN = 32

_DELETE_SQL = "DELETE FROM reposts WHERE chat_id = $1 AND message_id = ANY($2::bigint[])"


class Candidate(NamedTuple):
    chat_id: int
    message_id: int
    ts: int  # the message's date, Unix seconds (datetimes only where SQL needs them)
    digest: bytes


@dataclass
class Marked:
    """What one `mark` call changed."""

    probed: int = 0  # digests asked of PostgreSQL
    skipped: int = 0  # digests the Redis window proved alone
    recomputed: int = 0  # digests whose chain was recomputed
    marked: int = 0  # repost rows written or changed
    cleared: int = 0  # repost rows removed (an earlier original arrived, an edit)


def candidates(result: BatchResult) -> dict[int, list[Candidate]]:
    """The batch's rows the window judges, per chat."""
    out: dict[int, list[Candidate]] = defaultdict(list)
    # Plain tuples in Candidate's field order (hot path: a NamedTuple per row costs more than
    # the probe); the code indexes them: 1 message_id, 2 ts, 3 digest.
    for row in result.repost_candidates(MIN_CHARS):
        out[row[0]].append(row)  # type: ignore[arg-type]
    return out


def _at(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass
class Judged:
    """What `judge` found before the rows were written, for `settle` after."""

    chats: list[int]
    by_chat: dict[int, list[Candidate]]
    todo: dict[int, set[bytes]]  # digests with company, per chat
    stats: Marked
    # Chats whose stored messages all come before every message of the batch (an export
    # imported in date order, history written oldest first), with the batch's messages of
    # each: once the batch is written whole, its chains from the batch on are these rows.
    appended: dict[int, list[Candidate]] = field(default_factory=dict)


async def judge(
    conn: asyncpg.Connection,
    result: BatchResult,
    chat_ids: Iterable[int],
    *,
    window: RepostWindow | None = None,
) -> Judged:
    """Before the batch's rows are written (inside its transaction): lock every chat of the
    batch, and find which of its digests have company (another message within the window)."""
    chats = sorted(set(chat_ids))
    judged = Judged(chats, candidates(result), {}, Marked())
    for chat_id in chats:  # one lock order: no deadlock
        await conn.execute(_LOCK_SQL, _LOCK_NS, chat_id)
    for chat_id, cands in judged.by_chat.items():
        judged.todo[chat_id] = await _company(conn, chat_id, cands, window, judged.stats)
    if any(len(todo) >= _APPEND_MIN for todo in judged.todo.values()):
        chains: dict[int, list[Candidate]] = defaultdict(list)
        # Every message the chain lookup would find, short texts included (it reads
        # `kind = 'message'` rows by digest alone).
        for row in result.repost_candidates(0):
            chains[row[0]].append(row)  # type: ignore[arg-type]
        for chat_id, todo in judged.todo.items():
            rows = chains[chat_id]
            if len(todo) >= _APPEND_MIN and await _after_everything(conn, chat_id, rows):
                judged.appended[chat_id] = rows
    return judged


async def _after_everything(conn: asyncpg.Connection, chat_id: int, rows: list[Candidate]) -> bool:
    """True when every stored message of the chat (any kind) comes before the batch's first."""
    last = await conn.fetchrow(_LAST_KEY_SQL, chat_id)
    if last is None:
        return True
    ts, message_id = min((r[2], r[1]) for r in rows)
    return (last[0], last[1]) < (_at(ts), message_id)


async def _company(
    conn: asyncpg.Connection,
    chat_id: int,
    cands: list[Candidate],
    window: RepostWindow | None,
    stats: Marked,
) -> set[bytes]:
    ids: dict[bytes, set[int]] = defaultdict(set)
    for c in cands:
        ids[c[3]].add(c[1])
    todo = {d for d, m in ids.items() if len(m) > 1}  # repeated within the batch
    ask = [c for c in cands if c[3] not in todo] if todo else cands
    if window is not None and ask:
        alone = await window.alone(conn, chat_id, cands)
        stats.skipped += len({c[3] for c in ask if c[3] in alone})
        ask = [c for c in ask if c[3] not in alone]
    if ask:
        digests = sorted({c[3] for c in ask})
        lo = _at(min(c[2] for c in ask)) - WINDOW
        hi = _at(max(c[2] for c in ask)) + WINDOW
        stats.probed += len(digests)
        for digest, message_id, _ in await find_digest(conn, chat_id, digests, lo, hi):
            # A replayed row is stored already: it is its own company, not another message.
            if message_id not in ids[digest]:
                todo.add(digest)
    return todo


async def settle(
    conn: asyncpg.Connection,
    judged: Judged,
    batch_id: int | None,
    *,
    edited: Iterable[tuple[int, int]] = (),
    written_whole: bool = False,
) -> Marked:
    """After the batch's rows are written: recompute the chains `judge` found company for, and
    those an edit may have changed. `edited`: keys (chat_id, message_id) that may have replaced
    an older version (the writer passes the batch's keys when some row was updated).
    `written_whole`: every row the batch could store was written as a new message (the
    writer's COPY path), so the batch's rows are in the table exactly as `judge` saw them."""
    stats = judged.stats
    edited_ids: dict[int, list[int]] = defaultdict(list)
    for chat_id, message_id in edited:
        edited_ids[chat_id].append(message_id)
    for chat_id in judged.chats:
        await _settle_chat(
            conn,
            chat_id,
            judged.by_chat.get(chat_id, []),
            judged.todo.get(chat_id, set()),
            edited_ids.get(chat_id, []),
            batch_id,
            stats,
            judged.appended.get(chat_id) if written_whole and not edited_ids else None,
        )
    return stats


async def mark(
    conn: asyncpg.Connection,
    result: BatchResult,
    batch_id: int | None,
    *,
    window: RepostWindow | None = None,
    edited: Iterable[tuple[int, int]] = (),
) -> Marked:
    """`judge` and `settle` in one call, for rows already written (the probe leaves each
    candidate's own key out, so the result is the same)."""
    chats = {c for c, _ in result.repost_candidates(MIN_CHARS)} | {c for c, _ in edited}
    judged = await judge(conn, result, chats, window=window)
    return await settle(conn, judged, batch_id, edited=edited)


async def _settle_chat(
    conn: asyncpg.Connection,
    chat_id: int,
    cands: list[Candidate],
    todo: set[bytes],
    edited_ids: list[int],
    batch_id: int | None,
    stats: Marked,
    appended: list[Candidate] | None,
) -> None:
    involved: set[int] = set()
    whole: set[bytes] = set()
    if edited_ids:
        rows = await conn.fetch(_INVOLVED_SQL, chat_id, edited_ids)
        involved = {r["message_id"] for r in rows}
        whole.update(r["content_hash"] for r in rows)
        whole.update(r[0] for r in await conn.fetch(_CURRENT_SQL, chat_id, edited_ids))
        whole.discard(EMPTY)
    # Texts that normalize to nothing share EMPTY and never repost: the lookups skip it.
    todo = todo - whole - {EMPTY}
    if todo:
        # Only from the batch's earliest message of each digest on: what comes before keeps
        # its marks (a mark depends on earlier messages only); the window's state at that
        # point is the stored mark of the last message in the 7 days before it.
        first: dict[bytes, tuple[int, int]] = {}
        for c in cands:
            if c[3] in todo:
                key = (c[2], c[1])
                first[c[3]] = min(first.get(c[3], key), key)
        starts = {d: (_at(ts), m) for d, (ts, m) in first.items()}
        own = None
        if appended is not None:
            # Nothing stored comes after the batch: from each start on, a chain is the batch's
            # own rows of that digest (the lookup would read exactly these back).
            own = sorted(((r[3], r[1], _at(r[2])) for r in appended if r[3] in todo), key=_order)
        await recompute(conn, chat_id, sorted(todo), batch_id, stats, starts=starts, own=own)
    if whole or involved:
        # An edit can take a message out of a chain anywhere: recompute those chains whole.
        await recompute(conn, chat_id, sorted(whole), batch_id, stats, involved=involved)


async def recompute(
    conn: asyncpg.Connection,
    chat_id: int,
    digests: Sequence[bytes],
    batch_id: int | None,
    stats: Marked,
    *,
    involved: Iterable[int] = (),
    starts: dict[bytes, tuple[dt.datetime, int]] | None = None,
    own: list[tuple[bytes, int, dt.datetime]] | None = None,
) -> None:
    """Recompute the chains of `digests` in one chat and write the marks that differ.

    Whole chains by default. With `starts`, each digest's chain is recomputed from its `starts`
    key (date, message_id) on; the messages before it keep their stored marks, and the last of
    them within WINDOW gives the window's state (its own original, or the one its mark names;
    none that recent: the start opens a window). `own`, with `starts`: the chains' rows
    (digest, message_id, date) from the earliest start on, in the lookup's order, when the
    caller knows them (then not read back). `involved`: messages with a mark that may no
    longer belong to any of these chains."""
    if starts is not None:
        lo: dt.datetime | None = min(t for t, _ in starts.values())
        last = await find_last_before(conn, chat_id, {d: starts[d] for d in digests}, WINDOW)
    else:
        lo, last = None, {}
    rows: Sequence[tuple[bytes, int, dt.datetime]]
    if own is not None:
        rows = own
        marks = await _marks(conn, chat_id, [m for m, _ in last.values()])
        if own:
            # New messages have no mark, unless a deleted message of the same id left one.
            mine = {m for _, m, _ in own}
            bounds = (min(mine), max(mine))
            for m, of, first in await conn.fetch(_MARKS_BETWEEN_SQL, chat_id, *bounds):
                if m in mine:
                    marks[m] = (of, first)
    else:
        rows = await find_digest(conn, chat_id, digests, lo, None) if digests else []
        ids = [r[1] for r in rows] + [m for m, _ in last.values()]
        marks = await _marks(conn, chat_id, ids)
    stats.recomputed += len(digests)
    # Marks a message gets for the first time (`fresh`), and marks that change (`ups`).
    fresh: list[tuple[int, int, dt.datetime, dt.datetime]] = []
    ups: list[tuple[int, int, dt.datetime, dt.datetime]] = []
    clear: list[int] = []
    seen: set[int] = set()
    original: tuple[int, dt.datetime] | None = None
    current: bytes | None = None
    start: tuple[dt.datetime, int] | None = None
    for digest, message_id, date in rows:
        have = marks.get(message_id, (None, None))[0]
        seen.add(message_id)
        if digest != current:
            current, original = digest, None
            start = starts.get(digest) if starts is not None else None
            before = last.get(digest)
            if before is not None:
                original = marks.get(before[0], before)
        if start is not None and (date, message_id) < start:
            continue  # before this digest's recomputed part (read from an earlier one's start)
        if original is None or date - original[1] > WINDOW:
            original = (message_id, date)
            if have is not None:
                clear.append(message_id)
        elif have is None:
            fresh.append((message_id, original[0], date, original[1]))
        elif have != original[0]:
            ups.append((message_id, original[0], date, original[1]))
    clear.extend(m for m in involved if m not in seen)
    if fresh:
        left = await _copy_fresh(conn, chat_id, fresh, batch_id)
        stats.marked += len(fresh) - len(left)
        ups.extend(left)
    if ups:
        cols = list(zip(*ups, strict=True))
        await conn.execute(_UPSERT_SQL, chat_id, *map(list, cols), batch_id)
        stats.marked += len(ups)
    if clear:
        await conn.execute(_DELETE_SQL, chat_id, clear)
        stats.cleared += len(clear)


def _order(row: tuple[bytes, int, dt.datetime]) -> tuple[bytes, dt.datetime, int]:
    return (row[0], row[2], row[1])  # the lookup's ORDER BY content_hash, date, message_id


async def _marks(
    conn: asyncpg.Connection, chat_id: int, ids: list[int]
) -> dict[int, tuple[int, dt.datetime]]:
    """message_id -> (repost_of, first_date) of those that have a mark."""
    if not ids:
        return {}
    return {r[0]: (r[1], r[2]) for r in await conn.fetch(_MARKS_SQL, chat_id, ids)}


async def _copy_fresh(
    conn: asyncpg.Connection,
    chat_id: int,
    fresh: list[tuple[int, int, dt.datetime, dt.datetime]],
    batch_id: int | None,
) -> list[tuple[int, int, dt.datetime, dt.datetime]]:
    """Write marks of messages that had none; returns those left for the upsert.

    Under the chat's lock no marking writer can have added one since `_MARKS_SQL` read them,
    so an import's thousands of new marks go in by COPY (2-3x cheaper than the upsert's
    speculative insertion). Only a writer outside the lock (a restore into a running
    warehouse) could collide: the savepoint then rolls back and the upsert settles them."""
    if len(fresh) < _COPY_MIN:
        return fresh
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "reposts",
                records=[(chat_id, *m, batch_id) for m in fresh],
                columns=_COPY_COLUMNS,
            )
    except asyncpg.UniqueViolationError:
        return fresh
    return []


async def rebuild(
    conn: asyncpg.Connection,
    chat_ids: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Marked:
    """Recompute every mark of the given chats (all by default), one transaction per chat:
    for rows stored before migration 0010, after a restore, or to check the marks. `progress`
    is told each chat done."""
    stats = Marked()
    if chat_ids is None:
        chat_ids = [r[0] for r in await conn.fetch("SELECT DISTINCT chat_id FROM message_keys")]
    for chat_id in chat_ids:
        async with conn.transaction():
            await conn.execute(_LOCK_SQL, _LOCK_NS, chat_id)
            digests = [r[0] for r in await conn.fetch(_GROUPS_SQL, chat_id)]
            marked = await conn.fetch("SELECT message_id FROM reposts WHERE chat_id = $1", chat_id)
            await recompute(conn, chat_id, digests, None, stats, involved=[r[0] for r in marked])
        if progress:
            progress(chat_id)
    return stats
