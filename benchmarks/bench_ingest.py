"""Ingest throughput and peak memory, next to DuckDB's own read_csv of the same bytes.

Usage::

    .venv/bin/python benchmarks/bench_ingest.py [--shared ../shared/datasets] [--scale 10]

Each measurement runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.
``--scale N`` also writes the AOL data N times over (distinct user ids) in the original
tab-separated layout, to show that memory stays flat as the input grows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    kind, path, ws = sys.argv[1], sys.argv[2], sys.argv[3]
    t0 = time.perf_counter()
    if kind == "ingest":
        import personaminer as pm
        s = pm.ingest(path, ws, progress=False)
        rows = s.rows_read
    else:
        import duckdb
        con = duckdb.connect()
        con.execute("SET memory_limit = '1GB'")
        opts = {"lines": "delim=chr(1), header=false, columns={'line': 'VARCHAR'}, quote='', max_line_size=10000000",
                "csv": "header=true, all_varchar=true",
                "tsv": "delim=chr(9), header=true, all_varchar=true, quote=''"}[sys.argv[4]]
        rows = con.execute(f"SELECT count(*) FROM read_csv({path!r}, {opts})").fetchall()[0][0]
    dt = time.perf_counter() - t0
    print(json.dumps({"rows": rows, "seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def measure(kind: str, path: Path | str, ws: Path, opts: str = "") -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), str(ws), opts],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def row(label: str, m: dict[str, float]) -> str:
    return f"| {label} | {m['rows']:,} | {m['seconds']:.2f} | {m['rows'] / m['seconds']:,.0f} | {m['peak_mb']:,.0f} |"


def write_original(src_dir: Path, out: Path, copies: int) -> int:
    """The per-user files rewritten as the 2006 release's TSV, ``copies`` times with new user ids."""
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        fh.write("AnonID\tQuery\tQueryTime\tItemRank\tClickURL\n")
        for copy in range(copies):
            for f in sorted(src_dir.glob("*.txt")):
                uid = f"{f.stem}{copy:03d}"
                for rec in f.read_text(encoding="utf-8").split("\n\n"):
                    parts = [x for x in rec.split("\n") if x]
                    if not parts:
                        continue
                    query, when = parts[0].split("\t")
                    for rank, url in enumerate(parts[1:], start=1):
                        fh.write(f"{uid}\t{query}\t{when}\t{rank}\t{url}\n")
                        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    ap.add_argument("--scale", type=int, default=0, help="also ingest AOL rewritten N times (original TSV layout)")
    args = ap.parse_args()
    aol_tar = args.shared / "aol_top1000_users" / "user_search_logs.tar.gz"
    merrec = args.shared / "merrec_head_sample" / "merrec_head.csv"
    if not aol_tar.exists():
        sys.exit(f"AOL data not found at {aol_tar}; pass --shared")
    print("| input | rows | seconds | rows/s | peak RSS MB |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        with tarfile.open(aol_tar) as tar:
            tar.extractall(t, filter="data")
        folder = t / "user_search_logs"
        files = str(folder / "*.txt")
        print(row("personaminer ingest, AOL .tar.gz", measure("ingest", aol_tar, t / "ws1")))
        print(row("personaminer ingest, AOL folder", measure("ingest", folder, t / "ws2")))
        print(row("DuckDB read_csv floor, same AOL files (all lines)", measure("floor", files, t, "lines")))
        if merrec.exists():
            print(row("personaminer ingest, MerRec sample", measure("ingest", merrec, t / "ws3")))
            print(row("DuckDB read_csv floor, MerRec sample", measure("floor", str(merrec), t, "csv")))
        if args.scale:
            big = t / "aol_original.tsv"
            n = write_original(folder, big, args.scale)
            mb = big.stat().st_size / 2**20
            print(row(f"personaminer ingest, AOL original TSV x{args.scale} ({mb:,.0f} MB, {n:,} lines)",
                      measure("ingest", big, t / "ws4")))
            print(row(f"DuckDB read_csv floor, same TSV x{args.scale}",
                      measure("floor", str(big), t, "tsv")))


if __name__ == "__main__":
    main()
