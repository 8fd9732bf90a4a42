/*-------------------------------------------------------------------------
 *
 * agent.h
 *	  Shared declarations of mlma-agent, the retrain agent of mlma.
 *
 * mlma-agent is a libpq client that closes the retrain loop outside the
 * database: it listens on the mlma_retrain channel, claims retrain requests
 * with mlma.claim_retrain(), runs the user's retrain command for each one
 * and completes or fails the request with the command's outcome.  With
 * --deploy-command, the new model is deployed only once mlma accepted the
 * completion.  It also listens on mlma_cancel: a request dismissed while
 * its command runs has the command's process group terminated.
 *
 * The program is a single-threaded event loop (main.c) over the libpq
 * socket, a self-pipe for signals and the output pipes of the running
 * commands (job.c); db.c holds every conversation with the server and
 * util.c the logging and parsing helpers.
 *
 * src/agent/agent.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_AGENT_H
#define MLMA_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define AGENT_NAME			"mlma-agent"
#define AGENT_VERSION		"0.2.0"
#define AGENT_CHANNEL		"mlma_retrain"
#define CANCEL_CHANNEL		"mlma_cancel"

/* bytes of stderr kept for the error of a failed request */
#define STDERR_TAIL_SIZE	2048
/* longest model version taken from the command's output */
#define VERSION_MAX			1024
/* seconds between SIGTERM and SIGKILL when a command times out */
#define KILL_GRACE			10.0
/* seconds between SIGTERM and SIGKILL when a request is cancelled */
#define CANCEL_GRACE		3.0
/* seconds to wait for output pipes to close after the command exited */
#define DRAIN_GRACE			2.0
/* cap of the reconnect backoff, in seconds */
#define BACKOFF_MAX			30.0

/* Options from the command line */
typedef struct AgentOptions
{
	const char *dsn;			/* libpq connection string, may be empty */
	const char *command;		/* run with /bin/sh -c */
	const char *deploy_command; /* run after complete_retrain succeeded, or NULL */
	char	   *worker;			/* worker name passed to claim_retrain */
	int			workers;		/* commands run at once */
	double		lease;			/* seconds */
	double		timeout;		/* seconds */
	double		poll_interval;	/* seconds between catch-up claims */
	bool		once;			/* process what is pending, then exit */
	bool		verbose;		/* also log notifications and idle claims */
} AgentOptions;

typedef enum JobState
{
	JOB_FREE,					/* slot unused */
	JOB_RUNNING,				/* command running or output still open */
	JOB_DONE					/* outcome known, not yet reported */
} JobState;

typedef enum JobPhase
{
	PHASE_TRAIN,				/* the retrain command, request claimed */
	PHASE_DEPLOY				/* the deploy command, request completed */
} JobPhase;

/* One claimed request and the command that serves it */
typedef struct Job
{
	JobState	state;
	JobPhase	phase;

	/* the request, as returned by claim_retrain (text form) */
	char	   *request_id;
	char	   *stream_id;
	char	   *stream;
	char	   *model_version;
	char	   *reason;
	char	   *p_value;		/* NULL when the request has none */
	char	   *effect;			/* NULL when the request has none */

	/* the command */
	pid_t		pid;			/* also its process group; 0 once reaped */
	int			out_fd;			/* read end of stdout, -1 when closed */
	int			err_fd;			/* read end of stderr, -1 when closed */
	double		started;		/* monotonic seconds */
	double		deadline;		/* timeout */
	double		kill_at;		/* SIGKILL after a timeout, 0 = not armed */
	double		drain_until;	/* stop reading output after exit */
	bool		timed_out;
	bool		interrupted;	/* killed because the agent shuts down */
	bool		spawn_failed;
	bool		cancelled;		/* the request is no longer ours: discard */
	bool		cancel_killed;	/* ... and its command was terminated */
	char		cancel_why[64]; /* "dismissed", "deleted", ... */
	int			wait_status;
	char	   *new_version;	/* deploy phase: the completed version */

	/* stdout: the line being read and the last non-empty line */
	char		line[VERSION_MAX + 1];
	size_t		line_len;
	char		last[VERSION_MAX + 1];
	bool		has_last;

	/* the last STDERR_TAIL_SIZE bytes of stderr */
	char		tail[2 * STDERR_TAIL_SIZE];
	size_t		tail_len;
	bool		tail_cut;

	/* outcome */
	bool		success;
	char	   *result;			/* new model version, or the error text */
	double		duration;
} Job;

typedef enum DbResult
{
	DB_OK,						/* done (a request was claimed) */
	DB_EMPTY,					/* claim: nothing pending */
	DB_SQL_ERROR,				/* the server refused; connection fine */
	DB_GONE,					/* report refused: the request is no longer open */
	DB_CONN_LOST				/* connection broken; retry after reconnect */
} DbResult;

/* util.c */
extern void agent_log(const char *fmt,...) __attribute__((format(printf, 1, 2)));
extern size_t log_escape(const char *in, size_t inlen, char *out, size_t outlen);
extern double now_monotonic(void);
extern bool parse_duration(const char *s, double *seconds);
extern char *format_duration(double seconds, char *buf, size_t len);
extern void utf8_sanitize(char *s);
extern void trim_whitespace(char *s);
extern void *xmalloc(size_t size);
extern char *xstrdup(const char *s);
extern char *xasprintf(const char *fmt,...) __attribute__((format(printf, 1, 2)));

/* db.c */
extern PGconn *db_connect(const AgentOptions *opts);
extern DbResult db_claim(PGconn *conn, const AgentOptions *opts, Job *job);
extern DbResult db_report(PGconn *conn, Job *job);
extern int	db_consume(PGconn *conn, bool verbose);
extern int	db_drain_notifies(PGconn *conn, bool verbose);
extern DbResult db_check_claims(PGconn *conn, const char *worker,
								const char *ids_literal);
extern const char *db_last_error(void);

/* main.c: a request we run is no longer ours (why: "dismissed", ...) */
extern void agent_cancel(const char *request_id, const char *why);

/* job.c */
extern void job_start(Job *job, const AgentOptions *opts);
extern void job_start_deploy(Job *job, const AgentOptions *opts);
extern void job_cancel(Job *job, const char *why);
extern void job_read(Job *job, int fd);
extern void job_reaped(Job *job, int status);
extern void job_timers(Job *job, double now);
extern bool job_finish_if_done(Job *job, double now);
extern void job_interrupt(Job *job);
extern void job_clear(Job *job);

#endif							/* MLMA_AGENT_H */
