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


def test_chunks_of_in_memory_variables_are_those_of_a_dask_write(tmp_path, store):
    import zarr

    values = {"m": (("t", "y", "x"), np.arange(5 * 3 * 4).reshape(5, 3, 4)), "k": (("y",), np.arange(3.0))}
    chunks = {"t": 2, "y": 8, "x": -1}  # longer than the dimension, and whole
    write_variables(xr.Dataset(values), store, chunks=chunks)
    other = tmp_path / "o.zarr"
    xr.Dataset({"a": (("y", "x"), np.zeros((3, 4)))}).to_zarr(other, mode="w", zarr_format=3, consolidated=False)
    write_variables(xr.Dataset(values).chunk(chunks), other)
    for name in values:
        stored, through_dask = zarr.open_array(store / name), zarr.open_array(other / name)
        assert stored.chunks == through_dask.chunks
        np.testing.assert_array_equal(stored[...], through_dask[...])
    assert zarr.open_array(store / "m").chunks == (2, 3, 4)
    # a dask variable keeps its own chunks, and an explicit encoding wins
    write_variables(xr.Dataset({"d": (("t",), np.arange(5))}).chunk({"t": 1}), store, chunks={"t": 5})
    write_variables(xr.Dataset(values), store, chunks=chunks, encoding={"k": {"chunks": (1,)}})
    assert zarr.open_array(store / "d").chunks == (1,) and zarr.open_array(store / "k").chunks == (1,)


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


# ------------------------------------------------ options added after stores existed (schemas.compat)


def _plus(cls, default=0, as_before_value=0):
    """``cls`` with one more option, declared to behave as before at ``as_before_value``."""
    from pydantic import Field, create_model

    from schemas.compat import as_before

    return create_model(
        cls.__name__ + "Plus",
        __base__=cls,
        new_option=(int, Field(default, json_schema_extra=as_before(as_before_value))),
    )


def test_config_values_leave_out_options_at_their_as_before_value_in_nested_sections_too():
    from pydantic import BaseModel, Field

    from schemas.compat import as_before
    from tasks.store import config_values, drop_as_before

    class Inner(BaseModel):
        a: int = 1
        b: int = Field(2, json_schema_extra=as_before(2))

    class Outer(BaseModel):
        x: float = 0.5
        y: str = Field("old", json_schema_extra=as_before("old"))
        inner: Inner = Field(default_factory=Inner)

    assert config_values(Outer()) == {"x": 0.5, "inner": {"a": 1}}
    assert config_values(Outer(y="new", inner=Inner(b=3))) == {"x": 0.5, "y": "new", "inner": {"a": 1, "b": 3}}
    # the same rule on a dict read back from a record (the dict itself is left as it was)
    recorded = {"x": 0.5, "y": "old", "inner": {"a": 1, "b": 2}}
    assert drop_as_before(Outer, recorded) == {"x": 0.5, "inner": {"a": 1}}
    assert recorded == {"x": 0.5, "y": "old", "inner": {"a": 1, "b": 2}}
    # a record written before the options existed lacks them: equal to today's values at the defaults
    assert drop_as_before(Outer, {"x": 0.5, "inner": {"a": 1}}) == config_values(Outer())


def _stage_digests(tmp_path):
    """(name, section class, digest of a section) for every stage digest that takes a whole section."""
    from schemas.config import CyclicityParams, RenderParams, WindowParams
    from schemas.displays import DisplayParams
    from schemas.render3d import Render3dParams
    from schemas.video_loop import VideoLoopParams
    from tasks.cyclicity import cyclicity_digest
    from tasks.displays import displays_digest
    from tasks.render import render_digest
    from tasks.render3d.stage import render3d_digest
    from tasks.video_loop import video_loop_digest
    from tasks.window import window_digest

    store = str(tmp_path / "no-store.zarr")
    return [
        ("cyclicity", CyclicityParams, lambda p: cyclicity_digest(store, p)),
        ("render", RenderParams, lambda p: render_digest(store, p, CyclicityParams())),
        ("render (cyclicity section)", CyclicityParams, lambda p: render_digest(store, RenderParams(), p)),
        ("window", WindowParams, lambda p: window_digest(store, p, 10)),
        ("displays", DisplayParams, lambda p: displays_digest(store, p)),
        ("video_loop", VideoLoopParams, lambda p: video_loop_digest(store, p)),
        ("render3d", Render3dParams, lambda p: render3d_digest(store, p)),
    ]


def test_every_stage_digest_keeps_its_value_when_a_new_option_is_at_its_as_before_value(tmp_path):
    for name, cls, stage_digest in _stage_digests(tmp_path):
        plus = _plus(cls)
        assert stage_digest(plus()) == stage_digest(cls()), name
        assert stage_digest(plus(new_option=1)) != stage_digest(cls()), name


def test_ingest_digest_keeps_its_value_when_a_new_option_is_at_its_as_before_value(tmp_path):
    from schemas.config import IngestParams
    from tasks.ingest import ingest_digest

    source = tmp_path / "clip.mp4"
    source.write_bytes(b"not decoded here")
    plus = _plus(IngestParams)
    assert ingest_digest(source, plus(), (64, 64)) == ingest_digest(source, IngestParams(), (64, 64))
    assert ingest_digest(source, plus(new_option=1), (64, 64)) != ingest_digest(source, IngestParams(), (64, 64))


def test_still_stage_digests_keep_their_values_when_a_nested_option_is_at_its_as_before_value(tmp_path):
    from pydantic import Field, create_model

    from schemas.still import EndlessLoopConfig
    from tasks.still.stages import STAGE_INPUTS, stage_digest

    store = str(tmp_path / "no-store.zarr")
    base = EndlessLoopConfig()
    checked = 0
    for stage, (_, fields) in STAGE_INPUTS.items():
        section = next((f for f in fields if hasattr(type(getattr(base, f)), "model_fields")), None)
        if section is None:
            continue
        plus_cls = _plus(type(getattr(base, section)))
        # the whole config with that section's class grown by one option, as a later version would have it
        config_plus = create_model(
            "EndlessLoopConfigPlus", __base__=EndlessLoopConfig, **{section: (plus_cls, Field(default_factory=plus_cls))}
        )
        same = config_plus()
        other = config_plus(**{section: plus_cls(new_option=1)})
        assert stage_digest(store, stage, same) == stage_digest(store, stage, base), stage
        assert stage_digest(store, stage, other) != stage_digest(store, stage, base), stage
        checked += 1
    assert checked >= 6


def test_an_endless_loop_recorded_before_an_option_existed_is_the_same_work(monkeypatch):
    import flows.make_endless_loop as M
    from schemas.still import EndlessLoopConfig

    recorded = EndlessLoopConfig().model_dump(mode="json")
    assert M.same_config(recorded, EndlessLoopConfig())
    changed = EndlessLoopConfig(max_long_side=200)
    assert not M.same_config(recorded, changed)
    assert not M.same_config(None, EndlessLoopConfig())
    # today's config has an option the record lacks: the same work at its as-before value only
    plus_cls = _plus(EndlessLoopConfig, default=0, as_before_value=0)
    monkeypatch.setattr(M, "EndlessLoopConfig", plus_cls)
    assert M.same_config(recorded, plus_cls())
    assert not M.same_config(recorded, plus_cls(new_option=1))


def test_every_chunk_is_written_and_reads_the_same_unless_the_user_says_otherwise(tmp_path):
    """With the project's Zarr default a chunk that holds only the fill value is written like any
    other (no comparison per chunk) and the array reads back the same; a user's own
    ZARR_ARRAY__WRITE_EMPTY_CHUNKS is left as it is."""
    import os
    import subprocess
    import sys

    import zarr

    assert zarr.config.get("array.write_empty_chunks") is True
    store = tmp_path / "s.zarr"
    xr.Dataset({"a": (("y", "x"), np.zeros((3, 4)))}).to_zarr(store, mode="w", zarr_format=3, consolidated=False)
    values = np.zeros((8, 6), np.uint8)
    values[4:, 3:] = 7  # one of the four chunks is not all zero
    write_variables(xr.Dataset({"m": (("t", "x2"), values)}).chunk({"t": 4, "x2": 3}), store)
    assert len([p for p in (store / "m" / "c").rglob("*") if p.is_file()]) == 4
    np.testing.assert_array_equal(open_store(store)["m"].values, values)
    script = "import zarr, tasks.store as s; print(s.write_every_chunk(), zarr.config.get('array.write_empty_chunks'))"
    env = dict(os.environ, ZARR_ARRAY__WRITE_EMPTY_CHUNKS="False")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
