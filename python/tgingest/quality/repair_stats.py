"""Repair of the daily aggregates (the DWS layer): every drifted chat recomputed by the layer's
own rule, in one transaction with its audit row."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tgingest.quality import aggregates
from tgingest.quality.context import Context
from tgingest.quality.repair_rows import _listed, audited
from tgingest.store import dws

LOCK_TIMEOUT = "30s"  # a repair waits this long for running batches, then fails (try again)

if TYPE_CHECKING:
    from tgingest.quality.repair import Options, Plan


async def daily_stats(ctx: Context, options: Options, plan: Plan) -> None:
    """Recompute every drifted chat's aggregates with the layer's own rule (dws.recompute:
    chat_daily_stats, chat_daily_senders and the user-days they feed), then user-days that
    drifted on their own, from chat_daily_senders."""
    found = await aggregates.drifts(ctx)
    chats = sorted({r["chat_id"] for r in found["chat_daily_stats"] + found["chat_daily_senders"]})
    users = found.get("user_daily_stats", [])
    if not chats and not users:
        return
    total = sum(len(rows) for rows in found.values())
    plan.actions.append(
        f"recompute the daily aggregates of {len(chats):,} chats"
        + (f" and {len(users):,} user-days" if users else "")
    )
    plan.examples = _listed([aggregates._example(r) for rows in found.values() for r in rows][:5])
    if options.dry_run:
        plan.repaired = total
        return
    async with ctx.conn.transaction():
        # Batches add to these tables (+n) while a recomputation writes absolute counts: hold
        # writers off until this commits. A batch that already wrote is waited for (so its rows
        # are counted); one that writes later blocks, then adds its +n to the right total.
        await ctx.conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        await ctx.conn.execute(
            "LOCK TABLE chat_daily_stats, chat_daily_senders, user_daily_stats "
            "IN SHARE ROW EXCLUSIVE MODE"
        )
        fixed = 0
        for chat_id in chats:
            fixed += await dws.recompute(ctx.conn, chat_id)
        if users:
            await ctx.conn.execute(
                USERS_FROM_SENDERS_SQL, [u["user_id"] for u in users], [u["day"] for u in users]
            )
        await audited(
            ctx,
            plan,
            "daily aggregates disagreed with the rows: recomputed",
            {
                "chats": chats,
                "values_corrected": fixed,
                "user_days": len(users),
                "changes": _listed(
                    [
                        {"table": t, **aggregates._example(r)}
                        for t, rows in found.items()
                        for r in rows
                    ]
                ),
            },
        )
    plan.repaired = total
    plan.chats |= set(chats)


# user_daily_stats rows set from their source (the per-sender rows). A user-day whose source
# is gone is zeroed, not deleted: as in dws.recompute, aggregate rows are kept, because backups
# carry these tables as deltas and a deletion would not reach an incremental's restore.
USERS_FROM_SENDERS_SQL = """
WITH t AS (SELECT * FROM unnest($1::bigint[], $2::date[]) AS t(user_id, day)),
e AS (
    SELECT t.user_id, t.day, coalesce(sum(s.messages), 0)::int AS messages,
           coalesce(sum(s.media), 0)::int AS media, coalesce(sum(s.edits), 0)::int AS edits,
           coalesce(sum(s.deletions), 0)::int AS deletions,
           (count(*) FILTER (WHERE s.messages > 0))::int AS chats
    FROM t LEFT JOIN chat_daily_senders s ON s.sender_id = t.user_id AND s.day = t.day
    GROUP BY 1, 2
)
INSERT INTO user_daily_stats AS u (user_id, day, messages, media, edits, deletions, chats)
SELECT * FROM e ORDER BY 1, 2
ON CONFLICT (user_id, day) DO UPDATE SET
    messages = excluded.messages, media = excluded.media, edits = excluded.edits,
    deletions = excluded.deletions, chats = excluded.chats
"""
