/*
 * store_redis.c - the Redis state store: one connection per worker
 * (core/redis.c on the worker's ring); the checks of one loop turn go to
 * Redis together, as one EVALSHA of one script (store_lua.h) that runs
 * them in call order, atomically, and answers each.
 *
 * Why batched: a Lua call has a fixed cost on the server (the call, TIME,
 * the reply) that one check per EVALSHA paid every time; with several
 * sessions on a worker, a turn often has several checks, and they now
 * share one call and one round trip. Each check keeps its own verdict
 * and the windows stay exact (the whole call is atomic on the server).
 * Lease releases and refreshes are operations of the same call, in their
 * place among the checks, so they cost no command of their own when the
 * turn has a check, and the store hears of a session's end in the turn
 * it ends (before its client hears 221).
 *
 * The script is loaded with SCRIPT LOAD each time a connection starts,
 * pipelined behind AUTH; its SHA-1 is computed here so checks never wait
 * for that reply. A NOSCRIPT error (SCRIPT FLUSH, a failover to a replica
 * without it) loads it again and retries the call once, within its
 * original deadline.
 *
 * Every check completes exactly once (core/redis.c guarantees it per
 * call); store_redis_forget() only clears the owner's callback, the
 * request itself lives on until Redis answers, times out or fails.
 * With no connection up (backing off), a check fails when the turn ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store.h"
#include "store_lua.h"
#include "redis.h"
#include "log.h"
#include "timer.h"

/* Window counters outlive their window by this much: never before it ends. */
#define STORE_RATE_TTL_MARGIN_MS 1000
#define SREQ_MAX_ARGS 8		/* an operation's arguments, after its opcode */
#define SBATCH_MAX 128		/* operations per call: bounds the server's time in one script */

struct store_script {
	const char *src;
	size_t len;
	char sha[41];
	int loading;			/* a SCRIPT LOAD is ahead in the pipeline */
};

struct store_redis {
	struct redis_conn *rc;
	struct store_stats *stats;
	struct store_script script;
	struct sreq *pending;		/* every request not yet answered */
	struct sreq *unsent, *unsent_last;	/* queued this turn, in call order */
	char *prefix;
	uint64_t timeout_ms;
	uint64_t err_logged_ms;
	int freeing;
};

enum sreq_kind { SR_RATE, SR_ACQUIRE, SR_REFRESH, SR_RELEASE, SR_CONNECT, SR_MAIL, SR_PEEK };

/* The script's opcode for each kind, and how many arguments it takes. */
static const struct {
	const char *op;
	int nargs;
} op_of[] = {
	[SR_RATE] = { "rate", 3 }, [SR_ACQUIRE] = { "acq", 4 }, [SR_REFRESH] = { "ref", 3 },
	[SR_RELEASE] = { "rel", 2 }, [SR_CONNECT] = { "conn", 8 }, [SR_MAIL] = { "mail", 7 },
	[SR_PEEK] = { "peek", 2 },
};

struct sreq {
	struct sreq *next, **pprev;
	struct sreq *next_unsent;
	store_done_fn *done;
	void *owner;
	uint64_t token;
	unsigned limit;
	enum sreq_kind kind;
	int nargs;			/* the keys, then the rest, as op_of[kind] says */
	const char *args[SREQ_MAX_ARGS];
	size_t arglen[SREQ_MAX_ARGS];
	char buf[];
};

/* One EVALSHA: the requests it carries, in order (one reply element each). */
struct sbatch {
	struct store_redis *sr;
	uint64_t deadline_ms;
	int retried;
	int n;
	struct sreq *q[];
};

/* --- SHA-1 (FIPS 180-1), only to name the scripts as Redis does --- */

static uint32_t
sha1_rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = sha1_rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = sha1_rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void
sha1_hex(const char *msg, size_t len, char out[41])
{
	uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	unsigned char tail[128];
	size_t full = len & ~(size_t)63, rest = len - full, tlen;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t off = 0; off < full; off += 64)
		sha1_block(h, (const unsigned char *)msg + off);
	memset(tail, 0, sizeof(tail));
	memcpy(tail, msg + full, rest);
	tail[rest] = 0x80;
	tlen = rest + 9 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
	sha1_block(h, tail);
	if (tlen == 128)
		sha1_block(h, tail + 64);
	for (int i = 0; i < 5; i++)
		snprintf(out + 8 * i, 9, "%08x", h[i]);
}

/* --- the script --- */

static void
store_script_loaded(struct redis_conn *c, redisReply *r, void *arg)
{
	struct store_script *s = arg;

	(void)c;
	s->loading = 0;
	if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, s->sha) != 0)
		log_error("redis: SCRIPT LOAD returned %s, expected %s", r->str, s->sha);
	else if (r && r->type == REDIS_REPLY_ERROR)
		log_warn("redis: SCRIPT LOAD: %s", r->str);
}

/* Returns 1 when a SCRIPT LOAD was sent now. */
static int
store_script_load(struct store_redis *sr, struct redis_conn *c, struct store_script *s)
{
	const char *argv[3] = { "SCRIPT", "LOAD", s->src };
	size_t argvlen[3] = { 6, 4, s->len };

	if (s->loading)
		return 0;	/* one is already ahead of any retry we send now */
	if (redis_conn_call(c, MAX(1000, sr->timeout_ms), store_script_loaded, s, 3, argv, argvlen) < 0)
		return 0;
	s->loading = 1;
	return 1;
}

/* A connection starts: load the script right behind AUTH. */
static void
store_redis_on_link(struct redis_conn *c, void *arg)
{
	struct store_redis *sr = arg;

	sr->script.loading = 0;
	store_script_load(sr, c, &sr->script);
}

/* --- requests --- */

static int
sreq_is_check(const struct sreq *q)
{
	return q->kind != SR_REFRESH && q->kind != SR_RELEASE;
}

static void
sreq_finish(struct store_redis *sr, struct sreq *q, enum store_verdict v)
{
	store_done_fn *done = q->done;
	void *owner = q->owner;
	uint64_t token = q->token;
	int check = sreq_is_check(q);

	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	free(q);
	if (!check)
		return;
	if (v == STORE_FAIL)
		sr->stats->failures++;
	if (done && !sr->freeing)
		done(owner, token, v);
}

static enum store_verdict
sreq_verdict(const struct sreq *q, long long n)
{
	switch (q->kind) {
	case SR_RATE:
		return n >= 0 && (unsigned long long)n <= q->limit ? STORE_ALLOW : STORE_DENY;
	case SR_PEEK:
		/* the window's count: room for one more? */
		return n >= 0 && (unsigned long long)n < q->limit ? STORE_ALLOW : STORE_DENY;
	case SR_MAIL:
		/* 1 charged with a recipient, 2 without, 0 refused */
		return n == 1 ? STORE_ALLOW : n == 2 ? STORE_ALLOW_NO_RCPT : STORE_DENY;
	default:
		/* SR_CONNECT: 1 allowed, 0 rate refused, 2 lease refused; SR_ACQUIRE: 1 or 0 */
		return n == 1 ? STORE_ALLOW : STORE_DENY;
	}
}

static void sbatch_reply(struct redis_conn *c, redisReply *r, void *arg);

static int
sbatch_send(struct sbatch *b, uint64_t timeout_ms)
{
	struct store_redis *sr = b->sr;
	int argc = 3, n = 0, ret;
	const char **argv;
	size_t *argvlen;

	for (int i = 0; i < b->n; i++)
		argc += 1 + b->q[i]->nargs;
	argv = malloc((size_t)argc * sizeof(*argv));
	argvlen = malloc((size_t)argc * sizeof(*argvlen));
	if (argv == NULL || argvlen == NULL) {
		free(argv);
		free(argvlen);
		return -1;
	}
	argv[n] = "EVALSHA";
	argvlen[n++] = 7;
	argv[n] = sr->script.sha;
	argvlen[n++] = 40;
	argv[n] = "0";
	argvlen[n++] = 1;
	for (int i = 0; i < b->n; i++) {
		const struct sreq *q = b->q[i];

		argv[n] = op_of[q->kind].op;
		argvlen[n++] = strlen(op_of[q->kind].op);
		for (int a = 0; a < q->nargs; a++) {
			argv[n] = q->args[a];
			argvlen[n++] = q->arglen[a];
		}
	}
	ret = redis_conn_call(sr->rc, timeout_ms, sbatch_reply, b, argc, argv, argvlen);
	free(argv);
	free(argvlen);
	if (ret < 0)
		return -1;
	sr->stats->roundtrips++;
	return 0;
}

/* Every request of b answered (FAIL unless r has one integer each), then b freed. */
static void
sbatch_finish(struct sbatch *b, redisReply *r)
{
	struct store_redis *sr = b->sr;
	int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)b->n;

	for (int i = 0; i < b->n; i++) {
		redisReply *e = ok ? r->element[i] : NULL;
		enum store_verdict v = STORE_FAIL;

		if (e && e->type == REDIS_REPLY_INTEGER)
			v = sreq_verdict(b->q[i], e->integer);
		sreq_finish(sr, b->q[i], v);
	}
	free(b);
}

static void
sbatch_reply(struct redis_conn *c, redisReply *r, void *arg)
{
	struct sbatch *b = arg;
	struct store_redis *sr = b->sr;

	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
	    !b->retried && !sr->freeing) {
		uint64_t now = timer_now_ms();

		/* Load, then the same EVALSHA right behind it on the same connection. */
		b->retried = 1;
		/* Counted: it is a command these checks caused (connect-time loads are not). */
		if (store_script_load(sr, c, &sr->script))
			sr->stats->roundtrips++;
		if (sbatch_send(b, b->deadline_ms > now ? b->deadline_ms - now : 1) == 0)
			return;
	}
	if (r && r->type == REDIS_REPLY_ERROR) {
		uint64_t now = timer_now_ms();

		/* A misconfigured server errs on every check: one line a second. */
		if (now - sr->err_logged_ms >= 1000) {
			log_warn("redis: check failed: %s", r->str);
			sr->err_logged_ms = now;
		}
	}
	sbatch_finish(b, r);
}

/*
 * A request for key under zero, one or two key kinds (prefix kind key
 * each; kind_s NULL: no key, kind2_s NULL: one), then argc strings, as
 * op_of[kind] wants them; linked in pending. NULL when out of memory.
 */
static struct sreq *
sreq_newv(struct store_redis *sr, enum sreq_kind kind, const char *kind_s, const char *kind2_s,
	  const char *key, const char *const *argv, int argc)
{
	const char *kinds[2] = { kind_s, kind2_s };
	int nkeys = kind_s ? kind2_s ? 2 : 1 : 0;
	size_t plen = strlen(sr->prefix), keylen = key ? strlen(key) : 0, size = 0;
	struct sreq *q;
	char *p;

	if (nkeys + argc != op_of[kind].nargs || nkeys + argc > SREQ_MAX_ARGS)
		return NULL;
	for (int i = 0; i < nkeys; i++)
		size += plen + strlen(kinds[i]) + keylen + 1;
	for (int i = 0; i < argc; i++)
		size += strlen(argv[i]) + 1;
	q = calloc(1, sizeof(*q) + size);
	if (q == NULL)
		return NULL;
	q->kind = kind;
	p = q->buf;
	for (int i = 0; i < nkeys; i++) {
		int n = sprintf(p, "%s%s%s", sr->prefix, kinds[i], key);

		q->args[q->nargs] = p;
		q->arglen[q->nargs++] = (size_t)n;
		p += n + 1;
	}
	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);

		memcpy(p, argv[i], n + 1);
		q->args[q->nargs] = p;
		q->arglen[q->nargs++] = n;
		p += n + 1;
	}
	q->next = sr->pending;
	if (q->next)
		q->next->pprev = &q->next;
	q->pprev = &sr->pending;
	sr->pending = q;
	return q;
}

/* One key (prefix kind_s key) and up to 3 more strings, the first NULL ending them. */
static struct sreq *
sreq_new(struct store_redis *sr, enum sreq_kind kind, const char *kind_s, const char *key,
	 const char *a1, const char *a2, const char *a3)
{
	const char *argv[3] = { a1, a2, a3 };
	int argc = 0;

	while (argc < 3 && argv[argc])
		argc++;
	return sreq_newv(sr, kind, kind_s, NULL, key, argv, argc);
}

/* Queues q (NULL: out of memory, the check fails now) for the end of the turn. */
static void
sreq_start(struct store_redis *sr, struct sreq *q, store_done_fn *done, void *owner, uint64_t token)
{
	if (q == NULL) {
		if (done) {
			sr->stats->failures++;
			done(owner, token, STORE_FAIL);
		}
		return;
	}
	q->done = done;
	q->owner = owner;
	q->token = token;
	q->next_unsent = NULL;
	if (sr->unsent_last)
		sr->unsent_last->next_unsent = q;
	else
		sr->unsent = q;
	sr->unsent_last = q;
}

/* A fixed-window request (SR_RATE counts, SR_PEEK reads) for kind and key. */
static void
window_req(struct store_redis *sr, enum sreq_kind k, const char *kind, const char *key, unsigned limit,
	   uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	char kbuf[96], w[24], margin[24];
	struct sreq *q;

	snprintf(kbuf, sizeof(kbuf), "%s:", kind);
	snprintf(w, sizeof(w), "%llu", (unsigned long long)(window_ms ? window_ms : 1));
	snprintf(margin, sizeof(margin), "%d", STORE_RATE_TTL_MARGIN_MS);
	q = sreq_new(sr, k, kbuf, key, w, k == SR_RATE ? margin : NULL, NULL);
	if (q)
		q->limit = limit;
	sreq_start(sr, q, done, owner, token);
}

void
store_redis_rate(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		 uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	window_req(sr, SR_RATE, kind, key, limit, window_ms, done, owner, token);
}

void
store_redis_peek(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		 uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	window_req(sr, SR_PEEK, kind, key, limit, window_ms, done, owner, token);
}

void
store_redis_lease_acquire(struct store_redis *sr, const char *key, const char *lease_id, unsigned limit,
			  uint64_t ttl_ms, store_done_fn *done, void *owner, uint64_t token)
{
	char l[24], ttl[24];

	snprintf(l, sizeof(l), "%u", limit);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
	sreq_start(sr, sreq_new(sr, SR_ACQUIRE, "conc:", key, l, ttl, lease_id), done, owner, token);
}

void
store_redis_connect(struct store_redis *sr, const char *key, unsigned rate_limit, uint64_t rate_window_ms,
		    const char *lease_id, unsigned conc_limit, uint64_t lease_ttl_ms,
		    store_done_fn *done, void *owner, uint64_t token)
{
	char rl[24], w[24], margin[24], cl[24], ttl[24];
	const char *argv[6] = { rl, w, margin, cl, ttl, lease_id ? lease_id : "" };

	snprintf(rl, sizeof(rl), "%u", rate_limit);
	snprintf(w, sizeof(w), "%llu", (unsigned long long)(rate_window_ms ? rate_window_ms : 1));
	snprintf(margin, sizeof(margin), "%d", STORE_RATE_TTL_MARGIN_MS);
	snprintf(cl, sizeof(cl), "%u", lease_id ? conc_limit : 0);
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(lease_ttl_ms ? lease_ttl_ms : 1));
	sreq_start(sr, sreq_newv(sr, SR_CONNECT, "conn:", "conc:", key, argv, 6), done, owner, token);
}

void
store_redis_mail(struct store_redis *sr, const char *key, unsigned msg_limit, uint64_t msg_window_ms,
		 unsigned rcpt_limit, uint64_t rcpt_window_ms, store_done_fn *done, void *owner,
		 uint64_t token)
{
	char ml[24], mw[24], rl[24], rw[24], margin[24];
	const char *argv[5] = { ml, mw, rl, rw, margin };

	snprintf(ml, sizeof(ml), "%u", msg_limit);
	snprintf(mw, sizeof(mw), "%llu", (unsigned long long)(msg_window_ms ? msg_window_ms : 1));
	snprintf(rl, sizeof(rl), "%u", rcpt_limit);
	snprintf(rw, sizeof(rw), "%llu", (unsigned long long)(rcpt_window_ms ? rcpt_window_ms : 1));
	snprintf(margin, sizeof(margin), "%d", STORE_RATE_TTL_MARGIN_MS);
	sreq_start(sr, sreq_newv(sr, SR_MAIL, "msg:", "rcpt:", key, argv, 5), done, owner, token);
}

void
store_redis_lease_refresh(struct store_redis *sr, const char *key, const char *lease_id, uint64_t ttl_ms)
{
	char ttl[24];

	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
	sreq_start(sr, sreq_new(sr, SR_REFRESH, "conc:", key, ttl, lease_id, NULL), NULL, NULL, 0);
}

/* Out of memory: dropped, like a lost ZREM would be; the lease expires after its ttl. */
void
store_redis_lease_release(struct store_redis *sr, const char *key, const char *lease_id)
{
	sreq_start(sr, sreq_new(sr, SR_RELEASE, "conc:", key, lease_id, NULL, NULL), NULL, NULL, 0);
}

void
store_redis_forget(struct store_redis *sr, void *owner)
{
	for (struct sreq *q = sr->pending; q; q = q->next)
		if (q->owner == owner)
			q->done = NULL;
}

void
store_redis_turn(struct store_redis *sr)
{
	/* A failed send answers at once; what its callbacks queue goes too. */
	while (sr->unsent) {
		struct sreq *q = sr->unsent;
		struct sbatch *b;
		int n = 0;

		for (struct sreq *x = q; x && n < SBATCH_MAX; x = x->next_unsent)
			n++;
		b = malloc(sizeof(*b) + (size_t)n * sizeof(b->q[0]));
		if (b == NULL) {
			sr->unsent = q->next_unsent;
			if (sr->unsent == NULL)
				sr->unsent_last = NULL;
			sreq_finish(sr, q, STORE_FAIL);
			continue;
		}
		b->sr = sr;
		b->retried = 0;
		b->n = n;
		b->deadline_ms = timer_now_ms() + sr->timeout_ms;
		for (int i = 0; i < n; i++, q = q->next_unsent)
			b->q[i] = q;
		sr->unsent = q;
		if (q == NULL)
			sr->unsent_last = NULL;
		if (sbatch_send(b, sr->timeout_ms) < 0)
			sbatch_finish(b, NULL);
	}
	redis_conn_turn(sr->rc);
}

struct store_redis *
store_redis_new(const struct cfg_redis *cfg, struct ring *r, struct store_stats *stats)
{
	struct store_redis *sr = calloc(1, sizeof(*sr));

	if (sr == NULL)
		return NULL;
	sr->stats = stats;
	sr->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 100;
	sr->prefix = strdup(cfg->key_prefix ? cfg->key_prefix : "mxgate:");
	if (sr->prefix == NULL) {
		free(sr);
		return NULL;
	}
	sr->script.src = store_lua_batch;
	sr->script.len = strlen(store_lua_batch);
	sha1_hex(store_lua_batch, sr->script.len, sr->script.sha);
	sr->rc = redis_conn_new(r, &cfg->addr, cfg->password, sr->timeout_ms, store_redis_on_link, sr);
	if (sr->rc == NULL) {
		free(sr->prefix);
		free(sr);
		return NULL;
	}
	return sr;
}

void
store_redis_free(struct store_redis *sr)
{
	if (sr == NULL)
		return;
	/* Calls in flight complete with NULL inside (their batches free themselves); no owner hears of it. */
	sr->freeing = 1;
	while (sr->unsent) {
		struct sreq *q = sr->unsent;

		sr->unsent = q->next_unsent;
		sreq_finish(sr, q, STORE_FAIL);
	}
	sr->unsent_last = NULL;
	redis_conn_free(sr->rc);
	free(sr->prefix);
	free(sr);
}

uint64_t
store_redis_reconnects(const struct store_redis *sr)
{
	struct redis_conn_stats cs;

	redis_conn_get_stats(sr->rc, &cs);
	return cs.reconnects;
}
