/*
 * store.c - the state store's front: picks the backend from the config
 * snapshot (a [redis] section selects Redis, else the embedded table),
 * dispatches each call to it and keeps the per-worker counters.
 *
 * Callbacks: the embedded store answers before store_rate() returns;
 * Redis answers from the ring (a later completion or timer, or the end
 * of the loop turn with STORE_FAIL when it has no connection). Callers
 * must accept both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"

struct store_shared {
	struct store_emb *emb;		/* NULL when Redis */
	struct cfg_redis redis;		/* strings owned here: the snapshot may go first */
};

struct store {
	struct store_shared *sh;
	struct store_redis *rd;		/* NULL when embedded */
	struct store_stats stats;
};

struct store_shared *
store_shared_new(const struct config *cfg, char *err, size_t errlen)
{
	struct store_shared *sh = calloc(1, sizeof(*sh));

	if (sh == NULL)
		goto oom;
	if (!cfg->redis.enabled) {
		sh->emb = store_emb_new();
		if (sh->emb == NULL)
			goto oom;
		return sh;
	}
	sh->redis = cfg->redis;
	sh->redis.password = NULL;
	sh->redis.key_prefix = strdup(cfg->redis.key_prefix ? cfg->redis.key_prefix : "mxgate:");
	if (sh->redis.key_prefix == NULL)
		goto oom;
	if (cfg->redis.password && cfg->redis.password[0]) {
		sh->redis.password = strdup(cfg->redis.password);
		if (sh->redis.password == NULL)
			goto oom;
	}
	if (sh->redis.timeout_ms == 0)
		sh->redis.timeout_ms = 100;
	return sh;
oom:
	store_shared_free(sh);
	snprintf(err, errlen, "state store: out of memory");
	return NULL;
}

void
store_shared_free(struct store_shared *sh)
{
	if (sh == NULL)
		return;
	store_emb_free(sh->emb);
	free(sh->redis.password);
	free(sh->redis.key_prefix);
	free(sh);
}

struct store *
store_worker_new(struct store_shared *sh, struct ring *r)
{
	struct store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->sh = sh;
	if (sh->emb == NULL) {
		st->rd = store_redis_new(&sh->redis, r, &st->stats);
		if (st->rd == NULL) {
			free(st);
			return NULL;
		}
	}
	return st;
}

void
store_worker_free(struct store *st)
{
	if (st == NULL)
		return;
	store_redis_free(st->rd);
	free(st);
}

void
store_worker_turn(struct store *st)
{
	if (st->rd)
		store_redis_turn(st->rd);
}

/* Embedded verdicts are final here: count, then answer at once. */
static void
store_answer(struct store *st, enum store_verdict v, store_done_fn *done, void *owner, uint64_t token)
{
	if (v == STORE_FAIL)
		st->stats.failures++;
	done(owner, token, v);
}

void
store_rate(struct store *st, const char *kind, const char *key, unsigned limit,
	   uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	st->stats.checks++;
	if (st->rd)
		store_redis_rate(st->rd, kind, key, limit, window_ms, done, owner, token);
	else
		store_answer(st, store_emb_rate(st->sh->emb, kind, key, limit, window_ms), done, owner, token);
}

void
store_peek(struct store *st, const char *kind, const char *key, unsigned limit,
	   uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	st->stats.checks++;
	if (st->rd)
		store_redis_peek(st->rd, kind, key, limit, window_ms, done, owner, token);
	else
		store_answer(st, store_emb_peek(st->sh->emb, kind, key, limit, window_ms), done, owner, token);
}

void
store_lease_acquire(struct store *st, const char *key, const char *lease_id, unsigned limit,
		    uint64_t ttl_ms, store_done_fn *done, void *owner, uint64_t token)
{
	st->stats.checks++;
	if (st->rd)
		store_redis_lease_acquire(st->rd, key, lease_id, limit, ttl_ms, done, owner, token);
	else
		store_answer(st, store_emb_lease_acquire(st->sh->emb, key, lease_id, limit, ttl_ms),
			     done, owner, token);
}

void
store_connect(struct store *st, const char *key, unsigned rate_limit, uint64_t rate_window_ms,
	      const char *lease_id, unsigned conc_limit, uint64_t lease_ttl_ms,
	      store_done_fn *done, void *owner, uint64_t token)
{
	st->stats.checks++;
	if (st->rd)
		store_redis_connect(st->rd, key, rate_limit, rate_window_ms, lease_id, conc_limit,
				    lease_ttl_ms, done, owner, token);
	else
		store_answer(st, store_emb_connect(st->sh->emb, key, rate_limit, rate_window_ms, lease_id,
						   conc_limit, lease_ttl_ms),
			     done, owner, token);
}

void
store_mail(struct store *st, const char *key, unsigned msg_limit, uint64_t msg_window_ms,
	   unsigned rcpt_limit, uint64_t rcpt_window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	st->stats.checks++;
	if (st->rd)
		store_redis_mail(st->rd, key, msg_limit, msg_window_ms, rcpt_limit, rcpt_window_ms, done,
				 owner, token);
	else
		store_answer(st, store_emb_mail(st->sh->emb, key, msg_limit, msg_window_ms, rcpt_limit,
						rcpt_window_ms),
			     done, owner, token);
}

void
store_lease_refresh(struct store *st, const char *key, const char *lease_id, uint64_t ttl_ms)
{
	if (st->rd)
		store_redis_lease_refresh(st->rd, key, lease_id, ttl_ms);
	else
		store_emb_lease_refresh(st->sh->emb, key, lease_id, ttl_ms);
}

void
store_lease_release(struct store *st, const char *key, const char *lease_id)
{
	if (st->rd)
		store_redis_lease_release(st->rd, key, lease_id);
	else
		store_emb_lease_release(st->sh->emb, key, lease_id);
}

void
store_forget(struct store *st, void *owner)
{
	/* Embedded answers never outlive the call that asked. */
	if (st->rd)
		store_redis_forget(st->rd, owner);
}

void
store_stats(const struct store *st, struct store_stats *out)
{
	*out = st->stats;
	if (st->rd)
		out->reconnects = store_redis_reconnects(st->rd);
}
