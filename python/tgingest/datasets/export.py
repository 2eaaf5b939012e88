"""`tgingest dataset export`: a version as files, with its manifest and a datasheet.

    OUT/NAME-vN/train.jsonl, validation.jsonl, test.jsonl    (or .parquet)
    OUT/NAME-vN/manifest.json                                the version's full manifest
    OUT/NAME-vN/datasheet.md, datasheet.json                 counts per split, label balance,
                                                             scripts, date ranges, chats

Every row: chat_id, message_id, date, text, split, labels (a list of {label, annotator,
confidence}), variant (the augmentation that made it, or null). Rows stream from the reader in
batches of columns; JSONL is written line by line, Parquet in row groups of up to 50,000 rows
per split through pyarrow's ParquetWriter (zstd), so memory stays flat however large the
version. Everything is written into a hidden folder beside the target and renamed into place
at the end: an interrupted export leaves no half folder under the final name.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tgingest.datasets.reader import VARIANTS, Columns, ReadStats, column_batches
from tgingest.datasets.split import SPLITS
from tgingest.datasets.versions import VersionInfo
from tgingest.errors import InvalidInputError
from tgingest.labels.builtin import script_of

FORMATS = ("jsonl", "parquet")


@dataclass
class SplitSheet:
    rows: int = 0
    augmented: int = 0
    chats: set[int] = field(default_factory=set)
    labels: Counter[str] = field(default_factory=Counter)
    unlabeled: int = 0
    scripts: Counter[str] = field(default_factory=Counter)
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def add(
        self,
        cols: Columns,
        idx: list[int],
        labels: list[list[dict[str, Any]]],
        sampled: list[int],
    ) -> None:
        """Count the rows `idx` of a batch (all of this split); scripts of the `sampled` ones."""
        if not idx:
            return
        self.rows += len(idx)
        variant, chat, text = cols.variant, cols.chat_id, cols.text
        self.augmented += sum(1 for i in idx if variant[i])
        self.chats.update(chat[i] for i in idx)
        for i in idx:
            if labels[i]:
                self.labels.update(str(lab["label"]) for lab in labels[i])
            else:
                self.unlabeled += 1
        self.scripts.update(script_of(text[i]) or "none" for i in sampled)
        dates = [cols.date[i] for i in idx]
        lo, hi = min(dates), max(dates)
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "augmented": self.augmented,
            "chats": len(self.chats),
            "labels": dict(self.labels.most_common()),
            "unlabeled": self.unlabeled,
            "scripts": dict(self.scripts.most_common()),
            "first_date": self.first.isoformat() if self.first else None,
            "last_date": self.last.isoformat() if self.last else None,
        }


def _parquet_schema() -> Any:
    import pyarrow as pa

    label = pa.struct(
        [("label", pa.string()), ("annotator", pa.string()), ("confidence", pa.float32())]
    )
    return pa.schema(
        [
            ("chat_id", pa.int64()),
            ("message_id", pa.int64()),
            ("date", pa.timestamp("us", tz="UTC")),
            ("text", pa.string()),
            ("split", pa.string()),
            ("labels", pa.list_(label)),
            ("variant", pa.string()),
        ]
    )


_VARIANT_NAMES: Any = None  # pyarrow array of VARIANTS' names by number (set on first use)
SCRIPT_SAMPLE = 200_000  # rows whose script the datasheet counts, at most (about)
ROW_GROUP = 50_000  # rows per Parquet row group (per split), the most a split buffers


class _Writers:
    """One file per split, opened on its first row (an empty split's file at close). Parquet
    rows are buffered per split up to ROW_GROUP rows, so a small split still gets row groups of
    a useful size."""

    def __init__(self, folder: Path, fmt: str) -> None:
        self.folder, self.fmt = folder, fmt
        self.files: dict[str, Any] = {}
        self.pending: dict[str, list[Any]] = {s: [] for s in SPLITS}
        self.schema = _parquet_schema() if fmt == "parquet" else None

    def write(self, cols: Columns, by_split: list[list[int]], labels: list[Any]) -> None:
        if self.fmt == "jsonl":
            self._jsonl(cols, by_split, labels)
            return
        import pyarrow as pa

        global _VARIANT_NAMES
        if _VARIANT_NAMES is None:
            _VARIANT_NAMES = pa.array([VARIANTS[i] for i in sorted(VARIANTS)], pa.string())
        n = len(cols)
        no_labels = all(x == "[]" for x in cols.labels)
        table = pa.Table.from_arrays(
            [
                pa.array(cols.chat_id, pa.int64()),
                pa.array(cols.message_id, pa.int64()),
                pa.array(cols.date, pa.timestamp("us", tz="UTC")),
                pa.array(cols.text, pa.string()),
                pa.array(cols.split, pa.int8()),  # replaced by the split's name below
                pa.array([[]] * n if no_labels else labels, self.schema.field("labels").type),
                _VARIANT_NAMES.take(pa.array(cols.variant, pa.int8())),
            ],
            schema=self.schema.set(4, pa.field("split", pa.int8())),
        )
        for number, idx in enumerate(by_split):
            if idx:
                part = table.take(pa.array(idx, pa.int32()))
                name = pa.array([SPLITS[number]] * len(idx), pa.string())
                part = part.set_column(4, self.schema.field("split"), name)
                self.pending[SPLITS[number]].append(part)
                if sum(t.num_rows for t in self.pending[SPLITS[number]]) >= ROW_GROUP:
                    self._flush(SPLITS[number])

    def _jsonl(self, cols: Columns, by_split: list[list[int]], labels: list[Any]) -> None:
        for number, idx in enumerate(by_split):
            if not idx:
                continue
            split = SPLITS[number]
            f = self.files.get(split)
            if f is None:
                f = self.files[split] = (self.folder / f"{split}.jsonl").open("w", encoding="utf-8")
            f.writelines(
                json.dumps(
                    {
                        "chat_id": cols.chat_id[i],
                        "message_id": cols.message_id[i],
                        "date": cols.date[i].isoformat(),
                        "text": cols.text[i],
                        "split": split,
                        "labels": labels[i],
                        "variant": VARIANTS.get(cols.variant[i]),
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for i in idx
            )

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts, self.pending[split] = self.pending[split], []
        if not parts:
            return
        w = self.files.get(split)
        if w is None:
            w = self.files[split] = pq.ParquetWriter(
                self.folder / f"{split}.parquet", self.schema, compression="zstd"
            )
        w.write_table(pa.concat_tables(parts), row_group_size=ROW_GROUP)

    def close(self) -> None:
        if self.fmt == "parquet":
            for split in SPLITS:
                self._flush(split)
        # A split with no rows still gets its file (empty JSONL; Parquet with the schema and no
        # rows), so a loader that expects train/validation/test finds all three.
        for split in SPLITS:
            if split not in self.files:
                path = self.folder / f"{split}.{self.fmt}"
                if self.fmt == "jsonl":
                    self.files[split] = path.open("w", encoding="utf-8")
                else:
                    import pyarrow.parquet as pq

                    self.files[split] = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.abort()

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InvalidInputError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InvalidInputError(
                "Parquet export needs pyarrow: pip install 'tgingest[datasets]' "
                "(or use --format jsonl)"
            ) from None


def target_folder(out_dir: Path, info: VersionInfo) -> Path:
    return out_dir / f"{info.dataset}-v{info.version}"


async def export(
    conn: asyncpg.Connection,
    info: VersionInfo,
    *,
    fmt: str,
    out_dir: Path,
    batch: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write version `info` under out_dir/NAME-vN; returns the datasheet (with the paths)."""
    check_format(fmt)
    final = target_folder(out_dir, info)
    if final.exists():
        raise InvalidInputError(f"{final} exists already: remove it or choose another --out")
    temp = out_dir / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    sheets = {s: SplitSheet() for s in SPLITS}
    stats = ReadStats()
    # Script detection is the costliest part of the datasheet (a pass over each text in
    # Python): beyond SCRIPT_SAMPLE rows, every n-th row (by position in the version) is
    # counted, which keeps the shares exact to a fraction of a percent and the export fast.
    stride = max(1, -(-info.n_rows // SCRIPT_SAMPLE))
    seen = 0
    writers = _Writers(temp, fmt)
    try:
        async for cols in column_batches(conn, info, size=batch, stats=stats):
            labels = cols.parsed_labels()
            by_split: list[list[int]] = [[], [], []]
            for i, number in enumerate(cols.split):
                by_split[number].append(i)
            for number, idx in enumerate(by_split):
                sampled = [i for i in idx if (seen + i) % stride == 0] if stride > 1 else idx
                sheets[SPLITS[number]].add(cols, idx, labels, sampled)
            seen += len(cols)
            writers.write(cols, by_split, labels)
            if progress is not None:
                progress(stats.rows + stats.unavailable)
        writers.close()
        sheet = datasheet(info, sheets, stats, fmt)
        sheet["scripts_of_every_nth_row"] = stride
        (temp / "manifest.json").write_text(
            json.dumps(info.manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
        (temp / "datasheet.json").write_text(json.dumps(sheet, indent=2, ensure_ascii=False) + "\n")
        (temp / "datasheet.md").write_text(datasheet_md(sheet))
        temp.rename(final)
    except BaseException:
        writers.abort()
        shutil.rmtree(temp, ignore_errors=True)
        raise
    sheet["folder"] = str(final)
    sheet["files"] = sorted(p.name for p in final.iterdir())
    return sheet


def datasheet(
    info: VersionInfo, sheets: dict[str, SplitSheet], stats: ReadStats, fmt: str
) -> dict[str, Any]:
    content = info.content
    return {
        "dataset": info.dataset,
        "version": info.version,
        "sha256": info.sha256,
        "format": fmt,
        "created_by": info.created_by,
        "created_at": info.created_at.isoformat(),
        "selection": content["selection"],
        "labels": content["labels"],
        "split": content["split"],
        "augmentations": content["augmentations"],
        "rows": stats.rows,
        "unavailable": stats.unavailable,
        "unavailable_examples": stats.unavailable_examples,
        "from_prior_versions": stats.from_prior_versions,
        "notes": stats.notes,
        "excluded_near_duplicates": content["rows"]["excluded_near_duplicates"],
        "splits": {s: sheets[s].as_json() for s in SPLITS},
    }


def datasheet_md(sheet: dict[str, Any]) -> str:
    """The datasheet for people: what was selected, how it was split, what is in each split."""
    sel = sheet["selection"]
    lines = [
        f"# Datasheet: {sheet['dataset']} version {sheet['version']}",
        "",
        f"- Version hash (sha256 of the manifest's content): `{sheet['sha256']}`",
        f"- Made by {sheet['created_by']} at {sheet['created_at']}",
        f"- Query: {sel['query']!r}; chats: {sel['chats'] or 'all'}; kinds: {sel['kinds']}; "
        f"since: {sel['since']}; until: {sel['until']}",
        f"- Labels: {sheet['labels'] or 'none'}",
        f"- Split: {'/'.join(str(sheet['split']['ratios'][k]) for k in SPLITS)} "
        f"(train/validation/test) by {sheet['split']['by']} "
        f"(seed {sheet['split']['seed']!r}; clusters: {sheet['split']['clusters']})",
        f"- Augmentations: {[a['name'] for a in sheet['augmentations']] or 'none'}"
        + "".join(
            f" ({a['name']}: {a['skipped_japanese']:,} Japanese texts with kana left unfolded)"
            for a in sheet["augmentations"]
            if a.get("skipped_japanese")
        ),
        f"- Rows exported: {sheet['rows']:,}; unavailable (text no longer stored): "
        f"{sheet['unavailable']:,}; served from prior versions of edited messages: "
        f"{sheet['from_prior_versions']:,}; near-duplicates left out by the time split: "
        f"{sheet['excluded_near_duplicates']:,}",
        *(f"- Note: {note}" for note in sheet["notes"]),
        "",
        "| split | rows | augmented | chats | first date | last date | unlabeled |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for name, s in sheet["splits"].items():
        lines.append(
            f"| {name} | {s['rows']:,} | {s['augmented']:,} | {s['chats']:,} | "
            f"{s['first_date'] or '-'} | {s['last_date'] or '-'} | {s['unlabeled']:,} |"
        )
    every = sheet.get("scripts_of_every_nth_row", 1)
    scripts = "Scripts" + (f" (of every {every}th row)" if every > 1 else "")
    for title, key in (("Label balance", "labels"), (scripts, "scripts")):
        lines += ["", f"## {title}", "", "| split | counts |", "|---|---|"]
        for name, s in sheet["splits"].items():
            counts = ", ".join(f"{k}: {v:,}" for k, v in s[key].items()) or "-"
            lines.append(f"| {name} | {counts} |")
    return "\n".join(lines) + "\n"
