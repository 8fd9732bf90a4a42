#!/usr/bin/python3
"""
simulate.py -- replays the simulated delivery platform against mlma.

Runs against the cluster given by the libpq environment (PGHOST, PGPORT,
PGUSER, ...; run.sh starts a throwaway one with pg_virtualenv).  Creates the
database `mlma_demo`, loads the world drawn by world.py, and replays four
weeks of 15-minute slots, one simulated hour per transaction:

  midnight    every policy forecasts the coming day: 'mlma' into the attached
              table demo.orders_forecast, 'mlma_bm' into demo.bm_forecast, the
              challenger into demo.challenger_forecast; the periodic policies
              (never, every 1, 2, 3, 7, 14 days) refit what is due;
  each hour   the actual order counts of the hour's slots are filled in by one
              UPDATE of demo.orders_forecast; mlma's trigger turns them into
              losses, closes batches and checks them; the same slots go to the
              streams bm/<zone> through mlma.observe_many(..., benchmarks => the
              challenger's forecast);
  end of day  mlma-agent (--once) runs the retrain command of every zone mlma
              flagged; the replay waits until no request is open.

Then prints the summary: detection of the injected breaks, false alarms, and
the forecast error (MAE) of each retrain policy with its number of retrains.
"""

import argparse
import datetime as dt
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True      # leave no __pycache__ in the source tree
sys.path.insert(0, HERE)
import world  # noqa: E402

GO_LIVE = dt.datetime(2024, 3, 4, tzinfo=dt.timezone.utc)     # a Monday
DAY = dt.timedelta(days=1)


# the settings of every zone's stream; docs/demo.md says why
MLMA_DEFAULTS = {"batch_size": 96, "season_length": 96, "method": "dm",
                 "loss": "poisson", "alpha": 0.01, "min_effect": 1.2}
# the champion-vs-challenger streams 'bm/<zone>': each daily batch is tested
# against the challenger's losses on the same slots
BENCHMARK_DEFAULTS = {"batch_size": 96, "method": "dm", "loss": "poisson",
                      "alpha": 0.01, "min_effect": 1.38,
                      "reference_policy": "benchmark"}
# the challenger (Demo.challenger): the 2-week slot-of-week profile times
# the level of yesterday's last LEVEL_SLOTS slots and yesterday's shape
# (+-WINDOW slots, shrunk by SHRINK orders)
CHALLENGER_WINDOW = 6
CHALLENGER_SHRINK = 20.0
CHALLENGER_LEVEL_SLOTS = 48
# periodic retraining: every zone refitted every k days (staggered)
CADENCES = {"daily": 1, "every2": 2, "every3": 3, "weekly": 7, "every14": 14}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--zones", type=int, default=300)
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--broken-share", type=float, default=0.30)
    p.add_argument("--seed", type=int, default=20240304)
    p.add_argument("--steps-per-day", type=int, default=24,
                   help="UPDATE statements per simulated day (24 = hourly)")
    p.add_argument("--database", default="mlma_demo")
    p.add_argument("--mlma", default="{}",
        help="create_stream options of every zone, as JSON, over the demo's "
             "defaults %s (passed to mlma.attach as defaults)"
             % json.dumps(MLMA_DEFAULTS).replace("%", "%%"))
    p.add_argument("--benchmark", default="{}",
        help="create_stream options of the champion-vs-challenger streams, as "
             "JSON, over %s" % json.dumps(BENCHMARK_DEFAULTS).replace("%", "%%"))
    p.add_argument("--challenger-window", type=int, default=CHALLENGER_WINDOW)
    p.add_argument("--challenger-shrink", type=float, default=CHALLENGER_SHRINK)
    p.add_argument("--challenger-level-slots", type=int, default=CHALLENGER_LEVEL_SLOTS)
    p.add_argument("--agent", default=None,
                   help="path of mlma-agent (default: from PATH or pg_config --bindir)")
    p.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"),
                   help="where mlma-agent.log goes")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    settings = dict(MLMA_DEFAULTS)
    settings.update(json.loads(args.mlma))
    args.mlma = json.dumps(settings)
    bm = dict(BENCHMARK_DEFAULTS)
    bm.update(json.loads(args.benchmark))
    args.benchmark = bm
    return args


def pg_bindir():
    try:
        return subprocess.run(["pg_config", "--bindir"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def find_agent(explicit):
    if explicit:
        return explicit
    bindir = pg_bindir()
    if bindir and os.access(os.path.join(bindir, "mlma-agent"), os.X_OK):
        return os.path.join(bindir, "mlma-agent")
    return shutil.which("mlma-agent")


class Demo:
    def __init__(self, args):
        self.args = args
        self.t_start = time.time()
        admin = psycopg2.connect(dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS %s" % args.database)
            cur.execute("CREATE DATABASE %s" % args.database)
            cur.execute("ALTER DATABASE %s SET timezone = 'UTC'" % args.database)
            cur.execute("ALTER DATABASE %s SET work_mem = '64MB'" % args.database)
        admin.close()
        self.conn = psycopg2.connect(dbname=args.database)
        self.cur = self.conn.cursor()
        self.agent = find_agent(args.agent)

    # -- helpers ---------------------------------------------------------
    def q(self, sql, params=None):
        self.cur.execute(sql, params)
        return self.cur.fetchall() if self.cur.description else None

    def one(self, sql, params=None):
        return self.q(sql, params)[0][0]

    def say(self, msg):
        if not self.args.quiet:
            print(msg, flush=True)

    # -- setup -----------------------------------------------------------
    def setup(self):
        a = self.args
        self.q("CREATE EXTENSION mlma")
        with open(os.path.join(HERE, "schema.sql")) as f:
            self.q(f.read())

        w = world.generate(zones=a.zones, days=a.days,
                           broken_share=a.broken_share, seed=a.seed)
        self.names = ["zone-%03d" % (z + 1) for z in range(a.zones)]
        first_day = (GO_LIVE - world.HISTORY_DAYS * DAY).date()

        buf = io.StringIO()
        orders = w["orders"]
        for z, name in enumerate(self.names):
            for d in range(orders.shape[1]):
                buf.write("%s\t%s\t{%s}\n" % (
                    first_day + dt.timedelta(days=d), name,
                    ",".join(map(str, orders[z, d]))))
        buf.seek(0)
        self.cur.copy_expert("COPY demo.world (day, zone, orders) FROM STDIN", buf)

        buf = io.StringIO()
        for z, name in enumerate(self.names):
            buf.write("%s\t%s\t%r\n" % (name, w["zone_kind"][z], float(w["base"][z])))
        buf.seek(0)
        self.cur.copy_expert("COPY demo.zones FROM STDIN", buf)

        slot = dt.timedelta(minutes=15)
        for z, kind, start, end, factor in w["breaks"]:
            self.q("INSERT INTO demo.breaks VALUES (%s, %s, %s, %s, %s)",
                   (self.names[z], kind, GO_LIVE + start * slot,
                    GO_LIVE + end * slot if end is not None else None, factor))

        self.q("""
            INSERT INTO demo.zone_days (zone, day, orders)
            SELECT zone, day, orders::float8[] FROM demo.world WHERE day < %s""",
               (GO_LIVE.date(),))
        self.q("SELECT demo.fit('mlma', NULL, %s)", (GO_LIVE,))
        for policy in ["never", "mlma_bm"] + list(CADENCES):
            self.q("SELECT demo.copy_model('mlma', %s)", (policy,))
        self.orders = orders
        bm = self.args.benchmark
        for name in self.names:
            self.q("""SELECT mlma.create_stream(%s, batch_size => %s, method => %s,
                          loss => %s, alpha => %s, min_effect => %s,
                          reference_policy => %s, season_length => %s)""",
                   ("bm/" + name, bm["batch_size"], bm["method"], bm["loss"],
                    bm["alpha"], bm["min_effect"], bm["reference_policy"],
                    bm.get("season_length")))
        self.q("ANALYZE")

        self.q("SELECT mlma.attach('demo.orders_forecast', 'zone', 'actual', "
               "'predicted', 'slot_at', %s::jsonb)", (a.mlma,))
        self.conn.commit()
        self.n_broken = len(w["breaks"])
        self.say("mlma demo: %d delivery zones (%d with an injected break), "
                 "%d days of 15-minute slots, mlma settings %s"
                 % (a.zones, self.n_broken, a.days, a.mlma))
        self.say("champion vs challenger: streams bm/<zone>, settings %s, "
                 "challenger window +-%d slots, shrink %g, level of the last %d slots"
                 % (json.dumps(a.benchmark), a.challenger_window,
                    a.challenger_shrink, a.challenger_level_slots))
        if not self.agent:
            raise SystemExit("mlma-agent not found: run make install")
        self.start_agent()
        self.say("setup %.1fs; %s --workers 4 runs %s"
                 % (time.time() - self.t_start, self.agent,
                    os.path.join(HERE, "retrain.sh")))

    # -- one simulated day ----------------------------------------------
    def challenger(self, day_no):
        """The challenger's forecasts of monitored day day_no, from the
        orders of the days before it only (what demo.zone_days holds at
        midnight).  Its base is the models' trailing 2-week slot-of-week
        profile (mean of slots s-1, s, s+1 one and two weeks earlier), times
          level  (orders of the last LEVEL_SLOTS slots of yesterday + 10)
                 / (what the profile expected there + 10): the latest level;
          shape  yesterday's ratio over the +-WINDOW slots around the slot's
                 time of day (shrunk by SHRINK expected orders), divided by
                 yesterday's whole-day ratio: the latest daily profile."""
        S = world.SLOTS
        D = world.HISTORY_DAYS + day_no
        x = self.orders[:, :D, :].reshape(len(self.names), -1).astype(float)
        w = self.args.challenger_window
        c = self.args.challenger_shrink
        r = self.args.challenger_level_slots

        def profile(t):             # t: array of absolute slot indexes
            acc = 0.0
            for back in (7 * S, 14 * S):
                for j in (-1, 0, 1):
                    acc = acc + x[:, np.clip(t - back + j, 0, None)]
            return acc / 6.0

        today = D * S + np.arange(S)
        y = x[:, today - S]
        e = profile(today - S)
        level = (y[:, S - r:].sum(axis=1) + 10.0) / (e[:, S - r:].sum(axis=1) + 10.0)
        day_ratio = (y.sum(axis=1) + c) / (e.sum(axis=1) + c)
        kernel = np.ones(2 * w + 1)
        ysum = np.array([np.convolve(np.pad(v, w, mode="edge"), kernel, "valid") for v in y])
        esum = np.array([np.convolve(np.pad(v, w, mode="edge"), kernel, "valid") for v in e])
        shape = ((ysum + c * day_ratio[:, None]) / (esum + c)) / day_ratio[:, None]
        ratio = np.clip(level[:, None] * shape, 0.05, 20.0)
        return np.maximum(profile(today) * ratio, 0.05)

    def forecast_day(self, day_no, midnight):
        nxt = midnight + DAY
        if day_no > 0:
            self.q("SELECT demo.fit('daily', NULL, %s, 1)", (midnight,))
            for policy, k in CADENCES.items():
                if k == 1:
                    continue
                due = [n for i, n in enumerate(self.names) if (day_no + i) % k == 0]
                if due:
                    # fitted for the k days until its next refit
                    self.q("SELECT demo.fit(%s, %s, %s, %s)",
                           (policy, due, midnight, min(k, 7)))
        self.q("""INSERT INTO demo.orders_forecast (zone, slot_at, predicted, model_version)
                  SELECT zone, slot_at, predicted, 'v' || version
                  FROM demo.forecast('mlma', %s, %s)""", (midnight, nxt))
        self.q("""INSERT INTO demo.bm_forecast (zone, slot_at, predicted, model_version)
                  SELECT zone, slot_at, predicted, 'v' || version
                  FROM demo.forecast('mlma_bm', %s, %s)""", (midnight, nxt))
        ch = self.challenger(day_no)
        buf = io.StringIO()
        slot = dt.timedelta(minutes=15)
        stamps = [(midnight + k * slot).isoformat() for k in range(world.SLOTS)]
        for z, name in enumerate(self.names):
            for k in range(world.SLOTS):
                buf.write("%s\t%s\t%r\n" % (name, stamps[k], float(ch[z, k])))
        buf.seek(0)
        self.cur.copy_expert("COPY demo.challenger_forecast FROM STDIN", buf)
        self.conn.commit()

    def realize(self, start, end, roll_up=False):
        """Fill in the actual orders of the slots [start, end): one UPDATE,
        one transaction.  At the end of a day the nightly roll-up of the
        day's orders (what the retrain learns from) commits with it, so the
        retrains mlma requests on that commit see the whole day."""
        self.q("""
            UPDATE demo.orders_forecast f
            SET actual = w.orders[1 + ((extract(epoch FROM f.slot_at)::bigint / 900) %% 96)::int]
            FROM demo.world w
            WHERE w.day = %s AND w.zone = f.zone
              AND f.slot_at >= %s AND f.slot_at < %s""",
               (start.date(), start, end))
        self.realized += self.cur.rowcount     # slots with their actual
        # the champion-vs-challenger streams: the same actuals, the
        # 'mlma_bm' champion's forecast and the challenger's as benchmark
        self.q("""
            SELECT mlma.observe_many(
                       coalesce(array_agg('bm/' || zone ORDER BY zone, slot_at), '{}'),
                       coalesce(array_agg(actual ORDER BY zone, slot_at), '{}'),
                       coalesce(array_agg(predicted ORDER BY zone, slot_at), '{}'),
                       coalesce(array_agg(slot_at ORDER BY zone, slot_at), '{}'),
                       coalesce(array_agg(challenger ORDER BY zone, slot_at), '{}'))
            FROM (SELECT f.zone, f.slot_at, f.actual, b.predicted,
                         c.predicted AS challenger
                  FROM demo.orders_forecast f
                  JOIN demo.bm_forecast b USING (zone, slot_at)
                  JOIN demo.challenger_forecast c USING (zone, slot_at)
                  WHERE f.slot_at >= %(start)s AND f.slot_at < %(end)s
                    AND b.slot_at >= %(start)s AND b.slot_at < %(end)s
                    AND c.slot_at >= %(start)s AND c.slot_at < %(end)s) o""",
               {"start": start, "end": end})
        if roll_up:
            self.q("SELECT demo.roll_up(%s)", (start.date(),))
        self.conn.commit()

    def baseline_errors(self, midnight):
        """The absolute errors of the periodic policies on the day that
        ends, per zone.  Their models change only at midnight, so the
        forecasts made now are the ones they made for this day: the day's
        96 profile values of each model, against the day's orders as rolled
        up into demo.zone_days, element by element."""
        self.q("""
            INSERT INTO demo.baseline_error (policy, zone, day, abs_error, n)
            SELECT m.policy, m.zone, d.day, e.abs_error, e.n
            FROM demo.model m
            JOIN demo.zone_days d ON d.zone = m.zone AND d.day = %s
            CROSS JOIN LATERAL (
                SELECT sum(abs(u.actual - greatest(u.profile * m.level, 0.05))) AS abs_error,
                       count(*) AS n
                FROM unnest(m.profile[demo.sow(%s) + 1 : demo.sow(%s) + 96], d.orders)
                     AS u(profile, actual)) e
            WHERE m.policy = ANY (%s)""",
               (midnight.date(), midnight, midnight, ["never"] + list(CADENCES)))
        self.conn.commit()

    def record_flags(self, now):
        self.q("""
            INSERT INTO demo.flags (request_id, zone, reason, seen_at)
            SELECT r.request_id, s.name, r.reason, %s
            FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
            ON CONFLICT (request_id) DO NOTHING""", (now,))
        self.conn.commit()

    def open_requests(self):
        return self.one("SELECT count(*) FROM mlma.retrain_requests "
                        "WHERE status IN ('pending', 'claimed')")

    def start_agent(self):
        """mlma-agent in the background, LISTENing on mlma_retrain."""
        env = dict(os.environ, PGDATABASE=self.args.database)
        # the real psql binary, not Debian's wrapper script: a retrain is
        # mostly process start and connection
        bindir = pg_bindir()
        if bindir and os.access(os.path.join(bindir, "psql"), os.X_OK):
            env["MLMA_DEMO_PSQL"] = os.path.join(bindir, "psql")
        self.agent_log = open(os.path.join(self.args.workdir, "mlma-agent.log"), "w")
        self.agent_proc = subprocess.Popen(
            [self.agent, "--dsn", "dbname=%s" % self.args.database,
             "--exec", os.path.join(HERE, "retrain.sh"),
             "--workers", "4", "--poll-interval", "2s"],
            env=env, stdout=self.agent_log, stderr=subprocess.STDOUT)

    def stop_agent(self):
        if getattr(self, "agent_proc", None) and self.agent_proc.poll() is None:
            self.agent_proc.terminate()
            try:
                self.agent_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.agent_proc.kill()
                self.agent_proc.wait()

    def wait_for_retrains(self, timeout=60.0):
        """The simulated clock stands still until the agent has run every
        retrain mlma asked for."""
        deadline = time.time() + timeout
        while True:
            left = self.open_requests()
            self.conn.commit()
            if not left:
                return
            if self.agent_proc.poll() is not None:
                raise SystemExit("mlma-agent exited (code %s); see %s"
                                 % (self.agent_proc.returncode, self.agent_log.name))
            if time.time() > deadline:
                raise SystemExit("%d retrain requests still open after %.0fs; see %s"
                                 % (left, timeout, self.agent_log.name))
            time.sleep(0.02)

    def counters(self, obs=None):
        if obs is None:
            obs = self.one("SELECT count(*) FROM demo.orders_forecast WHERE actual IS NOT NULL")
        checks = self.one("SELECT count(*) FROM mlma.checks WHERE status = 'done'")
        flags = self.one("SELECT count(*) FROM mlma.retrain_requests")
        retrains = self.one("SELECT count(*) FROM mlma.retrain_requests "
                            "WHERE status = 'completed'")
        return obs, checks, flags, retrains

    def replay(self):
        steps = self.args.steps_per_day
        step = DAY / steps
        self.realized = 0
        self.timing = {"forecasts and baseline refits": 0.0,
                       "actuals (UPDATE, mlma trigger, checks)": 0.0,
                       "waiting for retrains": 0.0}
        for d in range(self.args.days):
            midnight = GO_LIVE + d * DAY
            t0 = time.time()
            self.forecast_day(d, midnight)
            t1 = time.time()
            for s in range(steps):
                self.realize(midnight + s * step, midnight + (s + 1) * step,
                             roll_up=(s == steps - 1))
            self.baseline_errors(midnight)
            t2 = time.time()
            self.record_flags(midnight + DAY)
            self.wait_for_retrains()
            t3 = time.time()
            self.timing["forecasts and baseline refits"] += t1 - t0
            self.timing["actuals (UPDATE, mlma trigger, checks)"] += t2 - t1
            self.timing["waiting for retrains"] += t3 - t2
            obs, checks, flags, retrains = self.counters(self.realized)
            self.say("day %2d  %s  observations %7d  checks %5d  flags %4d  "
                     "retrains %4d  [%5.1fs]"
                     % (d + 1, midnight.strftime("%a %d %b"), obs, checks,
                        flags, retrains, time.time() - self.t_start))

    # -- summary ---------------------------------------------------------
    def detection(self, prefix):
        """Detection of the injected breaks by the streams '<prefix><zone>':
        per kind (breaks, detected, delays), the false alarms on unbroken
        zones and before the break, and the checks of unbroken zones."""
        det = self.q("""
            SELECT b.zone, b.kind,
                   (SELECT min(f.seen_at) FROM demo.flags f
                    WHERE f.zone = %s || b.zone AND f.seen_at > b.break_at),
                   date_trunc('day', b.break_at)
            FROM demo.breaks b""", (prefix,))
        kinds = {}
        for zone, kind, seen, bday in det:
            k = kinds.setdefault(kind, [0, 0, []])
            k[0] += 1
            if seen is not None:
                k[1] += 1
                k[2].append(round((seen - bday) / DAY))
        fa = self.q("""
            SELECT count(*), count(DISTINCT f.zone)
            FROM demo.flags f
            WHERE f.zone LIKE %s AND (%s <> '' OR f.zone NOT LIKE 'bm/%%')
              AND NOT EXISTS (SELECT 1 FROM demo.breaks b
                              WHERE %s || b.zone = f.zone)""",
                    (prefix + "%", prefix, prefix))[0]
        early = self.one("""
            SELECT count(*) FROM demo.flags f JOIN demo.breaks b
              ON f.zone = %s || b.zone
            WHERE f.seen_at <= b.break_at""", (prefix,))
        checks = self.one("""
            SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
            WHERE c.status = 'done' AND s.name LIKE %s
              AND (%s <> '' OR s.name NOT LIKE 'bm/%%')
              AND NOT EXISTS (SELECT 1 FROM demo.breaks b
                              WHERE %s || b.zone = s.name)""",
                          (prefix + "%", prefix, prefix))
        return kinds, fa, early, checks

    def print_detection(self, title, prefix):
        p = print
        kinds, fa, early, checks = self.detection(prefix)
        unbroken = self.args.zones - self.n_broken
        p(title)
        p("  %-14s %6s %9s %14s %12s" % ("kind", "breaks", "detected",
                                         "median delay", "within 2"))
        alln, alld, alls = 0, 0, []
        for kind in world.BREAK_KINDS + ("all",):
            if kind == "all":
                n, k, ds = alln, alld, alls
            elif kind in kinds:
                n, k, ds = kinds[kind]
                alln, alld, alls = alln + n, alld + k, alls + ds
            else:
                continue
            p("  %-14s %6d %8.0f%% %14s %11.0f%%" % (
                kind, n, 100.0 * k / max(n, 1),
                ("%.1f" % statistics.median(ds)) if ds else "-",
                100.0 * sum(1 for d in ds if d <= 2) / max(n, 1)))
        p("false alarms on unbroken zones: %d flags on %d of %d zones "
          "(%.2f%% of their %d checks); %d flags on broken zones before the break"
          % (fa[0], fa[1], unbroken, 100.0 * fa[0] / max(checks, 1),
             checks, early))
        p()

    def summary(self):
        obs, checks, flags, retrains = self.counters()
        mlma_obs = self.one("""SELECT coalesce(sum(observations), 0)
                               FROM mlma.stream_status WHERE name NOT LIKE 'bm/%'""")
        bm_obs = self.one("""SELECT coalesce(sum(observations), 0)
                             FROM mlma.stream_status WHERE name LIKE 'bm/%'""")
        streams = self.one("SELECT count(*) FROM mlma.streams WHERE name NOT LIKE 'bm/%'")
        unbroken = self.args.zones - self.n_broken

        mae = self.q("""
            WITH a AS (
                SELECT 'mlma' AS policy, zone, sum(abs(actual - predicted)) AS e,
                       count(*) AS n
                FROM demo.orders_forecast WHERE actual IS NOT NULL GROUP BY zone
                UNION ALL
                SELECT 'mlma_bm', f.zone, sum(abs(f.actual - b.predicted)), count(*)
                FROM demo.bm_forecast b
                JOIN demo.orders_forecast f USING (zone, slot_at)
                WHERE f.actual IS NOT NULL GROUP BY f.zone
                UNION ALL
                SELECT 'challenger', f.zone, sum(abs(f.actual - c.predicted)), count(*)
                FROM demo.challenger_forecast c
                JOIN demo.orders_forecast f USING (zone, slot_at)
                WHERE f.actual IS NOT NULL GROUP BY f.zone
                UNION ALL
                SELECT policy, zone, sum(abs_error), sum(n)
                FROM demo.baseline_error GROUP BY 1, 2),
            k AS (SELECT zone, kind FROM demo.breaks)
            SELECT a.policy, sum(e) / sum(n), sum(n),
                   sum(e) FILTER (WHERE k.kind IS NOT NULL)
                     / sum(n) FILTER (WHERE k.kind IS NOT NULL),
                   sum(e) FILTER (WHERE k.kind IS NULL) / sum(n) FILTER (WHERE k.kind IS NULL),
                   sum(e) FILTER (WHERE k.kind = 'competitor')
                     / sum(n) FILTER (WHERE k.kind = 'competitor'),
                   sum(e) FILTER (WHERE k.kind = 'road_closure')
                     / sum(n) FILTER (WHERE k.kind = 'road_closure'),
                   sum(e) FILTER (WHERE k.kind = 'profile')
                     / sum(n) FILTER (WHERE k.kind = 'profile'),
                   sum(e) FILTER (WHERE k.kind = 'drop') / sum(n) FILTER (WHERE k.kind = 'drop')
            FROM a LEFT JOIN k USING (zone) GROUP BY a.policy""")
        mae = {r[0]: r[1:] for r in mae}
        nretrains = dict(self.q("SELECT policy, count(*) FROM demo.retrains GROUP BY 1"))
        nretrains["never"] = 0

        p = print
        p()
        p("=== mlma demo summary " + "=" * 50)
        p("zones                 %8d  (%d with an injected break, %d without)"
          % (streams, self.n_broken, unbroken))
        p("observations          %8d  (recorded by mlma: %d, and %d with a benchmark)"
          % (obs, mlma_obs, bm_obs))
        p("checks                %8d" % checks)
        p("flags (requests)      %8d" % flags)
        p("retrains completed    %8d" % retrains)
        p()
        self.print_detection("detection of injected breaks, test-based (mlma, fixed "
                             "reference) (delay in daily batches; 1 = the batch "
                             "containing the break)", "")
        self.print_detection("detection of injected breaks, champion vs challenger "
                             "(mlma, benchmark reference)", "bm/")

        # the periodic frontier: MAE against retrains, linear between cadences
        frontier = sorted((nretrains.get(pol, 0), mae[pol][0])
                          for pol in ["never"] + list(CADENCES) if pol in mae)

        def at_frontier(n):
            for (n0, m0), (n1, m1) in zip(frontier, frontier[1:]):
                if n0 <= n <= n1:
                    return m0 + (m1 - m0) * (n - n0) / max(n1 - n0, 1)
            return None

        p("forecast error by retrain policy (MAE, orders per 15-minute slot); "
          "vs frontier: MAE minus periodic retraining's at the same number of "
          "retrains (interpolated)")
        p("  %-36s %7s %8s %9s %9s %11s" % ("policy", "MAE", "broken",
                                            "unbroken", "retrains", "vs frontier"))
        names = {"mlma": "test-based (mlma, fixed reference)",
                 "mlma_bm": "mlma, benchmark reference",
                 "challenger": "challenger alone (refit daily)",
                 "never": "never retrain",
                 "daily": "retrain every zone daily",
                 "every2": "retrain every zone every 2 days",
                 "every3": "retrain every zone every 3 days",
                 "weekly": "retrain every zone weekly",
                 "every14": "retrain every zone every 14 days"}
        for policy in ["mlma", "mlma_bm", "challenger", "never"] + list(CADENCES):
            if policy not in mae:
                continue
            m = mae[policy]
            n = nretrains.get(policy, 0) if policy != "challenger" else \
                self.args.zones * max(self.args.days - 1, 0)
            f = at_frontier(n)
            p("  %-36s %7.3f %8.3f %9.3f %9d %11s" % (
                names[policy], m[0], m[2], m[3], n,
                "%+.3f" % (m[0] - f) if f is not None and policy in ("mlma", "mlma_bm") else ""))
        p("  broken zones by kind of break:")
        for i, kind in enumerate(world.BREAK_KINDS):
            if mae.get("never", [None] * 8)[4 + i] is None:
                continue
            p("    %-14s %s" % (kind, "  ".join(
                "%s %.3f" % (pol, mae[pol][4 + i])
                for pol in ("mlma", "mlma_bm", "never", "daily", "weekly")
                if pol in mae and mae[pol][4 + i] is not None)))
        p()
        p("elapsed %.1fs (%s)" % (time.time() - self.t_start, ", ".join(
            "%s %.1fs" % kv for kv in self.timing.items())))

        problems = []
        if obs == 0 or mlma_obs == 0:
            problems.append("no observations recorded")
        if mlma_obs != obs:
            problems.append("mlma recorded %d observations for %d realized forecasts"
                            % (mlma_obs, obs))
        if bm_obs != obs:
            problems.append("mlma recorded %d benchmark observations for %d realized forecasts"
                            % (bm_obs, obs))
        if checks == 0:
            problems.append("no checks ran")
        if "mlma" not in mae or "never" not in mae:
            problems.append("no forecast error computed")
        for pr in problems:
            print("ERROR: " + pr, file=sys.stderr)
        return 1 if problems else 0


def main():
    # SIGTERM ends the replay through the finally below, which stops the agent
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse_args()
    demo = Demo(args)
    try:
        demo.setup()
        demo.replay()
    finally:
        demo.stop_agent()
    sys.exit(demo.summary())


if __name__ == "__main__":
    main()
