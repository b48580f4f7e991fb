"""Display-stage quality of several segmentation settings on held-out clips, side by side.

Run ``python benchmarks/eval_displays.py [VARIANT ...]`` from the repository root.  A variant is
``BLOCK:DISTANCE`` (``DisplayParams.block`` and ``block_distance``; ``none`` for no distance):
``1:none`` is single pixels, ``2:0.03`` close 2x2 blocks (the default), ``2:none`` alike blocks.
Default: ``1:none 2:0.03``.  Every variant runs :func:`tasks.displays.detect_displays` with the
model its parameters choose (``DisplayParams.model_file``) on the same windows:

- the synthetic street clips of seeds 1-12 (:func:`tasks.synthetic_displays.make_display_clip`,
  640x360, 100 frames, fully visible; the packaged models were trained on seeds 1000-1031):
  display IoU against the clip's display masks, and the pixels a walker, foliage or blinker
  covers that the mask takes for a display (``distractor px``);
- the held-out real clips of ``benchmarks/real_footage`` (``"role": "evaluation"``), each window
  as :mod:`benchmarks.bench_displays` takes it (the middle frame +-50, longer side at most 640
  pixels), or with ``--store NAME=PATH`` the ``warped`` and ``visible`` window of a pipeline store
  (``eval_real_footage.py --keep --out DIR`` keeps ``DIR/NAME/store.zarr``): the display mask's
  share of the frame and of the "must stay frozen" polygons (people, cars).

Printed: one line per clip with every variant's figures, then per variant the mean and lowest
IoU, the clips at IoU >= 0.8 and the distractor pixels in all.  The figures are the stage's
alone (no cyclic mask, no render); ``benchmarks/eval_real_footage.py`` runs the whole pipeline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def parse_variant(text: str) -> tuple[str, dict]:
    """``"2:0.03"`` -> ``("2:0.03", {"block": 2, "block_distance": 0.03})``."""
    try:
        block, distance = text.split(":")
        params = {"block": int(block), "block_distance": None if distance.lower() == "none" else float(distance)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"a variant is BLOCK:DISTANCE, e.g. 2:0.03 or 1:none; got {text!r}") from None
    return text, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("variants", nargs="*", type=parse_variant, help="BLOCK:DISTANCE (default 1:none 2:0.03)")
    parser.add_argument("--seeds", type=int, default=12, help="synthetic clips, seeds 1..N (default 12)")
    parser.add_argument(
        "--store", action="append", default=[], metavar="NAME=PATH",
        help="take real clip NAME's window from this pipeline store (repeatable)",
    )
    args = parser.parse_args()
    variants = args.variants or [parse_variant("1:none"), parse_variant("2:0.03")]
    stores = {}
    for item in args.store:
        name, _, path = item.partition("=")
        if not path or not Path(path).is_dir():
            parser.error(f"--store {item}: expected NAME=PATH of a store folder")
        stores[name] = path

    from bench_displays import real_windows

    from schemas.displays import DisplayParams
    from tasks.displays import detect_displays, load_display_model
    from tasks.synthetic_displays import make_display_clip

    def mask_of(video, visible, params):
        params = DisplayParams(**params)
        model, _, _ = load_display_model(params)
        return detect_displays(video, visible, model, params)[2]

    figures = {name: [] for name, _ in variants}
    for seed in range(1, args.seeds + 1):
        clip = make_display_clip(None, height=360, width=640, n_frames=100, seed=seed)
        truth = np.any(clip.display_masks, axis=0) if clip.display_masks else np.zeros(clip.frames.shape[1:3], bool)
        visible = np.ones(clip.frames.shape[:3], bool)
        line = [f"seed {seed:2d}"]
        for name, params in variants:
            mask = mask_of(clip.frames, visible, params)
            iou = float((mask & truth).sum() / max((mask | truth).sum(), 1))
            distractor = int((mask & clip.distractor_mask & ~truth).sum())
            figures[name].append((iou, distractor))
            line.append(f"{name}: IoU {iou:.3f} distractor px {distractor:5d}")
        print("   ".join(line), flush=True)
    for name, _ in variants:
        rows = np.array(figures[name])
        print(
            f"{name}: mean IoU {rows[:, 0].mean():.3f}, lowest {rows[:, 0].min():.3f}, "
            f"IoU >= 0.8 on {int((rows[:, 0] >= 0.8).sum())} of {len(rows)}, distractor px {int(rows[:, 1].sum())}"
        )
    for clip_name, (video, visible, frozen) in real_windows(ROOT / "benchmarks" / "real_footage", stores).items():
        line = [f"{clip_name:20s}" + (" (store)" if clip_name in stores else "")]
        for name, params in variants:
            mask = mask_of(video, visible, params)
            frozen_share = 100 * (mask & frozen).sum() / max(int(frozen.sum()), 1)
            line.append(f"{name}: frame {100 * mask.mean():.2f} % frozen {frozen_share:.2f} %")
        print("   ".join(line), flush=True)


if __name__ == "__main__":
    main()
