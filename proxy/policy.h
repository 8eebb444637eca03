/*
 * policy.h - the checks a session runs before it goes on: at connect
 * (access lists, connection rate, concurrency), at MAIL (message rate)
 * and at RCPT (recipient rate), per client IP (IPv6 per prefix), with
 * the counters in the state store. Each check answers through one
 * callback, at once or later; the session waits (PH_WAIT) meanwhile.
 */
#ifndef PROXY_POLICY_H
#define PROXY_POLICY_H

struct session;

enum policy_verdict {
	POLICY_OK = 0,
	POLICY_DENIED,		/* [access] deny: 554 5.7.1 greeting */
	POLICY_LIMITED,		/* a limit was reached: 421 4.7.0 / 451 4.7.1 */
	POLICY_TEMPFAIL,	/* the store failed and on_failure = tempfail */
};

typedef void policy_done_fn(struct session *s, enum policy_verdict v);

/* Sets the client's key and trust from s->client; then checks. */
void policy_connect(struct session *s, policy_done_fn *done);
void policy_mail(struct session *s, policy_done_fn *done);
void policy_rcpt(struct session *s, policy_done_fn *done);
/* An AUTH attempt failed: counted against auth_failure_rate (LIMITED once exceeded). */
void policy_auth_failure(struct session *s, policy_done_fn *done);
/* The session ends: its concurrency lease is released, late answers dropped. */
void policy_session_end(struct session *s);

#endif
