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
		log_syslog = 0;
		log_fd = 2;
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
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
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
		char esc[3800];
		size_t j = 0;

		/* The message is key=value text; JSON mode wraps it as one string. */
		for (size_t i = 0; msg[i] && j + 7 < sizeof(esc); i++) {
			unsigned char ch = (unsigned char)msg[i];
			if (ch == '"' || ch == '\\') {
				esc[j++] = '\\';
				esc[j++] = (char)ch;
			} else if (ch < 0x20) {
				j += (size_t)snprintf(esc + j, sizeof(esc) - j, "\\u%04x", ch);
			} else {
				esc[j++] = (char)ch;
			}
		}
		esc[j] = '\0';
		n = snprintf(line, sizeof(line),
			     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"}\n",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], esc);
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
	if (write(log_fd, line, (size_t)n) < 0)
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
