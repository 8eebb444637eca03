/*
 * store.h - the shared counters behind the per-client limits, with two
 * implementations chosen by the config: the embedded store (no [redis]:
 * an in-process table shared by the workers, entries expire) and Redis
 * (hiredis async on the worker's ring, one atomic Lua call per check,
 * so several mxgate instances share one set of limits).
 *
 * Every check answers through a callback, at once (embedded) or later
 * (Redis: requests are sent at the end of the loop turn, store_worker_turn),
 * with the owner and token it was given; store_forget(owner) guarantees
 * no callback reaches an owner that is going away.
 */
#ifndef PROXY_STORE_H
#define PROXY_STORE_H

#include <stdint.h>
#include "config.h"
#include "ring.h"

enum store_verdict {
	STORE_ALLOW = 0,
	STORE_DENY,
	STORE_FAIL,	/* the store could not answer in time: the caller applies on_failure */
	STORE_ALLOW_NO_RCPT,	/* store_mail only: message charged, no recipient paid in advance */
};

typedef void store_done_fn(void *owner, uint64_t token, enum store_verdict v);

struct store_shared;	/* one per process and config: the embedded table, or Redis settings */
struct store;		/* one per worker */

/* From main, per config snapshot. NULL with err on failure. */
struct store_shared *store_shared_new(const struct config *cfg, char *err, size_t errlen);
void store_shared_free(struct store_shared *sh);

/* In the worker thread. Redis: connects (and reconnects with backoff) on the ring. */
struct store *store_worker_new(struct store_shared *sh, struct ring *r);
void store_worker_free(struct store *st);
/*
 * Once per ring loop turn, last: sends the Redis requests queued during
 * the turn, in order and in one write (a request that cannot be sent
 * fails here, its callback may queue more: they go too).
 */
void store_worker_turn(struct store *st);

/*
 * Counts one event of kind ("conn", "msg", "rcpt", "authfail") for key in
 * a fixed window of window_ms; ALLOW while the count is <= limit. Exact:
 * with any number of workers or instances, a window admits limit events,
 * never limit + 1. Every key written has a TTL.
 */
void store_rate(struct store *st, const char *kind, const char *key, unsigned limit,
		uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token);
/*
 * Read-only: ALLOW while the current window of kind for key holds fewer
 * than limit events (one more would still be admitted), DENY when it is
 * full. Counts nothing; the same counters and windows as store_rate().
 * For a check that must not even start once a client is over its limit
 * (a password check after too many failures).
 */
void store_peek(struct store *st, const char *kind, const char *key, unsigned limit,
		uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token);

/*
 * Concurrency by leases that expire: acquire adds lease_id for key if
 * fewer than limit unexpired leases exist (ALLOW) else DENY; the holder
 * refreshes it every ttl/3 and releases it at close. A crashed instance
 * stops refreshing, so its leases expire after ttl_ms.
 */
void store_lease_acquire(struct store *st, const char *key, const char *lease_id, unsigned limit,
			 uint64_t ttl_ms, store_done_fn *done, void *owner, uint64_t token);
void store_lease_refresh(struct store *st, const char *key, const char *lease_id, uint64_t ttl_ms);

/*
 * The connect-time checks in one call (one Redis round trip): counts a
 * "conn" event for key as store_rate() would (rate_limit 0: no rate
 * check), then, only if the rate allowed it, acquires lease_id as
 * store_lease_acquire() would (conc_limit 0: no lease). ALLOW iff the
 * rate allowed and (conc_limit > 0) the lease was taken; DENY otherwise
 * (the attempt stays counted, a refused connection holds no lease);
 * FAIL when the store could not answer.
 */
void store_connect(struct store *st, const char *key, unsigned rate_limit, uint64_t rate_window_ms,
		   const char *lease_id, unsigned conc_limit, uint64_t lease_ttl_ms,
		   store_done_fn *done, void *owner, uint64_t token);
/*
 * Fire-and-forget, like the refresh. Embedded: done before it returns.
 * Redis: it leaves in the current loop turn, at its place among the
 * turn's other requests, inside one of their scripts when the turn has
 * any (no command of its own), else in one script call for all the
 * turn's releases. A release whose carrier fails is lost like a lost
 * ZREM would be: the lease expires after its ttl.
 */
void store_lease_release(struct store *st, const char *key, const char *lease_id);

/*
 * The MAIL-time checks in one call (one Redis round trip): when
 * msg_limit > 0 and the "msg" window of key is full: DENY, and nothing is
 * charged. Otherwise the message is charged (as a store_rate(.., "msg",
 * ..) event) and, when rcpt_limit > 0, one "rcpt" event is charged in
 * advance for the transaction's first recipient if that window has room
 * (ALLOW), or nothing more if it is full (STORE_ALLOW_NO_RCPT). With
 * rcpt_limit 0: ALLOW, no recipient charged. Same counters and windows as
 * store_rate(), so both windows stay exact. FAIL when the store could
 * not answer (either part may then have been charged).
 */
void store_mail(struct store *st, const char *key, unsigned msg_limit, uint64_t msg_window_ms,
		unsigned rcpt_limit, uint64_t rcpt_window_ms, store_done_fn *done, void *owner,
		uint64_t token);

/* No callback will reach owner after this returns. */
void store_forget(struct store *st, void *owner);

/* Counters for logs/metrics/bench: checks made, store round trips, failures. */
struct store_stats {
	uint64_t checks, roundtrips, failures, reconnects;
};
void store_stats(const struct store *st, struct store_stats *out);

/*
 * The backends behind the functions above, for proxy/store*.c only.
 * Embedded (store_embedded.c): answers synchronously, under one mutex
 * per shard. Redis (store_redis.c): answers through done, later (at the
 * latest at the end of the loop turn, with STORE_FAIL, when no
 * connection is up); updates *stats.
 */
struct store_emb;
struct store_emb *store_emb_new(void);
void store_emb_free(struct store_emb *e);
enum store_verdict store_emb_rate(struct store_emb *e, const char *kind, const char *key,
				  unsigned limit, uint64_t window_ms);
enum store_verdict store_emb_peek(struct store_emb *e, const char *kind, const char *key,
				  unsigned limit, uint64_t window_ms);
enum store_verdict store_emb_lease_acquire(struct store_emb *e, const char *key, const char *lease_id,
					   unsigned limit, uint64_t ttl_ms);
enum store_verdict store_emb_connect(struct store_emb *e, const char *key, unsigned rate_limit,
				     uint64_t rate_window_ms, const char *lease_id, unsigned conc_limit,
				     uint64_t lease_ttl_ms);
enum store_verdict store_emb_mail(struct store_emb *e, const char *key, unsigned msg_limit,
				  uint64_t msg_window_ms, unsigned rcpt_limit, uint64_t rcpt_window_ms);
void store_emb_lease_refresh(struct store_emb *e, const char *key, const char *lease_id, uint64_t ttl_ms);
void store_emb_lease_release(struct store_emb *e, const char *key, const char *lease_id);
size_t store_emb_entries(struct store_emb *e);	/* live + not yet swept entries (tests) */

struct store_redis;
struct store_redis *store_redis_new(const struct cfg_redis *cfg, struct ring *r, struct store_stats *stats);
void store_redis_free(struct store_redis *sr);
void store_redis_rate(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		      uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token);
void store_redis_peek(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		      uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token);
void store_redis_lease_acquire(struct store_redis *sr, const char *key, const char *lease_id, unsigned limit,
			       uint64_t ttl_ms, store_done_fn *done, void *owner, uint64_t token);
void store_redis_connect(struct store_redis *sr, const char *key, unsigned rate_limit, uint64_t rate_window_ms,
			 const char *lease_id, unsigned conc_limit, uint64_t lease_ttl_ms,
			 store_done_fn *done, void *owner, uint64_t token);
void store_redis_mail(struct store_redis *sr, const char *key, unsigned msg_limit, uint64_t msg_window_ms,
		      unsigned rcpt_limit, uint64_t rcpt_window_ms, store_done_fn *done, void *owner,
		      uint64_t token);
void store_redis_lease_refresh(struct store_redis *sr, const char *key, const char *lease_id, uint64_t ttl_ms);
void store_redis_lease_release(struct store_redis *sr, const char *key, const char *lease_id);
void store_redis_forget(struct store_redis *sr, void *owner);
void store_redis_turn(struct store_redis *sr);
uint64_t store_redis_reconnects(const struct store_redis *sr);

#endif
