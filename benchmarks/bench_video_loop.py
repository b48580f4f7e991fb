"""Video loops (Liao et al. 2013 energy, Oh et al. 2017 staged optimisation): time per stage, and the
energy our alpha-expansion reaches against gco-wrapper on the same labels.

Clip: a synthetic steady 320x180, 150-frame clip (``--quick``: 160x90, 90 frames): a textured still
background with sensor noise (sigma 2 levels) and two regions repeating exactly with periods 16 and 26
frames (a travelling wave and a radial wave).  Default parameters (the paper's periods {32, ..., 60}, the
grid downscaled to at most 96 cells on its longer side).

Timings: per step of :func:`tasks.video_loop.optimise_loops` and the full-resolution render, after a
warm-up run on a tiny clip (Numba compilation excluded).

gco comparison.  gco's ``cut_general_graph`` takes per-edge weights times ONE (L, L) label matrix; our
pairwise term beta gamma_s Psi(x, z, a, b) depends on both pixels' videos and does not factorise.  The
comparison therefore uses a rank-1 factorisation of the stage-2 problem (labels = the candidate periods,
each paired with the cell's stage-1 start): w_e = beta gamma_s(e) mean_{a != b} Psi_e(a, b) and
V(a, b) = mean_e Psi_e(a, b) / mean_{a != b} Psi_e, symmetrised (gco requires it), V(a, a) = 0; its relative error against the true
pairwise is printed.  Costs are scaled and rounded to integers once (gco needs integers); both solvers
get the same integers, run to convergence, and both labelings are scored with our ``grid_energy`` on
those integers (the ratio) and with the true energy E(p, s).

Run ``python benchmarks/bench_video_loop.py [--quick]``.

City mode (issue 18), ``python benchmarks/bench_video_loop.py --city [--size 640x360] [--frames 100]``:
the synthetic night street of :mod:`tasks.synthetic_city` (thin neon strokes blinking at 8, 10 and 12
frames, billboard, ticker, walkers, noisy facade), H.264.  The whole ``make_cinemagraph`` flow runs twice
on it, one after the other in this process (Prefect test harness, the default local Dask cluster of
threads): with the default method (``cyclic_regions``: cyclicity, displays, render) and with
``loop_method = "video_loop"`` (default parameters).  Printed: each run's wall and CPU time
(``time.process_time``, all threads of the process), the wall time of each stage, the ratio of the
video-loop stage to the default method's three stages, the video loop's own steps (coarse solve,
full-resolution refinement, render, gradient-domain blend), the seam energy before and after the
blend, and the truth figures (stroke pixels animated, static background animated).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kernels.alpha_expansion import alpha_expansion, grid_energy
from kernels.video_loop import render_time_map, spatial_costs
from schemas.video_loop import VideoLoopParams
from tasks.video_loop import (
    choose_loop_frames,
    downscale_video,
    grid_factor,
    loop_energy,
    optimise_loops,
    prepare_energy,
    upsample_labels,
)

UNARY_SCALE = 10_000  # energy units -> integers (= EDGE_SCALE * MATRIX_SCALE)
EDGE_SCALE = 100
MATRIX_SCALE = 100


def make_clip(height, width, n_frames, periods=(16, 26), noise=2.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    background = 90 + 25 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    background = background[..., None] + rng.normal(0, 8, size=(height, width, 3))
    rect = (yy >= 0.2 * height) & (yy < 0.75 * height) & (xx >= 0.08 * width) & (xx < 0.4 * width)
    cy, cx, r = 0.5 * height, 0.7 * width, 0.3 * min(height, width)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        img = background.copy()
        w0 = np.sin(2 * np.pi * (t / periods[0] + xx / (0.15 * width)))
        img[rect] = 120 + 80 * w0[rect][:, None] * np.array([1.0, 0.7, 0.4])
        w1 = np.sin(2 * np.pi * (t / periods[1] + np.hypot(yy - cy, xx - cx) / (0.1 * width)))
        img[disc] = 130 + 70 * w1[disc][:, None] * np.array([0.4, 0.8, 1.0])
        img += rng.normal(0, noise, size=img.shape)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, [rect, disc], periods


def factorised_stage2(energy, best_starts):
    """Integer unary (N, L), per-edge weights (E,), label matrix (L, L), edges, and the factorisation error."""
    periods = energy.periods
    n, n_lab = energy.n_cells, len(periods)
    lab_s = np.stack([best_starts[p] for p in periods], axis=1)
    unary = np.empty((n, n_lab))
    rows = np.arange(n)
    for i, p in enumerate(periods):
        starts = np.arange(0, energy.n_frames - p + 1)
        unary[:, i] = energy.unary(p, starts)[rows, lab_s[:, i]]
    ep, eq, wt, _ = energy.edges()
    psi = np.zeros((ep.size, n_lab, n_lab))
    for a in range(n_lab):
        for b in range(n_lab):
            psi[:, a, b] = _edge_psi(energy, ep, eq, periods[a], lab_s[:, a], periods[b], lab_s[:, b])
    true_pair = wt[:, None, None] * psi
    off = ~np.eye(n_lab, dtype=bool)
    m = psi[:, off].mean(axis=1)
    ok = m > 0
    vmat = np.zeros((n_lab, n_lab))
    vmat[off] = (psi[ok][:, off] / m[ok, None]).mean(axis=0)
    vmat = 0.5 * (vmat + vmat.T)  # gco's smooth cost must be symmetric
    w_e = wt * m
    approx = w_e[:, None, None] * vmat[None]
    err = np.linalg.norm(approx - true_pair) / max(np.linalg.norm(true_pair), 1e-30)
    unary_i = np.rint(unary * UNARY_SCALE).astype(np.int32)
    w_i = np.rint(w_e * EDGE_SCALE).astype(np.int32)
    v_i = np.rint(vmat * MATRIX_SCALE).astype(np.int32)
    return unary_i, w_i, v_i, ep, eq, lab_s, err


def _edge_psi(energy, ep, eq, pa, sa, pb, sb):
    """Psi of every edge with label a at ep and label b at eq (cells may differ in start per label)."""
    n = energy.n_cells
    out = np.empty(ep.size)
    # spatial_costs reads one (period, start) per cell: give the ep ends label a, the eq ends label b.
    # A cell is the ep of some edges and the eq of others; on a 4-grid the two ends of an edge have
    # different checkerboard colours, so each colour class of ep gives edges whose end sets are disjoint.
    per = np.empty(n, np.int64)
    st = np.empty(n, np.int64)
    _, w = energy.shape
    y, x = np.divmod(ep, w)
    colour = (y + x) % 2
    for c in (0, 1):
        sel = colour == c
        per[:] = 1
        st[:] = 0
        cells_p = ep[sel]
        cells_q = eq[sel]
        per[cells_p], st[cells_p] = pa, sa[cells_p]
        per[cells_q], st[cells_q] = pb, sb[cells_q]
        out[sel] = spatial_costs(energy.prefix, per, st, cells_p, cells_q)
    return out


def grid_weights(w_i, shape):
    """Per-edge weights (right edges first, then down edges) as alpha_expansion's (horizontal, vertical)."""
    h, w = shape
    horiz = np.zeros((h, w - 1))
    vert = np.zeros((h - 1, w))
    n_h = h * (w - 1)
    horiz.ravel()[:] = w_i[:n_h]
    vert.ravel()[:] = w_i[n_h:]
    return horiz, vert


def city(size: str, n_frames: int) -> None:
    """The two methods on the synthetic night street, side by side (see the module notes)."""
    import os
    import tempfile
    from pathlib import Path

    import zarr
    from prefect.testing.utilities import prefect_test_harness

    from flows.make_cinemagraph import run_make_cinemagraph
    from schemas import names as N
    from schemas.config import PipelineConfig
    from tasks.synthetic_city import make_city_night_clip

    width, height = (int(v) for v in size.split("x"))
    root = Path(tempfile.mkdtemp(prefix="bench_city_"))
    clip = make_city_night_clip(root / "city.mp4", width=width, height=height, n_frames=n_frames, seed=0)
    print(f"city clip {width}x{height}, {n_frames} frames, signs of periods {sorted(clip.periods)}")
    print(f"load average before: {os.getloadavg()}")
    default_stages = ("cyclicity", "displays", "render")
    runs = {}
    with prefect_test_harness(server_startup_timeout=90):
        for method in ("cyclic_regions", "video_loop"):
            config = PipelineConfig(loop_method=method)
            wall, cpu = time.perf_counter(), time.process_time()
            result = run_make_cinemagraph(clip.path, root / method, config)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            runs[method] = (result, wall, cpu, os.getloadavg())
    print("run                whole flow wall   CPU    stages (wall s)                       load avg after")
    for method, (result, wall, cpu, load) in runs.items():
        stages = {k: v for k, v in result.timings.items() if k not in ("ingest", "window", "warp")}
        print(f"  {method:<16}{wall:10.1f}{cpu:10.1f}    {stages}   {load}")
    t_default = sum(runs["cyclic_regions"][0].timings.get(k, 0.0) for k in default_stages)
    vl = runs["video_loop"][0]
    t_vl = vl.timings["video_loop"]
    print(
        f"method time: default (cyclicity + displays + render) {t_default:.1f} s, video_loop {t_vl:.1f} s, ratio {t_vl / t_default:.2f}"
    )
    v = vl.video_loop
    steps = (
        "read",
        "prepare",
        "stage1",
        "stage2",
        "stage3",
        "coarse",
        "refine",
        "render",
        "blend",
        "render_write",
    )
    print("video_loop steps (s): " + ", ".join(f"{k} {v.timings[k]:.1f}" for k in steps if k in v.timings))
    print(
        f"grid {v.grid_width}x{v.grid_height} (downscale {v.downscale}), periods {v.periods}, detected {v.detected_periods}, "
        f"loop {v.loop_frames} frames, {v.refine_tiles} tiles refined, noise {v.noise_sigma} levels"
    )
    print(
        f"seam energy before blending {v.seam_energy_before:.1f}, after {v.seam_energy_after:.1f} (levels^2)"
    )
    store = zarr.open_group(str(Path(vl.store)), mode="r")
    anim = np.asarray(store[N.ANIMATED_MASK])
    period = np.asarray(store[N.LOOP_PERIOD])
    print(
        f"stroke pixels animated {100 * anim[clip.stroke_mask].mean():.1f}%, "
        f"static background animated {100 * anim[clip.static_mask].mean():.2f}%"
    )
    for sign in clip.signs:
        share = float(np.mean(period[sign.mask] % sign.period == 0))
        print(f"  sign of period {sign.period}: {100 * share:.1f}% of its pixels loop in a multiple of it")
    dflt = runs["cyclic_regions"][0]
    print(f"default method: animated fraction {dflt.masks.animated_fraction:.3f}, outcome {dflt.outcome}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="160x90, 90 frames")
    ap.add_argument("--city", action="store_true", help="the night street: default method vs video loop")
    ap.add_argument("--size", default="640x360", help="city clip size WxH")
    ap.add_argument("--frames", type=int, default=100, help="city clip frames")
    args = ap.parse_args()
    if args.city:
        city(args.size, args.frames)
        return
    height, width, n_frames = (90, 160, 90) if args.quick else (180, 320, 150)
    params = VideoLoopParams()

    # warm-up: compile every kernel and the callback paths
    tiny, _, _ = make_clip(24, 32, 40, periods=(8, 10))
    warm = VideoLoopParams(periods=[8, 10, 16], downscale=2, max_cycles=1)
    optimise_loops(prepare_energy(downscale_video(tiny, 2), warm), warm)

    frames, masks, true_periods = make_clip(height, width, n_frames)
    print(f"clip {width}x{height}, {n_frames} frames, true periods {true_periods}; default VideoLoopParams")
    t0 = time.perf_counter()
    factor = grid_factor(height, width, params)
    grid = downscale_video(frames, factor)
    t_down = time.perf_counter() - t0
    t0 = time.perf_counter()
    energy = prepare_energy(grid, params)
    t_prep = time.perf_counter() - t0
    sol = optimise_loops(energy, params)
    period = upsample_labels(sol.period, factor, height, width)
    start = upsample_labels(sol.start, factor, height, width)
    loop_frames = choose_loop_frames(np.unique(period), params)
    t0 = time.perf_counter()
    render_time_map(frames, period, start, loop_frames)
    t_render = time.perf_counter() - t0
    h, w = energy.shape
    print(
        f"grid {w}x{h} (downscale {factor}), periods {energy.periods}, {len(energy.prefix.slot[energy.prefix.slot >= 0])} shifts"
    )
    print("step                 seconds")
    for name, sec in [
        ("downscale", t_down),
        ("prepare (prefix)", t_prep),
        ("stage1 (starts/p)", sol.timings["stage1"]),
        ("stage2 (periods)", sol.timings["stage2"]),
        ("stage3 (starts)", sol.timings["stage3"]),
        (f"render ({loop_frames} fr)", t_render),
    ]:
        print(f"  {name:<19}{sec:8.2f}")
    e = sol.energies
    print(
        f"energy: stage2 {e['stage2']:.4f}  stage3 {e['stage3']:.4f}  "
        f"(temporal {e['temporal']:.4f}, spatial {e['spatial']:.4f}, static {e['static']:.4f}, animation {e['animation']:.4f})"
    )
    for mask, tp in zip(masks, true_periods, strict=True):
        share = float(np.mean(period[mask] % tp == 0))
        vals, cnt = np.unique(period[mask], return_counts=True)
        print(
            f"  region of period {tp}: {100 * share:.1f}% multiples; periods {dict(zip(vals.tolist(), cnt.tolist(), strict=True))}"
        )
    still = ~(masks[0] | masks[1])
    print(f"  background static: {100 * float(np.mean(period[still] == 1)):.1f}%")

    # ---- gco on the factorised stage-2 problem ---------------------------------------------------
    import gco

    unary_i, w_i, v_i, ep, eq, lab_s, err = factorised_stage2(energy, sol.best_starts)
    n_lab = unary_i.shape[1]
    horiz, vert = grid_weights(w_i, energy.shape)
    print(
        f"gco comparison on the stage-2 labels ({n_lab} periods with paired starts), rank-1 factorised "
        f"pairwise (relative error vs the true pairwise {100 * err:.1f}%), integer costs"
    )
    t0 = time.perf_counter()
    ours = alpha_expansion(
        unary_i.reshape(h, w, n_lab).astype(np.float32),
        v_i.astype(np.float32),
        edge_weights=(horiz, vert),
        max_cycles=50,
        tol=0.0,
    )
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    gl = gco.cut_general_graph(
        np.stack([ep, eq], axis=1).astype(np.int32),
        w_i,
        unary_i,
        v_i,
        n_iter=-1,
        algorithm="expansion",
        down_weight_factor=1.0,
    )
    t_gco = time.perf_counter() - t0
    gl = np.asarray(gl).reshape(h, w)

    def score(labels):
        return grid_energy(
            labels,
            unary_i.reshape(h, w, n_lab).astype(np.float32),
            v_i.astype(np.float32),
            edge_weights=(horiz, vert),
        )

    def true_energy(labels):
        lab = labels.ravel()
        per = np.asarray(energy.periods)[lab]
        st = lab_s[np.arange(lab.size), lab]
        return loop_energy(energy, per, st)["total"]

    e_ours, e_gco = score(ours.labels), score(gl)
    print("solver          seconds   factorised energy   true E(p,s)")
    print(f"  ours (numba)  {t_ours:8.2f}   {e_ours:17.0f}   {true_energy(ours.labels):11.4f}")
    print(f"  gco           {t_gco:8.2f}   {e_gco:17.0f}   {true_energy(gl):11.4f}")
    print(
        f"energy ratio ours / gco (factorised): {e_ours / e_gco:.4f}; "
        f"labels agree on {100 * float(np.mean(ours.labels == gl)):.1f}% of cells"
    )


if __name__ == "__main__":
    main()
