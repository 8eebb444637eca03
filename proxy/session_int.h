/*
 * session_int.h - what the parts of the session (session.c, the AUTH
 * exchange in session_auth.c) share; nothing outside proxy/session*.c
 * includes it.
 */
#ifndef PROXY_SESSION_INT_H
#define PROXY_SESSION_INT_H

#include "session.h"
#include "smtp_parse.h"

/* Queue a reply line (CRLF added). */
void session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A client mistake: counted; past max_errors, 421 and close. */
void session_reply_error(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Back to reading commands after an asynchronous step. */
void session_resume_commands(struct session *s);
void session_process(struct session *s);
/* Send what is queued, then close. */
void session_close(struct session *s, const char *reason);

/* AUTH (session_auth.c). */
void session_auth_command(struct session *s, const struct smtp_cmd *cmd);
/* A line while an AUTH exchange waits for the client's answer to 334. */
void session_auth_line(struct session *s, const char *line, size_t len);
/* The session is closing: a password check still running keeps it alive. Returns 1 if so. */
int session_auth_defer_free(struct session *s);
/* "PLAIN LOGIN" as configured. */
const char *session_auth_mechs(const struct session *s);

#endif
