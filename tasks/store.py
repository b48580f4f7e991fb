"""Reading and writing an item's store (xarray over Zarr v3) and its stage records.

A stage writes its variables, then records itself in the store's attributes
(``stages``: name -> inputs digest, finish time, seconds, summary).  The record
is written last, so a stage interrupted half-way leaves no record and is redone
on the next run; a stage whose record matches the digest of its inputs is
skipped.  Dimension and variable names come from :mod:`schemas.names`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from schemas.compat import AS_BEFORE

STAGES_ATTR = "stages"


def write_every_chunk() -> bool:
    """Make Zarr write every chunk, the ones that hold only the fill value too (Zarr's
    ``array.write_empty_chunks``), unless the user's environment sets it.

    To leave out such chunks Zarr compares every chunk it writes with the fill value
    (``np.array_equal`` with NaN handling: about 2 ms per MB of uint8 here), on the one thread
    that runs its I/O.  That comparison was 6 % of a corpus item's CPU (py-spy of a worker in
    ``bench_corpus``); the chunks it leaves out are few (a stage's arrays are rarely all zero in
    a chunk) and small once compressed.  Reading is the same either way: a missing chunk reads as
    its fill value.  Returns whether the setting is Zarr's now.
    """
    if "ZARR_ARRAY__WRITE_EMPTY_CHUNKS" in os.environ:
        return False
    zarr.config.update_defaults({"array": {"write_empty_chunks": True}})
    return True


write_every_chunk()


class StoreError(RuntimeError):
    """A store that is missing, unreadable or lacks a variable a stage needs."""


def open_store(path: str | Path) -> xr.Dataset:
    """Open a store lazily (dask-backed).  Raises :class:`StoreError` naming the path."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    try:
        return xr.open_zarr(path, consolidated=False, zarr_format=3)
    except Exception as exc:
        raise StoreError(f"{path}: not a readable Zarr v3 store ({exc})") from None


def require(ds: xr.Dataset, path: str | Path, names: Iterable[str]) -> None:
    """Raise :class:`StoreError` when a variable a stage reads is missing."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise StoreError(f"{path}: store lacks {', '.join(missing)}; run the earlier stages first")


def group(path: str | Path, mode: str = "r+") -> zarr.Group:
    return zarr.open_group(str(path), mode=mode, zarr_format=3)


def read_attrs(path: str | Path) -> dict[str, Any]:
    return dict(group(path, mode="r").attrs)


def update_attrs(path: str | Path, values: Mapping[str, Any]) -> None:
    g = group(path)
    g.attrs.update(json.loads(json.dumps(dict(values), default=_jsonable)))


def write_variables(
    ds: xr.Dataset,
    path: str | Path,
    *,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
    chunks: Mapping[str, int] | None = None,
    compute: bool = True,
):
    """Write ``ds``'s variables into an existing store, replacing any of the same name.

    Replaced variables are deleted first so that a redone stage never mixes
    old and new chunks.  With ``compute=False`` the dask write is returned.

    ``chunks`` (dimension -> chunk length, -1 or absent = whole) gives the Zarr chunks of the
    in-memory (NumPy) data variables, the layout ``ds.chunk(chunks)`` would write.  They are written
    from this thread: as dask arrays they would go into the write's graph, which a task on a Dask
    cluster sends through the scheduler ("Sending large graph" above 10 MB).  ``encoding`` wins
    where it names the chunks of a variable too.
    """
    if chunks:
        encoding = {**_chunk_encoding(ds, chunks), **(encoding or {})}
    g = group(path)
    for name in ds.data_vars:
        if name in g:
            del g[name]
    # drop coordinates the store already has (rewriting them would clash with other variables)
    keep = [c for c in ds.coords if c not in g]
    ds = ds.drop_vars([c for c in ds.coords if c not in keep])
    # encodings read from another variable (e.g. the chunks of `frames`) must not leak into new ones:
    # Zarr chunks follow the dask chunks unless ``encoding`` says otherwise
    for name in ds.variables:
        ds[name].encoding = {}
    # xarray replaces the group's attributes with the Dataset's on every write: carry them over
    ds.attrs = dict(g.attrs)
    return ds.to_zarr(
        str(path),
        mode="a",
        zarr_format=3,
        consolidated=False,
        encoding=dict(encoding or {}),
        compute=compute,
    )


def _chunk_encoding(ds: xr.Dataset, chunks: Mapping[str, int]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Zarr ``chunks`` encodings of ``ds``'s in-memory data variables for :func:`write_variables`'s ``chunks``."""
    out = {}
    for name, var in ds.data_vars.items():
        if var.chunks is not None:  # a dask array keeps its own chunks
            continue
        sizes = [chunks.get(dim, -1) for dim in var.dims]
        out[name] = {"chunks": tuple(n if c in (-1, None) else min(int(c), n) for c, n in zip(sizes, var.shape, strict=True))}
    return out


def drop_variables(path: str | Path, names: Iterable[str]) -> list[str]:
    """Delete the variables ``names`` from the store where present (stale outputs); returns those deleted."""
    g = group(path)
    gone = [name for name in names if name in g]
    for name in gone:
        del g[name]
    return gone


def _jsonable(value: Any):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def config_values(section: Any) -> dict[str, Any]:
    """A config section (pydantic model) as JSON values for a stage digest, without the fields at the
    value they declare as "behaves as before" (:func:`schemas.compat.as_before`), in nested sections too.

    An option added after stores were written declares the value that reproduces the earlier code;
    at that value it is left out, so the digest of every stage that reads it stays what the earlier
    code recorded and those stores still count as done.  At any other value it enters the digest.
    """
    return _drop_as_before(type(section), section.model_dump(mode="json"), section)


def drop_as_before(model: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a dump of ``model``, e.g. read back from a record) without the fields at their
    "behaves as before" value; nested sections likewise.  A new dict; ``values`` is not changed."""
    return _drop_as_before(model, values, None)


def _drop_as_before(model: type, values: dict[str, Any], instance: Any) -> dict[str, Any]:
    out = dict(values)
    for name, field in getattr(model, "model_fields", {}).items():
        if name not in out:
            continue
        extra = field.json_schema_extra
        if isinstance(extra, dict) and AS_BEFORE in extra and out[name] == extra[AS_BEFORE]:
            del out[name]
            continue
        # a nested section: the instance's own class when there is one (it may be a subclass)
        sub = getattr(instance, name, None)
        sub_model = type(sub) if hasattr(type(sub), "model_fields") else field.annotation
        if isinstance(sub_model, type) and hasattr(sub_model, "model_fields") and isinstance(out[name], dict):
            out[name] = _drop_as_before(sub_model, out[name], sub)
    return out


def digest(*parts: Any) -> str:
    """Stable short hash of JSON-able parts (config sections, upstream digests, file stamps)."""
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_record(path: str | Path, stage: str) -> dict[str, Any] | None:
    """The completion record of ``stage``, or None."""
    if not Path(path).exists():
        return None
    try:
        return read_attrs(path).get(STAGES_ATTR, {}).get(stage)
    except Exception:  # unreadable store: nothing is trusted
        return None


#: The stage whose record stands for the aligned window (`warped`, `visible`) downstream.
ALIGNED_STAGES = ("warp", "window")


def aligned_digest(path: str | Path) -> str | None:
    """Digest of what wrote the aligned window: the ``warp`` stage, else the ``window`` stage.

    Every stage that reads ``warped``/``visible`` chains its own digest on this,
    so re-aligning the window (another mode, new depth) redoes everything after it.
    """
    for stage in ALIGNED_STAGES:
        record = stage_record(path, stage)
        if record:
            return record.get("digest")
    return None


def stage_done(path: str | Path, stage: str, inputs_digest: str) -> bool:
    """True when ``stage`` finished in this store with the same inputs."""
    record = stage_record(path, stage)
    return bool(record) and record.get("digest") == inputs_digest


def record_stage(
    path: str | Path, stage: str, inputs_digest: str, seconds: float, summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Mark ``stage`` finished; call only after all of its outputs are written."""
    g = group(path)
    stages = dict(g.attrs.get(STAGES_ATTR, {}))
    record = {
        "digest": inputs_digest,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(),
        "seconds": round(float(seconds), 4),
        "summary": json.loads(json.dumps(dict(summary or {}), default=_jsonable)),
    }
    stages[stage] = record
    g.attrs[STAGES_ATTR] = stages
    return record


def forget_stages(path: str | Path, stages: Iterable[str]) -> None:
    """Drop the records of ``stages`` (their outputs are about to be rewritten)."""
    g = group(path)
    records = dict(g.attrs.get(STAGES_ATTR, {}))
    for s in stages:
        records.pop(s, None)
    g.attrs[STAGES_ATTR] = records


def remove_store(path: str | Path) -> None:
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
