/*
 * policy.c - access lists and per-client limits (see policy.h).
 *
 * Access lists are matched in memory (no round trip). Limits go to the
 * worker's state store: the connection rate and the concurrency lease are
 * asked for in one call at connect (one Redis round trip), and the
 * greeting waits for it. MAIL charges the message and pays for the
 * first recipient in advance in one call (see policy.h), so a message
 * with one recipient costs one round trip, which the session overlaps
 * with the backend's MAIL.
 * Concurrency is a lease the session refreshes while it lives and
 * releases at its end, so an instance that dies frees its slots when the
 * leases expire. When the store cannot answer in time, [redis]
 * on_failure decides: allow (logged, counted) or tempfail.
 */
#include <stdio.h>
#include <string.h>
#include "config.h"
#include "log.h"
#include "policy.h"
#include "session.h"
#include "store.h"
#include "worker.h"

#define LEASE_TTL_MS 60000

static void
policy_answer(struct session *s, enum policy_verdict v)
{
	policy_done_fn *done = s->policy_done;

	s->policy_done = NULL;
	if (done)
		done(s, v);
}

/* One check came back; the session goes on when the last one has. */
static void
check_done(void *owner, uint64_t token, enum store_verdict v)
{
	struct session *s = owner;

	if (token != s->policy_token || s->policy_pending == 0)
		return;		/* an answer to an earlier phase */
	if (v == STORE_DENY) {
		s->policy_result = POLICY_LIMITED;
	} else if (v == STORE_FAIL) {
		if (s->cfg->redis.on_failure_tempfail) {
			if (s->policy_result == POLICY_OK)
				s->policy_result = POLICY_TEMPFAIL;
		} else {
			log_warn("conn=%s client=%s state store did not answer: allowed (on_failure = allow)",
				 s->id, s->peer_str);
		}
	}
	if (--s->policy_pending == 0)
		policy_answer(s, (enum policy_verdict)s->policy_result);
}

/*
 * The connect answer. With a lease asked for, ALLOW means it was taken;
 * DENY means none was (a refused rate never adds it), so there is nothing
 * to release; after FAIL the server may still have added it (a timeout),
 * so lease_requested stays and the release at the end covers it.
 */
static void
connect_done(void *owner, uint64_t token, enum store_verdict v)
{
	struct session *s = owner;

	if (token == s->policy_token && s->lease_requested) {
		if (v == STORE_ALLOW && !s->lease_held) {
			s->lease_held = 1;
			timer_arm(&s->w->ring.timers, &s->lease_timer, LEASE_TTL_MS / 3);
		} else if (v == STORE_DENY) {
			s->lease_requested = 0;
		}
	}
	check_done(owner, token, v);
}

static void
lease_refresh(struct timer *t)
{
	struct session *s = container_of(t, struct session, lease_timer);

	if (!s->lease_held)
		return;
	store_lease_refresh(s->w->store, s->client_key, s->lease_id, LEASE_TTL_MS);
	timer_arm(&s->w->ring.timers, &s->lease_timer, LEASE_TTL_MS / 3);
}

static void
begin(struct session *s, policy_done_fn *done)
{
	s->policy_done = done;
	s->policy_result = POLICY_OK;
	s->policy_pending = 1;	/* held until every check is launched */
	s->policy_token++;
}

static void
launched(struct session *s)
{
	if (--s->policy_pending == 0)
		policy_answer(s, (enum policy_verdict)s->policy_result);
}

void
policy_connect(struct session *s, policy_done_fn *done)
{
	const struct config *cfg = s->cfg;
	const struct cfg_limits *lim = &cfg->limits;

	cidr_client_key(&s->client, lim->ipv6_prefix ? lim->ipv6_prefix : 64,
			s->client_key, sizeof(s->client_key));
	s->trusted = cidr_list_match(&cfg->access.allow, &s->client);
	begin(s, done);
	if (!s->trusted && cidr_list_match(&cfg->access.deny, &s->client)) {
		s->denied = 1;
		s->policy_result = POLICY_DENIED;
	} else if (!s->trusted && lim->enabled && s->w->store &&
		   (lim->connection_rate.count || lim->concurrency)) {
		if (lim->concurrency) {
			snprintf(s->lease_id, sizeof(s->lease_id), "%08x:%s", s->w->id_prefix ^ (unsigned)getpid(), s->id);
			timer_init(&s->lease_timer, lease_refresh);
			s->lease_requested = 1;
		}
		s->policy_pending++;
		store_connect(s->w->store, s->client_key, lim->connection_rate.count, lim->connection_rate.per_ms,
			      lim->concurrency ? s->lease_id : NULL, lim->concurrency, LEASE_TTL_MS,
			      connect_done, s, s->policy_token);
	}
	launched(s);
}

/*
 * One question about a fixed window of the client's (store_rate counts an
 * event, store_peek only asks whether one more would fit): skipped for
 * trusted clients, with limits off or with that rate unset.
 */
typedef void window_ask_fn(struct store *st, const char *kind, const char *key, unsigned limit,
			   uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token);

static void
policy_window(struct session *s, window_ask_fn *ask, const char *kind, const struct cfg_rate *rate,
	      policy_done_fn *done)
{
	begin(s, done);
	if (!s->trusted && s->cfg->limits.enabled && rate->count && s->w->store) {
		s->policy_pending++;
		ask(s->w->store, kind, s->client_key, rate->count, rate->per_ms, check_done, s, s->policy_token);
	}
	launched(s);
}

/* The MAIL answer: the message's verdict, and whether a recipient was paid for. */
static void
mail_done(void *owner, uint64_t token, enum store_verdict v)
{
	struct session *s = owner;
	const struct cfg_limits *lim = &s->cfg->limits;

	if (token != s->policy_token || s->policy_pending == 0)
		return;
	if (v == STORE_ALLOW && lim->recipient_rate.count)
		s->tx.rcpt_prepaid = 1;
	if (v == STORE_ALLOW_NO_RCPT || (v == STORE_FAIL && !lim->message_rate.count))
		v = STORE_ALLOW;	/* no prepaid recipient: the first RCPT checks (and decides on a failure) */
	check_done(owner, token, v);
}

void
policy_mail(struct session *s, policy_done_fn *done)
{
	const struct cfg_limits *lim = &s->cfg->limits;

	begin(s, done);
	s->tx.rcpt_prepaid = 0;
	if (!s->trusted && lim->enabled && s->w->store &&
	    (lim->message_rate.count || lim->recipient_rate.count)) {
		s->policy_pending++;
		store_mail(s->w->store, s->client_key, lim->message_rate.count, lim->message_rate.per_ms,
			   lim->recipient_rate.count, lim->recipient_rate.per_ms, mail_done, s, s->policy_token);
	}
	launched(s);
}

void
policy_rcpt(struct session *s, policy_done_fn *done)
{
	if (s->tx.rcpt_prepaid) {
		/* Paid at MAIL: this recipient costs nothing more. */
		s->tx.rcpt_prepaid = 0;
		begin(s, done);
		launched(s);
		return;
	}
	policy_window(s, store_rate, "rcpt", &s->cfg->limits.recipient_rate, done);
}

int
policy_rcpt_free(const struct session *s, unsigned ahead)
{
	const struct cfg_limits *lim = &s->cfg->limits;

	if (s->trusted || !lim->enabled || !lim->recipient_rate.count || !s->w->store)
		return 1;
	return ahead == 0 && s->tx.rcpt_prepaid;
}

void
policy_auth_allowed(struct session *s, policy_done_fn *done)
{
	policy_window(s, store_peek, "authf", &s->cfg->limits.auth_failure_rate, done);
}

void
policy_auth_failure(struct session *s, policy_done_fn *done)
{
	policy_window(s, store_rate, "authf", &s->cfg->limits.auth_failure_rate, done);
}

void
policy_session_end(struct session *s)
{
	s->policy_done = NULL;
	s->policy_pending = 0;
	if (s->w->store) {
		store_forget(s->w->store, s);
		/*
		 * Also when the answer to the acquire has not come yet: the
		 * release follows it on the same connection, so it cannot
		 * leave a slot taken by a session that is gone.
		 */
		if (s->lease_held || s->lease_requested)
			store_lease_release(s->w->store, s->client_key, s->lease_id);
	}
	s->lease_held = 0;
	s->lease_requested = 0;
	if (timer_armed(&s->lease_timer))
		timer_cancel(&s->w->ring.timers, &s->lease_timer);
}
