"""The sweep store: one Parquet file per finished chunk, renamed into place, beside the spec and its hash.

Layout of a store directory ``DIR`` (docs/sweeps.md, "Store")::

    DIR/spec.json                   the normalized spec, its SHA-256 hash, the counts and the build identity
    DIR/parts/chunk-000000.parquet  the rows of chunk 0 (one row per run), written once
    DIR/parts/.chunk-....tmp        a chunk being written (removed when the sweep starts again)

A chunk is committed by ``os.replace`` of a fully written and fsync'ed temporary
file: at any moment the directory holds whole chunks only, so a killed sweep
resumes by computing exactly the chunks whose file is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ._spec import Spec

SPEC_FILE = "spec.json"
PARTS = "parts"
_PART = re.compile(r"^chunk-(\d+)\.parquet$")
TIMING_COLUMNS = ("wall_time",)  # the only columns that differ between two computations of a run


class StoreError(ValueError):
    """A store directory that cannot take this sweep (it holds another spec, or was made by another build)."""


@functools.lru_cache(maxsize=1)
def build_identity() -> dict[str, str]:
    """What the numbers of a run depend on besides its spec: the package version, the core variant in use,
    and a SHA-256 over the loaded core's file and the package's Python sources and shipped specs (the version
    string does not change between commits that change numbers; this does)."""
    import implicitbias

    from .._native import core

    h = hashlib.sha256()
    root = Path(implicitbias.__file__).parent
    files = [Path(core.__file__ or "")] + sorted(p for p in root.rglob("*") if p.suffix in (".py", ".toml"))
    for f in files:
        h.update(str(f.relative_to(root) if f.is_relative_to(root) else f.name).encode())
        h.update(f.read_bytes())
    return {"implicitbias": __version__, "core": str(getattr(core, "isa", "")), "content": h.hexdigest()[:16]}


def _missing(what: str) -> ImportError:
    return ImportError(f"sweeps need pandas and pyarrow for {what}: pip install 'implicitbias[sweep]'")


def _atomic_write(path: str, write: Any) -> None:
    """``write(tmp_path)``, fsync, then rename to ``path``.

    The file's data reach the disk before the rename, so after a crash (even a
    power cut) ``path`` is either absent or complete; the directory itself is
    not fsync'ed: a rename lost in a power cut only means that the chunk is
    computed again."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Store:
    """A store directory opened for a spec (created, or checked against the stored hash)."""

    def __init__(self, path: str | os.PathLike, spec: Spec, n_chunks: int, n_runs: int,
                 allow_version_change: bool = False) -> None:
        self.path = os.fspath(path)
        self.parts = os.path.join(self.path, PARTS)
        meta_path = os.path.join(self.path, SPEC_FILE)
        identity = build_identity()
        if os.path.exists(meta_path):
            with open(meta_path) as fh:
                stored = json.load(fh)
            if stored.get("hash") != spec.hash:
                raise StoreError(
                    f"{self.path} holds a sweep of another spec (stored hash {str(stored.get('hash'))[:12]}, "
                    f"this spec {spec.hash[:12]}; the hash covers the defaults of the fit arguments too): "
                    f"resuming with a changed spec is refused; use a new --out directory (or delete {self.path} "
                    "to start over)")
            if identity not in [stored.get("identity"), *stored.get("resumed_by", [])]:
                if not allow_version_change:
                    raise StoreError(
                        f"{self.path} was made by another build of implicitbias ({_describe(stored.get('identity'))}; "
                        f"this is {_describe(identity)}): its chunks and the new ones could differ in their numbers. "
                        "Use a new --out directory, or resume anyway with --allow-version-change "
                        "(sweep.run(..., allow_version_change=True)), which records both builds in spec.json")
                stored.setdefault("resumed_by", []).append(identity)
                _atomic_write(meta_path, lambda tmp: _dump_json(tmp, stored))
        else:
            os.makedirs(self.parts, exist_ok=True)
            meta = {"hash": spec.hash, "spec": spec.spec, "n_runs": n_runs, "n_chunks": n_chunks,
                    "implicitbias": __version__, "identity": identity, "store_format": 2}
            _atomic_write(meta_path, lambda tmp: _dump_json(tmp, meta))
        os.makedirs(self.parts, exist_ok=True)
        for name in os.listdir(self.parts):  # chunks a killed writer left half-written
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(self.parts, name))

    def done(self) -> set[int]:
        """The ids of the committed chunks."""
        return {int(m.group(1)) for m in map(_PART.match, os.listdir(self.parts)) if m}

    def write(self, chunk_id: int, rows: list[dict[str, Any]]) -> None:
        """Commit one chunk's rows atomically (a chunk is written once: an existing file is kept)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise _missing("the store") from None
        path = os.path.join(self.parts, f"chunk-{chunk_id:06d}.parquet")
        if os.path.exists(path):
            return
        table = pa.Table.from_pylist(rows)
        _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _describe(identity: Any) -> str:
    if not isinstance(identity, dict):
        return "an unrecorded build (a store of an older implicitbias)"
    return f"version {identity.get('implicitbias')}, core {identity.get('core')}, content {identity.get('content')}"


def _dump_json(path: str, obj: Any) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=1)


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The store's ``spec.json`` (hash, normalized spec, counts)."""
    meta_path = os.path.join(os.fspath(path), SPEC_FILE)
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"{os.fspath(path)} is not a sweep store (no {SPEC_FILE})")
    with open(meta_path) as fh:
        return json.load(fh)


def load(path: str | os.PathLike, index: bool = False) -> Any:
    """The sweep's table: one row per finished run, sorted by ``run_id`` (a pandas DataFrame).

    Columns: ``run_id``, ``seed``, the grid coordinates (``problem.KEY``,
    ``fit.KEY``), the run's scalars and the reference values (docs/sweeps.md).
    ``attrs`` holds ``spec``, ``hash``, ``n_runs`` and ``complete``. With
    ``index=True`` the coordinates and the seed form a MultiIndex, so that
    ``load(DIR, index=True).to_xarray()`` is a Dataset on the grid.
    """
    try:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise _missing("load") from None
    meta = read_meta(path)
    parts = os.path.join(os.fspath(path), PARTS)
    names = sorted(n for n in os.listdir(parts) if _PART.match(n)) if os.path.isdir(parts) else []
    tables = [pq.read_table(os.path.join(parts, n)) for n in names]
    if tables:
        df = pa.concat_tables(tables, promote_options="default").to_pandas()
        df = df.sort_values("run_id", kind="stable").reset_index(drop=True)
    else:
        df = pd.DataFrame({"run_id": pd.Series(dtype="int64"), "seed": pd.Series(dtype="int64")})
    if index:
        coords = [k for group in meta["spec"]["axes"] for k, _ in group]
        df = df.set_index(coords + ["seed"])
    df.attrs.update({"spec": meta["spec"], "hash": meta["hash"], "n_runs": meta["n_runs"],
                     "complete": len(df) == meta["n_runs"]})
    return df


def _list_columns(df: Any) -> list[str]:
    return [c for c in df.columns if c == "params" or str(c).startswith("history.")]


def to_csv(table: Any, path: str | os.PathLike) -> str:
    """Write a store's table (a store directory or a :func:`load` DataFrame) as CSV; returns the path.

    Scalars are written with ``repr`` precision (they read back bitwise); the list
    columns (``params``, ``history.*``) as JSON arrays. :func:`read_csv` reads it back.
    """
    df = load(table) if isinstance(table, (str, os.PathLike)) else table
    out = df.copy()
    for c in _list_columns(out):
        out[c] = [None if v is None else json.dumps(_nested_list(v)) for v in out[c]]
    out.to_csv(path, index=False)
    return os.fspath(path)


def _nested_list(v: Any) -> Any:
    """A list column's value as nested lists (Parquet gives a 2-D channel, e.g. ``history.x``, as an
    object array of rows)."""
    if isinstance(v, np.ndarray) and v.dtype == object:
        return [_nested_list(e) for e in v]
    return np.asarray(v).tolist()


def read_csv(path: str | os.PathLike) -> Any:
    """A table written by :func:`to_csv`, with its list columns as lists again (a pandas DataFrame)."""
    try:
        import pandas as pd
    except ImportError:
        raise _missing("read_csv") from None
    df = pd.read_csv(path)
    for c in _list_columns(df):
        df[c] = [json.loads(v) if isinstance(v, str) else None for v in df[c]]
    return df
