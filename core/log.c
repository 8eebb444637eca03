/*
 * log.c - the process-wide log sink. Each line is built in a stack
 * buffer and emitted with a single write(2) (O_APPEND for files), so
 * lines from different workers never interleave and no lock is needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "log.h"

static int log_fd = 2;
static int log_syslog;
static int log_json;
static enum log_level log_level = LOG_LVL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
log_open(const char *target, const char *ident)
{
	int fd;

	if (target == NULL || strcmp(target, "stderr") == 0) {
		/* A file opened before stays open (see below): one descriptor, never reused under a writer. */
		log_syslog = 0;
		__atomic_store_n(&log_fd, 2, __ATOMIC_RELEASE);
		return 0;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_syslog = 1;
		return 0;
	}
	fd = open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	/*
	 * Reopening (SIGHUP after logrotate moved the file): workers write to
	 * log_fd at any moment, so the number must never be closed, or a new
	 * socket could get it and receive log lines; dup2 swaps the file
	 * behind it in one step.
	 */
	if (__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE) > 2) {
		if (dup3(fd, log_fd, O_CLOEXEC) < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		close(fd);
	} else {
		__atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
	}
	log_syslog = 0;
	return 0;
}

void
log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_set_json(int on)
{
	log_json = on;
}

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Bytes JSON needs for ch inside a string: \" and \\, \u00XX for control bytes. */
static size_t
json_width(unsigned char ch)
{
	return (ch == '"' || ch == '\\') ? 2 : ch < 0x20 ? 6 : 1;
}

/* JSON string body of src[0..n): quotes, backslashes and control bytes escaped; cut short rather than overflow. */
static size_t
json_escape(char *dst, size_t dstlen, const char *src, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];
		size_t w = json_width(ch);

		if (j + w >= dstlen)
			break;
		if (w == 2) {
			dst[j++] = '\\';
			dst[j++] = (char)ch;
		} else if (w == 6) {
			memcpy(dst + j, "\\u00", 4);
			dst[j + 4] = hex[ch >> 4];
			dst[j + 5] = hex[ch & 15];
			j += 6;
		} else {
			dst[j++] = (char)ch;
		}
	}
	if (dstlen)
		dst[j] = '\0';
	return j;
}

static size_t
json_escaped_len(const char *src, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += json_width((unsigned char)src[i]);
	return len;
}

static int
json_reserved(const char *k, size_t n)
{
	static const char *const names[] = { "ts", "level", "msg", "event" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0)
			return 1;
	return 0;
}

/* A plain decimal that JSON reads as the same integer. */
static int
json_number(const char *v, size_t n)
{
	if (n == 0 || n > 15 || (n > 1 && v[0] == '0'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return 0;
	return 1;
}

static int
key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

size_t
log_kv_json(char *out, size_t outlen, const char *msg)
{
	const char *p = msg;
	size_t j = 0;
	int first = 1;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	while (*p) {
		const char *k, *v, *e;
		size_t kn, vn, need;
		int named, quoted, num;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		k = p;
		while (key_char(*p))
			p++;
		kn = (size_t)(p - k);
		named = kn > 0 && k[0] >= 'a';	/* starts with a letter */
		if (!named || *p != '=') {
			/* A bare word: the first one names the event; the rest stay in msg only. */
			int word = named && *p == ' ';

			while (*p && *p != ' ')
				p++;
			if (first && word) {
				need = (size_t)snprintf(out + j, outlen - j, ",\"event\":\"%.*s\"", (int)kn, k);
				if (need >= outlen - j)
					break;
				j += need;
			}
			first = 0;
			continue;
		}
		first = 0;
		v = ++p;
		quoted = *v == '"';
		if (quoted) {
			/* key="text": to the closing quote (log_escape leaves none inside) */
			e = strchrnul(++v, '"');
			p = *e ? e + 1 : e;
		} else {
			/* key=value, or key=<address> to its '>' (a space may come before it) */
			e = *v == '<' ? strchrnul(v, '>') : v;
			while (*e && *e != ' ')
				e++;
			p = e;
		}
		vn = (size_t)(e - v);
		if (json_reserved(k, kn))
			continue;
		num = !quoted && json_number(v, vn);
		need = kn + 4 + (num ? vn : 2 + json_escaped_len(v, vn));
		if (j + need >= outlen)
			break;
		j += (size_t)snprintf(out + j, outlen - j, ",\"%.*s\":", (int)kn, k);
		if (num) {
			memcpy(out + j, v, vn);
			j += vn;
		} else {
			out[j++] = '"';
			j += json_escape(out + j, outlen - j, v, vn);
			out[j++] = '"';
		}
		out[j] = '\0';
	}
	return j;
}

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	char line[4096], msg[3800];
	struct timespec ts;
	struct tm tm;
	int n;

	if (lvl > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_syslog) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		syslog(prio[lvl], "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_json) {
		char fields[3000], esc[3800];

		log_kv_json(fields, sizeof(fields), msg);
		json_escape(esc, sizeof(esc), msg, strlen(msg));
		n = snprintf(line, sizeof(line),
			     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"%s,\"msg\":\"%s\"}\n",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], fields, esc);
	} else {
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], msg);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A failed log write has nowhere to be reported; ignore it. */
	if (write(__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE), line, (size_t)n) < 0)
		return;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;

	if (dstlen == 0)
		return dst;
	for (size_t i = 0; i < srclen; i++) {
		unsigned char ch = (unsigned char)src[i];
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
			if (j + 4 >= dstlen)
				break;
			dst[j++] = '\\';
			dst[j++] = 'x';
			dst[j++] = hex[ch >> 4];
			dst[j++] = hex[ch & 15];
		} else {
			if (j + 1 >= dstlen)
				break;
			dst[j++] = (char)ch;
		}
	}
	dst[j] = '\0';
	return dst;
}
