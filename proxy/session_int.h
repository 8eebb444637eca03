/*
 * session_int.h - what the parts of the session (session.c, the AUTH
 * exchange in session_auth.c) share; nothing outside proxy/session*.c
 * includes it.
 */
#ifndef PROXY_SESSION_INT_H
#define PROXY_SESSION_INT_H

#include "session.h"
#include "smtp_parse.h"
#include "backend.h"

/* Queue a reply line (CRLF added). */
void session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A client mistake: counted; past max_errors, 421 and close. */
void session_reply_error(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Back to reading commands after an asynchronous step. */
void session_resume_commands(struct session *s);
void session_process(struct session *s);
/* Send what is queued, then close. */
void session_close(struct session *s, const char *reason);

/* How a transaction gives its link back (txn_end). */
enum link_end { LINK_CLEAN, LINK_DIRTY, LINK_ABORT };

/* A backend's reply, cleaned (envelope_clean_reply), as the client's reply. */
void relay_reply(struct session *s, const char *text, size_t len, int code);
/* The session's deadline (command or data timeout), from now. */
void session_timer(struct session *s, uint64_t ms);
/* Keeps client bytes for the command loop. */
void in_append(struct session *s, const char *data, size_t len);
/* RFC 3848 name for the Received: header: ESMTP, ESMTPS, ESMTPSA, ... */
const char *session_proto(const struct session *s);
/* The transaction's log line; status "sent", "refused", ... */
void txn_log(struct session *s, const char *status, const char *why);
/* Ends the transaction: its link back to the pool (RSET if dirty) or closed. */
void txn_end(struct session *s, enum link_end how);

/* The DATA phase (session_data.c). */
/*
 * cmd_data passed its checks: if the link offers CHUNKING, 354 now and
 * the message is held for one BDAT (returns 1); else 0, and DATA goes to
 * the backend with data_cmd_reply for its answer.
 */
int data_hold_begin(struct session *s);
void data_cmd_reply(struct blink *l, void *owner, int code, const char *text, size_t len);
/* Client bytes while in PH_DATA. */
void session_data(struct session *s, const char *data, size_t len, int bid);
/* Bytes the client sent right after DATA (kept in s->in) are message bytes. */
void data_pending_input(struct session *s);
/* Frees what the DATA phase keeps (txn_end). */
void data_release(struct session *s);

/* AUTH (session_auth.c). */
void session_auth_command(struct session *s, const struct smtp_cmd *cmd);
/* A line while an AUTH exchange waits for the client's answer to 334. */
void session_auth_line(struct session *s, const char *line, size_t len);
/* The session is closing: a password check still running keeps it alive. Returns 1 if so. */
int session_auth_defer_free(struct session *s);
/* "PLAIN LOGIN" as configured. */
const char *session_auth_mechs(const struct session *s);

#endif
