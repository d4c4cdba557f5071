"""Stand-in for DuckDB on the GPU machine: the trainer never opens a workspace there."""


def __getattr__(name: str):
    raise ImportError("duckdb is not installed on this machine")
