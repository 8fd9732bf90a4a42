#!/usr/bin/python3
"""Oracle for the parametric statistics and losses of mlma.

Compares, on a live database (libpq environment variables, PGDATABASE with
mlma created):

  welch_test   vs scipy.stats.ttest_ind(cur, ref, equal_var=False, alternative)
  hac_test     vs a NumPy implementation of the Newey-West formula (below)
  dm_test      vs a NumPy implementation of the Diebold-Mariano formula
  bh_adjust    vs statsmodels multipletests(p, method='fdr_bh')[1]
  loss         vs NumPy formulas, every kind
  mann_whitney_test / ks_test: argument order and alternative of the SQL
               wrappers vs scipy.stats.mannwhitneyu / ks_2samp

and checks the SQLSTATE of every error case.  Exits non-zero on any
mismatch; prints one summary line per function.

Tolerances: p-values 1e-8 relative, statistics 1e-9 relative; two p-values
both below 1e-300 are equal.  Principled exceptions, where the reference
itself is the less exact side:

  * scale: every test is invariant under multiplying both batches by the same
    positive constant.  For batches with magnitudes beyond 1e+/-100 SciPy's
    float64 arithmetic underflows or overflows (squares of 1e-300 are 0,
    squares of 1e+160 are Infinity), so the reference is computed on the
    batches multiplied by a power of two (exact) that brings them near 1.
  * cancellation: when the two means nearly cancel, the statistic is
    ill-conditioned in both implementations; an absolute error of
    1e-12 * (|mean_cur| + |mean_ref|) / standard error (a few ulps of the
    means) is allowed on the statistic, and the matching density-weighted
    error on the p-value.
  * constant batches: mlma treats a batch whose values are all equal as
    exactly constant (mean = the value, variance 0).  NumPy's mean of such a
    batch can be off by an ulp, which leaves a variance of 1e-34 instead of
    0; for two constant batches the contract's values (statistic 0 / p 1
    when equal, +/-Infinity and p 0 or 1 otherwise) are the reference.
"""
import math
import os
import sys
import time
import warnings

import numpy as np
import psycopg2
from scipy import stats
from scipy.stats import _stats_py
from statsmodels.stats.multitest import multipletests

ALTS = ("greater", "less", "two-sided")
P_REL = 1e-8
STAT_REL = 1e-9
TINY_P = 1e-300

failures = 0


def fail(msg):
    global failures
    failures += 1
    if failures <= 40:
        print("MISMATCH " + msg)


def arr(x):
    """float8[] literal (repr round-trips exactly through float8in)."""
    return "{" + ",".join(repr(float(v)) for v in x) + "}"


def connect():
    conn = psycopg2.connect("")
    conn.autocommit = True
    return conn


# ---------------------------------------------------------------- data ----

def gen_batch(rng, kind, n):
    if kind == "normal":
        return rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, 5), n)
    if kind == "ties":
        return rng.integers(0, rng.integers(2, 5), n).astype(float)
    if kind == "zeros":
        return np.zeros(n)
    if kind == "lognormal":
        return rng.lognormal(0, rng.uniform(0.5, 3), n)
    if kind == "pareto":
        return rng.pareto(rng.uniform(0.6, 3), n) + 1.0
    if kind == "tiny":
        return rng.lognormal(0, 1, n) * 1e-300
    if kind == "huge":
        return rng.lognormal(0, 1, n) * 1e150
    if kind == "constant":
        return np.full(n, float(rng.choice([0.0, 1.0, 0.1, 3.7, -2.5])))
    if kind == "ar1":
        e = rng.normal(0, 1, n)
        x = np.empty(n)
        phi = rng.uniform(-0.5, 0.95)
        x[0] = e[0]
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        return x + 5
    raise ValueError(kind)


KINDS = ("normal", "ties", "zeros", "lognormal", "pareto", "tiny", "huge",
         "constant", "ar1")


def gen_size(rng):
    u = rng.random()
    if u < 0.15:
        return int(rng.integers(2, 5))
    if u < 0.75:
        return int(rng.integers(5, 200))
    if u < 0.95:
        return int(rng.integers(200, 1500))
    return int(rng.integers(1500, 5001))


def gen_pair(rng, paired=False):
    k1 = KINDS[rng.integers(len(KINDS))]
    # mostly the same family in both batches, sometimes mixed
    k2 = k1 if rng.random() < 0.7 else KINDS[rng.integers(len(KINDS))]
    if k1 in ("tiny", "huge") or k2 in ("tiny", "huge"):
        k2 = k1
    n1 = gen_size(rng)
    n2 = n1 if paired else (n1 if rng.random() < 0.3 else gen_size(rng))
    ref = gen_batch(rng, k1, n1)
    cur = gen_batch(rng, k2, n2)
    u = rng.random()
    if u < 0.3 and k1 not in ("constant", "zeros"):
        cur = cur * rng.uniform(1.0, 1.5)     # worse model
    elif u < 0.4 and paired:
        cur = ref + rng.normal(0, 1e-3, n2) * np.abs(ref).mean()
    return f"{k1}/{k2}", ref, cur


def scaled(*batches):
    """Batches times a power of two bringing the largest magnitude near 1."""
    m = max(float(np.max(np.abs(b))) for b in batches)
    if m == 0.0 or 1e-100 < m < 1e100:
        return batches
    e = math.frexp(m)[1]
    return tuple(np.ldexp(b, -e) for b in batches)


def is_const(x):
    return bool(np.all(x == x[0]))


# ---------------------------------------------------------- comparison ----

class Summary:
    def __init__(self, name):
        self.name = name
        self.cases = 0
        self.worst = {}

    def rel(self, field, got, exp):
        if exp != 0 and math.isfinite(exp):
            r = abs(got - exp) / abs(exp)
        else:
            r = 0.0 if got == exp else abs(got - exp)
        self.worst[field] = max(self.worst.get(field, 0.0), r)

    def line(self):
        w = ", ".join(f"worst rel {k} {v:.2e}" for k, v in self.worst.items())
        return f"{self.name}: {self.cases} cases, {w}"


def check_value(summ, label, field, got, exp, rel, abs_tol=0.0, tiny=0.0):
    if got is None or exp is None:
        if got is not exp:
            fail(f"{label} {field}: got {got} expected {exp}")
        return
    if math.isnan(exp) or math.isnan(got):
        fail(f"{label} {field}: got {got} expected {exp} (NaN)")
        return
    if math.isinf(exp) or math.isinf(got):
        if got != exp:
            fail(f"{label} {field}: got {got} expected {exp}")
        return
    if tiny and abs(got) < tiny and abs(exp) < tiny:
        return
    summ.rel(field, got, exp)
    if abs(got - exp) > rel * abs(exp) + abs_tol:
        fail(f"{label} {field}: got {got!r} expected {exp!r} "
             f"(rel {abs(got - exp) / max(abs(exp), 1e-320):.3e})")


def degenerate(diff, alt):
    if diff == 0:
        return 0.0, 1.0
    stat = math.inf if diff > 0 else -math.inf
    if alt == "greater":
        p = 0.0 if diff > 0 else 1.0
    elif alt == "less":
        p = 0.0 if diff < 0 else 1.0
    else:
        p = 0.0
    return stat, p


def norm_p(z, alt):
    if alt == "greater":
        return stats.norm.sf(z)
    if alt == "less":
        return stats.norm.cdf(z)
    return min(1.0, 2 * stats.norm.sf(abs(z)))


def compare_test(summ, label, got, exp_stat, exp_p, alt, stat_abs, density):
    """got = (statistic, p); stat_abs: allowed absolute error of the statistic
    from cancellation; density: |dp/dstat| at the statistic."""
    check_value(summ, label, "statistic", got[0], exp_stat, STAT_REL, stat_abs)
    mult = 2.0 if alt == "two-sided" else 1.0
    check_value(summ, label, "p_value", got[1], exp_p, P_REL,
                mult * density * stat_abs * 4, tiny=TINY_P)


def run_batched(cur, sql, rows, page=40):
    """Runs sql (with a VALUES %s list) for rows in pages; returns results in
    order (first output column is the case index)."""
    out = {}
    for i in range(0, len(rows), page):
        chunk = rows[i:i + page]
        values = ",".join(cur.mogrify("(" + ",".join(["%s"] * len(r)) + ")", r).decode()
                          for r in chunk)
        cur.execute(sql.replace("%VALUES%", values))
        for rec in cur.fetchall():
            out[rec[0]] = rec[1:]
    return [out[i] for i in range(len(rows))]


# ---------------------------------------------------------------- welch ----

def welch_reference(ref, cur, alt):
    """(statistic, p, df, stat_abs, density) from SciPy, see module doc."""
    if is_const(ref) and is_const(cur):
        s, p = degenerate(cur[0] - ref[0], alt)
        return s, p, 1.0, 0.0, 0.0
    r, c = scaled(ref, cur)
    res = stats.ttest_ind(c, r, equal_var=False, alternative=alt)
    v1 = np.var(c, ddof=1)
    v2 = np.var(r, ddof=1)
    df, denom = _stats_py._unequal_var_ttest_denom(v1, len(c), v2, len(r))
    df = float(df)
    stat_abs = 1e-12 * (abs(c.mean()) + abs(r.mean())) / float(denom)
    density = stats.t.pdf(float(res.statistic), df)
    return float(res.statistic), float(res.pvalue), df, stat_abs, density


def test_welch(cur_db):
    rng = np.random.default_rng(20240601)
    summ = Summary("welch_test")
    cases = []
    for i in range(2400):
        label, ref, cur = gen_pair(rng)
        alt = ALTS[i % 3]
        cases.append((label, ref, cur, alt))
    # deep tails: small batches far apart (p down to 1e-300 and below)
    for i in range(300):
        n1, n2 = int(rng.integers(2, 40)), int(rng.integers(2, 40))
        ref = rng.normal(1.0, 0.1, n1)
        cur = rng.normal(1.0 + rng.uniform(0.05, 20), rng.uniform(0.01, 0.3), n2)
        cases.append(("far", ref, cur, ALTS[i % 3]))
    rows = [(i, arr(r), arr(c), a) for i, (_, r, c, a) in enumerate(cases)]
    got = run_batched(cur_db, """
        SELECT v.i, t.statistic, t.p_value, t.df
        FROM (VALUES %VALUES%) v(i, r, c, alt),
             LATERAL mlma.welch_test(v.r::float8[], v.c::float8[], v.alt) t""", rows)
    for i, (label, ref, cur, alt) in enumerate(cases):
        es, ep, edf, sabs, dens = welch_reference(ref, cur, alt)
        tag = f"welch #{i} {label} n={len(ref)}+{len(cur)} {alt}"
        compare_test(summ, tag, got[i][:2], es, ep, alt, sabs, dens)
        # df: Welch-Satterthwaite; SciPy's own value after scaling
        check_value(summ, tag, "df", got[i][2], edf, STAT_REL)
        summ.cases += 1
    print(summ.line())


# ----------------------------------------------------------- hac and dm ----

def default_lags(n):
    return int(np.floor(4 * (n / 100) ** (2 / 9)))


def nw_lrv(x, lags):
    """Newey-West long-run variance, Bartlett weights 1 - k/(L+1),
    autocovariances divided by n around the batch mean."""
    n = len(x)
    if is_const(x):
        return 0.0
    e = x - x.mean()
    total = e @ e
    for k in range(1, lags + 1):
        total += 2.0 * (1.0 - k / (lags + 1)) * (e[k:] @ e[:-k])
    return max(total / n, 0.0)


def lags_for(lags, n):
    L = default_lags(n) if lags is None else lags
    return min(L, n - 1)


def gen_lags(rng, n1, n2):
    u = rng.random()
    if u < 0.5:
        return None
    if u < 0.8:
        return int(rng.integers(0, 12))
    if u < 0.9:
        return max(n1, n2) + int(rng.integers(0, 5))   # clamped
    return int(rng.integers(65, 400))                   # long-lag path


def hac_reference(ref, cur, alt, lags):
    r, c = scaled(ref, cur)
    lr, lc = lags_for(lags, len(r)), lags_for(lags, len(c))
    vr = nw_lrv(r, lr) / len(r)
    vc = nw_lrv(c, lc) / len(c)
    mr = r[0] if is_const(r) else r.mean()
    mc = c[0] if is_const(c) else c.mean()
    if vr + vc == 0.0:
        s, p = degenerate(mc - mr, alt)
        return s, p, max(lr, lc), 0.0, 0.0
    se = math.sqrt(vr + vc)
    z = (mc - mr) / se
    stat_abs = 1e-12 * (abs(mc) + abs(mr)) / se + 1e-12 * abs(z)
    return z, norm_p(z, alt), max(lr, lc), stat_abs, stats.norm.pdf(z)


def dm_reference(ref, cur, alt, lags):
    r, c = scaled(ref, cur)
    d = c - r
    n = len(d)
    L = lags_for(lags, n)
    v = nw_lrv(d, L) / n
    md = d[0] if is_const(d) else d.mean()
    if v == 0.0:
        s, p = degenerate(md, alt)
        return s, p, L, 0.0, 0.0
    se = math.sqrt(v)
    z = md / se
    stat_abs = 1e-12 * (np.abs(c).mean() + np.abs(r).mean()) / se + 1e-12 * abs(z)
    return z, norm_p(z, alt), L, stat_abs, stats.norm.pdf(z)


def test_hac_dm(cur_db, name, paired, reference, seed):
    rng = np.random.default_rng(seed)
    summ = Summary(name)
    cases = []
    for i in range(2400):
        label, ref, cur = gen_pair(rng, paired=paired)
        alt = ALTS[i % 3]
        lags = gen_lags(rng, len(ref), len(cur))
        cases.append((label, ref, cur, alt, lags))
    rows = [(i, arr(r), arr(c), a, l) for i, (_, r, c, a, l) in enumerate(cases)]
    got = run_batched(cur_db, f"""
        SELECT v.i, t.statistic, t.p_value, t.lags
        FROM (VALUES %VALUES%) v(i, r, c, alt, l),
             LATERAL mlma.{name}(v.r::float8[], v.c::float8[], v.alt, v.l::int) t""", rows)
    for i, (label, ref, cur, alt, lags) in enumerate(cases):
        es, ep, el, sabs, dens = reference(ref, cur, alt, lags)
        tag = f"{name} #{i} {label} n={len(ref)}+{len(cur)} {alt} lags={lags}"
        compare_test(summ, tag, got[i][:2], es, ep, alt, sabs, dens)
        if got[i][2] != el:
            fail(f"{tag} lags: got {got[i][2]} expected {el}")
        summ.cases += 1
    print(summ.line())


# ------------------------------------------------------------ bh_adjust ----

def test_bh(cur_db):
    rng = np.random.default_rng(777)
    summ = Summary("bh_adjust")
    cases = []
    for i in range(2000):
        n = int(rng.integers(1, 300)) if rng.random() < 0.95 else int(rng.integers(300, 5000))
        u = rng.random()
        if u < 0.3:
            p = rng.random(n)
        elif u < 0.5:
            p = rng.random(n) ** 6                       # many small
        elif u < 0.7:
            p = np.round(rng.random(n), 1)               # ties, 0 and 1
        elif u < 0.8:
            p = np.exp(-rng.uniform(0, 700, n))          # down to 1e-304
        elif u < 0.9:
            p = rng.choice([0.0, 1.0, 0.05, 0.049999999999999996], n)
        else:
            p = np.concatenate([rng.random(n // 2) * 1e-6, rng.random(n - n // 2)])
            rng.shuffle(p)
        cases.append(p)
    rows = [(i, arr(p)) for i, p in enumerate(cases)]
    got = run_batched(cur_db, """
        SELECT v.i, mlma.bh_adjust(v.p::float8[])
        FROM (VALUES %VALUES%) v(i, p)""", rows, page=200)
    for i, p in enumerate(cases):
        exp = multipletests(p, method="fdr_bh")[1]
        g = got[i][0]
        if len(g) != len(exp):
            fail(f"bh #{i}: length {len(g)} != {len(exp)}")
            continue
        for j in range(len(exp)):
            check_value(summ, f"bh #{i}[{j}]", "p_adjusted", g[j], float(exp[j]),
                        P_REL, tiny=TINY_P)
        summ.cases += 1
    cur_db.execute("SELECT mlma.bh_adjust('{}'::float8[])")
    if cur_db.fetchone()[0] != []:
        fail("bh_adjust of an empty array is not empty")
    summ.cases += 1
    # NaN counts as 1 (documented): never an error
    cur_db.execute("SELECT mlma.bh_adjust('{0.01,NaN,0.04,0.03}'::float8[])")
    g = cur_db.fetchone()[0]
    exp = multipletests([0.01, 1.0, 0.04, 0.03], method="fdr_bh")[1]
    for j in range(len(exp)):
        check_value(summ, "bh NaN", "p_adjusted", g[j], float(exp[j]), P_REL, tiny=TINY_P)
    summ.cases += 1
    print(summ.line())


# ----------------------------------------------------------------- loss ----

def loss_reference(kind, a, p, param):
    r = a - p
    if kind == "squared":
        return r * r
    if kind == "absolute":
        return np.abs(r)
    if kind == "ape":
        return np.abs(r) / np.abs(a)
    if kind == "sape":
        den = np.abs(a) + np.abs(p)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den == 0, 0.0, 2 * np.abs(r) / den)
    if kind == "pinball":
        return np.where(a >= p, param * r, (1 - param) * (-r))
    if kind == "huber":
        return np.where(np.abs(r) <= param, 0.5 * r * r,
                        param * (np.abs(r) - 0.5 * param))
    if kind == "poisson":
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = 2 * (a * np.log(a / p) - r)
        return np.maximum(np.where(a == 0, 2 * p, dev), 0.0)
    if kind == "logloss":
        q = np.clip(p, 1e-15, 1 - 1e-15)
        return np.where(a == 1, -np.log(q), -np.log1p(-q))
    if kind == "zero_one":
        return (a != p).astype(float)
    raise ValueError(kind)


def loss_inputs(rng, kind, n):
    if kind == "ape":
        a = rng.lognormal(0, 2, n) * rng.choice([-1, 1], n)
        p = a + rng.normal(0, 1, n) * np.abs(a)
    elif kind == "poisson":
        a = rng.poisson(rng.uniform(0.1, 50), n).astype(float)
        p = rng.lognormal(1, 1.5, n)
        p[: n // 10] = a[: n // 10] + 1e-9 + a[: n // 10] * 1e-7
    elif kind == "logloss":
        a = rng.integers(0, 2, n).astype(float)
        p = rng.random(n)
        p[: n // 10] = rng.choice([0.0, 1.0, 1e-17, 1 - 1e-16, 1e-15], n // 10)
    elif kind == "zero_one":
        a = rng.integers(0, 4, n).astype(float)
        p = rng.integers(0, 4, n).astype(float)
    else:
        a = rng.normal(0, 10, n) * rng.lognormal(0, 2, n)
        p = a + rng.normal(0, 5, n)
        p[: n // 20] = a[: n // 20]                      # exact forecasts
        if kind == "sape":
            a[: n // 40] = 0.0
            p[: n // 40] = 0.0
    return a, p


def test_loss(cur_db):
    rng = np.random.default_rng(4242)
    summ = Summary("loss")
    n = 3000
    for kind in ("squared", "absolute", "ape", "sape", "pinball", "huber",
                 "poisson", "logloss", "zero_one"):
        a, p = loss_inputs(rng, kind, n)
        if kind == "pinball":
            param = rng.uniform(0.01, 0.99, n)
        elif kind == "huber":
            param = rng.lognormal(0, 2, n)
        else:
            param = None
        cur_db.execute(
            "SELECT mlma.loss(%s, a, p, t) FROM unnest(%s::float8[], %s::float8[], %s::float8[]) "
            "WITH ORDINALITY u(a, p, t, i) ORDER BY i",
            (kind, arr(a), arr(p), arr(param) if param is not None else "{" + ",".join(["NULL"] * n) + "}"))
        got = np.array([r[0] for r in cur_db.fetchall()])
        exp = loss_reference(kind, a, p, param)
        for j in range(n):
            # poisson near a = p: the deviance is a difference of nearly equal
            # terms in both implementations; allow a few ulps of 2a|log(a/p)|
            abs_tol = 0.0
            if kind == "poisson" and a[j] > 0:
                abs_tol = 8e-16 * (2 * abs(a[j] * math.log(a[j] / p[j])) + 2 * abs(a[j] - p[j]))
            check_value(summ, f"loss {kind} a={a[j]!r} p={p[j]!r}", kind, float(got[j]),
                        float(exp[j]), 1e-13, abs_tol)
            summ.cases += 1
    # NULL handling: NULL param = none, NULL actual or predicted = NULL
    cur_db.execute("SELECT mlma.loss('absolute', 1, 3), mlma.loss('absolute', 1, 3, NULL), "
                   "mlma.loss('absolute', NULL, 3), mlma.loss('pinball', 1, NULL, 0.5), "
                   "mlma.loss(NULL, 1, 3)")
    if cur_db.fetchone() != (2.0, 2.0, None, None, None):
        fail("loss NULL handling")
    summ.cases += 5
    print(summ.line())


# ------------------------------------------------------------ rank tests ----

def test_rank_wrappers(cur_db):
    """Only the SQL wrappers: argument order and alternatives."""
    rng = np.random.default_rng(99)
    summ = Summary("rank wrappers")
    cases = []
    for i in range(300):
        n1, n2 = int(rng.integers(2, 60)), int(rng.integers(2, 60))
        ref = np.round(rng.normal(0, 1, n1), 2)
        cur = np.round(rng.normal(0.3, 1, n2), 2)
        cases.append((ref, cur, ALTS[i % 3]))
    rows = [(i, arr(r), arr(c), a) for i, (r, c, a) in enumerate(cases)]
    got_mw = run_batched(cur_db, """
        SELECT v.i, t.statistic, t.p_value
        FROM (VALUES %VALUES%) v(i, r, c, alt),
             LATERAL mlma.mann_whitney_test(v.r::float8[], v.c::float8[], v.alt) t""", rows)
    got_ks = run_batched(cur_db, """
        SELECT v.i, t.statistic, t.p_value
        FROM (VALUES %VALUES%) v(i, r, c, alt),
             LATERAL mlma.ks_test(v.r::float8[], v.c::float8[], v.alt) t""", rows)
    for i, (ref, cur, alt) in enumerate(cases):
        mw = stats.mannwhitneyu(cur, ref, alternative=alt, method="auto")
        ks = stats.ks_2samp(ref, cur, alternative=alt, method="auto")
        check_value(summ, f"mann_whitney #{i}", "statistic", got_mw[i][0], float(mw.statistic), STAT_REL)
        check_value(summ, f"mann_whitney #{i} {alt}", "p_value", got_mw[i][1], float(mw.pvalue), 1e-6, tiny=TINY_P)
        check_value(summ, f"ks #{i}", "statistic", got_ks[i][0], float(ks.statistic), STAT_REL)
        check_value(summ, f"ks #{i} {alt}", "p_value", got_ks[i][1], float(ks.pvalue), 1e-6, tiny=TINY_P)
        summ.cases += 2
    print(summ.line())


# ----------------------------------------------------------- large sizes ----

def fft_lrv(x, lags):
    """nw_lrv through all autocovariances at once (FFT), for long lags."""
    n = len(x)
    e = x - x.mean()
    f = np.fft.rfft(e, 2 * n)
    acov = np.fft.irfft(f * np.conj(f), 2 * n)[:n]
    k = np.arange(1, lags + 1)
    return (acov[0] + 2.0 * np.sum((1.0 - k / (lags + 1)) * acov[1:lags + 1])) / n


def test_large(cur_db):
    """100 000 values per batch: correct and linear in time, also for
    lags = n - 1 (the window-sum path of the long-run variance)."""
    rng = np.random.default_rng(100000)
    summ = Summary("large batches")
    n = 100000
    ref = rng.lognormal(0, 0.7, n)
    cur = ref * rng.lognormal(0.002, 0.05, n)
    slowest = 0.0
    timings = []
    calls = [("welch_test", None), ("hac_test", None), ("hac_test", n - 1),
             ("dm_test", None), ("dm_test", n - 1), ("dm_test", 5000),
             ("mann_whitney_test", None), ("ks_test", None)]
    for name, lags in calls:
        extra = "" if name in ("welch_test", "mann_whitney_test", "ks_test") else ", %s::int"
        params = (arr(ref), arr(cur), "greater") + (() if not extra else (lags,))
        t0 = time.time()
        cur_db.execute(f"SELECT statistic, p_value FROM mlma.{name}(%s::float8[], %s::float8[], %s{extra})",
                       params)
        got = cur_db.fetchone()
        elapsed = time.time() - t0
        slowest = max(slowest, elapsed)
        timings.append(f"{name.replace('_test', '')}{'' if lags is None else f'(lags {lags})'} {elapsed:.2f}")
        if elapsed > 3.0:
            fail(f"{name} lags={lags} on {n}+{n} values took {elapsed:.2f} s")
        if name == "welch_test":
            es, ep, _, sabs, dens = welch_reference(ref, cur, "greater")
        elif name == "hac_test":
            L = lags_for(lags, n)
            lrv = nw_lrv if L <= 64 else fft_lrv
            z = (cur.mean() - ref.mean()) / math.sqrt(lrv(ref, L) / n + lrv(cur, L) / n)
            es, ep, sabs, dens = z, stats.norm.sf(z), 1e-12 * abs(z) + 1e-9 * abs(z), stats.norm.pdf(z)
        elif name == "dm_test":
            L = lags_for(lags, n)
            d = cur - ref
            lrv = nw_lrv if L <= 64 else fft_lrv
            z = d.mean() / math.sqrt(lrv(d, L) / n)
            es, ep, sabs, dens = z, stats.norm.sf(z), 1e-9 * abs(z), stats.norm.pdf(z)
        elif name == "mann_whitney_test":
            r = stats.mannwhitneyu(cur, ref, alternative="greater")
            es, ep, sabs, dens = float(r.statistic), float(r.pvalue), 0.0, 0.0
        else:
            r = stats.ks_2samp(ref, cur, alternative="greater")
            es, ep, sabs, dens = float(r.statistic), float(r.pvalue), 0.0, 0.0
        compare_test(summ, f"{name} n={n}+{n} lags={lags}", got, float(es), float(ep), "greater", sabs, dens)
        summ.cases += 1
    print(summ.line() + f", slowest call {slowest:.2f} s")
    print("  seconds per call, 100 000 + 100 000 values, round trip: " + ", ".join(timings))


# --------------------------------------------------------------- errors ----

ERROR_CASES = [
    # (sql, expected SQLSTATE)
    ("SELECT * FROM mlma.{t}('{{1}}', '{{1,2,3}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2}}', '{{}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,NULL,3}}', '{{1,2,3}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2,3}}', '{{1,NaN,3}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2,Infinity}}', '{{1,2,3}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2,3}}', '{{-Infinity,2,3}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{{{1,2}},{{3,4}}}}', '{{1,2,3,4}}')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2,3}}', '{{1,2,3}}', 'bigger')", "22023"),
    ("SELECT * FROM mlma.{t}('{{1,2,3}}', '{{1,2,3}}', 'Greater')", "22023"),
]
TESTS = ("welch_test", "mann_whitney_test", "ks_test", "hac_test", "dm_test")
MORE_ERRORS = [
    ("SELECT * FROM mlma.hac_test('{1,2,3}', '{1,2,3}', 'greater', -1)", "22023"),
    ("SELECT * FROM mlma.dm_test('{1,2,3}', '{1,2,3}', 'greater', -1)", "22023"),
    ("SELECT * FROM mlma.dm_test('{1,2,3}', '{1,2,3,4}')", "22023"),
    ("SELECT mlma.loss('foo', 1, 2)", "22023"),
    ("SELECT mlma.loss('Squared', 1, 2)", "22023"),
    ("SELECT mlma.loss('squared', 1, 2, 0.5)", "22023"),
    ("SELECT mlma.loss('zero_one', 1, 2, 0)", "22023"),
    ("SELECT mlma.loss('pinball', 1, 2)", "22023"),
    ("SELECT mlma.loss('pinball', 1, 2, 0)", "22023"),
    ("SELECT mlma.loss('pinball', 1, 2, 1)", "22023"),
    ("SELECT mlma.loss('pinball', 1, 2, 'NaN')", "22023"),
    ("SELECT mlma.loss('huber', 1, 2)", "22023"),
    ("SELECT mlma.loss('huber', 1, 2, 0)", "22023"),
    ("SELECT mlma.loss('huber', 1, 2, -1)", "22023"),
    ("SELECT mlma.loss('huber', 1, 2, 'Infinity')", "22023"),
    ("SELECT mlma.loss('ape', 0, 2)", "22023"),
    ("SELECT mlma.loss('poisson', -1, 2)", "22023"),
    ("SELECT mlma.loss('poisson', 1, 0)", "22023"),
    ("SELECT mlma.loss('poisson', 1, -2)", "22023"),
    ("SELECT mlma.loss('logloss', 0.5, 0.2)", "22023"),
    ("SELECT mlma.loss('logloss', 1, 1.5)", "22023"),
    ("SELECT mlma.loss('logloss', 0, -0.1)", "22023"),
    ("SELECT mlma.loss('absolute', 'Infinity', 2)", "22023"),
    ("SELECT mlma.loss('absolute', 1, 'NaN')", "22023"),
    ("SELECT mlma.loss('squared', 1e200, -1e200)", "22003"),
    ("SELECT mlma.loss(NULL, 1e200, -1e200)", None),
    ("SELECT mlma.bh_adjust('{0.1,1.5}')", "22023"),
    ("SELECT mlma.bh_adjust('{0.1,-0.5}')", "22023"),
    ("SELECT mlma.bh_adjust('{0.1,NULL}')", "22023"),
    ("SELECT mlma.bh_adjust('{{0.1,0.2},{0.3,0.4}}')", "22023"),
]


def test_errors(cur_db):
    cases = [(sql.format(t=t), code) for t in TESTS for sql, code in ERROR_CASES]
    cases += MORE_ERRORS
    n = 0
    for sql, code in cases:
        try:
            cur_db.execute(sql)
            cur_db.fetchall()
            got = None
        except psycopg2.Error as e:
            got = e.pgcode
        if got != code:
            fail(f"error case {sql}: SQLSTATE {got}, expected {code}")
        n += 1
    # NULL arguments give NULL; NULL lags means the default
    cur_db.execute("SELECT (mlma.welch_test(NULL, '{1,2}')).p_value IS NULL, "
                   "(mlma.hac_test('{1,2,3}', NULL)).p_value IS NULL, "
                   "(mlma.dm_test('{1,2,3}', '{3,2,1}', NULL)).p_value IS NULL, "
                   "(mlma.hac_test('{1,2,3}', '{2,3,5}', 'greater', NULL)).lags = 1")
    if cur_db.fetchone() != (True, True, True, True):
        fail("NULL argument handling")
    n += 4
    print(f"errors: {n} cases checked for SQLSTATE")


def main():
    t0 = time.time()
    # SciPy warns about the adversarial inputs it is given; the comparison
    # is what matters here
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    conn = connect()
    cur = conn.cursor()
    cur.execute("SET extra_float_digits = 3")
    test_welch(cur)
    test_hac_dm(cur, "hac_test", False, hac_reference, 31337)
    test_hac_dm(cur, "dm_test", True, dm_reference, 271828)
    test_bh(cur)
    test_loss(cur)
    test_rank_wrappers(cur)
    test_large(cur)
    test_errors(cur)
    print(f"test_param: {failures} mismatches, {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
