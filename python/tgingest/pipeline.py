"""The ingest pipeline: source batches -> Rust hot path -> one PostgreSQL transaction each.

Reading and processing the next batch (Rust, GIL released, in a worker thread) overlaps with
committing the current one, so the client's CPU work hides behind the server's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tgingest._core import BatchResult, RawBatch, process_batch, sha256_files
from tgingest.config import Settings
from tgingest.errors import StorageIOError, UnsafePathError
from tgingest.replay_filter import ReplayFilter
from tgingest.sources.desktop import DesktopExport, MediaFile
from tgingest.store.database import Database
from tgingest.store.media import MediaStore, safe_ext
from tgingest.store.partitions import Partitions
from tgingest.store.writer import (
    BatchCounts,
    BatchWork,
    ChatRow,
    Checkpoint,
    MediaLink,
    MediaRow,
    QuarantineRow,
    commit_batch,
    record_failed_batch,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int, int], None]  # bytes read, total bytes, messages done


@dataclass
class ImportSummary:
    source_file: str
    counts: BatchCounts = field(default_factory=BatchCounts)
    batches: int = 0
    media_stored: int = 0
    media_deduplicated: int = 0
    media_refused: int = 0
    media_missing: int = 0
    bytes: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def rate(self) -> float:
        return self.counts.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _MediaWork:
    """A batch's media files: rows and links to write, files refused, what was stored."""

    rows: list[MediaRow] = field(default_factory=list)
    links: list[MediaLink] = field(default_factory=list)
    refused: list[QuarantineRow] = field(default_factory=list)
    stored: int = 0
    deduplicated: int = 0
    missing: int = 0


@dataclass
class _Prepared:
    batch: RawBatch
    result: BatchResult
    media: _MediaWork
    started_at: dt.datetime


class Pipeline:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.partitions = Partitions()
        self.media = MediaStore(settings.media_root)
        self.replay: ReplayFilter | None = None
        self.trust_filter = True

    async def open(self) -> Pipeline:
        async with self.db.pool.acquire() as conn:
            self.replay = await ReplayFilter.open(
                conn, self.settings.data_dir, self.settings.bloom_capacity
            )
            await self.partitions.ensure_ahead(conn)
        return self

    async def aclose(self) -> None:
        if self.replay is None:
            return
        if not self.trust_filter:
            # It missed rows that are stored: let the next run rebuild it from PostgreSQL.
            self.replay.discard()
            return
        async with self.db.pool.acquire() as conn:
            await asyncio.shield(self.replay.save(conn))

    async def commit(self, work: BatchWork) -> BatchCounts:
        """Commit one batch; on failure leave a 'failed' audit row and re-raise."""
        work.trust_filter = self.trust_filter
        async with self.db.pool.acquire() as conn:
            await self.partitions.ensure(conn, work.batch.months)
            try:
                counts = await commit_batch(conn, work)
            except Exception as e:
                await record_failed_batch(conn, work, e)
                raise
        if counts.stale_filter and self.trust_filter:
            log.warning("the replay filter missed stored messages; verifying every row from now")
            self.trust_filter = False
        return counts

    def _prepare_media(self, export: DesktopExport, batch: RawBatch) -> _MediaWork:
        work = _MediaWork()
        files = export.media_files(batch)
        work.missing = sum(f.missing for f in files)
        for f in files:
            if f.refused:
                work.refused.append(_media_quarantine(f, f"media refused: {f.refused}"))
        present = [(f, f.path) for f in files if f.path is not None]
        unique_paths = sorted({path for _, path in present})
        digests = dict(zip(unique_paths, sha256_files(unique_paths), strict=True))
        rows: dict[bytes, MediaRow] = {}
        for f, path in present:
            sha = digests[path]
            if sha in rows:
                work.deduplicated += 1
            else:
                try:
                    saved = self.media.store_file(path, sha, safe_ext(path.name))
                except (StorageIOError, UnsafePathError) as e:
                    work.refused.append(_media_quarantine(f, f"media not stored: {e}"))
                    continue
                rows[sha] = MediaRow(sha, saved.size, saved.ext, saved.relative_path)
                work.stored += saved.created
                work.deduplicated += not saved.created
            work.links.append(
                MediaLink(f.chat_id, f.message_id, sha, f.media_type, original_name=f.relative)
            )
        work.rows = list(rows.values())
        return work

    def _prepare(self, export: DesktopExport, with_media: bool) -> _Prepared | None:
        """Worker-thread step: parse the next batch, run the hot path, store its media files."""
        started = dt.datetime.now(dt.UTC)
        batch = export.next_batch()
        if batch is None:
            return None
        bloom = self.replay.bloom if self.replay is not None else None
        result = process_batch(batch, bloom)
        media = self._prepare_media(export, batch) if with_media else _MediaWork()
        return _Prepared(batch, result, media, started_at=started)

    async def import_export(
        self,
        export: DesktopExport,
        *,
        with_media: bool = True,
        progress: Progress | None = None,
    ) -> ImportSummary:
        summary = ImportSummary(source_file=str(export.result_json))
        t0 = time.perf_counter()
        # One batch prepared ahead while one commits: enough to overlap client and server CPU,
        # and memory stays a few batches whatever the export's size.
        queue: asyncio.Queue[_Prepared | BaseException | None] = asyncio.Queue(maxsize=1)
        # One dedicated thread (not the default pool): batches are allocated and freed by the
        # same thread, so the allocator reuses one arena instead of growing several.
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tgingest-prepare")
        loop = asyncio.get_running_loop()

        async def produce() -> None:
            try:
                while prepared := await loop.run_in_executor(
                    worker, self._prepare, export, with_media
                ):
                    await queue.put(prepared)
                await queue.put(None)
            except Exception as e:  # delivered in order, after the batches before it commit
                await queue.put(e)

        producer = asyncio.create_task(produce())
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                counts = await self.commit(self._work(export, item))
                summary.counts.add(counts)
                summary.batches += 1
                summary.media_stored += item.media.stored
                summary.media_deduplicated += item.media.deduplicated
                summary.media_refused += len(item.media.refused)
                summary.media_missing += item.media.missing
                if progress:
                    progress(export.bytes_read, export.total_bytes, summary.counts.messages)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            worker.shutdown(wait=False)
            summary.bytes = export.bytes_read
            summary.seconds = time.perf_counter() - t0
        return summary

    def _work(self, export: DesktopExport, p: _Prepared) -> BatchWork:
        chat = p.batch.chat or {}
        chat_id = chat.get("chat_id")
        quarantine = [
            QuarantineRow(error=err, raw=raw, chat_id=chat_id, message_id=mid, byte_offset=off)
            for off, mid, raw, err in p.batch.quarantined
        ] + p.media.refused
        checkpoints = []
        id_range = p.batch.message_id_range
        if chat_id is not None and id_range is not None:
            checkpoints.append(
                Checkpoint(
                    "export", chat_id, max_message_id=id_range[1], byte_offset=p.batch.end_offset
                )
            )
        return BatchWork(
            source="export",
            batch=p.batch,
            result=p.result,
            source_file=str(export.result_json),
            chat=ChatRow(
                chat_id=chat_id,
                bare_id=chat.get("bare_id"),
                type=chat.get("type"),
                title=chat.get("name"),
                left=bool(chat.get("left")),
            )
            if chat_id is not None
            else None,
            quarantine=quarantine,
            media=p.media.rows,
            media_links=p.media.links,
            checkpoints=checkpoints,
            byte_offset=p.batch.end_offset,
            started_at=p.started_at,
        )


def dry_run(export: DesktopExport, progress: Progress | None = None) -> ImportSummary:
    """Parse and process the whole export without writing anything."""
    summary = ImportSummary(source_file=str(export.result_json), dry_run=True)
    t0 = time.perf_counter()
    for batch in export:
        process_batch(batch)
        summary.batches += 1
        summary.counts.messages += len(batch)
        summary.counts.quarantined += len(batch.quarantined)
        files = export.media_files(batch)
        summary.media_refused += sum(f.refused is not None for f in files)
        summary.media_missing += sum(f.missing for f in files)
        if progress:
            progress(export.bytes_read, export.total_bytes, summary.counts.messages)
    summary.bytes = export.bytes_read
    summary.seconds = time.perf_counter() - t0
    return summary


def _media_quarantine(f: MediaFile, error: str) -> QuarantineRow:
    return QuarantineRow(
        error=error,
        raw=f.relative.encode("utf-8", "surrogatepass"),
        chat_id=f.chat_id,
        message_id=f.message_id,
    )
