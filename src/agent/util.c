/*-------------------------------------------------------------------------
 *
 * util.c
 *	  mlma-agent: logging, clocks, durations and string helpers.
 *
 * Every event is logged as one line on stderr, written with a single
 * write() so that lines of several agents sharing a log never interleave.
 * Messages carry text chosen by others (stream names come from whoever may
 * insert into an attached table, versions and errors from the commands), so
 * every message goes through log_escape(): a log line stays one line and
 * never carries terminal escape sequences.
 *
 * src/agent/util.c
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

/*
 * Escape text for the log, into out (always NUL-terminated); returns the
 * length written.  Backslash becomes \\; newline, carriage return and tab
 * become \n, \r, \t; other control characters (C0, DEL, and the C1 range
 * U+0080..U+009F) become \xNN or \uNNNN; bytes that are not valid UTF-8
 * become \xNN.  Valid printable UTF-8 is kept as it is.  Output that does
 * not fit is cut at a whole escape.
 */
size_t
log_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *) in;
	const unsigned char *end = p + inlen;
	size_t		o = 0;

	if (outlen == 0)
		return 0;
	while (p < end)
	{
		char		esc[16];
		size_t		elen = 0;
		size_t		consumed = 1;
		unsigned char c = *p;

		if (c == '\\')
			elen = (size_t) snprintf(esc, sizeof(esc), "\\\\");
		else if (c == '\n')
			elen = (size_t) snprintf(esc, sizeof(esc), "\\n");
		else if (c == '\r')
			elen = (size_t) snprintf(esc, sizeof(esc), "\\r");
		else if (c == '\t')
			elen = (size_t) snprintf(esc, sizeof(esc), "\\t");
		else if (c < 0x20 || c == 0x7f)
			elen = (size_t) snprintf(esc, sizeof(esc), "\\x%02x", c);
		else if (c < 0x80)
		{
			esc[0] = (char) c;
			elen = 1;
		}
		else
		{
			/* a UTF-8 sequence: keep it when valid and not a C1 control */
			int			n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 :
				(c & 0xf8) == 0xf0 ? 3 : 0;
			unsigned int cp = n == 1 ? (c & 0x1fu) : n == 2 ? (c & 0x0fu) : (c & 0x07u);
			bool		ok = n > 0 && (size_t) (end - p) > (size_t) n;

			for (int i = 1; ok && i <= n; i++)
			{
				if ((p[i] & 0xc0) != 0x80)
					ok = false;
				else
					cp = (cp << 6) | (p[i] & 0x3fu);
			}
			if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
					   (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
					   (cp >= 0xd800 && cp <= 0xdfff)))
				ok = false;
			if (!ok)
				elen = (size_t) snprintf(esc, sizeof(esc), "\\x%02x", c);
			else if (cp < 0xa0)
			{
				elen = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", cp);
				consumed = (size_t) n + 1;
			}
			else
			{
				memcpy(esc, p, (size_t) n + 1);
				elen = (size_t) n + 1;
				consumed = (size_t) n + 1;
			}
		}
		if (o + elen >= outlen)
			break;
		memcpy(out + o, esc, elen);
		o += elen;
		p += consumed;
	}
	out[o] = '\0';
	return o;
}

/*
 * Log one event: "2024-05-01 12:00:00.123 +0200 mlma-agent[4711]: message".
 * Trailing newlines of the message are dropped; every other control
 * character is escaped (log_escape), so one event is always one line.
 */
void
agent_log(const char *fmt,...)
{
	char		buf[16384];
	char		msg[4096];
	char		stamp[64];
	struct timeval tv;
	struct tm	tm;
	size_t		len;
	int			n;
	va_list		ap;
	int			save_errno = errno;
	ssize_t		written;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(buf, sizeof(buf), "%s.%03d ", stamp, (int) (tv.tv_usec / 1000));
	len = (size_t) n;
	strftime(buf + len, sizeof(buf) - len, "%z", &tm);
	len = strlen(buf);
	n = snprintf(buf + len, sizeof(buf) - len, " %s[%d]: ", AGENT_NAME, (int) getpid());
	len += (size_t) n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t) n >= sizeof(msg))
		n = (int) sizeof(msg) - 1;
	/* drop trailing newlines of messages taken from libpq */
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	len += log_escape(msg, (size_t) n, buf + len, sizeof(buf) - len - 1);
	buf[len++] = '\n';

	written = write(STDERR_FILENO, buf, len);
	(void) written;
	errno = save_errno;
}

/* Seconds on the monotonic clock */
double
now_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/*
 * Parse a duration: a non-negative number with an optional unit
 * (s, sec, second(s), ms, m, min, minute(s), h, hour(s), d, day(s));
 * no unit means seconds.  "90", "90s", "15 min" and "1h" are all valid.
 */
bool
parse_duration(const char *s, double *seconds)
{
	static const struct
	{
		const char *name;
		double		factor;
	}			units[] =
	{
		{"", 1}, {"s", 1}, {"sec", 1}, {"secs", 1}, {"second", 1}, {"seconds", 1},
		{"ms", 0.001}, {"millisecond", 0.001}, {"milliseconds", 0.001},
		{"m", 60}, {"min", 60}, {"mins", 60}, {"minute", 60}, {"minutes", 60},
		{"h", 3600}, {"hour", 3600}, {"hours", 3600},
		{"d", 86400}, {"day", 86400}, {"days", 86400},
	};
	char	   *end;
	char		unit[16];
	size_t		len;
	double		v;

	if (s == NULL)
		return false;
	while (isspace((unsigned char) *s))
		s++;
	if (!isdigit((unsigned char) *s) && *s != '.')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || v > 1e9 || v < 0)
		return false;
	while (isspace((unsigned char) *end))
		end++;
	len = strlen(end);
	while (len > 0 && isspace((unsigned char) end[len - 1]))
		len--;
	if (len >= sizeof(unit))
		return false;
	memcpy(unit, end, len);
	unit[len] = '\0';

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
	{
		if (strcasecmp(unit, units[i].name) == 0)
		{
			*seconds = v * units[i].factor;
			return true;
		}
	}
	return false;
}

/* Format seconds for messages: "45 s", "1.5 s", "55 min", "2 h" */
char *
format_duration(double seconds, char *buf, size_t len)
{
	long long	whole = (long long) seconds;

	if ((double) whole != seconds)
		snprintf(buf, len, "%.1f s", seconds);
	else if (whole >= 3600 && whole % 3600 == 0)
		snprintf(buf, len, "%lld h", whole / 3600);
	else if (whole >= 60 && whole % 60 == 0)
		snprintf(buf, len, "%lld min", whole / 60);
	else
		snprintf(buf, len, "%lld s", whole);
	return buf;
}

/*
 * Make s valid UTF-8 in place: bytes that do not start a complete, valid
 * sequence become '?', control characters other than newline and tab
 * become ' '.  Text sent to the server must be valid in client_encoding,
 * or the report itself would fail.
 */
void
utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *) s;

	while (*p)
	{
		int			n;
		unsigned int cp;

		if (*p < 0x80)
		{
			if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
				*p = ' ';
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0)
		{
			n = 1;
			cp = *p & 0x1f;
		}
		else if ((*p & 0xf0) == 0xe0)
		{
			n = 2;
			cp = *p & 0x0f;
		}
		else if ((*p & 0xf8) == 0xf0)
		{
			n = 3;
			cp = *p & 0x07;
		}
		else
		{
			*p++ = '?';
			continue;
		}
		{
			bool		ok = true;

			for (int i = 1; i <= n; i++)
			{
				if ((p[i] & 0xc0) != 0x80)
				{
					ok = false;
					break;
				}
				cp = (cp << 6) | (p[i] & 0x3f);
			}
			/* overlong forms, surrogates and values beyond U+10FFFF */
			if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
					   (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
					   (cp >= 0xd800 && cp <= 0xdfff)))
				ok = false;
			if (!ok)
			{
				*p++ = '?';
				continue;
			}
		}
		p += n + 1;
	}
}

/* Strip leading and trailing white space in place */
void
trim_whitespace(char *s)
{
	size_t		len;
	size_t		start = 0;

	len = strlen(s);
	while (len > 0 && isspace((unsigned char) s[len - 1]))
		len--;
	s[len] = '\0';
	while (start < len && isspace((unsigned char) s[start]))
		start++;
	if (start > 0)
		memmove(s, s + start, len - start + 1);
}

void *
xmalloc(size_t size)
{
	void	   *p = malloc(size);

	if (p == NULL)
	{
		agent_log("out of memory");
		exit(1);
	}
	return p;
}

char *
xstrdup(const char *s)
{
	size_t		len = strlen(s);
	char	   *p = xmalloc(len + 1);

	memcpy(p, s, len + 1);
	return p;
}

char *
xasprintf(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	p = xmalloc((size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return p;
}
