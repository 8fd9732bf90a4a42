#!/usr/bin/python3
"""run_checks() at fleet scale vs a Python job doing the same tests with SciPy.

Sets up N scheduled streams (default 10 000) with one closed batch each
waiting for its check (96 losses against a 96-loss reference), then, in the
same run and on the same data:

  * python: a job that reads every waiting batch and its reference over
    libpq (psycopg2), runs scipy.stats.ttest_ind(current, reference,
    equal_var=False, alternative='greater') per stream and adjusts the
    p-values with statsmodels' fdr_bh; timed once for reading and testing
    only, and once more including recording its results (one INSERT of all
    result rows into a table of its own, execute_values);
  * mlma: SELECT count(*) FROM mlma.run_checks() — reads, tests, adjusts,
    records every check and raises the requests.

Each side runs FLEET_REPEAT times (default 5) on the same data; the
medians are compared.  Prints both times and the ratio.  Connection: libpq environment variables.
"""
import os
import sys
import time

import numpy as np
import psycopg2
from psycopg2.extras import execute_values
from scipy import stats
from statsmodels.stats.multitest import multipletests

N = int(os.environ.get("FLEET_STREAMS", "10000"))
BATCH = 96
REPEAT = int(os.environ.get("FLEET_REPEAT", "5"))


def setup(cur):
    cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'mlma'")
    if cur.fetchone()[0] == 0:
        cur.execute("CREATE EXTENSION mlma")
    cur.execute("SELECT count(mlma.drop_stream(name)) FROM mlma.streams WHERE name LIKE 'bench/%'")
    cur.execute("""SELECT count(mlma.create_stream('bench/' || i, batch_size => %s,
                                                   check_mode => 'scheduled'))
                     FROM generate_series(1, %s) i""", (BATCH, N))
    cur.execute("SELECT setseed(0.5)")
    t0 = time.time()
    # 2 batches per stream: the reference warms, the second waits; 5% worse
    for j in range(2 * BATCH):
        cur.execute("""SELECT count(mlma.observe_loss('bench/' || i,
                          CASE WHEN i %% 20 = 0 AND %s >= %s THEN 1.5 ELSE 1 END
                          * exp(0.3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))
                         FROM generate_series(1, %s) i""", (j, BATCH, N))
        if j % 48 == 47:
            print(f"  loaded {(j + 1) * N} observations ({time.time() - t0:.0f} s)", flush=True)
    # settled tables: autovacuum would otherwise work through the 1.9 M
    # observations just loaded while either side is timed, and the
    # checkpoint the load started would write them out meanwhile
    cur.execute("VACUUM ANALYZE")
    cur.execute("CHECKPOINT")
    cur.execute("SELECT count(*) FROM mlma.check_queue")
    return cur.fetchone()[0]


def python_job(cur):
    t0 = time.time()
    cur.execute("""SELECT q.stream_id, q.batch_no, b.losses, r.losses
                     FROM mlma.check_queue q
                     JOIN mlma.batches b USING (stream_id, batch_no)
                     JOIN mlma.reference_batches r USING (stream_id)""")
    rows = cur.fetchall()
    results = []
    for stream_id, batch_no, current, reference in rows:
        res = stats.ttest_ind(np.asarray(current), np.asarray(reference),
                              equal_var=False, alternative="greater")
        results.append(((stream_id, batch_no), float(res.statistic), float(res.pvalue)))
    reject, p_adj = multipletests([r[2] for r in results], alpha=0.05, method="fdr_bh")[:2]
    test_s = time.time() - t0
    cur.execute("""CREATE TEMP TABLE IF NOT EXISTS python_checks
                     (stream_id bigint, batch_no int, statistic float8, p_value float8,
                      p_adjusted float8, drift bool, checked_at timestamptz)""")
    cur.execute("TRUNCATE python_checks")
    execute_values(cur, "INSERT INTO python_checks VALUES %s",
                   [(k[0], k[1], st, p, float(pa), bool(rj), "now")
                    for (k, st, p), pa, rj in zip(results, p_adj, reject)],
                   page_size=1000)
    return test_s, time.time() - t0, len(rows), int(reject.sum())


def main():
    conn = psycopg2.connect("")
    conn.autocommit = True
    cur = conn.cursor()
    print(f"fleet benchmark: {N} scheduled streams, batch {BATCH} vs reference {BATCH}")
    waiting = setup(cur)
    print(f"  {waiting} batches wait for their check")
    # each side REPEAT times on the same data (the mlma rounds but the last
    # are rolled back, which puts the batches back in the queue, and the
    # rows they inserted are vacuumed away, untimed, so that every round
    # starts from the same tables); medians
    py = sorted((python_job(cur) for _ in range(REPEAT)), key=lambda r: r[0])
    py_s, _, py_n, py_flags = py[len(py) // 2]
    py_rec_s = sorted(r[1] for r in py)[len(py) // 2]
    ml = []
    for k in range(REPEAT):
        last = k == REPEAT - 1
        if not last:
            cur.execute("BEGIN")
        t0 = time.time()
        cur.execute("SELECT count(*), count(*) FILTER (WHERE drift) FROM mlma.run_checks()")
        n, flags = cur.fetchone()
        ml.append(time.time() - t0)
        if not last:
            cur.execute("ROLLBACK")
            cur.execute("VACUUM mlma.checks, mlma.check_queue, mlma.stream_state, "
                        "mlma.retrain_requests, mlma.rounds")
    print("  mlma rounds (s): " + " ".join(f"{x:.3f}" for x in ml))
    ml_s = sorted(ml)[len(ml) // 2]
    print(f"  python + SciPy job : {py_s:8.3f} s for {py_n} batches ({py_flags} discoveries, read + test)")
    print(f"  python + SciPy job : {py_rec_s:8.3f} s with its results recorded")
    print(f"  mlma.run_checks()  : {ml_s:8.3f} s for {n} batches ({flags} drifts, recorded, requests raised)")
    print(f"RESULT fleet run_checks streams={N} mlma_s={ml_s:.3f} python_s={py_s:.3f} "
          f"python_recorded_s={py_rec_s:.3f} speedup={py_s / ml_s:.1f}x "
          f"speedup_recorded={py_rec_s / ml_s:.1f}x")
    if n != waiting or py_n != waiting:
        print("FAIL: not every waiting batch was tested", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
