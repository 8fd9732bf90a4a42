#!/usr/bin/python3
"""A retrain worker for mlma written in Python (psycopg2).

mlma-agent runs a shell command per retrain request.  Teams that would
rather keep training inside a long-lived Python process can start from this
file: replace train() with your own code and run

    /usr/bin/python3 examples/python_worker.py --dsn "dbname=app" [--name NAME]

The protocol is the same as the agent's (see docs/agent.md):

  1. LISTEN mlma_retrain, so a new request wakes the worker at once;
  2. claim with mlma.claim_retrain(worker, lease) until it returns no row,
     at start, after every reconnect, on every notification and on a slow
     timer (notifications sent while nobody listens are not kept, and an
     expired lease puts a request back to pending without any notification);
  3. train, then mlma.complete_retrain(request_id, new_version), or
     mlma.fail_retrain(request_id, error) when training raised.

Several workers (and agents) can share the queue: claim_retrain hands each
request to one of them only.  SIGTERM/SIGINT finish the current request,
then exit.
"""

import argparse
import logging
import os
import select
import signal
import socket
import time
import traceback

import psycopg2
import psycopg2.extensions

log = logging.getLogger("mlma-worker")


def train(request):
    """Retrain the model of one stream; return the new model version.

    request is a dict with request_id, stream_id, stream, model_version,
    reason ('drift', 'manual' or 'age'), p_value and effect.  Raise to fail
    the request: the end of the traceback becomes its error text.

    This placeholder only names a new version; put your training here.
    """
    time.sleep(0.1)
    return "%s+r%d" % (request["model_version"], request["request_id"])


class Worker:
    def __init__(self, dsn, name, lease, poll_interval):
        self.dsn = dsn
        self.name = name
        self.lease = lease
        self.poll_interval = poll_interval
        self.conn = None
        self.stopping = False
        # signals write to this socket, so they interrupt the wait in serve()
        self.wakeup_r, wakeup_w = socket.socketpair()
        self.wakeup_r.setblocking(False)
        wakeup_w.setblocking(False)
        self._wakeup_w = wakeup_w
        signal.set_wakeup_fd(wakeup_w.fileno())

    # -- connection ---------------------------------------------------------

    def connect(self):
        """Connect and LISTEN, retrying with exponential backoff (max 30 s)."""
        delay = 1
        while not self.stopping:
            try:
                conn = psycopg2.connect(self.dsn, application_name="mlma-python-worker")
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("LISTEN mlma_retrain")
                self.conn = conn
                log.info("connected, listening on mlma_retrain")
                return True
            except psycopg2.OperationalError as e:
                log.warning("could not connect: %s; retrying in %d s",
                            str(e).strip().splitlines()[0], delay)
                time.sleep(delay)
                delay = min(delay * 2, 30)
        return False

    def drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
        self.conn = None

    # -- protocol -----------------------------------------------------------

    def claim(self):
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT request_id, stream_id, stream, model_version, reason, "
                "p_value, effect FROM mlma.claim_retrain(%s, %s::interval)",
                (self.name, "%d seconds" % self.lease))
            row = cur.fetchone()
        if row is None or row[0] is None:
            return None
        keys = ("request_id", "stream_id", "stream", "model_version",
                "reason", "p_value", "effect")
        return dict(zip(keys, row))

    def report(self, request, ok, text):
        """complete_retrain or fail_retrain; survives a lost connection."""
        sql = ("SELECT mlma.complete_retrain(%s, %s)" if ok
               else "SELECT mlma.fail_retrain(%s, %s)")
        while True:
            if self.conn is None and not self.connect():
                log.error("not reported: request %d", request["request_id"])
                return
            try:
                with self.conn.cursor() as cur:
                    cur.execute(sql, (request["request_id"], text))
                return
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                log.warning("connection lost while reporting: %s", e)
                self.drop()
            except psycopg2.Error as e:
                # e.g. the request was dismissed meanwhile
                log.error("could not report request %d: %s",
                          request["request_id"], str(e).strip())
                return

    def handle(self, request):
        log.info("claimed request %d (stream %r, version %r, reason %s)",
                 request["request_id"], request["stream"],
                 request["model_version"], request["reason"])
        started = time.monotonic()
        try:
            version = train(request)
            if not version:
                raise RuntimeError("train() returned no model version")
            ok, text = True, str(version)
        except Exception:
            ok, text = False, traceback.format_exc()[-2000:]
        self.report(request, ok, text)
        log.info("%s request %d in %.1f s%s",
                 "completed" if ok else "failed", request["request_id"],
                 time.monotonic() - started,
                 ": version %r" % text if ok else "")

    def drain(self):
        """Claim and handle requests until none is pending."""
        while not self.stopping:
            request = self.claim()
            if request is None:
                return
            self.handle(request)

    def serve(self):
        while not self.stopping:
            if self.conn is None and not self.connect():
                break
            try:
                self.drain()            # catch up: at start, after reconnects
                if self.stopping:
                    break
                ready, _, _ = select.select([self.conn, self.wakeup_r], [], [],
                                            self.poll_interval)
                if self.wakeup_r in ready:
                    try:
                        self.wakeup_r.recv(64)
                    except BlockingIOError:
                        pass
                if self.conn in ready:
                    self.conn.poll()    # read notifications
                    self.conn.notifies.clear()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                log.warning("connection lost: %s", str(e).strip())
                self.drop()
            except InterruptedError:
                pass
        self.drop()
        log.info("stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="", help="libpq connection string")
    parser.add_argument("--name", default="%s:%d" % (socket.gethostname(), os.getpid()),
                        help="worker name recorded on claims (default HOST:PID)")
    parser.add_argument("--lease", type=int, default=3600,
                        help="lease in seconds; longer than any training run")
    parser.add_argument("--poll-interval", type=float, default=60,
                        help="seconds between claims without a notification")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s[%(process)d]: %(message)s")
    worker = Worker(args.dsn, args.name, args.lease, args.poll_interval)

    def stop(signo, frame):
        log.info("received signal %d: finishing the current request", signo)
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()


if __name__ == "__main__":
    main()
