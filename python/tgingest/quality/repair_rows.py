"""Repairs inside the warehouse: the DEFAULT partition, keys and rows (lost rows re-derived
from the ODS: rederive.py), media links and content hashes (the daily aggregates:
repair_stats.py). Each writes its audit row in the transaction of its change; what a repair
removes (an extra copy of a row, a key whose row is lost, a dangling link) is kept in the audit
row's detail or, for a row's content, in `message_versions`, so nothing is dropped without a
trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tgingest.backup.partition_ops import default_months, move_default_rows
from tgingest.quality import consistency, hashes, rederive, refetch, textfix
from tgingest.quality.context import Context
from tgingest.store import audit

if TYPE_CHECKING:
    from tgingest.quality.repair import Options, Plan

DETAIL_ITEMS = 50  # items listed in an audit row's detail (the counts are always complete)


async def audited(ctx: Context, plan: Plan, reason: str, detail: dict[str, Any]) -> None:
    target: dict[str, Any] = {"check": plan.check}
    if ctx.chat_id is not None:
        target["chat_id"] = ctx.chat_id
    # A repair that created one batch (rows re-derived through the pipeline) names it, so
    # the batch's lineage and impact show the repair; several stay listed in the detail.
    created = detail.get("new_batches") or []
    plan.audit_ids.append(
        await audit.record(
            ctx.conn,
            action="repair",
            target=target,
            reason=reason,
            detail=detail,
            batch_id=created[0] if len(created) == 1 else None,
        )
    )


def _listed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in item.items()} for item in items[:DETAIL_ITEMS]]


def _plain(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


# ---- the DEFAULT partition -------------------------------------------------------------------


async def default_partition(ctx: Context, options: Options, plan: Plan) -> None:
    months = await default_months(ctx.conn)
    if ctx.chat_id is not None:  # the months holding this chat's rows (moved whole: all chats)
        mine = await ctx.conn.fetch(
            """SELECT DISTINCT extract(year FROM date AT TIME ZONE 'UTC')::int AS y,
                      extract(month FROM date AT TIME ZONE 'UTC')::int AS m
               FROM messages_default WHERE chat_id = $1""",
            ctx.chat_id,
        )
        months = {k: v for k, v in months.items() if k in {(r["y"], r["m"]) for r in mine}}
    for (year, month), rows in months.items():
        plan.actions.append(f"move {rows:,} rows of {year:04d}-{month:02d} into their partition")
        if options.dry_run:
            plan.repaired += rows
            continue
        async with ctx.conn.transaction():
            moved = await move_default_rows(ctx.conn, year, month)
            chats = await ctx.conn.fetch(
                """SELECT DISTINCT chat_id FROM messages
                   WHERE date >= make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC')
                     AND date < make_timestamptz($1, $2, 1, 0, 0, 0, 'UTC') + interval '1 month'""",
                year,
                month,
            )
            await audited(
                ctx,
                plan,
                "rows sat in messages_default: moved into their own monthly partition",
                {"month": f"{year:04d}-{month:02d}", "rows": moved},
            )
        plan.repaired += moved
        plan.chats |= {r["chat_id"] for r in chats}


# ---- keys and rows -------------------------------------------------------------------------


async def _problems(ctx: Context, name: str) -> list[dict[str, Any]]:
    return [p for p in await consistency.key_problems(ctx) if p["problem"] == name]


async def orphan_rows(ctx: Context, options: Options, plan: Plan) -> None:
    """Give each keyless message its key, from its newest version's row (present = -1, digest
    unknown: as migration 0002 did for rows older than those columns)."""
    found = await _problems(ctx, "orphan_rows")
    if not found:
        return
    triples = [(p["chat_id"], p["message_id"], d) for p in found for d in p["row_dates"]]
    plan.actions.append(f"give {len(found):,} rows their key in message_keys")
    plan.examples = _listed(found[:5])
    if options.dry_run:
        plan.repaired = len(found)
        return
    async with ctx.conn.transaction():
        status = await ctx.conn.execute(
            """INSERT INTO message_keys (chat_id, message_id, date, edit_date, present, digest)
               SELECT DISTINCT ON (m.chat_id, m.message_id)
                      m.chat_id, m.message_id, m.date, m.edit_date, -1, NULL
               FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS t(c, i, d)
               JOIN messages m ON m.chat_id = t.c AND m.message_id = t.i AND m.date = t.d
               ORDER BY m.chat_id, m.message_id, m.edit_date DESC NULLS LAST, m.date
               ON CONFLICT DO NOTHING""",
            *map(list, zip(*triples, strict=True)),
        )
        plan.repaired = int(status.rsplit(" ", 1)[-1])
        await audited(
            ctx,
            plan,
            "message rows had no key: keys re-created from the rows",
            {"keys_created": plan.repaired, "messages": _listed(found)},
        )
    plan.chats |= {p["chat_id"] for p in found}


async def two_partitions(ctx: Context, options: Options, plan: Plan) -> None:
    """Keep one row per message, at its key's date; when the key's own row is gone, keep the
    newest version among the others and move the key to it. A removed copy whose content
    differs from the kept row is kept in message_versions."""
    found = await _problems(ctx, "two_partitions")
    if not found:
        return
    rows = await ctx.conn.fetch(
        """SELECT m.chat_id, m.message_id, m.date, m.edit_date
           FROM unnest($1::bigint[], $2::bigint[]) AS t(c, i)
           JOIN message_keys k ON k.chat_id = t.c AND k.message_id = t.i
           JOIN messages m ON m.chat_id = t.c AND m.message_id = t.i""",
        [p["chat_id"] for p in found],
        [p["message_id"] for p in found],
    )
    copies: dict[tuple[int, int], list[Any]] = {}
    for r in rows:
        copies.setdefault((r["chat_id"], r["message_id"]), []).append(r)
    keep: list[tuple[int, int, Any, Any]] = []  # chat, id, kept date, its edit date
    drop: list[tuple[int, int, Any, Any]] = []  # chat, id, removed date, kept date
    moved_keys = 0
    for p in found:
        mine = copies.get((p["chat_id"], p["message_id"]), [])
        at_key = [r for r in mine if r["date"] == p["key_date"]]
        kept = (
            at_key[0]
            if at_key
            else max(
                mine,
                key=lambda r: (r["edit_date"] is not None, r["edit_date"] or r["date"], r["date"]),
            )
        )
        if not at_key:
            moved_keys += 1
            keep.append((p["chat_id"], p["message_id"], kept["date"], kept["edit_date"]))
        drop += [
            (p["chat_id"], p["message_id"], r["date"], kept["date"]) for r in mine if r is not kept
        ]
    plan.actions.append(
        f"remove {len(drop):,} extra copies of {len(found):,} messages"
        + (f", move {moved_keys:,} keys to their only row" if moved_keys else "")
    )
    plan.examples = _listed(found[:5])
    if options.dry_run:
        plan.repaired = len(found)
        return
    async with ctx.conn.transaction():
        if keep:
            await ctx.conn.execute(
                """UPDATE message_keys k SET date = t.d, edit_date = t.e, digest = NULL
                   FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[])
                        AS t(c, i, d, e)
                   WHERE k.chat_id = t.c AND k.message_id = t.i""",
                *map(list, zip(*keep, strict=True)),
            )
        if drop:
            cols = list(map(list, zip(*drop, strict=True)))
            versions = await ctx.conn.execute(
                """INSERT INTO message_versions (chat_id, message_id, edit_date, text, entities,
                       extra, media_type, changed, batch_id)
                   SELECT x.chat_id, x.message_id, x.edit_date, x.text, x.entities, x.extra,
                          x.media_type, '{}', x.batch_id
                   FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[])
                        AS t(c, i, d, kept)
                   JOIN messages x ON x.chat_id = t.c AND x.message_id = t.i AND x.date = t.d
                   JOIN messages k ON k.chat_id = t.c AND k.message_id = t.i AND k.date = t.kept
                   WHERE (x.edit_date, x.text) IS DISTINCT FROM (k.edit_date, k.text)
                   ON CONFLICT DO NOTHING""",
                *cols,
            )
            await ctx.conn.execute(
                """DELETE FROM messages x
                   USING unnest($1::bigint[], $2::bigint[], $3::timestamptz[]) AS t(c, i, d)
                   WHERE x.chat_id = t.c AND x.message_id = t.i AND x.date = t.d""",
                *cols[:3],
            )
        else:
            versions = "INSERT 0 0"
        await audited(
            ctx,
            plan,
            "messages stored at more than one date: one row kept, at its key's date",
            {
                "messages": len(found),
                "copies_removed": len(drop),
                "keys_moved": moved_keys,
                "copies_kept_as_versions": int(versions.rsplit(" ", 1)[-1]),
                "removed": _listed(
                    [{"chat_id": c, "message_id": i, "date": d, "kept": k} for c, i, d, k in drop]
                ),
            },
        )
    plan.repaired = len(found)
    plan.chats |= {p["chat_id"] for p in found}


async def orphan_keys(ctx: Context, options: Options, plan: Plan) -> None:
    """A key whose row is lost blocks the message from ever being stored again (a replay of it
    is judged already stored), so the key goes (kept in the audit detail). The row comes back
    from its ODS record when the ODS still holds it (rederive.py), in the same transaction;
    otherwise the daemon is asked to read the message again (an import of an export holding
    it stores it too)."""
    problems = await _problems(ctx, "orphan_keys")
    if not problems:
        return
    keys = await ctx.conn.fetch(
        """SELECT k.chat_id, k.message_id, k.date, k.edit_date, k.digest, k.present,
                  extract(epoch FROM k.edit_date)::bigint AS edit
           FROM message_keys k JOIN unnest($1::bigint[], $2::bigint[]) AS t(c, i)
             ON k.chat_id = t.c AND k.message_id = t.i""",
        [p["chat_id"] for p in problems],
        [p["message_id"] for p in problems],
    )
    by_chat: dict[int, dict[int, rederive.Wanted]] = {}
    for k in keys:
        by_chat.setdefault(k["chat_id"], {})[k["message_id"]] = rederive.Wanted(
            k["edit"], k["present"], k["digest"]
        )
    found = {c: await rederive.find(ctx.conn, c, wanted) for c, wanted in by_chat.items()}
    n_ods = sum(len(f) for f in found.values())
    plan.actions.append(
        f"{len(keys):,} keys whose row is lost: {n_ods:,} rows re-derived from the ODS, "
        f"{len(keys) - n_ods:,} queued to be read again"
    )
    plan.examples = _listed(problems[:5])
    if options.dry_run:
        plan.repaired, plan.queued = n_ods, len(keys) - n_ods
        return
    async with ctx.conn.transaction():
        await ctx.conn.execute(
            """DELETE FROM message_keys k USING unnest($1::bigint[], $2::bigint[]) AS t(c, i)
               WHERE k.chat_id = t.c AND k.message_id = t.i""",
            [k["chat_id"] for k in keys],
            [k["message_id"] for k in keys],
        )
        batches: list[int] = []
        asked: list[dict[str, int]] = []
        for chat_id, wanted in by_chat.items():
            batches += await rederive.restore(ctx.conn, chat_id, found[chat_id])
            rest = sorted(set(wanted) - set(found[chat_id]))
            plan.queued += await refetch.request(
                ctx.conn, chat_id, [(i, i) for i in rest], "orphan_keys"
            )
            asked += [{"chat_id": chat_id, "message_id": i} for i in rest]
        await audited(
            ctx,
            plan,
            "message keys without their row: rows re-derived from the ODS, or the keys dropped "
            "and the messages queued to be read again",
            {
                "keys": _listed(
                    [
                        {k: v for k, v in dict(r).items() if k not in ("edit", "present")}
                        for r in keys
                    ]
                ),
                "rederived": _listed(
                    [
                        {
                            "chat_id": c,
                            "message_id": m,
                            "ods_batch": f.ods_batch,
                            "same_version": f.exact,
                        }
                        for c, fs in found.items()
                        for m, f in fs.items()
                    ]
                ),
                "new_batches": batches,
                "queued": _listed(asked),
            },
        )
    plan.repaired = n_ods
    plan.chats |= set(by_chat)


async def orphan_links(ctx: Context, options: Options, plan: Plan) -> None:
    found = await consistency.orphan_links(ctx)
    if not found:
        return
    plan.actions.append(f"remove {len(found):,} media links to nothing")
    plan.examples = _listed(found[:5])
    if options.dry_run:
        plan.repaired = len(found)
        return
    async with ctx.conn.transaction():
        status = await ctx.conn.execute(
            """DELETE FROM message_media mm
               USING unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS t(c, i, s)
               WHERE mm.chat_id = t.c AND mm.message_id = t.i AND mm.sha256 = t.s""",
            [x["chat_id"] for x in found],
            [x["message_id"] for x in found],
            [x["sha256"] for x in found],
        )
        plan.repaired = int(status.rsplit(" ", 1)[-1])
        await audited(
            ctx,
            plan,
            "media links to a message or media row that does not exist: removed",
            {"links_removed": plan.repaired, "links": _listed(found)},
        )


# ---- content hashes ---------------------------------------------------------


async def content_hash(ctx: Context, options: Options, plan: Plan) -> None:
    """Rewrite the hash, unless the ODS shows the text is what was damaged (textfix.py): then
    the text and what derives from it come back from the ODS record."""
    bad = await hashes.mismatches(ctx)
    if not bad:
        return
    damaged = await textfix.damaged_texts(ctx.conn, bad)
    rehash = [b for b in bad if (b["chat_id"], b["message_id"]) not in damaged]
    plan.actions.append(
        f"re-hash {len(rehash):,} rows with the pipeline's content hash"
        + (f"; restore {len(damaged):,} damaged texts from the ODS" if damaged else "")
    )
    plan.examples = _listed(bad[:5])
    if options.dry_run:
        plan.repaired = len(bad)
        return
    async with ctx.conn.transaction():
        old = {(b["chat_id"], b["message_id"]): b["stored"] for b in bad}
        restored = await textfix.restore(ctx.conn, damaged, old) if damaged else 0
        status = await ctx.conn.execute(
            # The row at its key's date (one index lookup in one partition per row).
            """UPDATE messages m SET content_hash = t.h
               FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[])
                    AS t(c, i, h, old)
               JOIN message_keys k ON k.chat_id = t.c AND k.message_id = t.i
               WHERE m.chat_id = k.chat_id AND m.date = k.date AND m.message_id = k.message_id
                 AND m.content_hash = t.old""",
            [b["chat_id"] for b in rehash],
            [b["message_id"] for b in rehash],
            [b["computed"] for b in rehash],
            [b["stored"] for b in rehash],
        )
        plan.repaired = int(status.rsplit(" ", 1)[-1]) + restored
        plan.left = len(bad) - plan.repaired  # rows without a key (orphan_rows repairs those)
        await audited(
            ctx,
            plan,
            "content hashes disagreed with the text: recomputed by the Rust core, or the "
            "damaged text restored from the ODS",
            {
                "rows": plan.repaired,
                "rehashed": _listed(rehash),
                "texts_restored": _listed(
                    [
                        {"chat_id": c, "message_id": i, "ods_batch": batch}
                        for (c, i), (batch, _) in damaged.items()
                    ]
                ),
            },
        )
