/*-------------------------------------------------------------------------
 *
 * db.c
 *	  mlma-agent: the conversation with the server.
 *
 * Connects (application_name mlma-agent, TCP keepalives), LISTENs on
 * mlma_retrain and mlma_cancel, claims requests with mlma.claim_retrain() and reports
 * outcomes with mlma.complete_retrain() / mlma.fail_retrain().  Every call
 * tells a refused statement (DB_SQL_ERROR) from a broken connection
 * (DB_CONN_LOST): the first is logged and dropped, the second makes the
 * main loop reconnect and try again.
 *
 * src/agent/db.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

/* libpq notices (RAISE NOTICE, WARNING) go to our log */
static void
notice_processor(void *arg, const char *message)
{
	(void) arg;
	agent_log("server: %s", message);
}

/* The first line of libpq's error message, for one-line logs */
static const char *
first_line(const char *msg, char *buf, size_t len)
{
	size_t		n = strcspn(msg, "\n");

	if (n >= len)
		n = len - 1;
	memcpy(buf, msg, n);
	buf[n] = '\0';
	return buf;
}

/*
 * Connect and LISTEN.  Returns NULL (after logging why) on failure.
 *
 * Our defaults come before the user's connection string, so the string can
 * override them; client_encoding comes after, because error texts are
 * sanitized as UTF-8.
 */
PGconn *
db_connect(const AgentOptions *opts)
{
	const char *keywords[] = {
		"application_name", "connect_timeout",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"dbname", "client_encoding", NULL
	};
	const char *values[] = {
		AGENT_NAME, "10",
		"30", "10", "3",
		opts->dsn, "UTF8", NULL
	};
	PGconn	   *conn;
	PGresult   *res;
	char		line[512];

	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
	{
		agent_log("could not connect: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		agent_log("could not connect: %s",
				  first_line(PQerrorMessage(conn), line, sizeof(line)));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, notice_processor, NULL);

	res = PQexec(conn, "LISTEN " AGENT_CHANNEL "; LISTEN " CANCEL_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		agent_log("could not listen on %s and %s: %s", AGENT_CHANNEL, CANCEL_CHANNEL,
				  first_line(PQerrorMessage(conn), line, sizeof(line)));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);

	agent_log("connected to database \"%s\" on %s, listening on %s and %s",
			  PQdb(conn),
			  (PQhost(conn) && PQhost(conn)[0]) ? PQhost(conn) : "local socket",
			  AGENT_CHANNEL, CANCEL_CHANNEL);
	return conn;
}

/* first line of the last error, for db_last_error() */
static char last_error[512];

const char *
db_last_error(void)
{
	return last_error;
}

/* Classify a failed result, log it, clear it */
static DbResult
failed(PGconn *conn, PGresult *res, const char *what)
{
	char	   *line = last_error;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);

	if (msg == NULL || msg[0] == '\0')
		msg = PQerrorMessage(conn);
	first_line(msg, last_error, sizeof(last_error));
	PQclear(res);

	if (PQstatus(conn) == CONNECTION_BAD)
	{
		agent_log("connection lost while %s: %s", what, line);
		return DB_CONN_LOST;
	}
	agent_log("could not %s: %s", what, line);
	return DB_SQL_ERROR;
}

static char *
dup_value(PGresult *res, int col)
{
	if (PQgetisnull(res, 0, col))
		return NULL;
	return xstrdup(PQgetvalue(res, 0, col));
}

/*
 * Claim the oldest pending request into job (its request fields only).
 * DB_EMPTY when nothing is pending.
 */
DbResult
db_claim(PGconn *conn, const AgentOptions *opts, Job *job)
{
	char		lease[64];
	const char *params[2];
	PGresult   *res;

	snprintf(lease, sizeof(lease), "%.3f seconds", opts->lease);
	params[0] = opts->worker;
	params[1] = lease;

	res = PQexecParams(conn,
					   "SELECT request_id, stream_id, stream, model_version, "
					   "reason, p_value, effect "
					   "FROM mlma.claim_retrain($1, $2::interval)",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, "claim a retrain request");
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0))
	{
		PQclear(res);
		return DB_EMPTY;
	}

	job->request_id = dup_value(res, 0);
	job->stream_id = dup_value(res, 1);
	job->stream = dup_value(res, 2);
	job->model_version = dup_value(res, 3);
	job->reason = dup_value(res, 4);
	job->p_value = dup_value(res, 5);
	job->effect = dup_value(res, 6);
	if (job->stream_id == NULL)
		job->stream_id = xstrdup("");
	if (job->stream == NULL)
		job->stream = xstrdup("");
	if (job->model_version == NULL)
		job->model_version = xstrdup("");
	if (job->reason == NULL)
		job->reason = xstrdup("");
	PQclear(res);
	return DB_OK;
}

/*
 * Report a finished job: complete_retrain with the new version or
 * fail_retrain with the error text.  DB_GONE (not logged here; the caller
 * logs one line) when the server refused because the request is no longer
 * open: dismissed meanwhile, or deleted with its stream.
 */
DbResult
db_report(PGconn *conn, Job *job)
{
	const char *params[2];
	PGresult   *res;
	DbResult	r;
	char		what[128];

	params[0] = job->request_id;
	params[1] = job->result;
	res = PQexecParams(conn,
					   job->success ?
					   "SELECT mlma.complete_retrain($1::bigint, $2)" :
					   "SELECT mlma.fail_retrain($1::bigint, $2)",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		PQclear(res);
		return DB_OK;
	}
	if (PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(conn) == CONNECTION_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		/* object_not_in_prerequisite_state, undefined_object */
		if (state && (strcmp(state, "55000") == 0 || strcmp(state, "42704") == 0))
		{
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			first_line(msg ? msg : PQresultErrorMessage(res), last_error,
					   sizeof(last_error));
			PQclear(res);
			return DB_GONE;
		}
	}
	snprintf(what, sizeof(what), "%s request %s",
			 job->success ? "complete" : "fail", job->request_id);
	r = failed(conn, res, what);
	return r;
}

/*
 * Read what arrived on the socket.  Returns the number of notifications,
 * or -1 when the connection is gone.
 */
int
db_consume(PGconn *conn, bool verbose)
{
	char		line[512];

	if (!PQconsumeInput(conn) || PQstatus(conn) == CONNECTION_BAD)
	{
		agent_log("connection lost: %s",
				  first_line(PQerrorMessage(conn), line, sizeof(line)));
		return -1;
	}
	return db_drain_notifies(conn, verbose);
}

/*
 * Handle queued notifications: mlma_cancel ones cancel the named request if
 * we run it; mlma_retrain ones are counted (and forgotten).  Returns the
 * number of retrain notifications.
 */
int
db_drain_notifies(PGconn *conn, bool verbose)
{
	PGnotify   *n;
	int			count = 0;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (verbose)
			agent_log("notification on %s: %s", n->relname, n->extra);
		if (strcmp(n->relname, CANCEL_CHANNEL) == 0)
			agent_cancel(n->extra, "dismissed");
		else
			count++;
		PQfreemem(n);
	}
	return count;
}

/*
 * The requests of ids_literal (a bigint[] literal) that are no longer
 * claimed by this worker are cancelled (agent_cancel), with their status
 * ("dismissed", "deleted", or claimed by another worker after the lease
 * expired).  Catches dismissals whose notification was missed while the
 * connection was down.
 */
DbResult
db_check_claims(PGconn *conn, const char *worker, const char *ids_literal)
{
	const char *params[2];
	PGresult   *res;

	params[0] = ids_literal;
	params[1] = worker;
	res = PQexecParams(conn,
					   "SELECT i.id::text, CASE WHEN q.request_id IS NULL THEN 'deleted' "
					   "WHEN q.status = 'claimed' THEN 'claimed by another worker' "
					   "ELSE q.status END "
					   "FROM unnest($1::bigint[]) AS i(id) "
					   "LEFT JOIN mlma.retrain_requests q ON q.request_id = i.id "
					   "WHERE q.request_id IS NULL OR q.status <> 'claimed' "
					   "OR q.claimed_by IS DISTINCT FROM $2",
					   2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return failed(conn, res, "check the running requests");
	for (int i = 0; i < PQntuples(res); i++)
		agent_cancel(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	PQclear(res);
	return DB_OK;
}
