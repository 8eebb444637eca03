/*
 * log.h - one line per event to stderr, syslog or a file, as text or
 * JSON (one object per line, the message's key=value pairs as fields).
 * Thread safe: each line is formatted into a local buffer and written
 * with one write(2), so lines never interleave.
 */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* target: "stderr", "syslog" or a file path; returns 0 or -1 (errno set). */
int log_open(const char *target, const char *ident);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
void log_set_json(int on);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *s);

void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  do { if (log_get_level() >= LOG_LVL_INFO) log_msg(LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_get_level() >= LOG_LVL_DEBUG) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

/*
 * The key=value pairs of a log message as JSON members, each written as
 * ,"key":value (a leading bare word as ,"event":"word"; plain decimals
 * as numbers; key="text" and key=<addr> whole). Keys ts, level, msg and
 * event are left out. Pure; cuts short rather than overflow out.
 * Returns the length written.
 */
size_t log_kv_json(char *out, size_t outlen, const char *msg);

/* Start-up failures only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copies at most dstlen-1 bytes of src into dst, replacing control
 * bytes, quotes and backslashes by \xNN, so client-supplied text can be
 * logged safely. Returns dst.
 */
char *log_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

#endif
