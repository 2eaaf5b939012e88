"""Versioned training datasets, for Python: open a version and stream its rows.

    import tgingest.datasets as tds

    async with tds.open("spam-train@3") as ds:          # NAME alone: the latest version
        print(ds.version, ds.sha256, ds.manifest["content"]["rows"]["per_split"])
        async for row in ds.rows(split="train"):         # DatasetRow, streamed in key order
            use(row.text, row.labels)
        async for batch in ds.batches(size=5000):        # lists, for vectorized work
            ...

Opening a version writes one row to `dataset_access_log` (who, when, which version, what for:
`purpose=`): the usage monitor `tgingest dataset show NAME@v --access` reads. Rows are served
exactly as the version recorded them (tgingest.datasets.reader). Making versions, diffs and
rollbacks live in create.py and versions.py; `tgingest dataset` is the command line for all of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tgingest.config import Settings, check_dsn
from tgingest.datasets.reader import DatasetRow, ReadStats, batches, log_access
from tgingest.datasets.versions import VersionInfo, list_all, resolve
from tgingest.store.audit import default_actor
from tgingest.store.database import Database

__all__ = ["Dataset", "DatasetRow", "list_datasets", "open"]


class Dataset:
    """One dataset version, open for reading (use `async with tgingest.datasets.open(...)`)."""

    def __init__(
        self,
        ref: str,
        *,
        dsn: str | None = None,
        settings: Settings | None = None,
        actor: str | None = None,
        purpose: str | None = None,
    ) -> None:
        base = settings if settings is not None else Settings.from_env()
        self.settings = base.with_dsn(check_dsn(dsn)) if dsn is not None else base
        self.ref, self.actor, self.purpose = ref, actor or default_actor(), purpose
        self._db: Database | None = None
        self.info: VersionInfo | None = None
        self.stats = ReadStats()

    async def __aenter__(self) -> Dataset:
        self._db = await Database.open(self.settings)
        try:
            async with self._db.pool.acquire() as conn:
                self.info = await resolve(conn, self.ref)
                await log_access(
                    conn,
                    self.info,
                    actor=self.actor,
                    client="python",
                    detail={"purpose": self.purpose} if self.purpose else None,
                )
        except BaseException:
            await self._db.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._db is not None:
            await self._db.aclose()
            self._db = None

    def _open(self) -> tuple[Database, VersionInfo]:
        if self._db is None or self.info is None:
            raise RuntimeError("the dataset is not open (use `async with tds.open(...) as ds`)")
        return self._db, self.info

    def _info(self) -> VersionInfo:
        if self.info is None:
            raise RuntimeError("the dataset is not open (use `async with tds.open(...) as ds`)")
        return self.info

    # What the version is stays readable after the `async with` block.
    @property
    def name(self) -> str:
        return self._info().dataset

    @property
    def version(self) -> int:
        return self._info().version

    @property
    def sha256(self) -> str:
        return self._info().sha256

    @property
    def manifest(self) -> dict[str, Any]:
        return self._info().manifest

    async def batches(
        self, split: str | None = None, *, size: int = 10_000
    ) -> AsyncIterator[list[DatasetRow]]:
        db, info = self._open()
        async with db.pool.acquire() as conn:
            async for batch in batches(conn, info, split=split, size=size, stats=self.stats):
                yield batch

    async def rows(self, split: str | None = None) -> AsyncIterator[DatasetRow]:
        async for batch in self.batches(split):
            for row in batch:
                yield row


def open(
    ref: str,
    *,
    dsn: str | None = None,
    settings: Settings | None = None,
    actor: str | None = None,
    purpose: str | None = None,
) -> Dataset:
    """A dataset version to read: "NAME" (latest) or "NAME@3"."""
    return Dataset(ref, dsn=dsn, settings=settings, actor=actor, purpose=purpose)


async def list_datasets(
    *, dsn: str | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Every dataset with its versions (number, hash, rows, splits, parent), oldest first."""
    base = settings if settings is not None else Settings.from_env()
    s = base.with_dsn(check_dsn(dsn)) if dsn is not None else base
    async with await Database.open(s) as db, db.pool.acquire() as conn:
        return await list_all(conn)
