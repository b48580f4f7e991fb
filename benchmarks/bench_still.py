"""Endless loops from one still image: time per step for a 1-megapixel image, and the CRF solver comparison.

1. Steps of the method on a synthetic 1-megapixel facade (``--size 1152x864``
   by default, a window lattice with texture noise, automatic direction
   and mask): features, direction, regions (whole-image 1-D period and the
   automatic mask), repetitions, labels (CRF), flow, texture, frames, quality;
   then, apart, what writes files (store and MP4).  Numba compile time is
   excluded: the whole chain first runs once on a small image.  The paper's app
   needs under 1 s on a phone; our target is under 3 s on 2 cores.
2. The CRF of step 3 on the four synthetic patterns, solved by our
   alpha-expansion (8-connected grid) and, when ``pydensecrf2`` is installed
   (``pip install .[bench]``), by a fully connected CRF with mean-field
   inference (Kraehenbuehl and Koltun 2011) on the same unary and label
   compatibility with a bilateral kernel of the same scales; pixels of other
   regions are kept apart by a region feature.  Both are scored by our grid
   energy and by the fraction of pixels whose label is within 10 % of the
   lattice vector.

Run ``python benchmarks/bench_still.py [--size WxH] [--frames N]``; it prints
CPU and wall time and the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from kernels.alpha_expansion import grid_energy
from kernels.still.crf import label_compatibility
from schemas.still import EndlessLoopConfig
from tasks.still.direction import candidate_directions, find_directions
from tasks.still.features import pixel_features
from tasks.still.flow import dense_fields, inversion_error, sparse_vectors
from tasks.still.frames import FrameRenderer, end_frame_errors, step_sizes
from tasks.still.labels import assign_labels, region_problem, solve_labels
from tasks.still.mask import automatic_mask, split_regions
from tasks.still.repetitions import find_repetitions, first_repeating
from tasks.still.synthetic import GENERATORS, rotated_lattice, window_grid
from tasks.still.texture import extend_texture


class Clock:
    def __init__(self):
        self.rows = []

    def __call__(self, name, fn, *args, **kwargs):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.rows.append((name, time.perf_counter() - w0, time.process_time() - c0))
        return out


def run_steps(image, config, n_frames, clock):
    """The method end to end in memory, each step timed; returns figures."""
    f = clock("features", pixel_features, image, config.features)
    ones = np.ones(image.shape[:2], bool)

    def direction_step():  # the vote, then each suggestion checked by its 1-D repetition strength
        found = find_directions(image, f, None, config.auto_direction)
        candidates = candidate_directions(found, config.auto_direction.suppress_degrees)
        k, whole = first_repeating(f, ones, candidates, config.repetitions)
        return found, candidates[k], whole

    found, d, whole = clock("direction", direction_step)

    def regions_step():
        mask, _ = automatic_mask(f, d, whole.period, config.mask)
        return split_regions(mask, config.mask.min_region_fraction, config.mask.max_regions)

    regions = clock("regions", regions_step)
    reps = clock("repetitions", lambda: [find_repetitions(f, r, d, config.repetitions) for r in regions])
    labels = clock("labels (CRF)", lambda: [assign_labels(image, f, r, rep, config.crf)
                                            for r, rep in zip(regions, reps, strict=True)])
    mask = np.zeros(image.shape[:2], bool)
    for r in regions:
        mask |= r

    def flow_step():
        sparse = [sparse_vectors(lab.labels, lab.vectors, r, config.flow, period=rep.period)
                  for lab, r, rep in zip(labels, regions, reps, strict=True)]
        margin = int(np.ceil(max(np.abs(s.vectors).max() for s in sparse))) + 4
        fwd, bwd = dense_fields(sparse, regions, mask.shape, margin, config.flow.grid_step, config.flow.refine_inverse)
        return fwd, bwd, margin

    fwd, bwd, margin = clock("flow", flow_step)
    ext = clock("texture", extend_texture, image, mask, fwd, margin, config.texture)
    renderer = FrameRenderer(image, mask, ext, fwd, bwd, margin, config.frames)
    loop = clock(f"frames ({n_frames})", renderer.loop, n_frames)

    def quality():
        steps, wrap = step_sizes(loop, mask)
        inv = inversion_error(fwd, bwd, mask, margin)
        first, last = end_frame_errors(renderer, loop, image)
        return steps, wrap, inv, first, last

    steps, wrap, inv, first, last = clock("quality", quality)
    return {"direction": d, "votes": found[0].votes if found else 0, "regions": [int(r.sum()) for r in regions],
            "periods": [r.period for r in reps], "loop": loop, "mask": mask, "wrap": wrap,
            "max_step": float(steps.max()), "inv_mean": float(inv.mean()), "inv_p95": float(np.percentile(inv, 95)),
            "first": first, "last": last, "fwd": fwd, "bwd": bwd, "margin": margin}


def bench_steps(width, height, n_frames):
    config = EndlessLoopConfig(frames={"n_frames": n_frames})
    print("warm-up (JIT) on a small image ... ", end="", flush=True)
    t0 = time.perf_counter()
    run_steps(rotated_lattice(height=144, width=192, seed=9).image, config, 4, Clock())
    print(f"{time.perf_counter() - t0:.1f} s")
    scale = np.sqrt(width * height / (224 * 176))
    s = window_grid(height=height, width=width, a=(34.0 * scale / 2, 0.0), b=(0.0, 48.0 * scale / 2), seed=1)
    clock = Clock()
    res = run_steps(s.image, config, n_frames, clock)
    total_w = sum(r[1] for r in clock.rows)
    total_c = sum(r[2] for r in clock.rows)
    print(f"\n1. steps on a {width}x{height} image ({width * height / 1e6:.2f} Mpx), window lattice "
          f"{s.lattice[0].round(1).tolist()} / {s.lattice[1].round(1).tolist()} px; load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"   {'step':<16}{'wall s':>9}{'cpu s':>9}")
    for name, w, c in clock.rows:
        print(f"   {name:<16}{w:9.3f}{c:9.3f}")
    print(f"   {'total':<16}{total_w:9.3f}{total_c:9.3f}")
    d = res["direction"]
    err = min(np.degrees(np.arccos(min(1.0, abs(d @ v) / np.linalg.norm(v)))) for v in s.lattice)
    print(f"   direction {d.round(3).tolist()} ({res['votes']} votes, {err:.2f} deg from a lattice vector); "
          f"regions {res['regions']} px; periods {[round(p, 1) for p in res['periods']]} px")
    h, w = s.mask.shape
    m = res["margin"]
    flow = res["fwd"][m : m + h, m : m + w][res["mask"]]
    truth = [v if v @ d > 0 else -v for v in s.lattice]
    frac = max(np.mean(np.linalg.norm(flow - t, axis=1) / np.linalg.norm(t) <= 0.1) for t in truth)
    print(f"   flow within 10 % of a lattice vector on {100 * frac:.1f} % of the mask; inversion error mean "
          f"{res['inv_mean']:.3f} px, p95 {res['inv_p95']:.3f} px; end frames off by {res['first']}/{res['last']}; "
          f"wrap step {res['wrap']:.2f} <= largest ordinary {res['max_step']:.2f}: {res['wrap'] <= res['max_step']}")
    # what writes files, apart
    from tasks.encode import write_mp4
    from tasks.still.store import create_store, write_arrays

    with tempfile.TemporaryDirectory() as tmp:
        io = Clock()
        io("store (loop)", lambda: (create_store(f"{tmp}/s.zarr", s.image, {}),
                                    write_arrays(f"{tmp}/s.zarr", {"loop": res["loop"]})))
        io("mp4", write_mp4, f"{tmp}/c.mp4", res["loop"], 24.0)
        for name, w, c in io.rows:
            print(f"   {name:<16}{w:9.3f}{c:9.3f}   (file output, not in the total)")


def _densecrf_labels(unary, vectors, image, comps, scale, params, iterations=5):
    import pydensecrf.densecrf as dcrf

    h, w, n_labels = unary.shape
    crf = dcrf.DenseCRF(h * w, n_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(-1, n_labels).T.astype(np.float32)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta_a = params.theta_alpha * scale  # grid pixels
    feats = [xx / theta_a, yy / theta_a]
    feats += [image[..., c].astype(np.float32) / params.theta_beta for c in range(3)]
    feats.append(comps.astype(np.float32) * 1e4)  # other regions (and the outside) never interact
    feats = np.ascontiguousarray(np.stack([f.ravel() for f in feats]).astype(np.float32))
    compat = (params.pairwise_weight * label_compatibility(vectors)).astype(np.float32)
    crf.addPairwiseEnergy(feats, compat=compat, kernel=dcrf.DIAG_KERNEL, normalization=dcrf.NORMALIZE_SYMMETRIC)
    q = np.array(crf.inference(iterations))
    return np.argmax(q, axis=0).reshape(h, w).astype(np.int32)


def bench_crf():
    import cv2

    try:
        import pydensecrf.densecrf  # noqa: F401

        have_dense = True
    except ImportError:
        have_dense = False
    config = EndlessLoopConfig()
    p = config.crf
    print(f"\n2. CRF solvers on the same problems (grid long side {p.grid_long_side} px); load average "
          f"{os.getloadavg()[0]:.2f}")
    if not have_dense:
        print("   pydensecrf2 not installed (pip install .[bench]): alpha-expansion only")
    print(f"   {'pattern':<16}{'solver':<18}{'wall s':>8}{'energy':>12}{'within 10 %':>13}")
    for name, gen in GENERATORS.items():
        s = gen(height=352, width=448, seed=2) if name != "stripes" else gen(height=320, width=416, seed=2)
        f = pixel_features(s.image)
        rep = find_repetitions(f, s.mask, s.direction)
        unary, vectors, weights, init, scale, mg = region_problem(s.image, f, s.mask, rep, p)
        gh, gw = mg.shape
        truth_ok = np.linalg.norm(vectors - s.vector, axis=1) / s.period <= 0.1
        V = label_compatibility(vectors)
        ig = cv2.resize(s.image, (gw, gh), interpolation=cv2.INTER_AREA)
        _, comps = cv2.connectedComponents(mg.astype(np.uint8))
        solvers = [("alpha-expansion", solve_labels, (unary, vectors, weights, init, p))]
        if have_dense:
            solvers.append(("dense CRF (5 it.)", _densecrf_labels, (unary, vectors, ig, comps * mg, scale, p)))
        for solver, fn, args in solvers:
            t0 = time.perf_counter()
            labels = fn(*args)
            labels = labels[0] if isinstance(labels, tuple) else labels
            wall = time.perf_counter() - t0
            energy = grid_energy(labels, unary, V, pairwise_weight=p.pairwise_weight, edge_weights=weights,
                                 connectivity=8)
            acc = truth_ok[labels[mg]].mean()
            print(f"   {name:<16}{solver:<18}{wall:8.3f}{energy:12.1f}{100 * acc:12.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1152x864", help="WxH of the synthetic image (pixels)")
    ap.add_argument("--frames", type=int, default=48, help="frames in the loop")
    ap.add_argument("--no-crf", action="store_true", help="skip the CRF solver comparison")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    bench_steps(w, h, args.frames)
    if not args.no_crf:
        bench_crf()


if __name__ == "__main__":
    main()
