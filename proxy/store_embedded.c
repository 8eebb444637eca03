/*
 * store_embedded.c - the embedded state store: one table per process,
 * shared by every worker thread, for a single mxgate instance (no
 * [redis]). Same semantics as the Redis scripts: fixed windows keyed by
 * kind + client (the entry remembers its window index and restarts the
 * count when a new window begins), and concurrency leases that expire.
 *
 * Answers are synchronous: each call returns the verdict, so store.c
 * runs the caller's callback before store_rate() returns. Exactness
 * under concurrency comes from the lock: 64 shards, one mutex each, a
 * key always in the same shard, a check done whole under the lock.
 *
 * Memory is bounded by the live entries: an entry carries the time
 * after which it is dead (end of its window, latest lease expiry); dead
 * entries are dropped when met on a lookup, and every call also sweeps
 * a few buckets of its shard, so idle keys go away without a thread.
 * Times are CLOCK_MONOTONIC milliseconds (process-local is all we need).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "store.h"
#include "timer.h"
#include "core.h"

#define EMB_SHARDS 64
#define EMB_SHARD_BITS 6
#define EMB_INIT_BUCKETS 16
/* Buckets swept per call: enough that a shard is fully swept over a few
 * times its bucket count of calls, small enough to cost nothing. */
#define EMB_SWEEP_BUCKETS 2

enum { EMB_RATE = 'r', EMB_CONC = 'c' };

struct emb_lease {
	uint64_t expires;
	char *id;
};

struct emb_entry {
	struct emb_entry *next;
	uint64_t hash;
	uint64_t dead_at;		/* may be dropped from this time on */
	/* EMB_RATE */
	uint64_t window_idx, window_ms;
	uint32_t count;
	/* EMB_CONC */
	struct emb_lease *leases;
	unsigned nleases, cap;
	size_t klen;
	char key[];			/* type byte, then kind ":" client, or client */
};

struct emb_shard {
	pthread_mutex_t mu;
	struct emb_entry **buckets;
	size_t nbuckets, n, sweep;
} __attribute__((aligned(64)));		/* one cache line per lock: no false sharing */

struct store_emb {
	struct emb_shard shard[EMB_SHARDS];
	uint64_t seed;
};

/* FNV-1a from a random seed, then a murmur3 finaliser for the high bits
 * that pick the shard: keys are client addresses, chosen by clients. */
static uint64_t
emb_hash(const struct store_emb *e, const char *k, size_t len)
{
	uint64_t h = e->seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)k[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static void
emb_entry_free(struct emb_entry *en)
{
	for (unsigned i = 0; i < en->nleases; i++)
		free(en->leases[i].id);
	free(en->leases);
	free(en);
}

struct store_emb *
store_emb_new(void)
{
	struct store_emb *e = aligned_alloc(64, sizeof(*e));

	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	if (getrandom(&e->seed, sizeof(e->seed), 0) != sizeof(e->seed))
		e->seed = timer_now_ms() * 0x9e3779b97f4a7c15ULL;
	e->seed ^= 0xcbf29ce484222325ULL;
	for (unsigned i = 0; i < EMB_SHARDS; i++) {
		struct emb_shard *s = &e->shard[i];

		pthread_mutex_init(&s->mu, NULL);
		s->buckets = calloc(EMB_INIT_BUCKETS, sizeof(*s->buckets));
		if (s->buckets == NULL) {
			while (i--) {
				free(e->shard[i].buckets);
				pthread_mutex_destroy(&e->shard[i].mu);
			}
			pthread_mutex_destroy(&s->mu);
			free(e);
			return NULL;
		}
		s->nbuckets = EMB_INIT_BUCKETS;
	}
	return e;
}

void
store_emb_free(struct store_emb *e)
{
	if (e == NULL)
		return;
	for (unsigned i = 0; i < EMB_SHARDS; i++) {
		struct emb_shard *s = &e->shard[i];

		for (size_t b = 0; b < s->nbuckets; b++) {
			while (s->buckets[b]) {
				struct emb_entry *en = s->buckets[b];
				s->buckets[b] = en->next;
				emb_entry_free(en);
			}
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->mu);
	}
	free(e);
}

/* Drops dead entries from one bucket. Shard locked. */
static void
emb_sweep_bucket(struct emb_shard *s, size_t b, uint64_t now)
{
	struct emb_entry **pp = &s->buckets[b];

	while (*pp) {
		struct emb_entry *en = *pp;

		if (en->dead_at <= now) {
			*pp = en->next;
			s->n--;
			emb_entry_free(en);
		} else {
			pp = &en->next;
		}
	}
}

static void
emb_sweep(struct emb_shard *s, uint64_t now)
{
	for (unsigned i = 0; i < EMB_SWEEP_BUCKETS; i++) {
		emb_sweep_bucket(s, s->sweep, now);
		s->sweep = (s->sweep + 1) & (s->nbuckets - 1);
	}
}

/* Doubles the bucket array when chains grow past 2 on average. Shard locked. */
static void
emb_grow(struct emb_shard *s)
{
	size_t nb = s->nbuckets * 2;
	struct emb_entry **nbk;

	if (s->n <= s->nbuckets * 2)
		return;
	nbk = calloc(nb, sizeof(*nbk));
	if (nbk == NULL)
		return;		/* longer chains, still correct */
	for (size_t b = 0; b < s->nbuckets; b++) {
		while (s->buckets[b]) {
			struct emb_entry *en = s->buckets[b];
			size_t nbi = en->hash & (nb - 1);

			s->buckets[b] = en->next;
			en->next = nbk[nbi];
			nbk[nbi] = en;
		}
	}
	free(s->buckets);
	s->buckets = nbk;
	s->nbuckets = nb;
	s->sweep &= nb - 1;
}

/*
 * Finds (create: or makes) the entry for k in its locked shard, dropping
 * dead entries met on the way. Returns NULL when absent (or out of memory).
 */
static struct emb_entry *
emb_lookup(struct emb_shard *s, uint64_t h, const char *k, size_t klen, uint64_t now, int create)
{
	struct emb_entry **pp = &s->buckets[h & (s->nbuckets - 1)];
	struct emb_entry *en;

	while ((en = *pp) != NULL) {
		if (en->dead_at <= now) {
			*pp = en->next;
			s->n--;
			emb_entry_free(en);
			continue;
		}
		if (en->hash == h && en->klen == klen && memcmp(en->key, k, klen) == 0)
			return en;
		pp = &en->next;
	}
	if (!create)
		return NULL;
	en = calloc(1, sizeof(*en) + klen);
	if (en == NULL)
		return NULL;
	en->hash = h;
	en->klen = klen;
	memcpy(en->key, k, klen);
	en->dead_at = UINT64_MAX;
	pp = &s->buckets[h & (s->nbuckets - 1)];
	en->next = *pp;
	*pp = en;
	s->n++;
	emb_grow(s);
	return en;
}

/* A key of type t: "t" kind ":" key, or "t" key without kind. Returns its length or 0. */
static size_t
emb_key(char *buf, size_t len, int t, const char *kind, const char *key)
{
	int n = kind ? snprintf(buf, len, "%c%s:%s", t, kind, key) : snprintf(buf, len, "%c%s", t, key);

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Locks the shard of k and returns it, after the per-call sweep. */
static struct emb_shard *
emb_enter(struct store_emb *e, const char *k, size_t klen, uint64_t *h, uint64_t now)
{
	struct emb_shard *s;

	*h = emb_hash(e, k, klen);
	s = &e->shard[*h >> (64 - EMB_SHARD_BITS)];
	pthread_mutex_lock(&s->mu);
	emb_sweep(s, now);
	return s;
}

/* The window counter of a rate entry, restarted when a new window began. Shard locked. */
static void
emb_window(struct emb_entry *en, uint64_t now, uint64_t window_ms)
{
	uint64_t idx = now / window_ms;

	if (en->window_idx != idx || en->window_ms != window_ms) {
		en->window_idx = idx;
		en->window_ms = window_ms;
		en->count = 0;
		en->dead_at = (idx + 1) * window_ms;
	}
}

enum store_verdict
store_emb_rate(struct store_emb *e, const char *kind, const char *key, unsigned limit, uint64_t window_ms)
{
	char k[320];
	size_t klen = emb_key(k, sizeof(k), EMB_RATE, kind, key);
	uint64_t now = timer_now_ms(), h;
	struct emb_shard *s;
	struct emb_entry *en;
	enum store_verdict v;

	if (klen == 0 || window_ms == 0)
		return STORE_FAIL;
	s = emb_enter(e, k, klen, &h, now);
	en = emb_lookup(s, h, k, klen, now, 1);
	if (en == NULL) {
		pthread_mutex_unlock(&s->mu);
		return STORE_FAIL;
	}
	emb_window(en, now, window_ms);
	if (en->count < UINT32_MAX)
		en->count++;
	v = en->count <= limit ? STORE_ALLOW : STORE_DENY;
	pthread_mutex_unlock(&s->mu);
	return v;
}

enum store_verdict
store_emb_peek(struct store_emb *e, const char *kind, const char *key, unsigned limit, uint64_t window_ms)
{
	char k[320];
	size_t klen = emb_key(k, sizeof(k), EMB_RATE, kind, key);
	uint64_t now = timer_now_ms(), h, count = 0;
	struct emb_shard *s;
	struct emb_entry *en;

	if (klen == 0 || window_ms == 0)
		return STORE_FAIL;
	s = emb_enter(e, k, klen, &h, now);
	en = emb_lookup(s, h, k, klen, now, 0);
	/* An entry from an earlier window (or another length) holds nothing of this one. */
	if (en && en->window_idx == now / window_ms && en->window_ms == window_ms)
		count = en->count;
	pthread_mutex_unlock(&s->mu);
	return count < limit ? STORE_ALLOW : STORE_DENY;
}

/*
 * One more event in the window of rate key k if it has room (count <
 * limit): 1, else 0 and nothing counted; -1 out of memory. Shard locked.
 */
static int
emb_charge(struct emb_shard *s, uint64_t h, const char *k, size_t klen, uint64_t now, unsigned limit,
	   uint64_t window_ms)
{
	struct emb_entry *en = emb_lookup(s, h, k, klen, now, 1);

	if (en == NULL)
		return -1;
	emb_window(en, now, window_ms);
	if (en->count >= limit)
		return 0;
	en->count++;
	return 1;
}

/*
 * MAIL: the message, then one recipient paid in advance (see
 * store_mail()). Both counters are changed under both their shards'
 * locks (taken in shard order, so two calls cannot deadlock), so the
 * call is atomic as the Redis script is.
 */
enum store_verdict
store_emb_mail(struct store_emb *e, const char *key, unsigned msg_limit, uint64_t msg_window_ms,
	       unsigned rcpt_limit, uint64_t rcpt_window_ms)
{
	char km[320], kr[320];
	size_t kmlen = emb_key(km, sizeof(km), EMB_RATE, "msg", key);
	size_t krlen = emb_key(kr, sizeof(kr), EMB_RATE, "rcpt", key);
	uint64_t now = timer_now_ms(), hm, hr;
	struct emb_shard *sm, *sr, *first, *second;
	enum store_verdict v = STORE_ALLOW;
	int r;

	if (kmlen == 0 || krlen == 0 || (msg_limit && msg_window_ms == 0) ||
	    (rcpt_limit && rcpt_window_ms == 0))
		return STORE_FAIL;
	hm = emb_hash(e, km, kmlen);
	hr = emb_hash(e, kr, krlen);
	sm = &e->shard[hm >> (64 - EMB_SHARD_BITS)];
	sr = &e->shard[hr >> (64 - EMB_SHARD_BITS)];
	first = sm < sr ? sm : sr;
	second = sm < sr ? sr : sm;
	pthread_mutex_lock(&first->mu);
	emb_sweep(first, now);
	if (second != first) {
		pthread_mutex_lock(&second->mu);
		emb_sweep(second, now);
	}
	if (msg_limit) {
		r = emb_charge(sm, hm, km, kmlen, now, msg_limit, msg_window_ms);
		if (r <= 0) {
			v = r < 0 ? STORE_FAIL : STORE_DENY;
			goto out;
		}
	}
	if (rcpt_limit) {
		r = emb_charge(sr, hr, kr, krlen, now, rcpt_limit, rcpt_window_ms);
		/* Out of memory here: the message stands, the first RCPT checks as usual. */
		if (r <= 0)
			v = STORE_ALLOW_NO_RCPT;
	}
out:
	if (second != first)
		pthread_mutex_unlock(&second->mu);
	pthread_mutex_unlock(&first->mu);
	return v;
}

/* Drops expired leases and recomputes when the entry dies. Shard locked. */
static void
emb_leases_prune(struct emb_entry *en, uint64_t now)
{
	unsigned j = 0;
	uint64_t last = 0;

	for (unsigned i = 0; i < en->nleases; i++) {
		if (en->leases[i].expires <= now) {
			free(en->leases[i].id);
			continue;
		}
		last = MAX(last, en->leases[i].expires);
		en->leases[j++] = en->leases[i];
	}
	en->nleases = j;
	en->dead_at = j ? last : now;
}

static struct emb_lease *
emb_lease_find(struct emb_entry *en, const char *id)
{
	for (unsigned i = 0; i < en->nleases; i++)
		if (strcmp(en->leases[i].id, id) == 0)
			return &en->leases[i];
	return NULL;
}

enum store_verdict
store_emb_lease_acquire(struct store_emb *e, const char *key, const char *lease_id, unsigned limit,
			uint64_t ttl_ms)
{
	char k[320];
	size_t klen = emb_key(k, sizeof(k), EMB_CONC, NULL, key);
	uint64_t now = timer_now_ms(), h;
	struct emb_shard *s;
	struct emb_entry *en;
	struct emb_lease *l;
	enum store_verdict v = STORE_ALLOW;

	if (klen == 0 || ttl_ms == 0)
		return STORE_FAIL;
	s = emb_enter(e, k, klen, &h, now);
	en = emb_lookup(s, h, k, klen, now, 1);
	if (en == NULL) {
		pthread_mutex_unlock(&s->mu);
		return STORE_FAIL;
	}
	emb_leases_prune(en, now);
	l = emb_lease_find(en, lease_id);
	if (l) {
		/* Already held: a retry of the same acquire, not a second slot. */
		l->expires = now + ttl_ms;
	} else if (en->nleases >= limit) {
		v = STORE_DENY;
	} else {
		char *id = strdup(lease_id);

		if (en->nleases == en->cap) {
			unsigned cap = en->cap ? en->cap * 2 : 4;
			struct emb_lease *nl = id ? realloc(en->leases, cap * sizeof(*nl)) : NULL;

			if (nl == NULL) {
				free(id);
				id = NULL;
			} else {
				en->leases = nl;
				en->cap = cap;
			}
		}
		if (id == NULL) {
			v = STORE_FAIL;
		} else {
			en->leases[en->nleases].id = id;
			en->leases[en->nleases].expires = now + ttl_ms;
			en->nleases++;
		}
	}
	emb_leases_prune(en, now);	/* recomputes dead_at */
	pthread_mutex_unlock(&s->mu);
	return v;
}

/*
 * Both connect checks: the rate first (the attempt counts whatever
 * follows), the lease only if the rate allowed. Two keys in two shards,
 * each check atomic under its own lock, as two separate calls would be.
 */
enum store_verdict
store_emb_connect(struct store_emb *e, const char *key, unsigned rate_limit, uint64_t rate_window_ms,
		  const char *lease_id, unsigned conc_limit, uint64_t lease_ttl_ms)
{
	enum store_verdict v = STORE_ALLOW;

	if (rate_limit)
		v = store_emb_rate(e, "conn", key, rate_limit, rate_window_ms);
	if (v == STORE_ALLOW && conc_limit && lease_id)
		v = store_emb_lease_acquire(e, key, lease_id, conc_limit, lease_ttl_ms);
	return v;
}

/* Sets a lease's expiry: now + ttl_ms (refresh), or 0 to release it. */
static void
emb_lease_update(struct store_emb *e, const char *key, const char *lease_id, uint64_t ttl_ms)
{
	char k[320];
	size_t klen = emb_key(k, sizeof(k), EMB_CONC, NULL, key);
	uint64_t now = timer_now_ms(), h;
	struct emb_shard *s;
	struct emb_entry *en;

	if (klen == 0)
		return;
	s = emb_enter(e, k, klen, &h, now);
	en = emb_lookup(s, h, k, klen, now, 0);
	if (en) {
		struct emb_lease *l;

		emb_leases_prune(en, now);
		/* Like ZADD XX: an expired lease is not brought back. */
		l = emb_lease_find(en, lease_id);
		if (l)
			l->expires = ttl_ms ? now + ttl_ms : 0;
		emb_leases_prune(en, now);
	}
	pthread_mutex_unlock(&s->mu);
}

void
store_emb_lease_refresh(struct store_emb *e, const char *key, const char *lease_id, uint64_t ttl_ms)
{
	if (ttl_ms)
		emb_lease_update(e, key, lease_id, ttl_ms);
}

void
store_emb_lease_release(struct store_emb *e, const char *key, const char *lease_id)
{
	emb_lease_update(e, key, lease_id, 0);
}

size_t
store_emb_entries(struct store_emb *e)
{
	size_t n = 0;

	for (unsigned i = 0; i < EMB_SHARDS; i++) {
		pthread_mutex_lock(&e->shard[i].mu);
		n += e->shard[i].n;
		pthread_mutex_unlock(&e->shard[i].mu);
	}
	return n;
}
