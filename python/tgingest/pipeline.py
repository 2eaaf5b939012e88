"""The ingest pipeline: any source's batches -> Rust hot path -> one PostgreSQL transaction each.

`Pipeline.run(source)` commits whatever a source yields (a Desktop export, Telethon history or
live updates, a Redis stream entry), in order. Preparing the next batch (the Rust hot path with
the GIL released, plus hashing and storing local media files) runs in one dedicated thread and
overlaps with committing the current one, so the client's CPU work hides behind the server's.

`Pipeline.commit` is the one place a batch meets the database, for every caller: it creates the
partitions the batch needs (capped per run) and retries transient connection failures with
backoff (store/retry.py) before giving up with one clear DatabaseError. Whatever stops a run
(bad file, lost server, a panic in the Rust core on the worker thread) surfaces as an exception
after the batches before it committed, never as a hang.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tgingest._core import process_batch, sha256_files
from tgingest.cache.invalidator import Invalidator
from tgingest.config import Settings
from tgingest.dedupe.window import RepostWindow
from tgingest.errors import DatabaseError, StorageIOError, UnsafePathError
from tgingest.records import (
    BatchCounts,
    Coverage,
    LocalMedia,
    MediaLink,
    MediaRow,
    QuarantineRow,
    SourceBatch,
    cut_coverage,
)
from tgingest.replay_filter import ReplayFilter
from tgingest.sources.base import Source
from tgingest.store import ods
from tgingest.store.database import Database
from tgingest.store.media import MediaStore, safe_ext
from tgingest.store.partitions import Partitions
from tgingest.store.retry import describe, is_transient, retrying
from tgingest.store.writer import Prepared, commit_batch, record_failed_batch

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RunSummary:
    source: str
    source_file: str | None = None
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

    def add(self, p: Prepared, counts: BatchCounts) -> None:
        self.counts.add(counts)
        self.batches += 1
        self.media_stored += p.media_stored
        self.media_deduplicated += p.media_deduplicated
        self.media_refused += len(p.refused)
        self.media_missing += sum(f.missing for f in p.source.local_media)


Progress = Callable[[RunSummary], None]


class Pipeline:
    def __init__(
        self, db: Database, settings: Settings, *, invalidator: Invalidator | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        # Told what each commit changed, after COMMIT and before commit() returns, so a read
        # that starts afterwards never meets the old version in a cache (tgingest/cache/).
        self.invalidator = invalidator or Invalidator.from_settings(settings)
        self.partitions = Partitions()
        # The shared 7-day repost window (dedupe/window.py); None without Redis. The bench
        # turns `mark_reposts` off to measure what marking costs.
        self.reposts_window = RepostWindow.from_settings(settings)
        self.mark_reposts = True
        self.media = MediaStore(settings.media_root)
        self.replay: ReplayFilter | None = None
        self.trust_filter = True
        # Monthly partitions created by the current run (capped by max_new_partitions).
        self.new_partitions = 0
        # One dedicated thread (not the default pool): batches are allocated and freed by the
        # same thread, so the allocator reuses one arena instead of growing several.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tgingest-prepare")

    async def open(self) -> Pipeline:
        async def attempt() -> None:
            async with self.db.pool.acquire() as conn:
                self.replay = await ReplayFilter.open(
                    conn, self.settings.data_dir, self.settings.bloom_capacity
                )
                await self.partitions.ensure_ahead(conn)

        await retrying(attempt, budget=self.settings.db_retry_seconds, what="opening the pipeline")
        return self

    async def aclose(self) -> None:
        """Save the replay filter if the database can still be asked for its watermark; a
        filter that cannot be saved is removed, and the next run rebuilds it."""
        self._worker.shutdown(wait=False)
        if self.invalidator is not None:
            await self.invalidator.aclose()
        if self.reposts_window is not None:
            await self.reposts_window.aclose()
        if self.replay is None:
            return
        try:
            if not self.trust_filter:
                # It missed rows that are stored: let the next run rebuild it from PostgreSQL.
                self.replay.discard()
                return
            async with self.db.pool.acquire() as conn:
                await asyncio.shield(self.replay.save(conn))
        except Exception as e:
            log.warning("replay filter not saved (%s); the next run rebuilds it", describe(e))
            try:
                self.replay.discard()
            except OSError:
                pass

    async def __aenter__(self) -> Pipeline:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def run_blocking(self, fn: Callable[..., T], /, *args: Any) -> asyncio.Future[T]:
        """Run `fn` on the pipeline's own thread (sources parse there too)."""
        return asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # ---- one batch ---------------------------------------------------------------------------

    def prepare(self, sb: SourceBatch) -> Prepared:
        """Blocking: the hot path (GIL released inside) and local media files, for one batch."""
        bloom = self.replay.bloom if self.replay is not None else None
        result = process_batch(sb.batch, bloom)
        p = Prepared(source=sb, result=result)
        if self.settings.ods_days > 0 and len(sb.batch) > 0:
            p.ods = ods.pack(sb.batch)  # the ODS copy, compressed here, off the transaction
        if sb.local_media:
            self._store_local_media(p)
        sb.coverage = _trim_coverage(sb, {(c, m) for _, c, m, _, _ in result.rejected})
        return p

    async def commit(self, p: Prepared) -> BatchCounts:
        """Commit one prepared batch, retrying transient failures for up to
        `settings.db_retry_seconds`. A batch that fails for good leaves a 'failed' audit row
        when the database still takes one, and raises: DatabaseError when the connection did not
        come back, the error itself otherwise."""
        budget = self.settings.db_retry_seconds
        attempts = 0

        async def attempt() -> BatchCounts:
            nonlocal attempts
            attempts += 1
            conn = await self.db.pool.acquire()
            try:
                limit = self.settings.max_new_partitions - self.new_partitions
                self.new_partitions += await self.partitions.ensure(
                    conn, p.result.months, limit=limit
                )
                return await commit_batch(
                    conn,
                    p,
                    trust_filter=self.trust_filter,
                    reposts_window=self.reposts_window,
                    mark_reposts=self.mark_reposts,
                )
            except BaseException:
                conn.terminate()  # never hand a connection a failure left behind to a retry
                raise
            finally:
                await self.db.pool.release(conn)

        what = f"batch of {len(p.source.batch):,} messages"
        try:
            counts = await retrying(attempt, budget=budget, what=what)
        except Exception as e:
            if self.invalidator is not None and attempts > 1:  # an attempt may have committed
                await self.invalidator.after_commit(p, None, uncertain=True)
            if is_transient(e):
                raise DatabaseError(
                    f"lost the connection to PostgreSQL ({describe(e)}) and it did not come "
                    f"back within {budget} s"
                ) from None
            await self._record_failure(p.source, e)
            raise
        if self.invalidator is not None:
            await self.invalidator.after_commit(p, counts, uncertain=attempts > 1)
        if counts.stale_filter and self.trust_filter:
            log.warning("the replay filter missed stored messages; verifying every row from now")
            self.trust_filter = False
        return counts

    async def _record_failure(self, sb: SourceBatch, error: BaseException) -> None:
        """Best effort: the 'failed' audit row (I6); a database that refuses it is logged."""
        try:
            async with self.db.pool.acquire() as conn:
                await record_failed_batch(conn, sb, error)
        except Exception as e:
            log.warning("could not record the failed batch (%s)", describe(e))

    async def commit_source_batch(self, sb: SourceBatch) -> BatchCounts:
        """Prepare and commit one batch (live sources, queue workers); a run of its own for the
        partition cap."""
        return await self.commit_alone(await self.run_blocking(self.prepare, sb))

    async def commit_alone(self, p: Prepared) -> BatchCounts:
        """Commit one prepared batch as a run of its own (for the partition cap)."""
        self.new_partitions = 0
        return await self.commit(p)

    # ---- a whole source ----------------------------------------------------------------------

    async def run(
        self,
        source: Source,
        *,
        progress: Progress | None = None,
        summary: RunSummary | None = None,
    ) -> RunSummary:
        """Commit every batch `source` yields, in order, one prepared ahead of the commit.

        Pass `summary` to see what was committed when the run raises part way.
        """
        summary = summary if summary is not None else RunSummary(source=source.name)
        self.new_partitions = 0
        t0 = time.perf_counter()
        queue: asyncio.Queue[Prepared | BaseException | None] = asyncio.Queue(maxsize=1)

        async def produce() -> None:
            try:
                async for sb in source.batches(self.run_blocking):
                    await queue.put(await self.run_blocking(self.prepare, sb))
                await queue.put(None)
            except asyncio.CancelledError:
                raise  # the consumer stopped: nobody would take what we put
            except BaseException as e:  # delivered in order, after the batches before it commit
                # Even a PanicException from the Rust core (a BaseException) reaches the
                # consumer, which raises it: the run ends, it never waits for a batch.
                await queue.put(e)
                if not isinstance(e, Exception):
                    raise

        producer = asyncio.create_task(produce())
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                summary.source_file = item.source.source_file
                counts = await self.commit(item)
                summary.add(item, counts)
                if progress:
                    progress(summary)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            summary.seconds = time.perf_counter() - t0
        return summary

    # ---- local media files -------------------------------------------------------------------

    def _store_local_media(self, p: Prepared) -> None:
        files = p.source.local_media
        for f in files:
            if f.refused:
                p.refused.append(_media_quarantine(f, f"media refused: {f.refused}"))
        present = [f for f in files if f.path is not None]
        digests = _hash_files(sorted({f.path for f in present if f.path is not None}))
        stored: dict[bytes, bool] = {}
        for f in present:
            assert f.path is not None
            sha = digests.get(f.path)
            if isinstance(sha, str):
                p.refused.append(_media_quarantine(f, f"media not readable: {sha}"))
                continue
            assert sha is not None
            if sha not in stored:
                try:
                    saved = self.media.store_file(f.path, sha, safe_ext(f.path.name))
                except (StorageIOError, UnsafePathError) as e:
                    full = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk, quota, size limit
                    later = isinstance(e, OSError) and e.errno in full
                    hint = "; it is stored when the import runs again with room" if later else ""
                    p.refused.append(_media_quarantine(f, f"media not stored: {e}{hint}"))
                    continue
                p.media.append(MediaRow(sha, saved.size, saved.ext, saved.relative_path))
                stored[sha] = saved.created
                p.media_stored += saved.created
                p.media_deduplicated += not saved.created
            else:
                p.media_deduplicated += 1
            p.media_links.append(
                MediaLink(f.chat_id, f.message_id, sha, f.media_type, original_name=f.relative)
            )


def _hash_files(paths: list[Any]) -> dict[Any, bytes | str]:
    """SHA-256 of each file (GIL released, in one call); a file the OS refuses maps to why."""
    try:
        return dict(zip(paths, sha256_files(paths), strict=True))
    except (StorageIOError, OSError):
        out: dict[Any, bytes | str] = {}
        for path in paths:  # find the culprits one by one; the rest still import
            try:
                out[path] = sha256_files([path])[0]
            except (StorageIOError, OSError) as e:
                out[path] = str(e)
        return out


def _trim_coverage(sb: SourceBatch, rejected: set[tuple[int, int]]) -> list[Coverage]:
    """Coverage never claims ids that were read but not stored: split ranges around
    quarantined records and rejected rows; a quarantined record without an id voids its chat's."""
    if not sb.coverage:
        return sb.coverage
    holes = set(rejected)
    blind: set[int | None] = set()
    for q in sb.quarantine:
        if q.message_id is None:
            blind.add(q.chat_id)
        elif q.chat_id is not None:
            holes.add((q.chat_id, q.message_id))
    if None in blind:
        return []
    return cut_coverage([r for r in sb.coverage if r.chat_id not in blind], holes)


def _media_quarantine(f: LocalMedia, error: str) -> QuarantineRow:
    return QuarantineRow(
        error=f"message {f.message_id} of chat {f.chat_id}: {error}",
        raw=f.relative.encode("utf-8", "surrogatepass"),
        chat_id=f.chat_id,
        message_id=f.message_id,
    )


def dry_run(export: Any, progress: Progress | None = None) -> RunSummary:
    """Parse and process a whole export without writing anything.

    Reports what an import into an empty warehouse would: the same records quarantined (unreadable
    records, implausible dates or ids, repeats with other content within a batch) and the same
    media files refused (paths the OS refuses, files it will not open) or missing.
    """
    summary = RunSummary(source=export.name, source_file=str(export.source_file), dry_run=True)
    t0 = time.perf_counter()
    while (sb := export.read_batch()) is not None:
        result = process_batch(sb.batch)
        _, conflicts = result.compare_stored([])
        refused = sum(f.refused is not None for f in sb.local_media)
        refused += sum(f.path is not None and not _readable(f.path) for f in sb.local_media)
        summary.batches += 1
        summary.counts.messages += len(sb.batch)
        summary.counts.quarantined += (
            len(sb.quarantine) + len(result.rejected) + len(conflicts) + refused
        )
        summary.media_refused += refused
        summary.media_missing += sum(f.missing for f in sb.local_media)
        if progress:
            progress(summary)
    summary.bytes = export.bytes_read
    summary.seconds = time.perf_counter() - t0
    return summary


def _readable(path: Any) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False
