/*
 * policy.h - the checks a session runs before it goes on: at connect
 * (access lists, connection rate, concurrency), at MAIL (message rate)
 * and at RCPT (recipient rate), per client IP (IPv6 per prefix), with
 * the counters in the state store. Each check answers through one
 * callback, at once or later.
 *
 * MAIL pays for the transaction's first recipient in advance, in the
 * same store call as the message (one Redis round trip for both), so the
 * first RCPT needs no call of its own. When the recipient window is full
 * nothing is paid in advance and that RCPT is checked (and refused) as
 * any other. A transaction that ends without a recipient (RSET, QUIT, a
 * backend that refuses MAIL) keeps its prepaid recipient charged: the
 * recipient rate is then conservative by at most one recipient per such
 * transaction, never generous. A prepaid recipient counts in the window
 * of its MAIL.
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
/*
 * MAIL: message_rate (a refused MAIL is not counted) and, with
 * recipient_rate set, one recipient paid in advance: s->tx.rcpt_prepaid
 * is 1 when done gets POLICY_OK with it paid. Only a failure to check
 * message_rate itself can refuse MAIL; when only the prepayment failed,
 * the first RCPT is checked as usual.
 */
void policy_mail(struct session *s, policy_done_fn *done);
/* RCPT: uses the transaction's prepaid recipient (no store call, OK at once) or checks recipient_rate. */
void policy_rcpt(struct session *s, policy_done_fn *done);
/*
 * Whether policy_rcpt would answer OK at once, asking no store, for the
 * recipient `ahead` places after the next one (0: the next).
 */
int policy_rcpt_free(const struct session *s, unsigned ahead);
/*
 * Before a password is checked: LIMITED when the client's
 * auth_failure_rate window is already full, so a client that was cut off
 * gets no further guesses on new connections until the window ends;
 * nothing is counted.
 */
void policy_auth_allowed(struct session *s, policy_done_fn *done);
/* An AUTH attempt failed: counted against auth_failure_rate (LIMITED once exceeded). */
void policy_auth_failure(struct session *s, policy_done_fn *done);
/* The session ends: its concurrency lease is released, late answers dropped. */
void policy_session_end(struct session *s);

#endif
