"""RPCA speed: kernels.rpca.rpca_apg against pyrpca (inexact ALM) and the
naive full-SVD APG of the tests, side by side in one run.

    python benchmarks/bench_rpca.py            # 100 x 20 000 and 300 x 50 000
    python benchmarks/bench_rpca.py --quick    # 60 x 3 000 and 100 x 8 000

"time / ours" divides by the kernel's time at its defaults (mu_ratio =
1e-9, relative error near 1e-8); a second kernel row with mu_ratio = 1e-7
stops at about pyrpca's accuracy (near 1e-6).  Matrices are frames x pixels shaped: Gaussian rank-r factors plus 5 % of the
entries corrupted uniformly in [-500, 500], lambda = 1 / sqrt(pixels).  Each
method's relative Frobenius error to the true low-rank part is printed next
to its time, so the times compare runs of stated accuracy.  The naive APG is
the same algorithm as the kernel (same iterates, checked in the tests), so
on the large sizes it runs only ``--naive-iters`` iterations and its time is
extrapolated (exact ``||P||_2`` for ``mu_0`` plus mean iteration time times the
kernel's iteration count); this is said in the output.
BLAS runs single-threaded (as inside Dask workers) unless ``--threads`` says
otherwise.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.rpca import rpca_apg  # noqa: E402
from tests.kernels.naive_render import naive_rpca_apg  # noqa: E402


def problem(m, n, rank, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    E = np.zeros((m, n))
    where = rng.random((m, n)) < 0.05
    E[where] = rng.uniform(-500.0, 500.0, int(where.sum()))
    return A, E


def rel(x, ref):
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


class _Stop(Exception):
    pass


def run_naive(P, lam, max_iters, n_iter_total):
    """Time the naive APG.  With ``max_iters`` it stops after that many
    iterations and extrapolates: time of the exact ``||P||_2`` (for
    ``mu_0``) plus the mean iteration time times ``n_iter_total``.
    Returns (seconds, iterations run, A or None, extrapolated)."""
    count = [0]

    def callback(k):
        count[0] = k
        if max_iters is not None and k >= max_iters:
            raise _Stop

    t0 = time.perf_counter()
    mu_0 = 0.99 * np.linalg.norm(P, 2)
    t_norm = time.perf_counter() - t0
    try:
        A, _, k, _ = naive_rpca_apg(P, lam, mu_0=mu_0, callback=callback)
        return time.perf_counter() - t0, k, A, False
    except _Stop:
        t_loop = time.perf_counter() - t0 - t_norm
        return t_norm + t_loop / count[0] * n_iter_total, count[0], None, True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, everything run in full")
    parser.add_argument(
        "--naive-iters",
        type=int,
        default=8,
        help="iterations of the naive APG on the large sizes (default 8)",
    )
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)

    import pyrpca

    sizes = [(60, 3000, 3), (100, 8000, 5)] if args.quick else [(100, 20000, 5), (300, 50000, 10)]
    rpca_apg(np.random.default_rng(0).standard_normal((20, 30)))  # JIT compile outside timing

    print(f"RPCA, 5 % corruptions in [-500, 500], lambda = 1/sqrt(n), BLAS threads = {args.threads}")
    header = (
        f"{'m x n':>12} {'rank':>4} | {'method':<28} {'iters':>5} {'time s':>8} "
        f"{'rel err A':>9} | {'time / ours':>11}"
    )
    print(header)
    print("-" * len(header))
    with threadpool_limits(limits=args.threads):
        for m, n, rank in sizes:
            A, E = problem(m, n, rank)
            P = A + E
            lam = 1.0 / math.sqrt(n)
            label = f"{m} x {n}"

            t0 = time.perf_counter()
            res = rpca_apg(P, lam)
            t_ours = time.perf_counter() - t0

            # Same kernel with a looser continuation floor, which stops at about
            # the accuracy pyrpca reaches with its default tol = 1e-7.
            t0 = time.perf_counter()
            res_loose = rpca_apg(P, lam, mu_ratio=1e-7)
            t_loose = time.perf_counter() - t0

            t0 = time.perf_counter()
            L_ialm, _ = pyrpca.rpca_pcp_ialm(P, lam, verbose=False)
            t_ialm = time.perf_counter() - t0

            cap = None if args.quick else args.naive_iters
            t_naive, k_naive, A_naive, stopped = run_naive(P, lam, cap, res.n_iter)
            if stopped:
                naive_name = "naive full-SVD APG (extrap.)"
                naive_err = "  (= ours)"
                naive_iters = f"{k_naive}/{res.n_iter}"
            else:
                naive_name = "naive full-SVD APG"
                naive_err = f"{rel(A_naive, A):9.1e}"
                naive_iters = f"{k_naive}"

            rows = [
                ("rpca_apg (this kernel)", f"{res.n_iter}", t_ours, f"{rel(res.low_rank, A):9.1e}"),
                (
                    "rpca_apg, mu_ratio=1e-7",
                    f"{res_loose.n_iter}",
                    t_loose,
                    f"{rel(res_loose.low_rank, A):9.1e}",
                ),
                ("pyrpca inexact ALM", "-", t_ialm, f"{rel(L_ialm, A):9.1e}"),
                (naive_name, naive_iters, t_naive, naive_err),
            ]
            for name, iters, t, err in rows:
                print(
                    f"{label:>12} {rank:>4} | {name:<28} {iters:>5} {t:8.2f} {err:>9} | {t / t_ours:10.2f}x"
                )
            print(
                f"{'':>12} {'':>4} | ||A_ours - A_ialm||_F / ||A_ialm||_F = {rel(res.low_rank, L_ialm):.1e}"
                + ("" if not stopped else f"; naive extrapolated from {k_naive} iterations")
            )
            del P, A, E, L_ialm, res, res_loose


if __name__ == "__main__":
    main()
