"""Source formats: one adapter per format, format detection, and ``fetch_*`` loaders.

Formats: ``aol``, ``merrec``, ``instacart``, ``movielens`` (the public datasets) and
``csv``, ``tsv``, ``jsonl``, ``parquet`` (generic, with a column mapping).
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path
from typing import Any

from personaminer.datasets.aol import ORIGINAL_HEADER, AolAdapter
from personaminer.datasets.base import Adapter, InputError, read_header, require_file
from personaminer.datasets.fetch import fetch_movielens_100k
from personaminer.datasets.generic import GenericAdapter
from personaminer.datasets.instacart import SAMPLE_FILE, InstacartAdapter
from personaminer.datasets.merrec import COLUMNS as MERREC_COLUMNS
from personaminer.datasets.merrec import MerRecAdapter
from personaminer.datasets.movielens import MovieLensAdapter

__all__ = ["Adapter", "InputError", "detect_format", "fetch_movielens_100k", "formats", "make_adapter"]

_DATASET_FORMATS = {"aol": AolAdapter, "merrec": MerRecAdapter, "instacart": InstacartAdapter,
                    "movielens": MovieLensAdapter}
_GENERIC_FORMATS = ("csv", "tsv", "jsonl", "parquet")


def formats() -> list[str]:
    """Every format name ``--format`` accepts (besides ``auto``)."""
    return [*_DATASET_FORMATS, *_GENERIC_FORMATS]


def make_adapter(fmt: str, path: str | Path, *, mapping: dict[str, str] | None = None, **options: Any) -> Adapter:
    """The adapter for ``fmt`` reading ``path``; raises :class:`InputError` on a bad choice."""
    path = Path(path)
    if fmt in _DATASET_FORMATS:
        if mapping:
            raise InputError(f"--map applies to the generic formats ({', '.join(_GENERIC_FORMATS)}), not to {fmt}")
        try:
            return _DATASET_FORMATS[fmt](path, **options)
        except TypeError as exc:
            raise InputError(f"unsupported option for --format {fmt}: {exc}") from exc
    if fmt in _GENERIC_FORMATS:
        if not mapping:
            raise InputError(f"--format {fmt} needs a column mapping: --map user_id=COL --map ts=COL --map text=COL")
        delimiter = "\t" if fmt == "tsv" else options.pop("delimiter", None)
        try:
            return GenericAdapter(path, format="csv" if fmt == "tsv" else fmt, mapping=mapping,
                                  delimiter=delimiter, **options)
        except TypeError as exc:
            raise InputError(f"unsupported option for --format {fmt}: {exc}; generic formats take "
                             "ts_format, ts_unit, kind and delimiter") from exc
    raise InputError(f"unknown format {fmt!r}; choose one of: auto, {', '.join(formats())}")


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its name and first bytes; raise if unsure."""
    p = require_file(Path(path))
    if p.is_dir():
        names = {f.name for f in p.iterdir()}
        if SAMPLE_FILE in names or "order_products__prior.csv" in names:
            return "instacart"
        if any(n.endswith(".inter") for n in names):
            return "movielens"
        if any(n.endswith((".csv", ".parquet")) for n in names) and _merrec_like(p):
            return "merrec"
        if names and all(n.endswith(".txt") for n in names if not n.startswith(".")):
            return "aol"
        raise InputError(f"cannot tell the format of folder {p}; pass --format ({', '.join(formats())})")
    name = p.name
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(p, "r:*") as tar:
                first = next((m for m in tar if m.isfile()), None)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InputError(f"{p} is not a readable tar archive: {exc}") from exc
        if first is not None and first.name.endswith(".txt"):
            return "aol"
        raise InputError(f"cannot tell the format of archive {p}; pass --format")
    if name.endswith(".inter"):
        return "movielens"
    if name == SAMPLE_FILE or name.startswith("order_products__"):
        return "instacart"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        from personaminer.datasets.generic import parquet_schema

        cols = set(parquet_schema(require_file(p)).names)
        return "merrec" if set(MERREC_COLUMNS) <= cols else "parquet"
    require_file(p)
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(f"cannot read {p}: {exc} (a truncated or corrupt file?)") from exc
    if head.startswith(ORIGINAL_HEADER):
        return "aol"
    if name.endswith(".csv"):
        return "merrec" if set(MERREC_COLUMNS) <= set(read_header(p)) else "csv"
    if name.endswith((".tsv", ".tab")):
        return "tsv"
    if name.endswith(".txt") and b"\t" in head.split(b"\n", 1)[0]:
        return "aol"
    raise InputError(f"cannot tell the format of {p}; pass --format ({', '.join(formats())})")


def _merrec_like(folder: Path) -> bool:
    first = next((f for f in sorted(folder.iterdir()) if f.suffix == ".csv"), None)
    return first is not None and set(MERREC_COLUMNS) <= set(read_header(first))
