#!/usr/bin/python3
"""The README's examples, run as written.

Every ```sql block of README.md runs, in order, in one fresh database with
ON_ERROR_STOP (so an example that errors fails the suite), and every example
of the statistics table (`function(args)` -> `values`) is evaluated with
`SET search_path = mlma` and compared with the values the README shows, to
the digits it shows.  Signature listings are fenced without a language and
are not run.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The README's pg_cron example needs the database named by cron.database_name
# (the test cluster's is postgres): the examples run there and are cleaned up.
DB = os.environ.get("MLMA_README_DB", "postgres")
CLEANUP = """
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'mlma%';
DROP EXTENSION IF EXISTS mlma CASCADE;
DROP TABLE IF EXISTS forecasts;
DROP EXTENSION IF EXISTS pg_cron;
"""


def psql(sql, db=DB, check=True):
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                        "-d", db, "-f", "-"],
                       input=sql, capture_output=True, text=True)
    if check and r.returncode != 0:
        return None, r.stderr
    return r.stdout, r.stderr


def numbers(text):
    """The numbers of a text; a number followed by an ellipsis (truncated in
    the README) keeps it."""
    return re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?…?", text)


def agrees(shown, got):
    """got (full precision) rounds to shown (the digits the README prints);
    a trailing ellipsis in the README means "truncated here"."""
    truncated = shown.endswith("…")
    shown = shown.rstrip("…")
    try:
        g = float(got)
        s = float(shown)
    except ValueError:
        return shown == got
    if "e" in shown.lower():
        mant = shown.lower().split("e")[0]
        digits = len(mant.split(".")[1]) if "." in mant else 0
        return abs(g - s) <= 0.5 * 10 ** (-digits) * 10 ** int(shown.lower().split("e")[1]) * 1.0000001
    digits = len(shown.split(".")[1]) if "." in shown else 0
    if truncated:
        return 0 <= (g - s) * (1 if s >= 0 else -1) < 10 ** (-digits)
    return abs(g - s) <= 0.5 * 10 ** (-digits) * (1 + 1e-9)


def main():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    psql("CREATE EXTENSION IF NOT EXISTS pg_cron;")

    failed = passed = 0

    # 1. the ```sql blocks, in order, in one database
    blocks = re.findall(r"^```sql\n(.*?)^```", text, flags=re.S | re.M)
    for i, block in enumerate(blocks, 1):
        out, err = psql(block)
        first = block.strip().splitlines()[0][:70]
        if out is None:
            failed += 1
            print(f"not ok - README sql block {i} ({first}): {err.strip()}")
        else:
            passed += 1
            print(f"ok - README sql block {i} ({first})")

    # 2. the statistics table: `call` -> `values`
    examples = []
    for line in text.splitlines():
        m = re.search(r"\| `([a-z_]+\([^`]*\))` → `([^`]*)` \|\s*$", line)
        if m:
            examples.append(m.groups())
    for call, shown in examples:
        out, err = psql("SET search_path = mlma;\n"
                        f"SELECT row_to_json(x)::text FROM (SELECT * FROM {call}) x;")
        if out is None:
            failed += 1
            print(f"not ok - README example {call}: {err.strip()}")
            continue
        want = numbers(shown)
        got = numbers(out)
        ok = len(got) >= len(want) and all(agrees(w, g) for w, g in zip(want, got))
        if ok:
            passed += 1
            print(f"ok - README example {call} -> {shown}")
        else:
            failed += 1
            print(f"not ok - README example {call}: README shows {shown}, mlma returns {out.strip()}")

    psql(CLEANUP, check=False)
    print(f"readme: {passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
