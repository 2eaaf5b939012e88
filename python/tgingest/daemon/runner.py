"""`tgingest run`: follow every configured chat, live and from history, in one process.

Per account: one Telethon client and one LiveFeed. Per followed chat: one reconcile task that
backfills what the warehouse does not cover yet (oldest first), sets the live anchor, and
re-reads the newest messages for edits and deletions made while away; it runs at start, after
every gap or reconnect, and every `reconcile_every` seconds. Per account again: a media task
that downloads pending files into the content-addressed store. Everything read goes to the
sink (in-process committer, or Redis Streams for `tgingest worker`s).

A chat seen by several accounts is read by the first of them (its owner) and live from all;
the warehouse's keys make every message one row whichever account delivered it.

Stopping (SIGTERM, Ctrl-C): the readers stop, live buffers flush, the sink drains (every batch
read is committed or in Redis), the replay filter is saved, exit 0.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tgingest.backup.lifecycle import run_daily
from tgingest.config import Settings
from tgingest.daemon.committer import InProcessSink, Sink
from tgingest.daemon.config import ChatConfig, DaemonConfig
from tgingest.daemon.logs import SECRETS
from tgingest.daemon.media_fetcher import MediaFetcher
from tgingest.daemon.metrics import Metrics
from tgingest.errors import ConfigError
from tgingest.pipeline import Pipeline
from tgingest.quality import periodic, refetch
from tgingest.records import SourceBatch
from tgingest.sources.telegram.client import TgClient, WarehouseSession, connect, session_path
from tgingest.sources.telegram.flood import FloodWaits
from tgingest.sources.telegram.history import ChatReader, missing_ranges
from tgingest.sources.telegram.live import LiveChat, LiveFeed
from tgingest.sources.telegram.mapping import chat_row
from tgingest.store import daemon_queries
from tgingest.store.database import Database, is_transient

log = logging.getLogger(__name__)


@dataclass
class Account:
    name: str
    bot: bool
    client: Any
    feed: LiveFeed | None = None


@dataclass
class Followed:
    """A configured chat as resolved at start."""

    config: ChatConfig
    chat_id: int
    title: str | None
    owner: str  # the account that reads its history and downloads its media
    entities: dict[str, Any]  # account -> input entity, for every account that can see it
    # For `tgingest status`.
    state: str = "waiting"
    newest: int | None = None
    gaps: int = 0
    last_error: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        config: DaemonConfig,
        *,
        metrics: Metrics | None = None,
        reconcile_every: float = 900.0,
        status_every: float = 5.0,
        quality_every: float = periodic.EVERY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.config = config
        self.metrics = metrics or Metrics()
        self.reconcile_every = reconcile_every
        self.status_every = status_every
        self.quality_every = quality_every
        self.floods = FloodWaits(sleep=sleep)
        self.floods.on_change = self._publish_floods
        self.accounts: dict[str, Account] = {}
        self.chats: dict[int, Followed] = {}
        self.stopping = asyncio.Event()
        self.process = f"run:{socket.gethostname()}:{os.getpid()}"
        self.started_at = dt.datetime.now(dt.UTC)
        self.gaps_total = 0
        self.last_error: str | None = None
        self.db: Database | None = None
        self.pipeline: Pipeline | None = None
        self.sink: Sink | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.fatal: BaseException | None = None
        SECRETS.add(config.api_hash)

    # ---- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> int:
        """Run until `stop()`; returns the exit code."""
        self.db = await Database.open(self.settings, max_size=6)
        try:
            self.sink = await self._open_sink()
            try:
                await self._connect_accounts()
                await self._resolve_chats()
                self._start_tasks()
                await self.stopping.wait()
            finally:
                await self._shutdown()
        finally:
            await self.db.aclose()
        if self.fatal is not None:
            raise self.fatal
        return 0

    def fail(self, error: BaseException) -> None:
        """The committer cannot go on (not a lost connection: those are waited out): stop."""
        log.error("cannot commit any more (%s: %s); stopping", type(error).__name__, error)
        self.fatal = error
        self.stop()

    async def _open_sink(self) -> Sink:
        if self.settings.redis_url:
            from tgingest.daemon.redis_sink import RedisSink

            SECRETS.add_url_password(self.settings.redis_url)
            return await RedisSink.open(
                self.settings.redis_url, self.settings.redis_prefix, self.metrics
            )
        assert self.db is not None
        self.pipeline = await Pipeline(self.db, self.settings).open()
        return InProcessSink(self.pipeline, self.metrics, on_failure=self.fail)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for account in self.accounts.values():
            if account.feed is not None:
                try:
                    await account.feed.aclose()
                except Exception as e:  # the feed's last batch; the sink drain reports
                    log.error("account %s: last live batch not handed over: %s", account.name, e)
        for account in self.accounts.values():
            await asyncio.shield(account.client.disconnect())
        if self.sink is not None:
            try:
                await asyncio.shield(self.sink.drain())
            except Exception as e:  # already reported through fail(); the rest still closes
                log.error("not everything read was committed: %s", e)
            finally:
                await self.sink.aclose()
        if self.pipeline is not None:
            await self.pipeline.aclose()
        await self._write_status(stopped=True)

    # ---- accounts and chats ------------------------------------------------------------------

    async def _connect_accounts(self) -> None:
        data_dir = self.settings.data_dir
        for a in self.config.accounts:
            session = WarehouseSession(session_path(data_dir, a.name))
            client = TgClient(
                session,
                self.config.api_id,
                self.config.api_hash,
                on_gap=self._gap_callback(a.name),
                sequential_updates=True,
                receive_updates=True,
            )
            await connect(client, a.name)
            if not await client.is_user_authorized():
                await client.disconnect()
                raise ConfigError(
                    f"account {a.name} is not logged in: run `tgingest login --account {a.name}`"
                    + (" --bot" if a.bot else "")
                )
            self.accounts[a.name] = Account(a.name, a.bot, client)
            log.info("account %s connected", a.name)

    async def _resolve_chats(self) -> None:
        """Find each configured chat through the accounts allowed to follow it."""
        dialogs: dict[str, dict[int, Any]] = {}
        for name, account in self.accounts.items():
            dialogs[name] = {}
            if account.bot:
                continue  # bots cannot list dialogs; they resolve ids and usernames directly
            async for d in account.client.iter_dialogs():
                dialogs[name][d.id] = d.entity
        for chat in self.config.chats:
            names = chat.accounts or tuple(self.accounts)
            entities: dict[str, Any] = {}
            found = None
            for name in names:
                client = self.accounts[name].client
                try:
                    if isinstance(chat.ref, int) and chat.ref in dialogs[name]:
                        entity = dialogs[name][chat.ref]
                    else:
                        entity = await client.get_entity(chat.ref)
                except (ValueError, TypeError) as e:
                    log.info("account %s cannot see chat %s: %s", name, chat.ref, e)
                    continue
                except Exception as e:  # an RPC error for this chat only
                    log.info("account %s cannot see chat %s: %s", name, chat.ref, e)
                    continue
                entities[name] = await client.get_input_entity(entity)
                found = found or entity
            if found is None:
                log.error("chat %s: none of the accounts %s can see it", chat.ref, ", ".join(names))
                self.last_error = f"chat {chat.ref}: not visible to any account"
                continue
            row = chat_row(found)
            # A user account reads history; a bot may not (Telegram refuses bots getHistory),
            # so a chat only bots see is followed live only.
            owner = next((n for n in entities if not self.accounts[n].bot), next(iter(entities)))
            self.chats[row.chat_id] = Followed(chat, row.chat_id, row.title, owner, entities)
            await self._put(SourceBatch(source="telethon-chat", batch=_empty(), chat=row))

    def _start_tasks(self) -> None:
        cfg = self.config
        for name, account in self.accounts.items():
            live = {
                c.chat_id: LiveChat(
                    c.chat_id,
                    c.config.options.media,
                    c.config.options.max_media_size,
                    c.config.options.delete_policy,
                )
                for c in self.chats.values()
                if c.config.options.live and name in c.entities
            }
            if live:
                account.feed = LiveFeed(
                    account.client,
                    name,
                    live,
                    self._put,
                    batch_size=cfg.live_batch,
                    flush_ms=cfg.flush_ms,
                    idle=self.sink.idle if self.sink is not None else None,
                )
                account.feed.start()
            owned = {
                c.chat_id: (c.entities[name], c.config.options.max_media_size)
                for c in self.chats.values()
                if c.owner == name and c.config.options.media
            }
            if owned:
                assert self.db is not None
                fetcher = MediaFetcher(
                    self.db, self.settings, account.client, name, owned, self.floods, self.metrics
                )
                self._spawn(fetcher.run(), f"media-{name}")
        for chat in self.chats.values():
            chat.wake.set()  # reconcile at start
            self._spawn(self._chat_loop(chat), f"chat-{chat.chat_id}")
        self._spawn(self._status_loop(), "status")
        assert self.db is not None
        self._spawn(run_daily(self.db, self.settings), "partitions-maintain")
        self._spawn(
            periodic.run(self.db, self.settings, self.metrics, self.quality_every), "quality"
        )

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))  # type: ignore[arg-type]

    async def _put(self, sb: SourceBatch) -> None:
        assert self.sink is not None
        await self.sink.put(sb)

    # ---- gaps and reconcile ------------------------------------------------------------------

    def _gap_callback(self, account: str) -> Callable[[int | None, str], None]:
        def on_gap(chat_id: int | None, reason: str) -> None:
            chats = [c for c in self.chats.values() if chat_id is None or c.chat_id == chat_id]
            if not chats:
                return
            self.gaps_total += 1
            self.metrics.gaps.labels(reason).inc()
            log.warning(
                "update gap (%s) on account %s%s: reconciling from the warehouse",
                reason,
                account,
                f" in chat {chat_id}" if chat_id is not None else "",
            )
            feed = self.accounts[account].feed if account in self.accounts else None
            for chat in chats:
                if feed is not None:
                    feed.drop_anchors(chat.chat_id)
                chat.gaps += 1
                chat.wake.set()

        return on_gap

    async def _chat_loop(self, chat: Followed) -> None:
        while True:
            try:
                await asyncio.wait_for(chat.wake.wait(), self.reconcile_every)
            except TimeoutError:
                pass
            chat.wake.clear()
            try:
                await self._reconcile(chat)
                chat.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as e:
                chat.state = "error"
                chat.last_error = f"{type(e).__name__}: {e}"
                self.last_error = f"chat {chat.chat_id}: {chat.last_error}"
                log.error("chat %s: reconcile failed: %s", chat.chat_id, chat.last_error)
                # A network or database hiccup passes quickly; anything else is tried again
                # later (and after the next gap), never given up for good.
                transient = is_transient(e) or isinstance(e, OSError | ConnectionError)
                await asyncio.sleep(5 if transient else 60)
                chat.wake.set()

    async def _reconcile(self, chat: Followed) -> None:
        assert self.db is not None and self.sink is not None
        opts = chat.config.options
        owner = self.accounts[chat.owner]
        if owner.bot:
            if chat.state != "live (bot: no history)":
                log.warning(
                    "chat %s is seen by bots only: live updates are stored, history and gaps "
                    "cannot be read (add a user account that can see it)",
                    chat.chat_id,
                )
            chat.state = "live (bot: no history)"
            return
        reader = ChatReader(
            owner.client,
            chat.entities[chat.owner],
            chat.chat_id,
            chat.owner,
            self.floods,
            media_kinds=opts.media,
            max_media_size=opts.max_media_size,
            delete_policy=opts.delete_policy,
        )
        chat.state = "reconciling"
        newest = await reader.newest_id()
        chat.newest = newest
        if newest is None:
            chat.state = "empty"
            return
        # From here on, gap-free live updates extend coverage above `newest`.
        for name in chat.entities:
            feed = self.accounts[name].feed
            if feed is not None and chat.config.options.live:
                feed.set_anchor(chat.chat_id, newest)
        start = await reader.window_start(opts.history, opts.since)
        if start is not None and start <= newest:
            # What is still queued in-process is committed first, so coverage is current.
            await self.sink.drain()
            async with self.db.pool.acquire() as conn:
                covered = await daemon_queries.coverage(conn, chat.chat_id)
            missing = missing_ranges(start, newest, covered)
            if missing:
                chat.state = "backfilling"
                log.info(
                    "chat %s: backfilling %d range(s) up to id %d",
                    chat.chat_id,
                    len(missing),
                    newest,
                )
            for lo, hi in missing:
                async for sb in reader.read_range(lo, hi):
                    await self._put(sb)
        await self._refetch(chat, reader, newest)

        async def stored(lo: int) -> list[int]:
            assert self.db is not None and self.sink is not None
            await self.sink.drain()
            async with self.db.pool.acquire() as conn:
                return await daemon_queries.live_ids(conn, chat.chat_id, lo)

        refreshed = await reader.refresh_recent(opts.refresh_recent, stored)
        if refreshed is not None:
            await self._put(refreshed)
        chat.state = "live" if opts.live else "idle"

    async def _refetch(self, chat: Followed, reader: ChatReader, newest: int) -> None:
        """Read again the id ranges `tgingest quality repair` asked for (refetch_requests),
        whatever coverage says; settle them once what was read is handed over and drained."""
        assert self.db is not None and self.sink is not None
        async with self.db.pool.acquire() as conn:
            asked = await refetch.open_requests(conn, chat.chat_id)
        if not asked:
            return
        log.info("chat %s: reading %d requested range(s) again", chat.chat_id, len(asked))
        for lo, hi in asked:
            if lo <= newest:  # ids above the chat's newest do not exist (yet)
                async for sb in reader.read_range(lo, min(hi, newest)):
                    await self._put(sb)
        await self.sink.drain()
        async with self.db.pool.acquire() as conn:
            await refetch.settle(conn, chat.chat_id, asked)

    # ---- status ------------------------------------------------------------------------------

    def _publish_floods(self) -> None:
        self.metrics.flood_wait_remaining.clear()
        for w, left in self.floods.remaining():
            self.metrics.flood_wait_remaining.labels(w.account, str(w.chat_id), w.what).set(left)

    def state(self) -> dict[str, Any]:
        return {
            "accounts": sorted(self.accounts),
            "queue": "redis" if self.settings.redis_url else "in-process",
            "queue_depth": self.sink.depth() if self.sink else 0,
            "gaps": self.gaps_total,
            "flood_waits_total": self.floods.total,
            "flood_waits": [
                {
                    "account": w.account,
                    "chat_id": w.chat_id,
                    "request": w.what,
                    "seconds": w.seconds,
                    "remaining": round(left),
                }
                for w, left in self.floods.remaining()
            ],
            "last_error": self.last_error,
            "chats": {
                str(c.chat_id): {
                    "title": c.title,
                    "owner": c.owner,
                    "state": c.state,
                    "newest_on_telegram": c.newest,
                    "gaps": c.gaps,
                    "last_error": c.last_error,
                }
                for c in self.chats.values()
            },
        }

    async def _write_status(self, *, stopped: bool = False) -> None:
        if self.db is None:
            return
        try:
            async with self.db.pool.acquire() as conn:
                await daemon_queries.write_status(
                    conn, self.process, "run", self.started_at, self.state(), stopped=stopped
                )
                self.metrics.pending_media.set(await daemon_queries.pending_media_count(conn))
        except Exception as e:  # status is best effort; ingestion goes on
            log.info("status not written: %s", e)

    async def _status_loop(self) -> None:
        while True:
            self._publish_floods()
            await self._write_status()
            lost = getattr(self.sink, "lost_entries", None)
            if lost is not None and await lost():
                self._reconcile_all("Redis restarted")
            await asyncio.sleep(self.status_every)

    def _reconcile_all(self, reason: str) -> None:
        """Read positions may have moved on without the rows (a Redis that lost entries)."""
        log.warning("%s: entries not yet committed may be lost; reconciling every chat", reason)
        self.gaps_total += 1
        self.metrics.gaps.labels(reason).inc()
        for account in self.accounts.values():
            if account.feed is not None:
                account.feed.drop_anchors(None)
        for chat in self.chats.values():
            chat.gaps += 1
            chat.wake.set()


def _empty() -> Any:
    from tgingest._core import RawBatch

    return RawBatch.from_columns(chat_id=[], message_id=[], date=[], text=[])
