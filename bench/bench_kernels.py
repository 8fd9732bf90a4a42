#!/usr/bin/python3
"""Kernel benchmark: the mlma numeric core (bench/kernels, C) against SciPy
for the same calls on the same data, in the same run.

Usage: bench_kernels.py KERNELS_BINARY

Baselines: welch = scipy.stats.ttest_ind(equal_var=False), mann_whitney =
scipy.stats.mannwhitneyu(method='auto'), ks = scipy.stats.ks_2samp
(method='auto'; exact at 96+96 since 96*96 < 10000), hac and dm = the NumPy
implementation of the Newey-West formula also used by the oracle (SciPy has
no HAC test).  Losses are lognormal with a shifted current batch, rounded to
3 decimals (realistic ties).  Prints a table and exits non-zero when a
p-value differs from SciPy's by more than 1e-6 relative.
"""
import os
import subprocess
import sys
import tempfile
import timeit

import numpy as np
from scipy import stats

SIZES = (96, 5000)


def default_lags(n):
    return int(np.floor(4 * (n / 100) ** (2 / 9)))


def nw_lrv(x, lags):
    e = x - x.mean()
    total = e @ e
    for k in range(1, lags + 1):
        total += 2.0 * (1.0 - k / (lags + 1)) * (e[k:] @ e[:-k])
    return total / len(x)


def hac(ref, cur):
    lr, lc = min(default_lags(len(ref)), len(ref) - 1), min(default_lags(len(cur)), len(cur) - 1)
    z = (cur.mean() - ref.mean()) / np.sqrt(nw_lrv(ref, lr) / len(ref) + nw_lrv(cur, lc) / len(cur))
    return stats.norm.sf(z)


def dm(ref, cur):
    d = cur - ref
    L = min(default_lags(len(d)), len(d) - 1)
    return stats.norm.sf(d.mean() / np.sqrt(nw_lrv(d, L) / len(d)))


BASELINES = {
    "welch": lambda r, c: stats.ttest_ind(c, r, equal_var=False, alternative="greater").pvalue,
    "mann_whitney": lambda r, c: stats.mannwhitneyu(c, r, alternative="greater", method="auto").pvalue,
    "ks": lambda r, c: stats.ks_2samp(r, c, alternative="greater", method="auto").pvalue,
    "hac": hac,
    "dm": dm,
}


def time_call(fn, *args):
    timer = timeit.Timer(lambda: fn(*args))
    number, _ = timer.autorange()          # at least 0.2 s
    best = min(timer.repeat(repeat=3, number=number))
    return best / number * 1e9


def main():
    binary = sys.argv[1]
    rng = np.random.default_rng(96)
    data = {}
    files = []
    tmp = tempfile.mkdtemp(prefix="mlma_bench_")
    for n in SIZES:
        ref = np.round(rng.lognormal(0.0, 0.6, n), 3)
        cur = np.round(rng.lognormal(0.08, 0.6, n), 3)
        data[n] = (ref, cur)
        for name, x in (("ref", ref), ("cur", cur)):
            path = os.path.join(tmp, f"{name}{n}.bin")
            x.astype(np.float64).tofile(path)
            files.append(path)
    out = subprocess.run([binary] + files, check=True, capture_output=True, text=True).stdout
    c_ns = {}
    c_p = {}
    for line in out.splitlines():
        test, nref, ncur, ns, p = line.split()
        c_ns[(test, int(nref))] = float(ns)
        c_p[(test, int(nref))] = float(p)
    for path in files:
        os.unlink(path)
    os.rmdir(tmp)

    status = 0
    print(f"{'kernel':<14}{'n':>12}{'mlma ns':>12}{'python ns':>14}{'speed-up':>10}  baseline")
    for n in SIZES:
        ref, cur = data[n]
        for test, fn in BASELINES.items():
            py_ns = time_call(fn, ref, cur)
            p_py = float(fn(ref, cur))
            p_c = c_p[(test, n)]
            if abs(p_c - p_py) > 1e-6 * abs(p_py) + 1e-300:
                print(f"p-value mismatch for {test} n={n}: mlma {p_c!r} python {p_py!r}")
                status = 1
            base = "numpy formula" if test in ("hac", "dm") else "scipy"
            ratio = py_ns / c_ns[(test, n)]
            print(f"{test:<14}{f'{n}+{n}':>12}{c_ns[(test, n)]:>12.0f}{py_ns:>14.0f}{ratio:>9.0f}x  {base}")
    return status


if __name__ == "__main__":
    sys.exit(main())
