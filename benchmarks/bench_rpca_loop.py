"""The APG loop with the Gram SVT: the Python loop against the fused, GIL-free Numba loop, side by side.

    python benchmarks/bench_rpca_loop.py            # 100 x 20 000 display-like band, 3 rounds
    python benchmarks/bench_rpca_loop.py --quick    # 100 x 4 000, 1 round

Both loops run the same iterations on the same matrix (a display-like band about its median: rank-30
content, 2 % flashes, the render stage's RPCA settings).  Each is timed (wall and thread CPU, BLAS on
one thread as in the render's tasks):

* alone;
* beside a pure-Python thread (what the render stage's own thread, the composite tiles and Dask's event
  loop are to an RPCA task in the same process): the Python loop needs the GIL back several times per
  iteration, the fused loop once per call;
* two copies in two threads (two RPCA parts of the render on two cores).

Rounds alternate the two loops; the table gives every round and the median.  Load average noted.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.rpca import _apg_gram_fused, _apg_loop, _spectral_norm, _svt_gram, display_lambda  # noqa: E402

SETTINGS = dict(tol=1e-5, max_iter=300, eta=0.9, mu_ratio=1e-4)


def band(m, n, seed=0):
    rng = np.random.default_rng(seed)
    P = np.clip(rng.standard_normal((m, 30)) @ rng.standard_normal((30, n)) * 20 + 128, 0, 255)
    P[rng.random(P.shape) < 0.02] = 255.0
    P += rng.standard_normal(P.shape)
    return np.ascontiguousarray(P - np.median(P, axis=0))


def solve(kind, P, lam, mu):
    s = SETTINGS
    if kind == "python":
        return _apg_loop(P, lam, s["tol"], s["max_iter"], s["eta"], mu, s["mu_ratio"] * mu, _svt_gram)
    return _apg_gram_fused(P, lam, s["tol"], s["max_iter"], s["eta"], mu, s["mu_ratio"] * mu, 4096)


def timed(kind, P, lam, mu, out, i):
    c = time.thread_time()
    w = time.perf_counter()
    res = solve(kind, P, lam, mu)
    out[i] = (time.perf_counter() - w, time.thread_time() - c, res[2])


def python_spinner(stop):
    x = 0
    while not stop.is_set():
        for _ in range(1000):
            x += 1


def run(kind, P, lam, mu, beside):
    out = [None, None]
    stop = threading.Event()
    others = []
    if beside == "python thread":
        others.append(threading.Thread(target=python_spinner, args=(stop,)))
    threads = [threading.Thread(target=timed, args=(kind, P, lam, mu, out, 0))]
    if beside == "itself":
        threads.append(threading.Thread(target=timed, args=(kind, P, lam, mu, out, 1)))
    for t in others + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in others:
        t.join()
    return [o for o in out if o is not None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 x 4 000, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    args = parser.parse_args(argv)
    n = 4000 if args.quick else 20000
    rounds = args.rounds or (1 if args.quick else 3)
    threadpool_limits(limits=1, user_api="blas")
    P = band(100, n)
    lam = display_lambda()
    mu = 0.99 * _spectral_norm(P, np.random.default_rng(0))
    a = solve("python", P, lam, mu)
    b = solve("fused", P, lam, mu)  # compiles or loads the cached kernel
    print(f"band 100 x {n}: {a[2]} / {b[2]} iterations, max |A_python - A_fused| = {np.abs(a[0] - b[0]).max():.2e}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'beside':<16}{'loop':<8}{'round':>6}{'wall s':>9}{'CPU s':>8}")
    table = {}
    for r in range(rounds):
        for beside in ("nothing", "python thread", "itself"):
            for kind in (("python", "fused") if r % 2 == 0 else ("fused", "python")):
                res = run(kind, P, lam, mu, beside)
                wall = max(x[0] for x in res)
                cpu = sum(x[1] for x in res)
                table.setdefault((beside, kind), []).append((wall, cpu))
                print(f"{beside:<16}{kind:<8}{r + 1:>6}{wall:>9.2f}{cpu:>8.2f}", flush=True)
    print(f"\nmedians (load average now {os.getloadavg()[0]:.2f}):")
    print(f"{'beside':<16}{'python wall':>12}{'fused wall':>12}{'ratio':>8}{'python CPU':>12}{'fused CPU':>11}{'ratio':>8}")
    for beside in ("nothing", "python thread", "itself"):
        pw, pc = np.median(table[(beside, "python")], axis=0)
        fw, fc = np.median(table[(beside, "fused")], axis=0)
        print(f"{beside:<16}{pw:>12.2f}{fw:>12.2f}{pw / fw:>7.2f}x{pc:>12.2f}{fc:>11.2f}{pc / fc:>7.2f}x")


if __name__ == "__main__":
    main()
