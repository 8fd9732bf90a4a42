#!/usr/bin/python3
"""Oracle for the rank tests: mlma.mann_whitney_test and mlma.ks_test
against SciPy 1.10 (Debian's python3-scipy).

  mlma.mann_whitney_test(reference, current, alt)
      == scipy.stats.mannwhitneyu(current, reference, alternative=alt,
                                  method='auto')
  mlma.ks_test(reference, current, alt)
      == scipy.stats.ks_2samp(reference, current, alternative=alt,
                              method='auto')

Random and adversarial cases with fixed seeds (small sizes for the exact
branches, equal and unequal sizes, heavy ties, all-zero and constant batches,
lognormal and Pareto tails, values near 1e-300 and 1e+150, every
alternative), sent to the server in batches.  Tolerances (relative):
statistic 1e-9; p-value 1e-8 (Mann-Whitney) and 1e-6 (KS); two numbers both
below 1e-300 are equal.  Also checks SQLSTATE 22023 for bad input.

Connection through the libpq environment (PGDATABASE, PGHOST...).  Exits
non-zero on any mismatch.
"""
import sys
import time
import warnings

import numpy as np
import psycopg2
from scipy import stats
from scipy.stats import _mannwhitneyu

ALTS = ("greater", "less", "two-sided")
TINY = 1e-300
STAT_TOL = 1e-9
P_TOL = {"mann_whitney_test": 1e-8, "ks_test": 1e-6}
N_CASES = 2000
BATCH_VALUES = 20000		# values per round-trip

failures = []


def rel_err(a, b):
    """Relative difference; two values below 1e-300 in magnitude are equal."""
    if a is None or b is None or np.isnan(a) or np.isnan(b):
        return np.inf
    if abs(a) < TINY and abs(b) < TINY:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


# ---------------------------------------------------------------- samples

def sample(rng, kind, n, shift):
    """n values of a family; shift moves the location (scale for positive)."""
    if kind == "normal":
        return rng.normal(shift, 1.0, n)
    if kind == "ties":			# few distinct values
        return np.round(rng.normal(shift, 1.0, n) * 2.0) / 2.0
    if kind == "small_int":		# very heavy ties
        return rng.integers(0, 3, n).astype(float) + (shift > 0.4)
    if kind == "zeros":
        return np.zeros(n) if shift == 0 else rng.exponential(shift, n)
    if kind == "lognormal":
        return rng.lognormal(shift, 2.0, n)
    if kind == "pareto":
        return (rng.pareto(1.1, n) + 1.0) * np.exp(shift)
    if kind == "tiny":			# near 1e-300
        return 1e-300 * rng.lognormal(shift, 1.0, n)
    if kind == "huge":			# near 1e+150
        return 1e150 * rng.lognormal(shift, 1.0, n)
    if kind == "constant":
        return np.full(n, 0.25 if shift == 0 else 0.25 + shift)
    if kind == "mixed":			# both signs, exact duplicates across batches
        return rng.choice(np.array([-2.0, -1.0, 0.0, 1e-9, 1.0, 3.5]), n) + \
            (shift if rng.random() < 0.5 else 0.0)
    raise ValueError(kind)


KINDS = ("normal", "ties", "small_int", "zeros", "lognormal", "pareto",
         "tiny", "huge", "constant", "mixed")
SHIFTS = (0.0, 0.0, 0.1, 0.3, 0.8, 2.0)


def pair(rng, n_ref, n_cur):
    kind = KINDS[rng.integers(len(KINDS))]
    shift = SHIFTS[rng.integers(len(SHIFTS))]
    ref = sample(rng, kind, n_ref, 0.0)
    cur = sample(rng, kind, n_cur, shift)
    if rng.random() < 0.5:
        ref, cur = cur, ref
    return ref, cur


def mw_sizes(rng):
    u = rng.random()
    if u < 0.35:				# both small: exact branch without ties
        a, b = rng.integers(2, 9, 2)
    elif u < 0.50:				# one small, exact against a larger batch
        a, b = rng.integers(2, 9), rng.integers(9, 41)
    elif u < 0.53:
        a, b = rng.integers(2, 9), rng.integers(41, 120)
    elif u < 0.80:
        a, b = rng.integers(9, 200, 2)
    elif u < 0.94:
        a, b = rng.integers(200, 2001, 2)
    else:
        a, b = rng.integers(2000, 5001, 2)
    return (int(a), int(b)) if rng.random() < 0.5 else (int(b), int(a))


def ks_sizes(rng):
    u = rng.random()
    if u < 0.20:
        a, b = rng.integers(2, 9, 2)
    elif u < 0.40:				# equal sizes: Hodges' square formulas
        a = rng.integers(2, 500) if rng.random() < 0.9 else rng.integers(500, 5001)
        b = a
    elif u < 0.70:
        a, b = rng.integers(9, 300, 2)
    elif u < 0.84:				# one-sided path counting up to its overflow
        a, b = rng.integers(300, 1400, 2)
    elif u < 0.92:
        a, b = rng.integers(2, 40), rng.integers(40, 5001)
    elif u < 0.96:				# O(n1 n2) two-sided inside method
        a, b = rng.integers(1400, 5001, 2)
    elif u < 0.98:				# large equal sizes, up to the exact limit
        a = b = rng.integers(5000, 10001)
    else:						# above 10000: the asymptotic branch
        a, b = rng.integers(10001, 12001), rng.integers(2, 12001)
    return (int(a), int(b)) if rng.random() < 0.5 else (int(b), int(a))


def adversarial():
    """Hand-made cases: constant batches, all zeros, extremes, ties."""
    cases = []
    for alt in ALTS:
        cases += [
            (np.zeros(5), np.zeros(7), alt),
            (np.full(3, 2.5), np.full(4, 2.5), alt),
            (np.full(96, 1.0), np.full(96, 1.0), alt),
            (np.full(5000, 0.0), np.full(4000, 0.0), alt),
            (np.full(10, 1.0), np.full(10, 2.0), alt),
            (np.full(2, 1.0), np.full(2, 2.0), alt),
            (np.array([0.0, 0.0]), np.array([0.0, 1e-300]), alt),
            (np.array([1e-300, 2e-300, 3e-300]), np.array([4e-300, 5e-300]), alt),
            (np.array([1e150, 2e150]), np.array([1.5e150, 3e150, 1e150]), alt),
            (np.arange(8.0), np.arange(8.0) + 8, alt),
            (np.arange(8.0) + 8, np.arange(8.0), alt),
            (np.arange(200.0), np.arange(200.0) + 200, alt),
            (np.arange(3000.0), np.arange(3000.0) + 1500, alt),
            (np.arange(10.0), np.arange(10.0), alt),
            (np.array([1.0, 2.0]), np.array([3.0, 4.0]), alt),
            (np.arange(12000.0), np.arange(50.0) * 300, alt),
            (np.arange(15000.0), np.arange(15000.0) + 900, alt),
        ]
    return cases


def make_cases(seed, sizes, n):
    rng = np.random.default_rng(seed)
    cases = adversarial()
    while len(cases) < n:
        n_ref, n_cur = sizes(rng)
        ref, cur = pair(rng, n_ref, n_cur)
        alt = ALTS[rng.integers(3)]
        if sizes is ks_sizes and min(n_ref, n_cur) >= 300 and n_ref != n_cur \
                and rng.random() < 0.9:
            # SciPy's one-sided path count runs in Python until it
            # overflows: keep a few dozen of these slow cases only
            alt = "two-sided"
        cases.append((ref, cur, alt))
    return cases


# ------------------------------------------------------------------ SciPy

def scipy_mw(ref, cur, alt):
    # the exact null distribution is cached per process; keep memory flat
    _mannwhitneyu._mwu_state = _mannwhitneyu._MWU()
    r = stats.mannwhitneyu(cur, ref, alternative=alt, method="auto")
    return float(r.statistic), float(r.pvalue)


def scipy_ks(ref, cur, alt):
    r = stats.ks_2samp(ref, cur, alternative=alt, method="auto")
    return float(r.statistic), float(r.pvalue)


def mw_branch(ref, cur):
    if (len(ref) > 8 and len(cur) > 8) or \
            len(np.unique(np.concatenate([ref, cur]))) < len(ref) + len(cur):
        return "asymptotic"
    return "exact"


def ks_branch(ref, cur):
    return "exact" if max(len(ref), len(cur)) <= 10000 else "asymptotic"


# ------------------------------------------------------------------ server

SQL = """
WITH d AS (SELECT %s::float8[] AS v)
SELECT t.statistic, t.p_value
  FROM d,
       unnest(%s::int[], %s::int[], %s::int[], %s::int[], %s::text[])
           WITH ORDINALITY AS u(o1, n1, o2, n2, alt, ord),
       LATERAL mlma.{func}(d.v[u.o1 : u.o1 + u.n1 - 1],
                           d.v[u.o2 : u.o2 + u.n2 - 1], u.alt) AS t
 ORDER BY u.ord
"""


def run_server(conn, func, cases):
    """Results of func for all cases, a few round-trips."""
    out = []
    i = 0
    with conn.cursor() as cur:
        while i < len(cases):
            flat, o1, n1, o2, n2, alts = [], [], [], [], [], []
            while i < len(cases) and (not flat or len(flat) < BATCH_VALUES):
                ref, c, alt = cases[i]
                o1.append(len(flat) + 1)
                n1.append(len(ref))
                flat.extend(float(x) for x in ref)
                o2.append(len(flat) + 1)
                n2.append(len(c))
                flat.extend(float(x) for x in c)
                alts.append(alt)
                i += 1
            literal = "{" + ",".join(repr(x) for x in flat) + "}"
            cur.execute(SQL.format(func=func), (literal, o1, n1, o2, n2, alts))
            out.extend(cur.fetchall())
    return out


def check_function(conn, func, scipy_fn, branch_fn, seed):
    cases = make_cases(seed, mw_sizes if func == "mann_whitney_test" else ks_sizes,
                       N_CASES)
    t0 = time.time()
    got = run_server(conn, func, cases)
    t_server = time.time() - t0
    worst_s = worst_p = 0.0
    branches = {}
    bad = 0
    for (ref, c, alt), (s, p) in zip(cases, got):
        es_ref, ep_ref = scipy_fn(ref, c, alt)
        es = rel_err(s, es_ref)
        ep = rel_err(p, ep_ref)
        key = branch_fn(ref, c)
        branches[key] = branches.get(key, 0) + 1
        worst_s = max(worst_s, es)
        worst_p = max(worst_p, ep)
        ok = es <= STAT_TOL and ep <= P_TOL[func] and p is not None \
            and 0.0 <= p <= 1.0
        if not ok:
            bad += 1
            if bad <= 10:
                failures.append(
                    "%s n_ref=%d n_cur=%d alt=%s: mlma (%r, %r) scipy (%r, %r)"
                    % (func, len(ref), len(c), alt, s, p, es_ref, ep_ref))
    if len(got) != len(cases):
        failures.append("%s: %d results for %d cases" % (func, len(got), len(cases)))
    print("%-18s %d cases (%s), %d mismatches, worst rel err statistic %.2e, "
          "p-value %.2e (tol %.0e), server %.1fs"
          % (func, len(cases),
             ", ".join("%s %d" % kv for kv in sorted(branches.items())),
             bad, worst_s, worst_p, P_TOL[func], t_server))


def check_degenerate(conn):
    """Both batches constant and equal: p-value 1, the statistic SciPy gives."""
    with conn.cursor() as cur:
        for alt in ALTS:
            cur.execute("SELECT * FROM mlma.ks_test('{3,3,3}', '{3,3}', %s)", (alt,))
            s, p = cur.fetchone()
            if s != 0.0 or p != 1.0:
                failures.append("ks_test constant batches %s: (%r, %r)" % (alt, s, p))
            cur.execute("SELECT * FROM mlma.mann_whitney_test('{3,3,3}', '{3,3}', %s)",
                        (alt,))
            s, p = cur.fetchone()
            if s != 3.0 or p != 1.0:		# U = n1*n2/2, as SciPy
                failures.append("mann_whitney_test constant batches %s: (%r, %r)"
                                % (alt, s, p))
    print("degenerate batches: constant and equal give p-value 1")


def check_errors(conn):
    bad_inputs = [
        ("'{1}'::float8[]", "'{1,2,3}'::float8[]", "'greater'"),
        ("'{1,2,3}'::float8[]", "'{2}'::float8[]", "'greater'"),
        ("'{}'::float8[]", "'{1,2,3}'::float8[]", "'less'"),
        ("'{1,NULL,3}'::float8[]", "'{1,2,3}'::float8[]", "'greater'"),
        ("'{1,2,3}'::float8[]", "'{1,2,NULL}'::float8[]", "'two-sided'"),
        ("'{1,NaN,3}'::float8[]", "'{1,2,3}'::float8[]", "'greater'"),
        ("'{1,2,3}'::float8[]", "'{NaN,2,3}'::float8[]", "'greater'"),
        ("'{1,Infinity,3}'::float8[]", "'{1,2,3}'::float8[]", "'greater'"),
        ("'{1,2,3}'::float8[]", "'{1,-Infinity,3}'::float8[]", "'less'"),
        ("'{1,2,3}'::float8[]", "'{4,5,6}'::float8[]", "'bigger'"),
        ("'{1,2,3}'::float8[]", "'{4,5,6}'::float8[]", "''"),
    ]
    n = 0
    with conn.cursor() as cur:
        for func in ("mann_whitney_test", "ks_test"):
            for ref, c, alt in bad_inputs:
                q = "SELECT * FROM mlma.%s(%s, %s, %s)" % (func, ref, c, alt)
                n += 1
                try:
                    cur.execute(q)
                    failures.append("no error: %s -> %r" % (q, cur.fetchall()))
                except psycopg2.Error as e:
                    if e.pgcode != "22023":
                        failures.append("SQLSTATE %s (expected 22023): %s"
                                        % (e.pgcode, q))
    print("bad input: %d calls, SQLSTATE 22023 expected" % n)


def timing(conn):
    """Server time per call, informational."""
    rng = np.random.default_rng(7)
    parts = []
    with conn.cursor() as cur:
        for n, reps in ((96, 2000), (5000, 20)):
            ref = rng.lognormal(0, 1, n).tolist()
            c = rng.lognormal(0.05, 1, n).tolist()
            for func in ("mann_whitney_test", "ks_test"):
                for alt in ("greater", "two-sided"):
                    cur.execute(
                        "SELECT count(t.p_value) FROM generate_series(1, %s) g, "
                        "LATERAL mlma." + func + "(%s::float8[], %s::float8[], %s) t",
                        (1, ref, c, alt))
                    t0 = time.time()
                    cur.execute(
                        "SELECT count(t.p_value) FROM generate_series(1, %s) g, "
                        "LATERAL mlma." + func + "((%s::float8[])[1:%s + g * 0], "
                        "%s::float8[], %s) t",
                        (reps, ref, n, c, alt))
                    cur.fetchone()
                    dt = (time.time() - t0) / reps
                    parts.append("%s %s n=%d: %.3f ms" % (func, alt, n, dt * 1e3))
    print("timing (per call, %s)" % "; ".join(parts))


def main():
    warnings.simplefilter("ignore")
    conn = psycopg2.connect("")
    conn.autocommit = True
    t0 = time.time()
    check_function(conn, "mann_whitney_test", scipy_mw, mw_branch, 20240601)
    check_function(conn, "ks_test", scipy_ks, ks_branch, 20240602)
    check_degenerate(conn)
    check_errors(conn)
    if "--timing" in sys.argv:
        timing(conn)
    conn.close()
    for f in failures:
        print("FAIL:", f)
    print("test_rank: %s in %.1fs" % ("FAILED" if failures else "ok", time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
