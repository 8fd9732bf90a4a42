/*-------------------------------------------------------------------------
 *
 * main.c
 *	  mlma-agent: options, signals and the event loop.
 *
 *	  mlma-agent --dsn CONNSTR --exec COMMAND [--deploy-command COMMAND]
 *				 [--workers N] [--lease D] [--timeout D] [--poll-interval D]
 *				 [--worker-name NAME] [--once] [--verbose]
 *
 * One thread, one poll() over the libpq socket, a self-pipe fed by the
 * signal handlers and the output pipes of the running commands.  Claims
 * happen at start, after every (re)connect, on every notification and on
 * a slow timer, as long as a worker slot is free.  Outcomes that cannot be
 * reported because the connection is down wait in their slot until the
 * agent has reconnected.  A notification on mlma_cancel (a running request
 * was dismissed) terminates that request's command; after every reconnect
 * and on the slow timer the agent also checks that its running requests
 * are still claimed by it, for cancellations it could not hear.
 *
 * Exit status: 0 after SIGTERM/SIGINT or when --once is done, 1 on a
 * fatal error, 2 on bad usage.
 *
 * src/agent/main.c
 *
 *-------------------------------------------------------------------------
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

static int	signal_pipe[2] = {-1, -1};

/* Signal handlers only write the signal number to the self-pipe */
static void
signal_handler(int signo)
{
	int			save = errno;
	unsigned char b = (unsigned char) signo;
	ssize_t		r = write(signal_pipe[1], &b, 1);

	(void) r;
	errno = save;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
	{
		agent_log("could not create signal pipe: %s", strerror(errno));
		exit(1);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"%s runs a retrain command for every mlma retrain request.\n"
			"\n"
			"Usage:\n"
			"  %s --exec COMMAND [OPTION]...\n"
			"\n"
			"Options:\n"
			"  -d, --dsn=CONNSTR        libpq connection string or URI (default: PG* environment)\n"
			"  -e, --exec=COMMAND       retrain command, run with /bin/sh -c (required)\n"
			"  -D, --deploy-command=COMMAND\n"
			"                           run after mlma accepted the new version (optional)\n"
			"  -j, --workers=N          run up to N commands at once (default 1)\n"
			"  -l, --lease=DURATION     lease asked of claim_retrain (default 1h)\n"
			"  -t, --timeout=DURATION   kill a command running longer (default: lease - 5 min,\n"
			"                           or half the lease when it is under 10 min)\n"
			"  -p, --poll-interval=DURATION\n"
			"                           claim even without a notification this often (default 60s)\n"
			"  -n, --worker-name=NAME   worker name recorded on claims (default HOST:PID)\n"
			"  -1, --once               process the pending requests, then exit\n"
			"  -v, --verbose            also log notifications and empty claims\n"
			"  -V, --version            print the version and exit\n"
			"  -h, --help               print this help and exit\n"
			"\n"
			"DURATION is a number with an optional unit: 90, 90s, 15min, 1h, 2d.\n"
			"The command sees MLMA_REQUEST_ID, MLMA_STREAM, MLMA_STREAM_ID,\n"
			"MLMA_MODEL_VERSION, MLMA_REASON, MLMA_P_VALUE, MLMA_EFFECT, MLMA_WORKER\n"
			"and MLMA_TIMEOUT; it trains, must not deploy, and prints the new model\n"
			"version as its last line.  Exit 0 completes the request; any other\n"
			"outcome fails it with the tail of stderr.  Only once mlma accepted the\n"
			"completion does the deploy command run, with the same environment plus\n"
			"MLMA_NEW_MODEL_VERSION.  A request dismissed while its command runs\n"
			"(NOTIFY mlma_cancel) has the command's process group terminated and\n"
			"is never deployed.\n",
			AGENT_NAME, AGENT_NAME);
}

static void
bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", AGENT_NAME);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry \"%s --help\" for more information.\n", AGENT_NAME);
	exit(2);
}

static void
parse_options(int argc, char **argv, AgentOptions *opts)
{
	static const struct option long_options[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"exec", required_argument, NULL, 'e'},
		{"deploy-command", required_argument, NULL, 'D'},
		{"workers", required_argument, NULL, 'j'},
		{"lease", required_argument, NULL, 'l'},
		{"timeout", required_argument, NULL, 't'},
		{"poll-interval", required_argument, NULL, 'p'},
		{"worker-name", required_argument, NULL, 'n'},
		{"once", no_argument, NULL, '1'},
		{"verbose", no_argument, NULL, 'v'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	bool		have_timeout = false;
	int			c;

	memset(opts, 0, sizeof(*opts));
	opts->dsn = "";
	opts->workers = 1;
	opts->lease = 3600;
	opts->poll_interval = 60;

	while ((c = getopt_long(argc, argv, "d:e:D:j:l:t:p:n:1vVh", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'd':
				opts->dsn = optarg;
				break;
			case 'e':
				opts->command = optarg;
				break;
			case 'D':
				if (optarg[0] == '\0')
					bad_usage("invalid --deploy-command \"%s\": must not be empty", optarg);
				opts->deploy_command = optarg;
				break;
			case 'j':
				{
					char	   *end;
					long		v;

					errno = 0;
					v = strtol(optarg, &end, 10);
					if (errno != 0 || end == optarg || *end != '\0' || v < 1 || v > 1024)
						bad_usage("invalid --workers \"%s\": must be an integer from 1 to 1024",
								  optarg);
					opts->workers = (int) v;
				}
				break;
			case 'l':
				if (!parse_duration(optarg, &opts->lease) || opts->lease < 1)
					bad_usage("invalid --lease \"%s\": must be a duration of at least 1 s (e.g. 90s, 15min, 1h)",
							  optarg);
				break;
			case 't':
				if (!parse_duration(optarg, &opts->timeout) || opts->timeout <= 0)
					bad_usage("invalid --timeout \"%s\": must be a positive duration (e.g. 90s, 15min, 1h)",
							  optarg);
				have_timeout = true;
				break;
			case 'p':
				if (!parse_duration(optarg, &opts->poll_interval) || opts->poll_interval < 0.1)
					bad_usage("invalid --poll-interval \"%s\": must be a duration of at least 0.1 s",
							  optarg);
				break;
			case 'n':
				if (optarg[0] == '\0')
					bad_usage("invalid --worker-name \"%s\": must not be empty", optarg);
				opts->worker = xstrdup(optarg);
				break;
			case '1':
				opts->once = true;
				break;
			case 'v':
				opts->verbose = true;
				break;
			case 'V':
				printf("%s %s\n", AGENT_NAME, AGENT_VERSION);
				exit(0);
			case 'h':
				usage(stdout);
				exit(0);
			default:
				fprintf(stderr, "Try \"%s --help\" for more information.\n", AGENT_NAME);
				exit(2);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument \"%s\"", argv[optind]);
	if (opts->command == NULL || opts->command[0] == '\0')
		bad_usage("%s", "no retrain command given: use --exec COMMAND");

	if (!have_timeout)
		opts->timeout = opts->lease >= 600 ? opts->lease - 300 : opts->lease / 2;
	if (opts->timeout + KILL_GRACE >= opts->lease)
	{
		char		t[32],
					l[32],
					g[32],
					msg[256];

		snprintf(msg, sizeof(msg),
				 "--timeout (%s) plus the kill grace period (%s) must be shorter than --lease (%s), "
				 "or a request could be claimed again while its command still runs",
				 format_duration(opts->timeout, t, sizeof(t)),
				 format_duration(KILL_GRACE, g, sizeof(g)),
				 format_duration(opts->lease, l, sizeof(l)));
		bad_usage("%s", msg);
	}

	if (opts->worker == NULL)
	{
		char		host[256];

		if (gethostname(host, sizeof(host)) != 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		opts->worker = xasprintf("%s:%d", host, (int) getpid());
	}
}

/* Agent state shared by the loop's steps */
typedef struct Agent
{
	AgentOptions opts;
	Job		   *jobs;
	PGconn	   *conn;
	double		next_connect;	/* when to try (re)connecting */
	double		backoff;		/* next reconnect delay */
	double		next_poll;		/* next catch-up claim */
	bool		need_claim;		/* something may be pending */
	bool		need_check;		/* verify our running requests are still ours */
	bool		ever_connected;
	int			shutdown;		/* signals received asking to stop */
	bool		fatal;			/* exit 1 once the jobs are done */
} Agent;

/* the one agent of this process, for agent_cancel() */
static Agent *the_agent;

static int
count_jobs(Agent *a, JobState state)
{
	int			n = 0;

	for (int i = 0; i < a->opts.workers; i++)
		if (a->jobs[i].state == state)
			n++;
	return n;
}

static void
drop_connection(Agent *a)
{
	if (a->conn)
		PQfinish(a->conn);
	a->conn = NULL;
	a->next_connect = now_monotonic();
}

/* Reap every exited child and hand its status to its job */
static void
reap_children(Agent *a)
{
	int			status;
	pid_t		pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
	{
		for (int i = 0; i < a->opts.workers; i++)
		{
			if (a->jobs[i].state == JOB_RUNNING && a->jobs[i].pid == pid)
			{
				job_reaped(&a->jobs[i], status);
				break;
			}
		}
	}
}

static void
handle_signals(Agent *a)
{
	unsigned char buf[64];
	ssize_t		n;

	while ((n = read(signal_pipe[0], buf, sizeof(buf))) > 0)
	{
		for (ssize_t i = 0; i < n; i++)
		{
			int			signo = buf[i];

			if (signo == SIGCHLD)
				continue;		/* reaped below in any case */
			if (signo == SIGHUP)
			{
				agent_log("received SIGHUP: claiming now");
				a->need_claim = true;
				a->next_connect = now_monotonic();
				continue;
			}
			a->shutdown++;
			if (a->shutdown == 1)
				agent_log("received %s: no new claims, waiting for %d running command(s)",
						  signo == SIGINT ? "SIGINT" : "SIGTERM",
						  count_jobs(a, JOB_RUNNING));
			else if (a->shutdown == 2)
			{
				agent_log("received %s again: terminating %d running command(s)",
						  signo == SIGINT ? "SIGINT" : "SIGTERM",
						  count_jobs(a, JOB_RUNNING));
				for (int j = 0; j < a->opts.workers; j++)
					job_interrupt(&a->jobs[j]);
			}
			else
			{
				agent_log("received a third stop signal: exiting now; unreported requests return to pending when their lease expires");
				exit(1);
			}
		}
	}
	reap_children(a);
}

static void
try_connect(Agent *a)
{
	char		d[32];

	a->conn = db_connect(&a->opts);
	if (a->conn)
	{
		a->backoff = 1;
		a->need_claim = true;	/* catch up on what came while away */
		a->ever_connected = true;
		a->need_check = true;	/* dismissals missed while away */
		a->next_poll = now_monotonic() + a->opts.poll_interval;
		return;
	}
	if (a->opts.once && !a->ever_connected)
	{
		agent_log("--once: giving up");
		exit(1);
	}
	agent_log("reconnecting in %s", format_duration(a->backoff, d, sizeof(d)));
	a->next_connect = now_monotonic() + a->backoff;
	a->backoff *= 2;
	if (a->backoff > BACKOFF_MAX)
		a->backoff = BACKOFF_MAX;
}

/*
 * A request is no longer ours (why: "dismissed", ...): cancel the training
 * job that serves it, if any.  Called from the notification handler and
 * from db_check_claims().
 */
void
agent_cancel(const char *request_id, const char *why)
{
	Agent	   *a = the_agent;

	if (a == NULL || request_id == NULL)
		return;
	for (int i = 0; i < a->opts.workers; i++)
	{
		Job		   *job = &a->jobs[i];

		if (job->state != JOB_FREE && job->phase == PHASE_TRAIN &&
			job->request_id && strcmp(job->request_id, request_id) == 0)
			job_cancel(job, why);
	}
}

/* Ask the server whether our running requests are still claimed by us */
static void
check_claims(Agent *a)
{
	char	   *ids = xstrdup("{");
	bool		any = false;

	a->need_check = false;
	for (int i = 0; i < a->opts.workers; i++)
	{
		Job		   *job = &a->jobs[i];
		char	   *next;

		if (job->state == JOB_FREE || job->phase != PHASE_TRAIN || job->cancelled)
			continue;
		next = xasprintf("%s%s%s", ids, any ? "," : "", job->request_id);
		free(ids);
		ids = next;
		any = true;
	}
	if (any)
	{
		char	   *lit = xasprintf("%s}", ids);

		if (db_check_claims(a->conn, a->opts.worker, lit) == DB_CONN_LOST)
			drop_connection(a);
		free(lit);
	}
	free(ids);
}

static void
log_reported(Job *job)
{
	if (job->success)
		agent_log("completed request %s (stream \"%s\"): model version \"%s\"",
				  job->request_id, job->stream, job->result);
	else
	{
		/* first line of the error only */
		int			n = (int) strcspn(job->result, "\n");

		agent_log("failed request %s (stream \"%s\"): %.*s",
				  job->request_id, job->stream, n, job->result);
	}
}

/*
 * Report every finished job; stops at a lost connection.
 *
 * A report the server refuses is not retried as such: a refused version
 * (say, too long) becomes a failure with the server's reason, and a refused
 * error text is replaced by a plain one, so that no request stays claimed
 * because of what the command printed.  When the request is no longer open
 * (dismissed meanwhile) the second attempt is refused too and the outcome
 * is only logged.
 */
static void
report_done(Agent *a)
{
	for (int i = 0; i < a->opts.workers && a->conn; i++)
	{
		Job		   *job = &a->jobs[i];
		DbResult	r;

		if (job->state != JOB_DONE)
			continue;
		if (job->phase == PHASE_DEPLOY)
		{
			/* the request was completed before; the outcome is logged */
			job_clear(job);
			a->need_claim = true;
			continue;
		}
		if (job->cancelled)
		{
			/* the request is no longer ours: no complete, no fail */
			if (job->cancel_killed)
				agent_log("request %s (stream \"%s\") cancelled: %s while running; command terminated",
						  job->request_id, job->stream, job->cancel_why);
			else
				agent_log("request %s (stream \"%s\") cancelled: %s after its command ended; outcome discarded",
						  job->request_id, job->stream, job->cancel_why);
			job_clear(job);
			a->need_claim = true;
			continue;
		}
		r = db_report(a->conn, job);
		if (r == DB_GONE)
		{
			/* dismissed (or deleted) meanwhile: nothing to fail either */
			agent_log("request %s (stream \"%s\") is no longer open, outcome of its command discarded%s: %s",
					  job->request_id, job->stream,
					  (job->success && a->opts.deploy_command) ? " (not deployed)" : "",
					  db_last_error());
			job_clear(job);
			a->need_claim = true;
			continue;
		}
		if (r == DB_SQL_ERROR)
		{
			char	   *replacement;

			if (job->success)
				replacement = xasprintf("command succeeded but its model version was refused: %s",
										db_last_error());
			else
				replacement = xstrdup("command failed; its error text could not be stored");
			free(job->result);
			job->result = replacement;
			utf8_sanitize(job->result);
			job->success = false;
			r = db_report(a->conn, job);
			if (r == DB_GONE)
				agent_log("request %s (stream \"%s\") is no longer open, outcome of its command discarded: %s",
						  job->request_id, job->stream, db_last_error());
		}
		if (r == DB_CONN_LOST)
		{
			drop_connection(a);
			return;
		}
		if (r == DB_OK)
			log_reported(job);
		if (r == DB_OK && job->success && a->opts.deploy_command)
		{
			/* mlma accepted the new version: now deploy it */
			job_start_deploy(job, &a->opts);
			job_finish_if_done(job, now_monotonic());
			continue;
		}
		job_clear(job);
		a->need_claim = true;	/* a slot is free again */
		if (a->conn)
			db_drain_notifies(a->conn, a->opts.verbose);
	}
}

/* Claim into free slots while something is pending */
static void
claim_pending(Agent *a)
{
	while (a->conn && a->need_claim && !a->shutdown && !a->fatal)
	{
		Job		   *job = NULL;
		DbResult	r;

		for (int i = 0; i < a->opts.workers; i++)
		{
			if (a->jobs[i].state == JOB_FREE)
			{
				job = &a->jobs[i];
				break;
			}
		}
		if (job == NULL)
			return;				/* need_claim stays set for the next free slot */

		r = db_claim(a->conn, &a->opts, job);
		if (r == DB_EMPTY)
		{
			if (a->opts.verbose)
				agent_log("nothing pending");
			a->need_claim = false;
		}
		else if (r == DB_CONN_LOST)
			drop_connection(a);
		else if (r == DB_SQL_ERROR)
		{
			a->need_claim = false;	/* retried on the next notification or tick */
			if (a->opts.once)
				a->fatal = true;
		}
		else
		{
			agent_log("claimed request %s (stream \"%s\", model version \"%s\", reason %s%s%s%s%s)",
					  job->request_id, job->stream, job->model_version, job->reason,
					  job->p_value ? ", p " : "", job->p_value ? job->p_value : "",
					  job->effect ? ", effect " : "", job->effect ? job->effect : "");
			job_start(job, &a->opts);
			job_finish_if_done(job, now_monotonic());
		}
		if (a->conn)
			db_drain_notifies(a->conn, a->opts.verbose);
	}
}

static int
poll_timeout_ms(Agent *a, double now)
{
	double		next = now + 5.0;

	if (a->conn == NULL)
	{
		if (a->next_connect < next)
			next = a->next_connect;
	}
	else
	{
		if (a->need_claim && count_jobs(a, JOB_FREE) > 0 && !a->shutdown)
			return 0;
		if (count_jobs(a, JOB_DONE) > 0)
			return 0;
		if (a->next_poll < next)
			next = a->next_poll;
	}
	for (int i = 0; i < a->opts.workers; i++)
	{
		Job		   *job = &a->jobs[i];

		if (job->state != JOB_RUNNING)
			continue;
		if (job->pid != 0)
		{
			if (!job->timed_out && !job->interrupted && !job->cancelled &&
				job->deadline < next)
				next = job->deadline;
			if (job->kill_at > 0 && job->kill_at < next)
				next = job->kill_at;
		}
		else
		{
			if (job->drain_until < next)
				next = job->drain_until;
		}
	}
	if (next <= now)
		return 0;
	return (int) ((next - now) * 1000) + 1;
}

int
main(int argc, char **argv)
{
	Agent		a;
	struct pollfd *fds;
	Job		  **fd_job;
	char		d1[32],
				d2[32];

	memset(&a, 0, sizeof(a));
	the_agent = &a;
	parse_options(argc, argv, &a.opts);
	setup_signals();

	a.jobs = xmalloc(sizeof(Job) * (size_t) a.opts.workers);
	for (int i = 0; i < a.opts.workers; i++)
	{
		memset(&a.jobs[i], 0, sizeof(Job));
		job_clear(&a.jobs[i]);
	}
	fds = xmalloc(sizeof(struct pollfd) * (size_t) (2 + 2 * a.opts.workers));
	fd_job = xmalloc(sizeof(Job *) * (size_t) (2 + 2 * a.opts.workers));

	a.backoff = 1;
	a.need_claim = true;
	a.next_connect = now_monotonic();
	agent_log("%s %s starting: worker \"%s\", %d worker slot(s), lease %s, timeout %s%s",
			  AGENT_NAME, AGENT_VERSION, a.opts.worker, a.opts.workers,
			  format_duration(a.opts.lease, d1, sizeof(d1)),
			  format_duration(a.opts.timeout, d2, sizeof(d2)),
			  a.opts.once ? ", once" : "");

	for (;;)
	{
		double		now;
		int			nfds = 0;
		int			rc;

		handle_signals(&a);

		now = now_monotonic();
		for (int i = 0; i < a.opts.workers; i++)
		{
			job_timers(&a.jobs[i], now);
			job_finish_if_done(&a.jobs[i], now);
		}

		if (a.conn == NULL && now >= a.next_connect)
			try_connect(&a);
		if (a.conn)
			report_done(&a);
		if (a.conn && now >= a.next_poll)
		{
			a.need_claim = true;
			a.need_check = true;
			a.next_poll = now + a.opts.poll_interval;
		}
		if (a.conn && a.need_check)
			check_claims(&a);
		claim_pending(&a);

		/* time to go? */
		if (count_jobs(&a, JOB_FREE) == a.opts.workers)
		{
			if (a.shutdown)
			{
				agent_log("no command running: exiting");
				break;
			}
			if (a.fatal)
			{
				agent_log("exiting after an error");
				PQfinish(a.conn);
				return 1;
			}
			if (a.opts.once && a.conn && !a.need_claim)
			{
				agent_log("--once: nothing left to do, exiting");
				break;
			}
		}

		/* wait for something to happen */
		fds[nfds].fd = signal_pipe[0];
		fds[nfds].events = POLLIN;
		fd_job[nfds++] = NULL;
		if (a.conn)
		{
			fds[nfds].fd = PQsocket(a.conn);
			fds[nfds].events = POLLIN;
			fd_job[nfds++] = NULL;
		}
		for (int i = 0; i < a.opts.workers; i++)
		{
			Job		   *job = &a.jobs[i];

			if (job->state != JOB_RUNNING)
				continue;
			if (job->out_fd >= 0)
			{
				fds[nfds].fd = job->out_fd;
				fds[nfds].events = POLLIN;
				fd_job[nfds++] = job;
			}
			if (job->err_fd >= 0)
			{
				fds[nfds].fd = job->err_fd;
				fds[nfds].events = POLLIN;
				fd_job[nfds++] = job;
			}
		}

		rc = poll(fds, (nfds_t) nfds, poll_timeout_ms(&a, now_monotonic()));
		if (rc < 0)
		{
			if (errno == EINTR)
				continue;
			agent_log("poll failed: %s", strerror(errno));
			return 1;
		}
		if (rc == 0)
			continue;

		for (int i = 0; i < nfds; i++)
		{
			if (fds[i].revents == 0)
				continue;
			if (fd_job[i] != NULL)
				job_read(fd_job[i], fds[i].fd);
			else if (fds[i].fd != signal_pipe[0] && a.conn)
			{
				int			n = db_consume(a.conn, a.opts.verbose);

				if (n < 0)
				{
					drop_connection(&a);
					agent_log("reconnecting");
				}
				else if (n > 0)
					a.need_claim = true;
			}
		}
	}

	PQfinish(a.conn);
	for (int i = 0; i < a.opts.workers; i++)
		job_clear(&a.jobs[i]);
	free(a.jobs);
	free(fds);
	free(fd_job);
	free(a.opts.worker);
	return 0;
}
