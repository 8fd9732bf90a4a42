/*-------------------------------------------------------------------------
 *
 * job.c
 *	  mlma-agent: running one retrain command.
 *
 * A job is one claimed request.  Its command runs as "/bin/sh -c COMMAND"
 * in a process group of its own (so a timeout can kill everything it
 * started, and a Ctrl-C meant for the agent does not reach it), with the
 * request in its environment, stdin from /dev/null and stdout/stderr on
 * pipes.  Of stdout only the last non-empty line is kept (the new model
 * version), of stderr the last STDERR_TAIL_SIZE bytes (the error text).
 *
 * Two phases: the retrain command runs while the request is claimed; the
 * optional deploy command runs only after mlma accepted complete_retrain,
 * with MLMA_NEW_MODEL_VERSION added to the same environment.  A request
 * cancelled (dismissed) during the first phase has its command's process
 * group terminated and never reaches the second.
 *
 * src/agent/job.c
 *
 *-------------------------------------------------------------------------
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

/* Set up the child and exec the command; never returns */
static void
exec_child(Job *job, const AgentOptions *opts, const char *command,
		   int out_w, int err_w)
{
	int			devnull;
	sigset_t	none;
	char		timeout[32];

	setpgid(0, 0);

	devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0 && devnull != STDIN_FILENO)
	{
		dup2(devnull, STDIN_FILENO);
		close(devnull);
	}
	dup2(out_w, STDOUT_FILENO);
	dup2(err_w, STDERR_FILENO);
	if (out_w > STDERR_FILENO)
		close(out_w);
	if (err_w > STDERR_FILENO)
		close(err_w);

	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	snprintf(timeout, sizeof(timeout), "%.0f", opts->timeout);
	setenv("MLMA_REQUEST_ID", job->request_id, 1);
	setenv("MLMA_STREAM_ID", job->stream_id, 1);
	setenv("MLMA_STREAM", job->stream, 1);
	setenv("MLMA_MODEL_VERSION", job->model_version, 1);
	setenv("MLMA_REASON", job->reason, 1);
	setenv("MLMA_P_VALUE", job->p_value ? job->p_value : "", 1);
	setenv("MLMA_EFFECT", job->effect ? job->effect : "", 1);
	setenv("MLMA_WORKER", opts->worker, 1);
	setenv("MLMA_TIMEOUT", timeout, 1);
	if (job->phase == PHASE_DEPLOY)
		setenv("MLMA_NEW_MODEL_VERSION", job->new_version, 1);
	else
		unsetenv("MLMA_NEW_MODEL_VERSION");

	execl("/bin/sh", "sh", "-c", command, (char *) NULL);
	dprintf(STDERR_FILENO, "%s: could not execute /bin/sh: %s\n",
			AGENT_NAME, strerror(errno));
	_exit(127);
}

/*
 * Start the command of the job's phase.  On failure the job is DONE at
 * once with the reason as its error.
 */
static void
start_command(Job *job, const AgentOptions *opts, const char *command)
{
	int			out[2] = {-1, -1};
	int			err[2] = {-1, -1};
	pid_t		pid;

	job->out_fd = job->err_fd = -1;
	job->pid = 0;
	job->line_len = 0;
	job->has_last = false;
	job->tail_len = 0;
	job->tail_cut = false;
	job->timed_out = job->interrupted = job->spawn_failed = false;
	job->cancelled = job->cancel_killed = false;
	job->kill_at = job->drain_until = 0;
	job->wait_status = 0;
	job->started = now_monotonic();
	job->deadline = job->started + opts->timeout;
	job->state = JOB_RUNNING;

	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
		goto fail;

	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0)
		exec_child(job, opts, command, out[1], err[1]);

	/* both sides set the group, whichever runs first */
	setpgid(pid, pid);
	close(out[1]);
	close(err[1]);
	fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
	fcntl(err[0], F_SETFL, fcntl(err[0], F_GETFL) | O_NONBLOCK);
	job->out_fd = out[0];
	job->err_fd = err[0];
	job->pid = pid;
	if (job->phase == PHASE_DEPLOY)
		agent_log("deploying model version \"%s\" of request %s (stream \"%s\"): pid %d",
				  job->new_version, job->request_id, job->stream, (int) pid);
	else
		agent_log("started request %s (stream \"%s\"): pid %d",
				  job->request_id, job->stream, (int) pid);
	return;

fail:
	{
		int			save = errno;

		for (int i = 0; i < 2; i++)
		{
			if (out[i] >= 0)
				close(out[i]);
			if (err[i] >= 0)
				close(err[i]);
		}
		job->spawn_failed = true;
		job->result = xasprintf("could not start command: %s", strerror(save));
	}
}

/* Start the retrain command of a freshly claimed job */
void
job_start(Job *job, const AgentOptions *opts)
{
	job->phase = PHASE_TRAIN;
	start_command(job, opts, opts->command);
}

/*
 * mlma accepted the completion (job->result is the new version): start the
 * deploy command in the same slot.
 */
void
job_start_deploy(Job *job, const AgentOptions *opts)
{
	job->phase = PHASE_DEPLOY;
	job->new_version = job->result;
	job->result = NULL;
	start_command(job, opts, opts->deploy_command);
}

/*
 * The request of a training job is no longer ours (dismissed, deleted, or
 * claimed by another worker): terminate its command's process group if it
 * still runs (SIGKILL after CANCEL_GRACE) and discard its outcome.  The
 * caller logs the one line about it once the job is done.
 */
void
job_cancel(Job *job, const char *why)
{
	if (job->state == JOB_FREE || job->phase != PHASE_TRAIN || job->cancelled)
		return;
	job->cancelled = true;
	snprintf(job->cancel_why, sizeof(job->cancel_why), "%s", why);
	if (job->state == JOB_RUNNING && job->pid != 0)
	{
		job->cancel_killed = true;
		job->kill_at = now_monotonic() + CANCEL_GRACE;
		kill(-job->pid, SIGTERM);
	}
}

/* Append stdout bytes: track the last non-empty line */
static void
take_stdout(Job *job, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		if (buf[i] == '\n')
		{
			job->line[job->line_len] = '\0';
			trim_whitespace(job->line);
			if (job->line[0] != '\0')
			{
				strcpy(job->last, job->line);
				job->has_last = true;
			}
			job->line_len = 0;
		}
		else if (job->line_len < VERSION_MAX)
			job->line[job->line_len++] = buf[i];
	}
}

/* Append stderr bytes: keep the last STDERR_TAIL_SIZE of them */
static void
take_stderr(Job *job, const char *buf, size_t n)
{
	if (n >= STDERR_TAIL_SIZE)
	{
		memcpy(job->tail, buf + n - STDERR_TAIL_SIZE, STDERR_TAIL_SIZE);
		job->tail_cut = job->tail_cut || job->tail_len > 0 || n > STDERR_TAIL_SIZE;
		job->tail_len = STDERR_TAIL_SIZE;
		return;
	}
	if (job->tail_len + n > sizeof(job->tail))
	{
		size_t		keep = STDERR_TAIL_SIZE - n;

		memmove(job->tail, job->tail + job->tail_len - keep, keep);
		job->tail_len = keep;
		job->tail_cut = true;
	}
	memcpy(job->tail + job->tail_len, buf, n);
	job->tail_len += n;
}

/* Read what is available on one of the job's pipes; close it on EOF */
void
job_read(Job *job, int fd)
{
	char		buf[8192];

	for (;;)
	{
		ssize_t		n = read(fd, buf, sizeof(buf));

		if (n > 0)
		{
			if (fd == job->out_fd)
				take_stdout(job, buf, (size_t) n);
			else
				take_stderr(job, buf, (size_t) n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF or a hard error: this pipe is done */
		if (fd == job->out_fd)
		{
			/* an unterminated last line counts too */
			take_stdout(job, "\n", 1);
			job->out_fd = -1;
		}
		else
			job->err_fd = -1;
		close(fd);
		return;
	}
}

/* The command's process was reaped with this wait status */
void
job_reaped(Job *job, int status)
{
	job->wait_status = status;
	job->pid = 0;
	job->drain_until = now_monotonic() + DRAIN_GRACE;
}

/* Enforce the timeout: SIGTERM to the group, SIGKILL after KILL_GRACE */
void
job_timers(Job *job, double now)
{
	char		d[32];

	if (job->state != JOB_RUNNING || job->pid == 0)
		return;
	if (!job->timed_out && !job->interrupted && !job->cancelled && now >= job->deadline)
	{
		job->timed_out = true;
		job->kill_at = now + KILL_GRACE;
		agent_log("request %s (stream \"%s\"): command timed out after %s, terminating pid %d",
				  job->request_id, job->stream,
				  format_duration(job->deadline - job->started, d, sizeof(d)),
				  (int) job->pid);
		kill(-job->pid, SIGTERM);
	}
	else if (job->kill_at > 0 && now >= job->kill_at)
	{
		agent_log("request %s: pid %d still running, killing it",
				  job->request_id, (int) job->pid);
		kill(-job->pid, SIGKILL);
		job->kill_at = 0;
	}
}

/* The agent shuts down without waiting: terminate the command */
void
job_interrupt(Job *job)
{
	if (job->state != JOB_RUNNING || job->pid == 0 || job->interrupted)
		return;
	job->interrupted = true;
	job->kill_at = now_monotonic() + KILL_GRACE;
	kill(-job->pid, SIGTERM);
}

/* The error text: what happened, then the tail of stderr */
static char *
error_text(Job *job, const char *what)
{
	char	   *tail;
	char	   *msg;
	size_t		start = 0;

	if (job->tail_len > STDERR_TAIL_SIZE)
		start = job->tail_len - STDERR_TAIL_SIZE;
	tail = xmalloc(job->tail_len - start + 1);
	memcpy(tail, job->tail + start, job->tail_len - start);
	tail[job->tail_len - start] = '\0';
	/* the cut may have split a character: skip continuation bytes */
	if (job->tail_cut || start > 0)
	{
		char	   *p = tail;

		while ((*p & 0xc0) == 0x80)
			p++;
		memmove(tail, p, strlen(p) + 1);
	}
	/* NUL bytes in the output end the text early; that is fine */
	trim_whitespace(tail);
	if (tail[0] != '\0')
		msg = xasprintf("%s\n%s%s", what,
						(job->tail_cut || start > 0) ? "..." : "", tail);
	else
		msg = xstrdup(what);
	free(tail);
	utf8_sanitize(msg);
	return msg;
}

/*
 * If the command has exited and its output is read (or the drain grace is
 * over), decide the outcome, log it and move the job to DONE.
 */
bool
job_finish_if_done(Job *job, double now)
{
	char		what[256];
	int			st = job->wait_status;

	if (job->state != JOB_RUNNING)
		return false;
	if (job->spawn_failed && job->phase == PHASE_DEPLOY)
	{
		job->success = false;
		job->state = JOB_DONE;
		agent_log("deploy command for request %s (stream \"%s\") did not start: %s; mlma already records model version \"%s\"",
				  job->request_id, job->stream, job->result, job->new_version);
		return true;
	}
	if (job->spawn_failed)
	{
		job->success = false;
		job->duration = 0;
		job->state = JOB_DONE;
		agent_log("command for request %s (stream \"%s\") did not start: %s",
				  job->request_id, job->stream, job->result);
		return true;
	}
	if (job->pid != 0)
		return false;
	if (job->out_fd >= 0 || job->err_fd >= 0)
	{
		if (now < job->drain_until)
			return false;
		/* something the command started still holds the pipes */
		if (job->out_fd >= 0)
		{
			job_read(job, job->out_fd);
			if (job->out_fd >= 0)
			{
				take_stdout(job, "\n", 1);
				close(job->out_fd);
				job->out_fd = -1;
			}
		}
		if (job->err_fd >= 0)
		{
			job_read(job, job->err_fd);
			if (job->err_fd >= 0)
			{
				close(job->err_fd);
				job->err_fd = -1;
			}
		}
	}

	job->duration = now - job->started;
	job->success = false;
	if (job->cancelled)
	{
		/* the outcome is discarded; report_done logs the one line */
		job->state = JOB_DONE;
		return true;
	}
	if (job->interrupted)
		snprintf(what, sizeof(what), "command was terminated because %s shut down",
				 AGENT_NAME);
	else if (job->timed_out)
	{
		char		d[32];

		snprintf(what, sizeof(what), "command timed out after %s",
				 format_duration(job->deadline - job->started, d, sizeof(d)));
	}
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
	{
		if (job->phase == PHASE_DEPLOY)
		{
			job->success = true;	/* a deploy command prints nothing needed */
			job->result = xstrdup("");
		}
		else if (job->has_last)
		{
			job->success = true;
			job->result = xstrdup(job->last);
			utf8_sanitize(job->result);
		}
		else
			snprintf(what, sizeof(what), "command printed no model version");
	}
	else if (WIFEXITED(st))
		snprintf(what, sizeof(what), "command exited with code %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(what, sizeof(what), "command was terminated by signal %d (%s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(what, sizeof(what), "command ended with wait status %d", st);

	if (!job->success)
		job->result = error_text(job, what);

	job->state = JOB_DONE;
	if (job->phase == PHASE_DEPLOY)
	{
		if (job->success)
			agent_log("deployed model version \"%s\" of request %s (stream \"%s\") in %.1f s",
					  job->new_version, job->request_id, job->stream, job->duration);
		else
		{
			int			n = (int) strcspn(job->result, "\n");

			agent_log("deploy command for request %s (stream \"%s\") failed in %.1f s: %.*s; mlma already records model version \"%s\"",
					  job->request_id, job->stream, job->duration, n, job->result,
					  job->new_version);
		}
	}
	else if (job->success)
		agent_log("command for request %s (stream \"%s\") succeeded in %.1f s",
				  job->request_id, job->stream, job->duration);
	else
		agent_log("command for request %s (stream \"%s\") failed in %.1f s: %s",
				  job->request_id, job->stream, job->duration, what);
	return true;
}

/* Free the request and outcome; the slot becomes free */
void
job_clear(Job *job)
{
	free(job->request_id);
	free(job->stream_id);
	free(job->stream);
	free(job->model_version);
	free(job->reason);
	free(job->p_value);
	free(job->effect);
	free(job->result);
	free(job->new_version);
	memset(job, 0, sizeof(*job));
	job->out_fd = job->err_fd = -1;
	job->state = JOB_FREE;
}
