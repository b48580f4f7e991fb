"""Render stage speed with the processing chain on and off, side by side in one run.

    python benchmarks/bench_render.py             # 640 x 360, 101-frame window
    python benchmarks/bench_render.py --quick     # 320 x 180, 41 frames

A synthetic window is written to a temporary store: a textured facade that
jitters by up to 1 px, one display (a slideshow of scikit-image photographs
with one-frame flashes and a walker in front, 120 x 200 px = 24 000 px, so RPCA
works on two bands of rows), two blinking lights in ``cyclic_mask`` and
invisible samples (a strip beside a light and a patch of the display).  The
render stage (:func:`tasks.render.render_loop`) runs once with the chain off
(``inpaint = stabilise = rpca = False``: loop and composite only) and once with
the defaults (chain on), on dask's default threaded scheduler.  Sub-step times
are those the stage reports (``RenderResult.steps``): in-paint, stabilise and
RPCA are task times summed over regions (regions run in parallel), "chain" is
the wall time until the chains of the regions that are not display segments are
done (the display segments' chains finish during "signals" and "composite" on a
cluster; on dask's default threaded scheduler, as here, all chains finish in
"chain").
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import dask.array as da
import numpy as np
import skimage.data
import xarray as xr
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import names as N  # noqa: E402
from schemas.config import CyclicityParams, RenderParams  # noqa: E402
from tasks.render import render_loop  # noqa: E402
from tasks.store import update_attrs, write_variables  # noqa: E402
from tasks.synthetic import textured_background  # noqa: E402

TILE = 64


def make_window(height, width, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    pad = 2
    big = textured_background(height + 2 * pad, width + 2 * pad, rng)
    dy0, dx0 = height // 6, width // 8
    dh, dw = height // 3, (width * 5) // 16
    photos = []
    for name in ("astronaut", "coffee", "chelsea"):
        img = np.asarray(getattr(skimage.data, name)())[..., :3]
        photos.append(cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA).astype(np.float32))
    lights = [
        ((int(0.7 * height), int(0.6 * width)), max(4, height // 24), 6),
        ((height // 4, int(0.8 * width)), max(4, height // 30), 8),
    ]
    yy, xx = np.mgrid[0 : height + 2 * pad, 0 : width + 2 * pad]
    walker = rng.normal(45, 20, (dh // 2, max(8, dw // 16), 3))
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    ref = n_frames // 2
    shifts = rng.integers(-1, 2, size=(n_frames, 2))
    shifts[ref] = 0
    for t in range(n_frames):
        scene = big.copy()
        k, phase = divmod(t, 8)
        wgt = max(0, phase - 5) / 3.0
        content = (1 - wgt) * photos[k % 3] + wgt * photos[(k + 1) % 3]
        if rng.random() < 0.3:
            y = int(rng.integers(0, dh - 12))
            content[y : y + 12] += 70
        x = int(0.8 * t) % (dw - walker.shape[1])
        content[dh // 2 :, x : x + walker.shape[1]] = walker
        scene[pad + dy0 : pad + dy0 + dh, pad + dx0 : pad + dx0 + dw] = content
        for (cy, cx), radius, period in lights:
            on = 0.5 + 0.5 * np.cos(2 * np.pi * t / period)
            disc = (yy - cy - pad) ** 2 + (xx - cx - pad) ** 2 < radius**2
            scene[disc] = 60 + on * np.array([195.0, 170.0, 80.0])
        scene = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
        sy, sx = shifts[t]
        frames[t] = scene[pad + sy : pad + sy + height, pad + sx : pad + sx + width]
    display = np.zeros((height, width), bool)
    display[dy0 : dy0 + dh, dx0 : dx0 + dw] = True
    cyclic = np.zeros((height, width), bool)
    for (cy, cx), radius, _ in lights:
        cyclic |= (np.mgrid[0:height, 0:width][0] - cy) ** 2 + (np.mgrid[0:height, 0:width][1] - cx) ** 2 < (
            radius + 2
        ) ** 2
    visible = np.ones((n_frames, height, width), bool)
    (cy, cx), radius, _ = lights[0]
    visible[: n_frames // 3, cy - radius : cy + radius, cx + radius - 3 : cx + radius + 3] = False
    visible[n_frames // 2 + 5 : n_frames // 2 + 25, dy0 + 10 : dy0 + 20, dx0 + 30 : dx0 + 50] = False
    frames[~visible] = 0
    return frames, visible, cyclic, display, ref


def write_store(path, frames, visible, cyclic, display, ref):
    n = frames.shape[0]
    zarr.open_group(str(path), mode="w", zarr_format=3)
    ds = xr.Dataset(
        {
            N.WARPED: (
                (N.WINDOW_TIME, N.Y, N.X, N.CHANNEL),
                da.from_array(frames, chunks=(n, TILE, TILE, 3)),
            ),
            N.VISIBLE: ((N.WINDOW_TIME, N.Y, N.X), da.from_array(visible, chunks=(n, TILE, TILE))),
            N.REFERENCE: ((N.Y, N.X, N.CHANNEL), da.from_array(frames[ref], chunks=(TILE, TILE, 3))),
            N.CYCLIC_MASK: ((N.Y, N.X), da.from_array(cyclic, chunks=TILE)),
            N.DISPLAY_MASK: ((N.Y, N.X), da.from_array(display, chunks=TILE)),
        },
        coords={N.WINDOW_TIME: np.arange(n)},
    )
    write_variables(ds, path)
    update_attrs(path, {"reference_index": ref, "window_start": 0, "window_stop": n})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="320 x 180, 41 frames")
    args = parser.parse_args()
    height, width, n = (180, 320, 41) if args.quick else (360, 640, 101)
    frames, visible, cyclic, display, ref = make_window(height, width, n)
    print(
        f"render stage on a {width}x{height} window of {n} frames, {os.cpu_count()} cores; "
        f"display {int(display.sum())} px, cyclic {int(cyclic.sum())} px, "
        f"invisible samples {int((~visible).sum())}"
    )
    runs = {
        "chain off": RenderParams(inpaint=False, stabilise=False, rpca=False),
        "chain on": RenderParams(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        render_loop(str(write_warmup(Path(tmp))), RenderParams(), CyclicityParams())  # JIT caches, imports
        for label, params in runs.items():
            store = Path(tmp) / f"{label.replace(' ', '_')}.zarr"
            write_store(store, frames, visible, cyclic, display, ref)
            t0 = time.perf_counter()
            result = render_loop(str(store), params, CyclicityParams())
            total = time.perf_counter() - t0
            s = result.steps
            print(
                f"{label:9s}: total {total:6.2f} s | in-paint {s['inpaint']:6.2f} s, stabilise {s['stabilise']:5.2f} s, "
                f"RPCA {s['rpca']:6.2f} s (task time; chain wall {s['chain']:6.2f} s) | signals {s['signals']:5.2f} s, "
                f"composite+write {s['composite']:5.2f} s, quality {s['quality']:5.2f} s"
            )
            for r in result.regions:
                extra = ""
                if r.rpca_lambda is not None:
                    extra = f", gamma {r.rpca_gamma:.2f}, lambda {r.rpca_lambda:.4f}, {r.rpca_iterations} APG iterations"
                if r.stabilised_tracks is not None:
                    extra += f", {r.stabilised_tracks} static tracks"
                print(
                    f"    region {r.label} {r.kind:7s} {r.area:6d} px, {r.playback}, period {r.period}, "
                    f"in-painted {r.inpainted_samples}, flicker {r.flicker:.2f}{extra}"
                )
            print(
                f"    loop {result.loop_frames} frames, seam {result.quality.seam:.2f}, stillness {result.quality.stillness}"
            )


def write_warmup(tmp: Path) -> Path:
    frames, visible, cyclic, display, ref = make_window(48, 96, 20, seed=1)
    store = tmp / "warmup.zarr"
    write_store(store, frames, visible, cyclic, display, ref)
    return store


if __name__ == "__main__":
    main()
