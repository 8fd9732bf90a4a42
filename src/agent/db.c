/*-------------------------------------------------------------------------
 *
 * db.c
 *	  mlma-agent: the conversation with the server.
 *
 * Connects (application_name mlma-agent, TCP keepalives), LISTENs on
 * mlma_retrain, claims requests with mlma.claim_retrain() and reports
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

	res = PQexec(conn, "LISTEN " AGENT_CHANNEL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		agent_log("could not listen on %s: %s", AGENT_CHANNEL,
				  first_line(PQerrorMessage(conn), line, sizeof(line)));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);

	agent_log("connected to database \"%s\" on %s, listening on %s",
			  PQdb(conn),
			  (PQhost(conn) && PQhost(conn)[0]) ? PQhost(conn) : "local socket",
			  AGENT_CHANNEL);
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
 * fail_retrain with the error text.
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

/* Count (and forget) queued notifications */
int
db_drain_notifies(PGconn *conn, bool verbose)
{
	PGnotify   *n;
	int			count = 0;

	while ((n = PQnotifies(conn)) != NULL)
	{
		if (verbose)
			agent_log("notification on %s: %s", n->relname, n->extra);
		PQfreemem(n);
		count++;
	}
	return count;
}
