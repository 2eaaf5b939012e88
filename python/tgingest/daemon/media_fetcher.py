"""Downloading pending media of one account into the content-addressed store.

A message whose media kind the config wants commits with a `media_pending` row; this task
takes due entries (oldest first), downloads each through a private temporary file
(sources/telegram/media.py), hashes it, puts it in the store and links it to its message in one
transaction, which settles the pending entry. One at a time per account, to stay far from
Telegram's flood limits. A failure backs off (a minute, doubling, up to a day); a file that is
gone or larger than allowed is parked, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tgingest._core import sha256_files
from tgingest.config import Settings
from tgingest.daemon.metrics import Metrics
from tgingest.errors import StorageIOError, UnsafePathError
from tgingest.fs import private_dir
from tgingest.records import MediaLink, MediaRow
from tgingest.sources.telegram.flood import FloodWaits
from tgingest.sources.telegram.media import MediaUnavailable, download
from tgingest.store import daemon_queries
from tgingest.store.database import Database
from tgingest.store.media import MediaStore, safe_ext

log = logging.getLogger(__name__)


class MediaFetcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: Any,
        account: str,
        chats: dict[int, tuple[Any, int]],  # chat id -> (input entity, max media size)
        floods: FloodWaits,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.client = client
        self.account = account
        self.chats = chats
        self.floods = floods
        self.metrics = metrics
        self.store = MediaStore(settings.media_root)
        self.incoming = settings.media_root / ".incoming"

    async def run(self) -> None:
        private_dir(self.incoming)
        while True:
            async with self.db.pool.acquire() as conn:
                due = await daemon_queries.due_media(conn, self.account, list(self.chats), 20)
            if not due:
                await asyncio.sleep(2)
                continue
            for row in due:
                await self.fetch(row)

    async def fetch(self, row: Any) -> None:
        chat_id, message_id = row["chat_id"], row["message_id"]
        entity, max_size = self.chats[chat_id]
        t0 = time.perf_counter()
        try:
            got = await download(
                self.client,
                entity,
                message_id,
                self.incoming,
                max_size=max_size,
                floods=self.floods,
                account=self.account,
                chat_id=chat_id,
            )
        except MediaUnavailable as e:
            await self._failed(chat_id, message_id, str(e), retry=False)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # network, RPC errors: try again later
            await self._failed(chat_id, message_id, f"{type(e).__name__}: {e}", retry=True)
            return
        try:
            (sha,) = sha256_files([got.path])
            ext = safe_ext(f"x{got.ext}" if got.ext else None)
            saved = self.store.store_file(got.path, sha, ext)
        except (StorageIOError, UnsafePathError, OSError) as e:
            await self._failed(chat_id, message_id, f"not stored: {e}", retry=True)
            return
        finally:
            got.path.unlink(missing_ok=True)
        async with self.db.pool.acquire() as conn:
            await daemon_queries.media_arrived(
                conn,
                MediaRow(sha, saved.size, saved.ext, saved.relative_path, got.mime_type),
                MediaLink(chat_id, message_id, sha, row["media_type"]),
            )
        self.metrics.media.labels("stored" if saved.created else "deduplicated").inc()
        self.metrics.stage.labels("media").observe(time.perf_counter() - t0)

    async def _failed(self, chat_id: int, message_id: int, error: str, *, retry: bool) -> None:
        log.info("media of %s/%s: %s", chat_id, message_id, error)
        self.metrics.media.labels("retry" if retry else "skipped").inc()
        async with self.db.pool.acquire() as conn:
            await daemon_queries.media_failed(conn, chat_id, message_id, error, retry=retry)
