/*
 * store_redis.c - the Redis state store: one connection per worker
 * (core/redis.c on the worker's ring), one EVALSHA per check, pipelined
 * with every other check of the same loop turn.
 *
 * The scripts (store_lua.h) are loaded with SCRIPT LOAD each time a
 * connection starts, pipelined behind AUTH; their SHA-1 is computed here
 * so checks never wait for that reply. A NOSCRIPT error (SCRIPT FLUSH,
 * a failover to a replica without them) loads the script again and
 * retries the check once, within its original deadline.
 *
 * Requests are queued during the loop turn and sent, in call order, by
 * store_redis_turn() at its end (hiredis would only write them then
 * anyway). That lets lease releases ride along: a release is carried by
 * the next request queued after it in the same turn (run before that
 * request's own work), or, when none follows, by the turn's last request
 * (run after its work); only a turn with releases and no other request
 * sends a script call of its own for them. Either way a release reaches
 * Redis in the turn it was made, in its place among the checks, so the
 * store still hears of a session's end before its client hears 221.
 *
 * Every check completes exactly once (core/redis.c guarantees it per
 * request); store_redis_forget() only clears the owner's callback, the
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
#define SREQ_MAX_ARGS 8		/* keys, then the script's ARGV */
#define SREL_MAX 32		/* releases one request carries before its work (and as many after) */
#define STORE_MAX_ARGS (3 + SREQ_MAX_ARGS + 1 + 2 * 2 * SREL_MAX)

enum { SCRIPT_RATE = 0, SCRIPT_ACQUIRE, SCRIPT_REFRESH, SCRIPT_CONNECT, SCRIPT_MAIL, SCRIPT_RELEASE,
       SCRIPT_PEEK, NSCRIPTS };

struct store_script {
	const char *src;
	size_t len;
	char sha[41];
	int loading;			/* a SCRIPT LOAD is ahead in the pipeline */
};

/* A lease release waiting for its request: key (prefix "conc:" client), then the id. */
struct srel {
	struct srel *next;
	size_t klen, ilen;
	char buf[];			/* key NUL id NUL */
};

struct srel_list {
	struct srel *head, **tail;
	unsigned n;
};

struct store_redis {
	struct redis_conn *rc;
	struct store_stats *stats;
	struct store_script scripts[NSCRIPTS];
	struct sreq *pending;		/* every request not yet answered */
	struct sreq *unsent, *unsent_last;	/* queued this turn, in call order */
	struct srel_list rel;		/* releases not yet given to a request */
	char *prefix;
	uint64_t timeout_ms;
	uint64_t err_logged_ms;
	int freeing;
};

enum sreq_kind { SR_RATE, SR_ACQUIRE, SR_REFRESH, SR_RELEASE, SR_CONNECT, SR_MAIL, SR_PEEK };

/* The script each request kind runs. */
static const int script_of[] = { [SR_RATE] = SCRIPT_RATE, [SR_ACQUIRE] = SCRIPT_ACQUIRE,
				 [SR_REFRESH] = SCRIPT_REFRESH, [SR_RELEASE] = SCRIPT_RELEASE,
				 [SR_CONNECT] = SCRIPT_CONNECT, [SR_MAIL] = SCRIPT_MAIL, [SR_PEEK] = SCRIPT_PEEK };

struct sreq {
	struct sreq *next, **pprev;
	struct sreq *next_unsent;
	struct store_redis *sr;
	store_done_fn *done;
	void *owner;
	uint64_t token;
	uint64_t deadline_ms;
	unsigned limit;
	enum sreq_kind kind;
	int retried;
	int nkeys;			/* 0, 1, or 2 for SR_CONNECT and SR_MAIL */
	int nargs;			/* the keys, then the script's ARGV */
	const char *args[SREQ_MAX_ARGS];
	size_t arglen[SREQ_MAX_ARGS];
	struct srel_list pre, post;	/* releases carried: before and after its own work */
	char buf[];
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

/* --- scripts --- */

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

/* A connection starts: load the scripts right behind AUTH. */
static void
store_redis_on_link(struct redis_conn *c, void *arg)
{
	struct store_redis *sr = arg;

	for (int i = 0; i < NSCRIPTS; i++) {
		sr->scripts[i].loading = 0;
		store_script_load(sr, c, &sr->scripts[i]);
	}
}

/* --- requests --- */

static void
srel_list_init(struct srel_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
	l->n = 0;
}

static void
srel_list_free(struct srel_list *l)
{
	while (l->head) {
		struct srel *r = l->head;

		l->head = r->next;
		free(r);
	}
	srel_list_init(l);
}

/* Moves the releases waiting in sr to l (which must be empty). */
static void
srel_take(struct store_redis *sr, struct srel_list *l)
{
	if (sr->rel.head == NULL)
		return;
	*l = sr->rel;
	if (l->tail == &sr->rel.head)
		l->tail = &l->head;
	srel_list_init(&sr->rel);
}

static void
sreq_finish(struct sreq *q, enum store_verdict v)
{
	struct store_redis *sr = q->sr;
	store_done_fn *done = q->done;
	void *owner = q->owner;
	uint64_t token = q->token;
	int check = q->kind == SR_RATE || q->kind == SR_ACQUIRE || q->kind == SR_CONNECT ||
		    q->kind == SR_MAIL || q->kind == SR_PEEK;

	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	srel_list_free(&q->pre);
	srel_list_free(&q->post);
	free(q);
	if (!check)
		return;
	if (v == STORE_FAIL)
		sr->stats->failures++;
	if (done && !sr->freeing)
		done(owner, token, v);
}

static void sreq_reply(struct redis_conn *c, redisReply *r, void *arg);

static int
sreq_send(struct sreq *q, uint64_t timeout_ms)
{
	struct store_redis *sr = q->sr;
	const struct store_script *s = &sr->scripts[script_of[q->kind]];
	const char *argv[STORE_MAX_ARGS];
	size_t argvlen[STORE_MAX_ARGS];
	char nkeys[4], npre[12];
	int n = 0;

	argv[n] = "EVALSHA";
	argvlen[n++] = 7;
	argv[n] = s->sha;
	argvlen[n++] = 40;
	argvlen[n] = (size_t)snprintf(nkeys, sizeof(nkeys), "%d", q->nkeys);
	argv[n++] = nkeys;
	for (int i = 0; i < q->nargs; i++) {
		argv[n] = q->args[i];
		argvlen[n++] = q->arglen[i];
	}
	if (q->pre.n || q->post.n) {
		argvlen[n] = (size_t)snprintf(npre, sizeof(npre), "%u", q->pre.n);
		argv[n++] = npre;
		for (int pass = 0; pass < 2; pass++) {
			for (const struct srel *r = pass ? q->post.head : q->pre.head; r; r = r->next) {
				argv[n] = r->buf;
				argvlen[n++] = r->klen;
				argv[n] = r->buf + r->klen + 1;
				argvlen[n++] = r->ilen;
			}
		}
	}
	if (redis_conn_call(sr->rc, timeout_ms, sreq_reply, q, n, argv, argvlen) < 0)
		return -1;
	sr->stats->roundtrips++;
	return 0;
}

static enum store_verdict
sreq_verdict(const struct sreq *q, long long n)
{
	if (q->kind == SR_RATE)
		return n >= 0 && (unsigned long long)n <= q->limit ? STORE_ALLOW : STORE_DENY;
	/* SR_PEEK: the window's count; room for one more? */
	if (q->kind == SR_PEEK)
		return n >= 0 && (unsigned long long)n < q->limit ? STORE_ALLOW : STORE_DENY;
	/* SR_MAIL: 1 charged with a recipient, 2 without, 0 refused. */
	if (q->kind == SR_MAIL)
		return n == 1 ? STORE_ALLOW : n == 2 ? STORE_ALLOW_NO_RCPT : STORE_DENY;
	/* SR_CONNECT: 1 allowed, 0 rate refused, 2 lease refused; SR_ACQUIRE: 1 or 0. */
	return n == 1 ? STORE_ALLOW : STORE_DENY;
}

static void
sreq_reply(struct redis_conn *c, redisReply *r, void *arg)
{
	struct sreq *q = arg;
	struct store_redis *sr = q->sr;
	enum store_verdict v = STORE_FAIL;

	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
	    !q->retried && !sr->freeing) {
		uint64_t now = timer_now_ms();

		/* Load, then the same EVALSHA right behind it on the same connection. */
		q->retried = 1;
		/* Counted: it is a command this check caused (connect-time loads are not). */
		if (store_script_load(sr, c, &sr->scripts[script_of[q->kind]]))
			sr->stats->roundtrips++;
		if (sreq_send(q, q->deadline_ms > now ? q->deadline_ms - now : 1) == 0)
			return;
	}
	if (r && r->type == REDIS_REPLY_INTEGER) {
		v = sreq_verdict(q, r->integer);
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		uint64_t now = timer_now_ms();

		/* A misconfigured server errs on every check: one line a second. */
		if (now - sr->err_logged_ms >= 1000) {
			log_warn("redis: check failed: %s", r->str);
			sr->err_logged_ms = now;
		}
	}
	sreq_finish(q, v);
}

/*
 * A request for key under zero, one or two key kinds (prefix kind key
 * each; kind_s NULL: no key, kind2_s NULL: one) and argc ARGV strings;
 * linked in pending.
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

	if (nkeys + argc > SREQ_MAX_ARGS)
		return NULL;
	for (int i = 0; i < nkeys; i++)
		size += plen + strlen(kinds[i]) + keylen + 1;
	for (int i = 0; i < argc; i++)
		size += strlen(argv[i]) + 1;
	q = calloc(1, sizeof(*q) + size);
	if (q == NULL)
		return NULL;
	q->sr = sr;
	q->kind = kind;
	q->nkeys = nkeys;
	srel_list_init(&q->pre);
	srel_list_init(&q->post);
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
	q->deadline_ms = timer_now_ms() + sr->timeout_ms;
	q->next = sr->pending;
	if (q->next)
		q->next->pprev = &q->next;
	q->pprev = &sr->pending;
	sr->pending = q;
	return q;
}

/* One key (prefix kind_s key) and up to 3 ARGV strings, the first NULL ending them. */
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

/* Queues q for the end of the turn, carrying the releases made before it. */
static void
sreq_queue(struct store_redis *sr, struct sreq *q)
{
	srel_take(sr, &q->pre);
	q->next_unsent = NULL;
	if (sr->unsent_last)
		sr->unsent_last->next_unsent = q;
	else
		sr->unsent = q;
	sr->unsent_last = q;
}

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
	sreq_queue(sr, q);
}

/* The waiting releases in a request of their own (the turn has none to carry them). */
static void
srel_send_alone(struct store_redis *sr)
{
	struct sreq *q = sreq_newv(sr, SR_RELEASE, NULL, NULL, NULL, NULL, 0);

	if (q == NULL) {
		/* Out of memory: dropped, like a lost ZREM; the leases expire. */
		srel_list_free(&sr->rel);
		return;
	}
	sreq_queue(sr, q);
}

void
store_redis_rate(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		 uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	char kbuf[96], w[24], margin[24];
	struct sreq *q;

	snprintf(kbuf, sizeof(kbuf), "%s:", kind);
	snprintf(w, sizeof(w), "%llu", (unsigned long long)(window_ms ? window_ms : 1));
	snprintf(margin, sizeof(margin), "%d", STORE_RATE_TTL_MARGIN_MS);
	q = sreq_new(sr, SR_RATE, kbuf, key, w, margin, NULL);
	if (q)
		q->limit = limit;
	sreq_start(sr, q, done, owner, token);
}

void
store_redis_peek(struct store_redis *sr, const char *kind, const char *key, unsigned limit,
		 uint64_t window_ms, store_done_fn *done, void *owner, uint64_t token)
{
	char kbuf[96], w[24];
	struct sreq *q;

	snprintf(kbuf, sizeof(kbuf), "%s:", kind);
	snprintf(w, sizeof(w), "%llu", (unsigned long long)(window_ms ? window_ms : 1));
	q = sreq_new(sr, SR_PEEK, kbuf, key, w, NULL, NULL);
	if (q)
		q->limit = limit;
	sreq_start(sr, q, done, owner, token);
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

void
store_redis_lease_release(struct store_redis *sr, const char *key, const char *lease_id)
{
	size_t plen = strlen(sr->prefix), klen = plen + 5 + strlen(key), ilen = strlen(lease_id);
	struct srel *r = malloc(sizeof(*r) + klen + 1 + ilen + 1);

	if (r == NULL)
		return;		/* the lease expires after its ttl */
	r->klen = klen;
	r->ilen = ilen;
	sprintf(r->buf, "%sconc:%s", sr->prefix, key);
	memcpy(r->buf + klen + 1, lease_id, ilen + 1);
	r->next = NULL;
	*sr->rel.tail = r;
	sr->rel.tail = &r->next;
	if (++sr->rel.n >= SREL_MAX)
		srel_send_alone(sr);
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
	/* A failed send answers at once; what its callback queues goes too. */
	while (sr->unsent || sr->rel.head) {
		struct sreq *q;

		if (sr->rel.head) {
			/* Made after the turn's last request: they ride after its work. */
			if (sr->unsent_last && sr->unsent_last->post.n == 0)
				srel_take(sr, &sr->unsent_last->post);
			else
				srel_send_alone(sr);
		}
		q = sr->unsent;
		sr->unsent = sr->unsent_last = NULL;
		while (q) {
			struct sreq *next = q->next_unsent;

			if (sreq_send(q, sr->timeout_ms) < 0)
				sreq_finish(q, STORE_FAIL);
			q = next;
		}
	}
	redis_conn_turn(sr->rc);
}

struct store_redis *
store_redis_new(const struct cfg_redis *cfg, struct ring *r, struct store_stats *stats)
{
	static const char *const src[NSCRIPTS] = { store_lua_rate, store_lua_acquire, store_lua_refresh,
						   store_lua_connect, store_lua_mail, store_lua_release,
						   store_lua_peek };
	struct store_redis *sr = calloc(1, sizeof(*sr));

	if (sr == NULL)
		return NULL;
	sr->stats = stats;
	srel_list_init(&sr->rel);
	sr->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 100;
	sr->prefix = strdup(cfg->key_prefix ? cfg->key_prefix : "mxgate:");
	if (sr->prefix == NULL) {
		free(sr);
		return NULL;
	}
	for (int i = 0; i < NSCRIPTS; i++) {
		sr->scripts[i].src = src[i];
		sr->scripts[i].len = strlen(src[i]);
		sha1_hex(src[i], sr->scripts[i].len, sr->scripts[i].sha);
	}
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
	/* Pending requests complete with NULL inside; no owner hears of it. */
	sr->freeing = 1;
	sr->unsent = sr->unsent_last = NULL;
	srel_list_free(&sr->rel);
	redis_conn_free(sr->rc);
	while (sr->pending)
		sreq_finish(sr->pending, STORE_FAIL);
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
