"""The still-image store: ``image``, ``mask``, ``labels``, ``flow_forward``, ``flow_backward``, ``loop``.

Thin helpers over :mod:`tasks.store` (same Zarr v3 layout and attribute
conventions as the video pipeline); variable and dimension names come from
:mod:`schemas.still`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from schemas import names as N
from schemas import still as S
from tasks.store import StoreError, open_store, read_attrs, update_attrs, write_variables

DIMS = {
    S.IMAGE: (N.Y, N.X, N.CHANNEL),
    S.MASK: (N.Y, N.X),
    S.LABELS: (N.Y, N.X),
    S.FLOW_FORWARD: (N.Y, N.X, S.VECTOR),
    S.FLOW_BACKWARD: (N.Y, N.X, S.VECTOR),
    S.FLOW_FORWARD_PADDED: (S.PADDED_Y, S.PADDED_X, S.VECTOR),
    S.FLOW_BACKWARD_PADDED: (S.PADDED_Y, S.PADDED_X, S.VECTOR),
    N.LOOP: (N.LOOP_TIME, N.Y, N.X, N.CHANNEL),
}


def create_store(path: str | Path, image: np.ndarray, attrs: dict) -> None:
    """A new store holding ``image`` and ``attrs`` (replaces one at ``path``)."""
    ds = xr.Dataset({S.IMAGE: (DIMS[S.IMAGE], image)})
    ds.to_zarr(str(path), mode="w", zarr_format=3, consolidated=False)
    update_attrs(path, attrs)


def write_arrays(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write (or replace) variables; the loop is chunked one frame per chunk."""
    ds = xr.Dataset({name: (DIMS[name], value) for name, value in arrays.items()})
    encoding = {}
    if N.LOOP in arrays:
        shape = arrays[N.LOOP].shape
        encoding[N.LOOP] = {"chunks": (1, *shape[1:])}
    write_variables(ds, path, encoding=encoding)


def read_arrays(path: str | Path, names) -> dict[str, np.ndarray]:
    ds = open_store(path)
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise StoreError(f"{path}: store lacks {', '.join(missing)}; run the earlier stages first")
    return {n: ds[n].values for n in names}


__all__ = ["DIMS", "create_store", "write_arrays", "read_arrays", "read_attrs", "update_attrs"]
