"""personaminer: evidence-grounded, truthful multi-persona induction from user behavioral logs.

The Python API mirrors the CLI::

    import personaminer as pm
    path = pm.datasets.fetch_movielens_100k()
    summary = pm.ingest(path, "my-workspace")
    with pm.Workspace("my-workspace") as ws:
        print(ws.info())
"""

from importlib import metadata

from personaminer import datasets
from personaminer.ingest import IngestSummary, ingest
from personaminer.store import Workspace

try:
    __version__ = metadata.version("personaminer")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = ["IngestSummary", "Workspace", "__version__", "datasets", "ingest"]
