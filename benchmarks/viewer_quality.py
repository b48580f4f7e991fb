"""What the viewer sees, measured on finished output folders: per-region wraps, halos, GIF fidelity.

    python benchmarks/viewer_quality.py OUT/ [OUT2/ ...]

For every folder made by ``cinemagraph run`` or ``demo`` (``store.zarr``,
``cinemagraph.gif``, ``cinemagraph.mp4``) it prints, from the files alone (not
from ``result.json``, so older outputs can be compared with newer ones):

* per region of ``loop_regions``: the wrap change (mean absolute change, over
  the region's pixels and colours, from the loop's last frame to its first)
  against the largest and the median change between consecutive frames;
* halos: per region, the largest Pearson correlation of a pixel outside
  ``animated_mask`` with the region's mean luminance over the window, and the
  pixels outside above 0.5 and 0.65 (the documented threshold);
* the GIF decoded with Pillow against the stored loop (at the GIF's size)
  inside the animated mask: mean and largest absolute error (0-255), and the
  file sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(out: Path) -> None:
    import xarray as xr
    from PIL import Image, ImageSequence

    from schemas import names as N
    from tasks.cyclicity import luminance
    from tasks.loop_timing import wrap_figures
    from tasks.video import resize

    ds = xr.open_zarr(out / N.STORE_NAME, consolidated=False)
    loop = ds[N.LOOP].values
    regions = ds["loop_regions"].values
    animated = ds[N.ANIMATED_MASK].values.astype(bool)
    print(f"== {out}: {loop.shape[0]} loop frames, {int(animated.sum())} animated pixels")
    lum = luminance(ds[N.WARPED].values).astype(np.float64)
    z = lum - lum.mean(axis=0)
    z /= np.maximum(np.sqrt((z**2).sum(axis=0)), 1e-9)
    for r in range(1, int(regions.max()) + 1):
        sel = regions == r
        if not sel.any():
            continue
        wrap, largest = wrap_figures(loop, sel)
        steps = np.abs(np.diff(loop[:, sel].astype(np.float32), axis=0)).mean(axis=(1, 2))
        s = lum[:, sel].mean(axis=1)
        s = (s - s.mean()) / max(np.linalg.norm(s - s.mean()), 1e-9)
        outside = np.tensordot(s, z, axes=(0, 0))[~animated]
        print(
            f"region {r}: {int(sel.sum())} px, wrap {wrap:.2f}, largest step {largest:.2f}, "
            f"median step {np.median(steps):.2f}, wrap/largest {wrap / max(largest, 1e-9):.2f}; "
            f"halo: max corr outside {outside.max():.3f}, px > 0.5: {(outside > 0.5).sum()}, "
            f"px > 0.65: {(outside > 0.65).sum()}"
        )
    gif_path = out / N.GIF_NAME
    if gif_path.exists():
        with Image.open(gif_path) as gif:
            frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])
        size = frames.shape[1:3]
        ref = np.stack([resize(f, size) for f in loop]) if loop.shape[1:3] != size else loop
        mask = resize(animated.astype(np.uint8), size).astype(bool) if animated.shape != size else animated
        if len(frames) == len(ref) and mask.any():
            err = np.abs(frames.astype(np.int16) - ref)[:, mask]
            print(f"GIF: mean abs error {err.mean():.2f}, max {err.max()} inside the animated mask")
        else:
            print(f"GIF: {len(frames)} frames for a loop of {len(ref)} (merged identical frames?)")
        print(f"GIF {gif_path.stat().st_size} bytes, MP4 {(out / N.MP4_NAME).stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="+", type=Path)
    for out in parser.parse_args().outputs:
        measure(out)


if __name__ == "__main__":
    main()
