import numpy as np
import pytest
import xarray as xr

from tasks.store import (
    StoreError,
    digest,
    forget_stages,
    open_store,
    read_attrs,
    record_stage,
    require,
    stage_done,
    stage_record,
    update_attrs,
    write_variables,
)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.zarr"
    xr.Dataset({"a": (("y", "x"), np.arange(12).reshape(3, 4))}).to_zarr(
        path, mode="w", zarr_format=3, consolidated=False
    )
    return path


def test_writes_keep_attributes_and_replace_variables(store):
    update_attrs(store, {"fps": 24.0})
    record_stage(store, "one", "d1", 1.0)
    write_variables(xr.Dataset({"b": (("y", "x"), np.ones((3, 4)))}), store)
    write_variables(xr.Dataset({"a": (("y", "x"), np.zeros((3, 4)))}).chunk({"y": 2}), store)
    attrs = read_attrs(store)
    assert attrs["fps"] == 24.0 and set(attrs["stages"]) == {"one"}
    ds = open_store(store)
    assert ds["a"].values.sum() == 0 and ds["b"].values.sum() == 12


def test_stage_records(store):
    assert not stage_done(store, "s", "x")
    record_stage(store, "s", "x", 0.5, {"n": np.int64(3)})
    assert stage_done(store, "s", "x") and not stage_done(store, "s", "y")
    assert stage_record(store, "s")["summary"] == {"n": 3}
    forget_stages(store, ["s"])
    assert stage_record(store, "s") is None
    assert stage_record(store.parent / "missing.zarr", "s") is None


def test_digest_is_stable_and_sensitive():
    assert digest("a", {"x": 1, "y": [1, 2]}) == digest("a", {"y": [1, 2], "x": 1})
    assert digest("a", {"x": 1}) != digest("a", {"x": 2})


def test_missing_or_broken_stores_are_named(tmp_path, store):
    with pytest.raises(StoreError, match="no such store"):
        open_store(tmp_path / "nope.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(StoreError, match="junk.zarr"):
        open_store(tmp_path / "junk.zarr")
    with pytest.raises(StoreError, match="lacks warped"):
        require(open_store(store), store, ["a", "warped"])
