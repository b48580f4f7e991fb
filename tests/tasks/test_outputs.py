"""The summary artifact's mask thumbnail (tasks.outputs.mask_thumbnail)."""

import base64
import io

import numpy as np
import xarray as xr
from PIL import Image

from schemas import names as N
from tasks.outputs import mask_thumbnail


def reference_thumbnail(store, max_side=256) -> np.ndarray:
    """Readable reference: the reference frame through xarray, the animated pixels blended 55 % toward
    red, shrunk to fit ``max_side`` by Pillow's thumbnail."""
    ds = xr.open_zarr(store, zarr_format=3, consolidated=False)
    ref = ds[N.REFERENCE].values.astype(np.float64)
    mask = ds[N.ANIMATED_MASK].values.astype(bool)
    for c, red in enumerate((255, 40, 40)):
        channel = ref[..., c]
        channel[mask] = 0.45 * channel[mask] + 0.55 * red
    img = Image.fromarray(np.clip(ref, 0, 255).astype(np.uint8))
    img.thumbnail((max_side, max_side))
    return np.asarray(img)


def decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def write_store(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, size=(h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), bool)
    mask[h // 4 : h // 2, w // 3 : 2 * w // 3] = True
    xr.Dataset(
        {N.REFERENCE: (("y", "x", "c"), reference), N.ANIMATED_MASK: (("y", "x"), mask)}
    ).to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    return reference, mask


def test_small_store_keeps_its_size_and_tints_only_the_mask(tmp_path):
    store = tmp_path / "s.zarr"
    reference, mask = write_store(store, 40, 60)
    got = decode(mask_thumbnail(store))
    np.testing.assert_array_equal(got, reference_thumbnail(store))
    np.testing.assert_array_equal(got[~mask], reference[~mask])  # nothing outside the mask changes
    assert (got[mask][:, 0].astype(int) >= reference[mask][:, 0]).all()  # red only rises inside it


def test_large_store_is_shrunk_to_fit(tmp_path):
    store = tmp_path / "s.zarr"
    write_store(store, 300, 533, seed=1)
    got = decode(mask_thumbnail(store, max_side=256))
    assert got.shape[1] == 256 and got.shape[0] <= 256
    np.testing.assert_array_equal(got, reference_thumbnail(store, 256))


def test_missing_store_or_variable_gives_none(tmp_path):
    assert mask_thumbnail(tmp_path / "none.zarr") is None
    store = tmp_path / "s.zarr"
    xr.Dataset({N.REFERENCE: (("y", "x", "c"), np.zeros((4, 4, 3), np.uint8))}).to_zarr(
        store, mode="w", zarr_format=3, consolidated=False
    )
    assert mask_thumbnail(store) is None
