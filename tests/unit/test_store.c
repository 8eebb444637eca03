/*
 * test_store.c - unit tests of the state store (proxy/store*.c) and the
 * Redis adapter (core/redis.c): the embedded table (exact windows, from
 * two threads too; leases, refresh, expiry; memory reclaimed; the MAIL
 * call with its prepaid recipient), then the Redis store against real
 * redis-server processes this file starts on free 127.0.0.1 ports (exact
 * windows, two instances sharing one limit, the MAIL script, lease
 * expiry after a "crash", releases carried by other requests, NOSCRIPT
 * recovery, timeouts and reconnect when Redis stops and comes back,
 * AUTH, unix socket) and a throughput measurement. The Redis tests are skipped when
 * /usr/bin/redis-server is missing. Every wait is bounded in time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <hiredis/hiredis.h>

#include "store.h"
#include "ring.h"
#include "timer.h"
#include "log.h"
#include "net.h"

#define REDIS_BIN "/usr/bin/redis-server"

/* ---------- helpers ---------- */

static void
sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wall clock ms: Redis' TIME, on the same host, is what the scripts use. */
static uint64_t
real_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleeps until just after the start of a window of w ms on clock now(). */
static void
align_window(uint64_t (*now)(void), uint64_t w)
{
	sleep_ms(w - now() % w + 5);
}

/* Collects verdicts: owner is the waiter, token the index of the check. */
struct waiter {
	unsigned want, got, allow, deny, fail, norcpt;
	enum store_verdict v[64];
	uint64_t first_ms, last_ms;
};

static void
on_done(void *owner, uint64_t token, enum store_verdict v)
{
	struct waiter *w = owner;

	if (token < 64)
		w->v[token] = v;
	w->got++;
	w->allow += v == STORE_ALLOW;
	w->deny += v == STORE_DENY;
	w->fail += v == STORE_FAIL;
	w->norcpt += v == STORE_ALLOW_NO_RCPT;
	w->last_ms = timer_now_ms();
	if (w->got == 1)
		w->first_ms = w->last_ms;
}

static void
waiter_reset(struct waiter *w, unsigned want)
{
	memset(w, 0, sizeof(*w));
	w->want = want;
}

static struct config *
config_embedded(void)
{
	struct config *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	return c;
}

static struct config *
config_redis(const char *addr, const char *password, uint64_t timeout_ms)
{
	struct config *c = calloc(1, sizeof(*c));
	char err[128];

	assert_non_null(c);
	c->redis.enabled = 1;
	assert_int_equal(net_addr_parse(addr, &c->redis.addr, err, sizeof(err)), 0);
	c->redis.password = (char *)password;
	c->redis.key_prefix = (char *)"mxtest:";
	c->redis.timeout_ms = timeout_ms;
	return c;
}

/* ---------- embedded store ---------- */

static void
test_emb_rate_window(void **state)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct store *st;
	struct waiter w;
	struct store_stats ss;

	(void)state;
	assert_non_null(sh);
	st = store_worker_new(sh, NULL);
	assert_non_null(st);
	for (int round = 0; round < 2; round++) {
		align_window(timer_now_ms, 200);
		waiter_reset(&w, 8);
		for (unsigned i = 0; i < 8; i++) {
			store_rate(st, "msg", "192.0.2.1", 5, 200, on_done, &w, i);
			/* Synchronous: answered before store_rate returned. */
			assert_int_equal(w.got, i + 1);
		}
		assert_int_equal(w.allow, 5);
		assert_int_equal(w.deny, 3);
		for (unsigned i = 0; i < 8; i++)
			assert_int_equal(w.v[i], i < 5 ? STORE_ALLOW : STORE_DENY);
		/* Another kind and another client are counted apart. */
		waiter_reset(&w, 2);
		store_rate(st, "rcpt", "192.0.2.1", 1, 200, on_done, &w, 0);
		store_rate(st, "msg", "192.0.2.2", 1, 200, on_done, &w, 1);
		assert_int_equal(w.allow, 2);
	}
	store_stats(st, &ss);
	assert_int_equal(ss.checks, 20);
	assert_int_equal(ss.roundtrips, 0);
	store_worker_free(st);
	store_shared_free(sh);
	free(cfg);
}

/* Peek: room for one more in the current window; counts nothing. */
static void
test_emb_peek(void **state)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct store *st;
	struct waiter w;

	(void)state;
	assert_non_null(sh);
	st = store_worker_new(sh, NULL);
	assert_non_null(st);
	align_window(timer_now_ms, 300);
	waiter_reset(&w, 20);
	for (unsigned i = 0; i < 10; i++)
		store_peek(st, "authf", "192.0.2.9", 3, 300, on_done, &w, i);
	assert_int_equal(w.allow, 10);
	/* Ten peeks charged nothing: the window still admits its three. */
	for (unsigned i = 0; i < 4; i++) {
		store_rate(st, "authf", "192.0.2.9", 3, 300, on_done, &w, 10 + 2 * i);
		store_peek(st, "authf", "192.0.2.9", 3, 300, on_done, &w, 11 + 2 * i);
	}
	assert_int_equal(w.got, 18);
	assert_int_equal(w.v[10], STORE_ALLOW);
	assert_int_equal(w.v[11], STORE_ALLOW);	/* 1 of 3 */
	assert_int_equal(w.v[13], STORE_ALLOW);	/* 2 of 3 */
	assert_int_equal(w.v[14], STORE_ALLOW);	/* the third event */
	assert_int_equal(w.v[15], STORE_DENY);	/* full: no room for a fourth */
	assert_int_equal(w.v[16], STORE_DENY);
	assert_int_equal(w.v[17], STORE_DENY);
	/* Another kind, another client, and the next window are apart. */
	waiter_reset(&w, 3);
	store_peek(st, "msg", "192.0.2.9", 3, 300, on_done, &w, 0);
	store_peek(st, "authf", "192.0.2.10", 3, 300, on_done, &w, 1);
	assert_int_equal(w.allow, 2);
	align_window(timer_now_ms, 300);
	store_peek(st, "authf", "192.0.2.9", 3, 300, on_done, &w, 2);
	assert_int_equal(w.v[2], STORE_ALLOW);
	/* A peek never creates an entry. */
	{
		struct store_emb *e = store_emb_new();

		assert_non_null(e);
		assert_int_equal(store_emb_peek(e, "authf", "192.0.2.11", 1, 300), STORE_ALLOW);
		assert_int_equal(store_emb_entries(e), 0);
		store_emb_free(e);
	}
	store_worker_free(st);
	store_shared_free(sh);
	free(cfg);
}

/*
 * Two threads, each with its own worker store, charging one client at
 * once: store_rate ("conn", limit 1000) or store_mail (1000 messages, 600
 * prepaid recipients, with other clients in between so both threads take
 * many pairs of shard locks). Hour-long windows; run again if one turned
 * during the run.
 */
struct hammer {
	struct store *st;
	int mail;
	unsigned n, allowed, prepaid;
};

static void
hammer_done(void *owner, uint64_t token, enum store_verdict v)
{
	struct hammer *h = owner;

	(void)token;
	if (h == NULL)
		return;		/* the other clients' calls */
	h->allowed += v == STORE_ALLOW || v == STORE_ALLOW_NO_RCPT;
	h->prepaid += v == STORE_ALLOW;
}

static void *
hammer_main(void *arg)
{
	struct hammer *h = arg;
	char key[32];

	for (unsigned i = 0; i < h->n; i++) {
		if (!h->mail) {
			store_rate(h->st, "conn", "198.51.100.7", 1000, 3600 * 1000, hammer_done, h, i);
			continue;
		}
		store_mail(h->st, "198.51.100.8", 1000, 3600 * 1000, 600, 3600 * 1000, hammer_done, h, i);
		snprintf(key, sizeof(key), "10.9.%u.%u", (i / 256) % 256, i % 256);
		store_mail(h->st, key, 1000, 3600 * 1000, 600, 3600 * 1000, hammer_done, NULL, i);
	}
	return NULL;
}

/* Runs the two threads of n calls each; returns the calls allowed (and prepaid) over both. */
static unsigned
hammer_run(int mail, unsigned n, unsigned *prepaid)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct hammer h[2];
	pthread_t t[2];
	uint64_t w0;

	assert_non_null(sh);
	for (int attempt = 0; attempt < 2; attempt++) {
		w0 = timer_now_ms() / (3600 * 1000);
		for (int i = 0; i < 2; i++) {
			h[i] = (struct hammer){ .st = store_worker_new(sh, NULL), .mail = mail, .n = n };
			assert_non_null(h[i].st);
			assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
		}
		for (int i = 0; i < 2; i++) {
			pthread_join(t[i], NULL);
			store_worker_free(h[i].st);
		}
		if (timer_now_ms() / (3600 * 1000) == w0)
			break;
	}
	store_shared_free(sh);
	free(cfg);
	*prepaid = h[0].prepaid + h[1].prepaid;
	return h[0].allowed + h[1].allowed;
}

static void
test_emb_rate_threads(void **state)
{
	unsigned prepaid;

	(void)state;
	/* Exactly the limit over both threads, never limit + 1. */
	assert_int_equal(hammer_run(0, 20000, &prepaid), 1000);
}

static enum store_verdict
emb_acquire(struct store *st, const char *id, unsigned limit, uint64_t ttl)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_lease_acquire(st, "203.0.113.9", id, limit, ttl, on_done, &w, 0);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static enum store_verdict
emb_acquire_key(struct store *st, const char *key, const char *id, unsigned limit)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_lease_acquire(st, key, id, limit, 60000, on_done, &w, 0);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static enum store_verdict
emb_connect(struct store *st, const char *key, unsigned rate, const char *id, unsigned conc)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_connect(st, key, rate, 60000, id, conc, 60000, on_done, &w, 0);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

/* store_connect: the rate counts every attempt, the lease only follows an allowed rate. */
static void
test_emb_connect(void **state)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct store *st = store_worker_new(sh, NULL);
	struct store_stats ss;

	(void)state;
	/* ALLOW takes exactly one lease: the other slot is still free, then none. */
	assert_int_equal(emb_connect(st, "198.51.100.1", 10, "a", 2), STORE_ALLOW);
	assert_int_equal(emb_acquire_key(st, "198.51.100.1", "probe", 2), STORE_ALLOW);
	assert_int_equal(emb_acquire_key(st, "198.51.100.1", "probe2", 2), STORE_DENY);
	store_lease_release(st, "198.51.100.1", "probe");
	/* Lease exhaustion denies and still counts the attempt (rate 2 of 3 used). */
	assert_int_equal(emb_connect(st, "198.51.100.1", 3, "b", 1), STORE_DENY);
	assert_int_equal(emb_connect(st, "198.51.100.1", 3, NULL, 0), STORE_ALLOW);	/* 3rd */
	assert_int_equal(emb_connect(st, "198.51.100.1", 3, NULL, 0), STORE_DENY);	/* 4th */
	/* The refused "b" holds nothing: releasing "a" frees the only slot. */
	store_lease_release(st, "198.51.100.1", "a");
	assert_int_equal(emb_acquire_key(st, "198.51.100.1", "c", 1), STORE_ALLOW);
	store_lease_release(st, "198.51.100.1", "c");

	/* Rate exhaustion denies without taking a lease. */
	assert_int_equal(emb_connect(st, "198.51.100.2", 2, "x1", 5), STORE_ALLOW);
	assert_int_equal(emb_connect(st, "198.51.100.2", 2, "x2", 5), STORE_ALLOW);
	assert_int_equal(emb_connect(st, "198.51.100.2", 2, "x3", 5), STORE_DENY);
	assert_int_equal(emb_connect(st, "198.51.100.2", 2, "x4", 5), STORE_DENY);
	/* Two leases held (x1, x2): three more fit in five, not four. */
	assert_int_equal(emb_acquire_key(st, "198.51.100.2", "p1", 5), STORE_ALLOW);
	assert_int_equal(emb_acquire_key(st, "198.51.100.2", "p2", 5), STORE_ALLOW);
	assert_int_equal(emb_acquire_key(st, "198.51.100.2", "p3", 5), STORE_ALLOW);
	assert_int_equal(emb_acquire_key(st, "198.51.100.2", "p4", 5), STORE_DENY);

	/* No rate check, no lease: allowed, nothing counted. */
	assert_int_equal(emb_connect(st, "198.51.100.3", 0, NULL, 0), STORE_ALLOW);
	/* Same counter as store_rate(st, "conn", ...). */
	{
		struct waiter w;

		waiter_reset(&w, 1);
		store_rate(st, "conn", "198.51.100.3", 1, 60000, on_done, &w, 0);
		assert_int_equal(w.v[0], STORE_ALLOW);
		assert_int_equal(emb_connect(st, "198.51.100.3", 1, NULL, 0), STORE_DENY);
	}
	store_stats(st, &ss);
	assert_int_equal(ss.roundtrips, 0);
	assert_int_equal(ss.failures, 0);
	store_worker_free(st);
	store_shared_free(sh);
	free(cfg);
}

static enum store_verdict
emb_mail(struct store *st, const char *key, unsigned ml, unsigned rl)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_mail(st, key, ml, 60000, rl, 60000, on_done, &w, 0);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static enum store_verdict
emb_rate(struct store *st, const char *kind, const char *key, unsigned limit)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_rate(st, kind, key, limit, 60000, on_done, &w, 0);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

/*
 * store_mail: the message and one prepaid recipient, on the counters
 * store_rate uses; a full message window charges nothing, a full
 * recipient window charges the message only.
 */
static void
test_emb_mail(void **state)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct store *st = store_worker_new(sh, NULL);
	struct waiter w;

	(void)state;
	/* Windows are 60 s: stay clear of a boundary for the counts below. */
	if (60000 - timer_now_ms() % 60000 < 5000)
		align_window(timer_now_ms, 60000);
	/* 3 messages, each with its recipient paid: then refused. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(emb_mail(st, "192.0.2.30", 3, 5), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.30", 3, 5), STORE_DENY);
	assert_int_equal(emb_mail(st, "192.0.2.30", 3, 5), STORE_DENY);
	/* The refusals charged nothing: the message counter is at 3, not 5. */
	assert_int_equal(emb_rate(st, "msg", "192.0.2.30", 4), STORE_ALLOW);
	assert_int_equal(emb_rate(st, "msg", "192.0.2.30", 4), STORE_DENY);
	/* 3 recipients of 5 paid in advance: 2 more pass the RCPT check, not 3. */
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.30", 5), STORE_ALLOW);
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.30", 5), STORE_ALLOW);
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.30", 5), STORE_DENY);

	/* Recipient window full: the message still goes, no recipient is paid. */
	assert_int_equal(emb_mail(st, "192.0.2.31", 10, 2), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.31", 10, 2), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.31", 10, 2), STORE_ALLOW_NO_RCPT);
	assert_int_equal(emb_mail(st, "192.0.2.31", 10, 2), STORE_ALLOW_NO_RCPT);
	/* The RCPT check then refuses; recipients charged: 2, messages: 4. */
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.31", 2), STORE_DENY);
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.32", 2), STORE_ALLOW);	/* another client */
	assert_int_equal(emb_rate(st, "msg", "192.0.2.31", 5), STORE_ALLOW);
	assert_int_equal(emb_rate(st, "msg", "192.0.2.31", 5), STORE_DENY);

	/* Recipients counted by RCPT checks count against the prepayment. */
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.33", 2), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.33", 0, 2), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.33", 0, 2), STORE_ALLOW_NO_RCPT);
	/* A limit not asked for is not charged. */
	assert_int_equal(emb_mail(st, "192.0.2.34", 1, 0), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.34", 1, 0), STORE_DENY);
	assert_int_equal(emb_rate(st, "rcpt", "192.0.2.34", 1), STORE_ALLOW);
	assert_int_equal(emb_mail(st, "192.0.2.35", 0, 0), STORE_ALLOW);

	/* Fixed windows: exact again in the next one. */
	for (int round = 0; round < 2; round++) {
		align_window(timer_now_ms, 200);
		waiter_reset(&w, 6);
		for (unsigned i = 0; i < 6; i++)
			store_mail(st, "192.0.2.36", 4, 200, 2, 200, on_done, &w, i);
		assert_int_equal(w.allow, 2);
		assert_int_equal(w.norcpt, 2);
		assert_int_equal(w.deny, 2);
		for (unsigned i = 0; i < 6; i++)
			assert_int_equal(w.v[i], i < 2 ? STORE_ALLOW : i < 4 ? STORE_ALLOW_NO_RCPT : STORE_DENY);
	}
	store_worker_free(st);
	store_shared_free(sh);
	free(cfg);
}

/* Two threads on one client: exactly 1000 messages and 600 prepaid recipients, no deadlock. */
static void
test_emb_mail_threads(void **state)
{
	unsigned prepaid;

	(void)state;
	assert_int_equal(hammer_run(1, 5000, &prepaid), 1000);
	assert_int_equal(prepaid, 600);
}

static void
test_emb_leases(void **state)
{
	struct config *cfg = config_embedded();
	char err[128];
	struct store_shared *sh = store_shared_new(cfg, err, sizeof(err));
	struct store *st = store_worker_new(sh, NULL);
	uint64_t t0;

	(void)state;
	assert_int_equal(emb_acquire(st, "a", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "b", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "c", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "d", 3, 300), STORE_DENY);
	/* Holding a lease already is not a second slot. */
	assert_int_equal(emb_acquire(st, "a", 3, 300), STORE_ALLOW);
	store_lease_release(st, "203.0.113.9", "b");
	assert_int_equal(emb_acquire(st, "d", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "e", 3, 300), STORE_DENY);
	/* Refreshed every ttl/3 for well past ttl: still held. */
	t0 = timer_now_ms();
	while (timer_now_ms() - t0 < 600) {
		sleep_ms(100);
		store_lease_refresh(st, "203.0.113.9", "a", 300);
		store_lease_refresh(st, "203.0.113.9", "c", 300);
		store_lease_refresh(st, "203.0.113.9", "d", 300);
	}
	assert_int_equal(emb_acquire(st, "e", 3, 300), STORE_DENY);
	/* The holder "crashes": no refresh, no release. Slots free after ttl. */
	sleep_ms(350);
	assert_int_equal(emb_acquire(st, "e", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "f", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "g", 3, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "h", 3, 300), STORE_DENY);
	/* A refresh does not revive an expired lease. */
	sleep_ms(350);
	store_lease_refresh(st, "203.0.113.9", "e", 300);
	assert_int_equal(emb_acquire(st, "x", 1, 300), STORE_ALLOW);
	assert_int_equal(emb_acquire(st, "y", 1, 300), STORE_DENY);
	store_worker_free(st);
	store_shared_free(sh);
	free(cfg);
}

static void
test_emb_memory_bounded(void **state)
{
	struct store_emb *e = store_emb_new();
	uint64_t t0 = timer_now_ms(), took;
	char key[32];

	(void)state;
	assert_non_null(e);
	/*
	 * A second to live: under ASan on a busy machine the 5,000 rounds
	 * took over the 100 ms they once had, and the sweep began early.
	 */
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "10.0.%u.%u", i / 256, i % 256);
		assert_int_equal(store_emb_rate(e, "conn", key, 10, 1000), STORE_ALLOW);
		store_emb_lease_acquire(e, key, "l1", 10, 1000);
	}
	took = timer_now_ms() - t0;
	if (took < 1000)
		assert_true(store_emb_entries(e) >= 10000);
	sleep_ms(took < 1000 ? 1150 - took : 150);
	/*
	 * Only new keys are touched: the old ones go by the sweep alone, which
	 * runs in the shards these calls land in. 100 rounds of the 1,000 keys
	 * give even a shard that holds one of them 100 calls, 200 buckets swept,
	 * more than its 128 (20 rounds left a shard with 3 keys short: flaky).
	 */
	for (unsigned round = 0; round < 100; round++) {
		for (unsigned i = 0; i < 1000; i++) {
			snprintf(key, sizeof(key), "172.16.%u.%u", i / 256, i % 256);
			store_emb_rate(e, "msg", key, 1000, 60000);
		}
	}
	assert_true(store_emb_entries(e) <= 1000 + 64);
	store_emb_free(e);
}

/* ---------- redis-server processes ---------- */

static int have_redis;
static pid_t redis_pid = -1;
static int redis_port;
static char redis_addr[64];

static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Connects once to port (TCP) or path (unix); 0 when something listens. */
static int
probe(int port, const char *path)
{
	int fd, ret;

	if (path) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ret = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		ret = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	}
	close(fd);
	return ret;
}

/* Starts redis-server (port, or unix socket path with port 0); waits up to 5 s for it. */
static pid_t
redis_start(int port, const char *password, const char *unix_path)
{
	char portbuf[16];
	const char *argv[20];
	int n = 0;
	pid_t pid;

	snprintf(portbuf, sizeof(portbuf), "%d", port);
	argv[n++] = REDIS_BIN;
	argv[n++] = "--port";
	argv[n++] = portbuf;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	argv[n++] = "--daemonize";
	argv[n++] = "no";
	if (password) {
		argv[n++] = "--requirepass";
		argv[n++] = password;
	}
	if (unix_path) {
		argv[n++] = "--unixsocket";
		argv[n++] = unix_path;
		argv[n++] = "--unixsocketperm";
		argv[n++] = "700";
	}
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		/* Dies with the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execv(REDIS_BIN, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		if (probe(port, unix_path) == 0)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fail_msg("redis-server exited at start");
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	fail_msg("redis-server did not listen within 5 s");
	return -1;
}

static void
redis_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A synchronous side channel for the test itself (never used by mxgate). */
static redisReply *
redis_sync(const char *cmd)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	redisReply *r;

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	r = redisCommand(c, cmd);
	redisFree(c);
	assert_non_null(r);
	return r;
}

static long long
redis_evalsha_calls(void)
{
	redisReply *r = redis_sync("INFO commandstats");
	const char *p = strstr(r->str, "cmdstat_evalsha:calls=");
	long long n = p ? atoll(p + strlen("cmdstat_evalsha:calls=")) : 0;

	freeReplyObject(r);
	return n;
}

/* CPU seconds used so far by process pid (utime + stime from /proc). */
static double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int
redis_group_setup(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_ERROR);
	have_redis = access(REDIS_BIN, X_OK) == 0;
	if (!have_redis)
		return 0;
	redis_port = free_port();
	snprintf(redis_addr, sizeof(redis_addr), "127.0.0.1:%d", redis_port);
	redis_pid = redis_start(redis_port, NULL, NULL);
	return 0;
}

static int
redis_group_teardown(void **state)
{
	(void)state;
	redis_stop(redis_pid);
	redis_pid = -1;
	return 0;
}

/* ---------- driving a ring ---------- */

struct tnode {
	struct ring ring;
	struct config *cfg;
	struct store_shared *sh;
	struct store *st;
};

struct run {
	struct store *st;
	struct waiter *w;
	uint64_t deadline;
};

static void
run_turn(struct ring *r, void *arg)
{
	struct run *run = arg;

	store_worker_turn(run->st);
	if ((run->w && run->w->got >= run->w->want) || timer_now_ms() >= run->deadline)
		r->stop = 1;
}

/* Runs the ring until w has all its answers (w NULL: for max_ms). */
static void
run_until(struct tnode *n, struct waiter *w, uint64_t max_ms)
{
	struct run run = { n->st, w, timer_now_ms() + max_ms };

	/* Flush what the test queued outside the loop, as a worker's turn would. */
	store_worker_turn(n->st);
	if (w && w->got >= w->want)
		return;
	n->ring.stop = 0;
	ring_run(&n->ring, run_turn, &run);
	n->ring.stop = 0;
}

static void
node_init(struct tnode *n, const char *addr, const char *password, uint64_t timeout_ms)
{
	char err[128];

	assert_int_equal(ring_init(&n->ring, 256, 0, 0), 0);
	n->cfg = config_redis(addr, password, timeout_ms);
	n->sh = store_shared_new(n->cfg, err, sizeof(err));
	assert_non_null(n->sh);
	n->st = store_worker_new(n->sh, &n->ring);
	assert_non_null(n->st);
}

static void
node_free(struct tnode *n)
{
	store_worker_free(n->st);
	store_shared_free(n->sh);
	ring_destroy(&n->ring);
	free(n->cfg);
}

/* One check, answered within max_ms; returns its verdict. */
static enum store_verdict
node_rate(struct tnode *n, const char *kind, const char *key, unsigned limit, uint64_t window_ms,
	  uint64_t max_ms)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_rate(n->st, kind, key, limit, window_ms, on_done, &w, 0);
	run_until(n, &w, max_ms);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static enum store_verdict
node_acquire(struct tnode *n, const char *key, const char *id, unsigned limit, uint64_t ttl)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_lease_acquire(n->st, key, id, limit, ttl, on_done, &w, 0);
	run_until(n, &w, 2000);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static enum store_verdict
node_connect(struct tnode *n, const char *key, unsigned rate, const char *id, unsigned conc)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_connect(n->st, key, rate, 60000, id, conc, 60000, on_done, &w, 0);
	run_until(n, &w, 2000);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

static long long
redis_int(const char *cmd)
{
	redisReply *r = redis_sync(cmd);
	long long v;

	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* The connect rate counter of key in the current 60 s window (0 if none). */
static long long
redis_conn_count(const char *key)
{
	redisReply *r;
	char cmd[160];
	long long v = 0;

	snprintf(cmd, sizeof(cmd), "KEYS mxtest:conn:%s:*", key);
	r = redis_sync(cmd);
	assert_non_null(r);
	assert_true(r->elements <= 1);
	if (r->elements == 1) {
		redisReply *g, *t;

		snprintf(cmd, sizeof(cmd), "GET %s", r->element[0]->str);
		g = redis_sync(cmd);
		v = atoll(g->str);
		freeReplyObject(g);
		snprintf(cmd, sizeof(cmd), "PTTL %s", r->element[0]->str);
		t = redis_sync(cmd);
		assert_true(t->integer > 0 && t->integer <= 61000);
		freeReplyObject(t);
	}
	freeReplyObject(r);
	return v;
}

/* Waits (bounded) until the node answers a check other than FAIL. */
static void
node_ready(struct tnode *n)
{
	for (int i = 0; i < 100; i++) {
		if (node_rate(n, "ready", "probe", 1000000, 60000, 1000) != STORE_FAIL)
			return;
		run_until(n, NULL, 100);
	}
	fail_msg("store never became ready");
}

/* ---------- Redis store ---------- */

static void
test_redis_rate_exact(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats s0, s1;
	long long e0, e1;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 500);
	node_ready(&n);
	for (int round = 0; round < 2; round++) {
		align_window(real_ms, 500);
		store_stats(n.st, &s0);
		e0 = redis_evalsha_calls();
		waiter_reset(&w, 15);
		/* One turn: 15 checks in one call (one EVALSHA, one round trip). */
		for (unsigned i = 0; i < 15; i++)
			store_rate(n.st, "msg", "192.0.2.50", 10, 500, on_done, &w, i);
		run_until(&n, &w, 2000);
		assert_int_equal(w.got, 15);
		assert_int_equal(w.allow, 10);
		assert_int_equal(w.deny, 5);
		for (unsigned i = 0; i < 15; i++)
			assert_int_equal(w.v[i], i < 10 ? STORE_ALLOW : STORE_DENY);
		store_stats(n.st, &s1);
		e1 = redis_evalsha_calls();
		/* One round trip for the turn, seen by both ends. */
		assert_int_equal(s1.checks - s0.checks, 15);
		assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
		assert_int_equal(e1 - e0, 1);
	}
	/* Every key written has a TTL. */
	{
		redisReply *keys = redis_sync("KEYS mxtest:msg:192.0.2.50:*");

		assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
		assert_true(keys->elements >= 1);
		for (size_t i = 0; i < keys->elements; i++) {
			char cmd[160];
			redisReply *ttl;

			snprintf(cmd, sizeof(cmd), "PTTL %s", keys->element[i]->str);
			ttl = redis_sync(cmd);
			assert_true(ttl->integer > 0 && ttl->integer <= 1500);
			freeReplyObject(ttl);
		}
		freeReplyObject(keys);
	}
	node_free(&n);
}

/* Peek: the same window as the rate operation, read only. */
static void
test_redis_peek(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats s0, s1;
	long long e0, e1;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 1000);
	node_ready(&n);
	align_window(real_ms, 1000);
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();
	waiter_reset(&w, 5);
	for (unsigned i = 0; i < 5; i++)
		store_peek(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, i);
	run_until(&n, &w, 2000);
	assert_int_equal(w.allow, 5);
	/* Nothing written by a peek. */
	assert_int_equal(redis_int("EXISTS mxtest:authf:192.0.2.91"), 0);
	{
		redisReply *keys = redis_sync("KEYS mxtest:authf:192.0.2.91*");

		assert_int_equal(keys->elements, 0);
		freeReplyObject(keys);
	}
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);	/* one turn, one call */
	assert_int_equal(e1 - e0, 1);
	/* Interleaved in one turn, in order: room after the first event, none after the second. */
	waiter_reset(&w, 5);
	store_rate(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 0);
	store_peek(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 1);
	store_rate(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 2);
	store_peek(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 3);
	store_peek(n.st, "authf", "192.0.2.92", 2, 1000, on_done, &w, 4);
	run_until(&n, &w, 2000);
	assert_int_equal(w.got, 5);
	assert_int_equal(w.v[0], STORE_ALLOW);
	assert_int_equal(w.v[1], STORE_ALLOW);
	assert_int_equal(w.v[2], STORE_ALLOW);
	assert_int_equal(w.v[3], STORE_DENY);
	assert_int_equal(w.v[4], STORE_ALLOW);
	/* The next window has room again. */
	align_window(real_ms, 1000);
	waiter_reset(&w, 1);
	store_peek(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	/* A peek after SCRIPT FLUSH loads its script again. */
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	waiter_reset(&w, 1);
	store_peek(n.st, "authf", "192.0.2.91", 2, 1000, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	node_free(&n);
}

/* Two instances: each its own ring, store and connection, in its own thread. */
struct inst {
	pthread_t t;
	const char *key;
	unsigned n;
	int mail;		/* store_mail (message + prepaid recipient) instead of store_rate */
	pthread_barrier_t *start;	/* both connected before either sends */
	struct waiter w;
};

static void *
inst_main(void *arg)
{
	struct inst *in = arg;
	struct tnode n;

	node_init(&n, redis_addr, NULL, 2000);
	node_ready(&n);
	waiter_reset(&in->w, in->n);
	pthread_barrier_wait(in->start);
	for (unsigned i = 0; i < in->n; i += 50) {
		/* Batches of 50 per turn, interleaving with the other instance. */
		for (unsigned j = 0; j < 50; j++) {
			if (in->mail)
				store_mail(n.st, in->key, 200, 60000, 120, 60000, on_done, &in->w, 64);
			else
				store_rate(n.st, "conn", in->key, 200, 60000, on_done, &in->w, 64);
		}
		run_until(&n, NULL, 1);
	}
	run_until(&n, &in->w, 5000);
	node_free(&n);
	return NULL;
}

/*
 * Two instances (threads, each with its own ring and Redis connection)
 * send 300 checks each against one key, in one 60 s window: retried once
 * with a fresh key should the window turn over mid-run. They start
 * together, so that neither can use up the window before the other has
 * connected (which made "both got some" fail now and then under ASan).
 */
static const char *
run_two_instances(struct inst in[2], int mail, int key_base)
{
	static char key[32];
	pthread_barrier_t start;
	uint64_t w0;

	for (int attempt = 0; attempt < 2; attempt++) {
		assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
		snprintf(key, sizeof(key), "198.51.100.%d", key_base + attempt);
		w0 = real_ms() / 60000;
		for (int i = 0; i < 2; i++) {
			memset(&in[i], 0, sizeof(in[i]));
			in[i].key = key;
			in[i].n = 300;
			in[i].mail = mail;
			in[i].start = &start;
			assert_int_equal(pthread_create(&in[i].t, NULL, inst_main, &in[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(in[i].t, NULL);
		pthread_barrier_destroy(&start);
		if (real_ms() / 60000 == w0)
			break;
	}
	assert_int_equal(in[0].w.got + in[1].w.got, 600);
	assert_int_equal(in[0].w.fail + in[1].w.fail, 0);
	return key;
}

static void
test_redis_two_instances(void **state)
{
	struct inst in[2];

	(void)state;
	if (!have_redis)
		skip();
	run_two_instances(in, 0, 20);
	/* 600 attempts, one combined limit of 200. */
	assert_int_equal(in[0].w.allow + in[1].w.allow, 200);
	assert_true(in[0].w.allow > 0 && in[1].w.allow > 0);
}

static void
test_redis_leases(void **state)
{
	struct tnode a, b;
	uint64_t t0;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&a, redis_addr, NULL, 500);
	node_init(&b, redis_addr, NULL, 500);
	node_ready(&a);
	node_ready(&b);
	/* Instance A takes every slot, then is "killed": no refresh, no release. */
	t0 = timer_now_ms();
	assert_int_equal(node_acquire(&a, "203.0.113.1", "a1", 3, 500), STORE_ALLOW);
	assert_int_equal(node_acquire(&a, "203.0.113.1", "a2", 3, 500), STORE_ALLOW);
	assert_int_equal(node_acquire(&a, "203.0.113.1", "a3", 3, 500), STORE_ALLOW);
	node_free(&a);
	assert_int_equal(node_acquire(&b, "203.0.113.1", "b1", 3, 500), STORE_DENY);
	run_until(&b, NULL, 200);
	assert_int_equal(node_acquire(&b, "203.0.113.1", "b1", 3, 500), STORE_DENY);
	while (timer_now_ms() - t0 < 600)
		run_until(&b, NULL, 50);
	assert_int_equal(node_acquire(&b, "203.0.113.1", "b1", 3, 500), STORE_ALLOW);

	/* Refreshed leases hold past their ttl; release frees a slot at once. */
	node_init(&a, redis_addr, NULL, 500);
	node_ready(&a);
	assert_int_equal(node_acquire(&a, "203.0.113.2", "a1", 2, 400), STORE_ALLOW);
	assert_int_equal(node_acquire(&a, "203.0.113.2", "a2", 2, 400), STORE_ALLOW);
	t0 = timer_now_ms();
	while (timer_now_ms() - t0 < 1000) {
		store_lease_refresh(a.st, "203.0.113.2", "a1", 400);
		store_lease_refresh(a.st, "203.0.113.2", "a2", 400);
		run_until(&a, NULL, 130);
	}
	assert_int_equal(node_acquire(&b, "203.0.113.2", "b1", 2, 400), STORE_DENY);
	store_lease_release(a.st, "203.0.113.2", "a2");
	run_until(&a, NULL, 50);
	assert_int_equal(node_acquire(&b, "203.0.113.2", "b1", 2, 400), STORE_ALLOW);
	{
		redisReply *r = redis_sync("PTTL mxtest:conc:203.0.113.2");

		assert_true(r->integer > 0 && r->integer <= 400);
		freeReplyObject(r);
	}
	node_free(&a);
	node_free(&b);
}

/* store_connect on Redis: same semantics as embedded, one EVALSHA per call. */
static void
test_redis_connect(void **state)
{
	struct tnode n;
	struct store_stats s0, s1;
	struct waiter w;
	long long e0, e1;
	uint64_t t0;

	(void)state;
	if (!have_redis)
		skip();
	/* Windows are 60 s: stay clear of a boundary for the counts below. */
	if (60000 - real_ms() % 60000 < 5000)
		align_window(real_ms, 60000);
	node_init(&n, redis_addr, NULL, 1000);
	node_ready(&n);
	freeReplyObject(redis_sync("DEL mxtest:conc:198.51.100.11 mxtest:conc:198.51.100.12"));
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();

	/* ALLOW takes exactly one lease. */
	assert_int_equal(node_connect(&n, "198.51.100.11", 10, "a", 2), STORE_ALLOW);
	assert_int_equal(redis_int("ZCARD mxtest:conc:198.51.100.11"), 1);
	{
		long long ttl = redis_int("PTTL mxtest:conc:198.51.100.11");

		assert_true(ttl > 0 && ttl <= 60000);
	}
	assert_int_equal(node_connect(&n, "198.51.100.11", 10, "b", 2), STORE_ALLOW);
	/* Lease exhaustion denies and still counts the attempt. */
	assert_int_equal(node_connect(&n, "198.51.100.11", 10, "c", 2), STORE_DENY);
	assert_int_equal(redis_int("ZCARD mxtest:conc:198.51.100.11"), 2);
	assert_int_equal(redis_conn_count("198.51.100.11"), 3);

	/* Rate exhaustion denies without taking a lease (and counts). */
	assert_int_equal(node_connect(&n, "198.51.100.12", 2, "x1", 5), STORE_ALLOW);
	assert_int_equal(node_connect(&n, "198.51.100.12", 2, "x2", 5), STORE_ALLOW);
	assert_int_equal(node_connect(&n, "198.51.100.12", 2, "x3", 5), STORE_DENY);
	assert_int_equal(node_connect(&n, "198.51.100.12", 2, "x4", 5), STORE_DENY);
	assert_int_equal(redis_int("ZCARD mxtest:conc:198.51.100.12"), 2);
	assert_int_equal(redis_conn_count("198.51.100.12"), 4);
	/* Same counter as store_rate(.., "conn", ..). */
	assert_int_equal(node_rate(&n, "conn", "198.51.100.12", 5, 60000, 2000), STORE_ALLOW);
	assert_int_equal(redis_conn_count("198.51.100.12"), 5);

	/* No lease asked: no set; no rate asked: no counter. */
	assert_int_equal(node_connect(&n, "198.51.100.13", 1, NULL, 0), STORE_ALLOW);
	assert_int_equal(redis_int("EXISTS mxtest:conc:198.51.100.13"), 0);
	assert_int_equal(node_connect(&n, "198.51.100.14", 0, "l", 1), STORE_ALLOW);
	assert_int_equal(redis_conn_count("198.51.100.14"), 0);
	assert_int_equal(redis_int("ZCARD mxtest:conc:198.51.100.14"), 1);

	/* One round trip, one EVALSHA per call (9 store_connect above, 1 store_rate). */
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	assert_int_equal(s1.checks - s0.checks, 10);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 10);
	assert_int_equal(e1 - e0, 10);
	assert_int_equal(s1.failures - s0.failures, 0);

	/* 20 in one turn: one call, exactly limit leases. */
	store_stats(n.st, &s0);
	waiter_reset(&w, 20);
	for (unsigned i = 0; i < 20; i++) {
		char id[16];

		snprintf(id, sizeof(id), "p%u", i);
		store_connect(n.st, "198.51.100.15", 15, 60000, id, 4, 60000, on_done, &w, i);
	}
	run_until(&n, &w, 2000);
	store_stats(n.st, &s1);
	assert_int_equal(w.got, 20);
	assert_int_equal(w.allow, 4);
	assert_int_equal(w.deny, 16);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
	assert_int_equal(redis_int("ZCARD mxtest:conc:198.51.100.15"), 4);
	assert_int_equal(redis_conn_count("198.51.100.15"), 20);

	/* NOSCRIPT: loaded again, retried once. */
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	store_stats(n.st, &s0);
	assert_int_equal(node_connect(&n, "198.51.100.16", 5, "n1", 1), STORE_ALLOW);
	store_stats(n.st, &s1);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 3);
	assert_int_equal(node_connect(&n, "198.51.100.16", 5, "n2", 1), STORE_DENY);

	/* Leases taken by store_connect expire like the others. */
	t0 = timer_now_ms();
	waiter_reset(&w, 1);
	store_connect(n.st, "198.51.100.17", 0, 60000, "e1", 1, 300, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	waiter_reset(&w, 1);
	store_connect(n.st, "198.51.100.17", 0, 60000, "e2", 1, 300, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_DENY);
	while (timer_now_ms() - t0 < 400)
		run_until(&n, NULL, 50);
	waiter_reset(&w, 1);
	store_connect(n.st, "198.51.100.17", 0, 60000, "e2", 1, 300, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	node_free(&n);
}

/* The counter of kind for key in the current 60 s window (0 if none); its TTL is checked. */
static long long
redis_kind_count(const char *kind, const char *key)
{
	redisReply *r;
	char cmd[160];
	long long v = 0;

	snprintf(cmd, sizeof(cmd), "KEYS mxtest:%s:%s:*", kind, key);
	r = redis_sync(cmd);
	assert_non_null(r);
	assert_true(r->elements <= 1);
	if (r->elements == 1) {
		redisReply *g, *t;

		snprintf(cmd, sizeof(cmd), "GET %s", r->element[0]->str);
		g = redis_sync(cmd);
		v = atoll(g->str);
		freeReplyObject(g);
		snprintf(cmd, sizeof(cmd), "PTTL %s", r->element[0]->str);
		t = redis_sync(cmd);
		assert_true(t->integer > 0 && t->integer <= 61000);
		freeReplyObject(t);
	}
	freeReplyObject(r);
	return v;
}

static enum store_verdict
node_mail(struct tnode *n, const char *key, unsigned ml, unsigned rl)
{
	struct waiter w;

	waiter_reset(&w, 1);
	store_mail(n->st, key, ml, 60000, rl, 60000, on_done, &w, 0);
	run_until(n, &w, 2000);
	assert_int_equal(w.got, 1);
	return w.v[0];
}

/* The MAIL script: same semantics as the embedded store's, one EVALSHA per call. */
static void
test_redis_mail(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats s0, s1;
	long long e0, e1;

	(void)state;
	if (!have_redis)
		skip();
	if (60000 - real_ms() % 60000 < 5000)
		align_window(real_ms, 60000);
	node_init(&n, redis_addr, NULL, 1000);
	node_ready(&n);
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();

	/* 3 messages with their recipient paid, then refused without a charge. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(node_mail(&n, "192.0.2.130", 3, 5), STORE_ALLOW);
	assert_int_equal(node_mail(&n, "192.0.2.130", 3, 5), STORE_DENY);
	assert_int_equal(node_mail(&n, "192.0.2.130", 3, 5), STORE_DENY);
	assert_int_equal(redis_kind_count("msg", "192.0.2.130"), 3);
	assert_int_equal(redis_kind_count("rcpt", "192.0.2.130"), 3);
	/* The RCPT check shares the counter: 2 more of 5. */
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.130", 5, 60000, 2000), STORE_ALLOW);
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.130", 5, 60000, 2000), STORE_ALLOW);
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.130", 5, 60000, 2000), STORE_DENY);

	/* Recipient window full: message charged, no recipient. */
	assert_int_equal(node_mail(&n, "192.0.2.131", 10, 2), STORE_ALLOW);
	assert_int_equal(node_mail(&n, "192.0.2.131", 10, 2), STORE_ALLOW);
	assert_int_equal(node_mail(&n, "192.0.2.131", 10, 2), STORE_ALLOW_NO_RCPT);
	assert_int_equal(redis_kind_count("msg", "192.0.2.131"), 3);
	assert_int_equal(redis_kind_count("rcpt", "192.0.2.131"), 2);
	/* Limits not asked for: not charged, no key written. */
	assert_int_equal(node_mail(&n, "192.0.2.132", 2, 0), STORE_ALLOW);
	assert_int_equal(redis_kind_count("rcpt", "192.0.2.132"), 0);
	assert_int_equal(node_mail(&n, "192.0.2.133", 0, 2), STORE_ALLOW);
	assert_int_equal(redis_kind_count("msg", "192.0.2.133"), 0);
	assert_int_equal(redis_kind_count("rcpt", "192.0.2.133"), 1);

	/* 10 calls and 3 RCPT checks: one round trip and one EVALSHA each. */
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	assert_int_equal(s1.checks - s0.checks, 13);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 13);
	assert_int_equal(e1 - e0, 13);
	assert_int_equal(s1.failures - s0.failures, 0);

	/* Pipelined in one turn: exact all the same. */
	waiter_reset(&w, 30);
	for (unsigned i = 0; i < 30; i++)
		store_mail(n.st, "192.0.2.134", 20, 60000, 12, 60000, on_done, &w, i);
	run_until(&n, &w, 2000);
	assert_int_equal(w.allow, 12);
	assert_int_equal(w.norcpt, 8);
	assert_int_equal(w.deny, 10);
	for (unsigned i = 0; i < 30; i++)
		assert_int_equal(w.v[i], i < 12 ? STORE_ALLOW : i < 20 ? STORE_ALLOW_NO_RCPT : STORE_DENY);
	assert_int_equal(redis_kind_count("msg", "192.0.2.134"), 20);
	assert_int_equal(redis_kind_count("rcpt", "192.0.2.134"), 12);

	/* NOSCRIPT: loaded again, retried once. */
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	assert_int_equal(node_mail(&n, "192.0.2.135", 1, 1), STORE_ALLOW);
	assert_int_equal(node_mail(&n, "192.0.2.135", 1, 1), STORE_DENY);
	node_free(&n);
}

/* Two instances, each in its own thread, on one client's message and recipient windows. */
static void
test_redis_mail_two_instances(void **state)
{
	struct inst in[2];
	const char *key;

	(void)state;
	if (!have_redis)
		skip();
	key = run_two_instances(in, 1, 40);
	/* 600 MAILs against one 200 messages and 120 recipients: 120 paid, 80 not, 400 refused. */
	assert_int_equal(in[0].w.allow + in[1].w.allow, 120);
	assert_int_equal(in[0].w.norcpt + in[1].w.norcpt, 80);
	assert_int_equal(in[0].w.deny + in[1].w.deny, 400);
	assert_true(in[0].w.allow + in[0].w.norcpt > 0 && in[1].w.allow + in[1].w.norcpt > 0);
	assert_int_equal(redis_kind_count("msg", key), 200);
	assert_int_equal(redis_kind_count("rcpt", key), 120);
}

static long long
redis_zcard(const char *key)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "ZCARD mxtest:conc:%s", key);
	return redis_int(cmd);
}

/*
 * Releases are operations of the turn's call, in their place among its
 * checks; a turn with releases only sends one call for all of them
 * (SBATCH_MAX operations a call).
 */
static void
test_redis_release_carried(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats s0, s1;
	long long e0, e1;
	char id[16];

	(void)state;
	if (!have_redis)
		skip();
	if (60000 - real_ms() % 60000 < 5000)
		align_window(real_ms, 60000);
	node_init(&n, redis_addr, NULL, 1000);
	node_ready(&n);
	freeReplyObject(redis_sync("DEL mxtest:conc:192.0.2.140 mxtest:conc:192.0.2.141 mxtest:conc:192.0.2.142"));
	assert_int_equal(node_acquire(&n, "192.0.2.140", "a1", 2, 60000), STORE_ALLOW);
	assert_int_equal(node_acquire(&n, "192.0.2.140", "a2", 2, 60000), STORE_ALLOW);
	assert_int_equal(node_acquire(&n, "192.0.2.140", "a3", 2, 60000), STORE_DENY);

	/* Release, then two checks: one round trip; the first check sees the slot free. */
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();
	waiter_reset(&w, 2);
	store_lease_release(n.st, "192.0.2.140", "a1");
	store_lease_acquire(n.st, "192.0.2.140", "b1", 2, 60000, on_done, &w, 0);
	store_lease_acquire(n.st, "192.0.2.140", "b2", 2, 60000, on_done, &w, 1);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	assert_int_equal(w.v[1], STORE_DENY);
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
	assert_int_equal(e1 - e0, 1);
	assert_int_equal(redis_zcard("192.0.2.140"), 2);	/* a2, b1 */

	/* A check, then a release: still no command of its own; the release comes after it. */
	store_stats(n.st, &s0);
	waiter_reset(&w, 1);
	store_lease_acquire(n.st, "192.0.2.140", "c1", 2, 60000, on_done, &w, 0);
	store_lease_release(n.st, "192.0.2.140", "a2");
	run_until(&n, &w, 2000);
	run_until(&n, NULL, 50);
	assert_int_equal(w.v[0], STORE_DENY);		/* a2 was still held when c1 asked */
	store_stats(n.st, &s1);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
	assert_int_equal(redis_zcard("192.0.2.140"), 1);	/* b1 */

	/* Acquired and released in the same turn (a client gone before its greeting): nothing left. */
	waiter_reset(&w, 1);
	store_connect(n.st, "192.0.2.141", 0, 60000, "d1", 5, 60000, on_done, &w, 0);
	store_lease_release(n.st, "192.0.2.141", "d1");
	run_until(&n, &w, 2000);
	run_until(&n, NULL, 50);
	assert_int_equal(w.v[0], STORE_ALLOW);
	assert_int_equal(redis_zcard("192.0.2.141"), 0);

	/* Releases alone in their turn: one call for all of them, more calls past SBATCH_MAX. */
	for (unsigned i = 0; i < 73; i++) {
		snprintf(id, sizeof(id), "e%u", i);
		assert_int_equal(node_acquire(&n, "192.0.2.142", id, 100, 60000), STORE_ALLOW);
	}
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();
	for (unsigned i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "e%u", i);
		store_lease_release(n.st, "192.0.2.142", id);
	}
	run_until(&n, NULL, 50);
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
	assert_int_equal(e1 - e0, 1);
	assert_int_equal(redis_zcard("192.0.2.142"), 70);
	/* 70 in one call; then 200 (130 of them unknown ids): 128 and 72. */
	store_stats(n.st, &s0);
	for (unsigned i = 3; i < 73; i++) {
		snprintf(id, sizeof(id), "e%u", i);
		store_lease_release(n.st, "192.0.2.142", id);
	}
	run_until(&n, NULL, 50);
	store_stats(n.st, &s1);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 1);
	assert_int_equal(redis_zcard("192.0.2.142"), 0);
	for (unsigned i = 0; i < 70; i++) {
		snprintf(id, sizeof(id), "g%u", i);
		assert_int_equal(node_acquire(&n, "192.0.2.142", id, 100, 60000), STORE_ALLOW);
	}
	store_stats(n.st, &s0);
	for (unsigned i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "%c%u", i < 130 ? 'x' : 'g', i < 130 ? i : i - 130);
		store_lease_release(n.st, "192.0.2.142", id);
	}
	run_until(&n, NULL, 50);
	store_stats(n.st, &s1);
	assert_int_equal(s1.roundtrips - s0.roundtrips, 2);
	assert_int_equal(redis_zcard("192.0.2.142"), 0);

	/* Carried by a check that meets NOSCRIPT: done when it is retried. */
	assert_int_equal(node_acquire(&n, "192.0.2.142", "f1", 1, 60000), STORE_ALLOW);
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	waiter_reset(&w, 1);
	store_lease_release(n.st, "192.0.2.142", "f1");
	store_rate(n.st, "msg", "192.0.2.142", 10, 60000, on_done, &w, 0);
	run_until(&n, &w, 2000);
	assert_int_equal(w.v[0], STORE_ALLOW);
	assert_int_equal(redis_zcard("192.0.2.142"), 0);
	node_free(&n);
}

static void
test_redis_noscript(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats s0, s1;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 1000);
	node_ready(&n);
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	store_stats(n.st, &s0);
	assert_int_equal(node_rate(&n, "msg", "192.0.2.77", 5, 60000, 2000), STORE_ALLOW);
	store_stats(n.st, &s1);
	/* EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA again. */
	assert_int_equal(s1.roundtrips - s0.roundtrips, 3);
	/* Many checks in flight when the scripts vanish: one reload serves them all. */
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	waiter_reset(&w, 20);
	for (unsigned i = 0; i < 20; i++)
		store_rate(n.st, "msg", "192.0.2.78", 100, 60000, on_done, &w, i);
	run_until(&n, &w, 2000);
	assert_int_equal(w.allow, 20);
	/* Leases too. */
	freeReplyObject(redis_sync("SCRIPT FLUSH"));
	assert_int_equal(node_acquire(&n, "192.0.2.79", "l1", 1, 1000), STORE_ALLOW);
	node_free(&n);
}

/*
 * store_forget: an owner that went away hears nothing. A check that timed
 * out is answered FAIL once; its reply, arriving late, is dropped.
 */
static void
test_redis_forget_and_late_reply(void **state)
{
	struct tnode n;
	struct waiter gone, kept;
	struct store_stats ss;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 100);
	node_ready(&n);
	waiter_reset(&gone, 1);
	waiter_reset(&kept, 1);
	store_rate(n.st, "msg", "192.0.2.80", 10, 60000, on_done, &gone, 0);
	store_rate(n.st, "msg", "192.0.2.80", 10, 60000, on_done, &kept, 0);
	store_forget(n.st, &gone);
	run_until(&n, &kept, 2000);
	run_until(&n, NULL, 100);
	assert_int_equal(kept.got, 1);
	assert_int_equal(kept.v[0], STORE_ALLOW);
	assert_int_equal(gone.got, 0);

	/* Stalled for less than the reconnect threshold, then back. */
	kill(redis_pid, SIGSTOP);
	waiter_reset(&kept, 3);
	for (unsigned i = 0; i < 3; i++)
		store_rate(n.st, "msg", "192.0.2.81", 10, 60000, on_done, &kept, i);
	run_until(&n, &kept, 1000);
	assert_int_equal(kept.fail, 3);
	kill(redis_pid, SIGCONT);
	run_until(&n, NULL, 300);
	/* The late replies reached nobody, and the connection is still the same one. */
	assert_int_equal(kept.got, 3);
	assert_int_equal(node_rate(&n, "msg", "192.0.2.81", 10, 60000, 1000), STORE_ALLOW);
	store_stats(n.st, &ss);
	assert_int_equal(ss.reconnects, 0);
	/* Redis counted the timed-out three too: this was the fourth event. */
	{
		struct waiter w;

		waiter_reset(&w, 7);
		for (unsigned i = 0; i < 7; i++)
			store_rate(n.st, "msg", "192.0.2.81", 10, 60000, on_done, &w, i);
		run_until(&n, &w, 1000);
		assert_int_equal(w.allow, 6);
		assert_int_equal(w.deny, 1);
	}
	node_free(&n);
}

/*
 * More commands than the socket buffers hold while Redis is stopped:
 * hiredis' write comes back short, the adapter waits for POLLOUT, and
 * every check is still answered once Redis runs again.
 */
static void
test_redis_write_backpressure(void **state)
{
	struct tnode n;
	static struct waiter w;
	char key[32];

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 8000);
	node_ready(&n);
	kill(redis_pid, SIGSTOP);
	waiter_reset(&w, 200000);
	for (unsigned i = 0; i < 200000; i++) {
		snprintf(key, sizeof(key), "10.2.%u.%u", (i % 1000) / 256, i % 256);
		store_rate(n.st, "rcpt", key, 1000000, 60000, on_done, &w, 64);
	}
	run_until(&n, NULL, 300);
	assert_int_equal(w.got, 0);
	kill(redis_pid, SIGCONT);
	run_until(&n, &w, 7000);
	assert_int_equal(w.got, 200000);
	assert_int_equal(w.allow, 200000);
	node_free(&n);
}

static void
test_redis_down_and_back(void **state)
{
	struct tnode n;
	struct waiter w;
	struct store_stats ss;
	uint64_t t0;
	int ok = 0;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 100);
	node_ready(&n);

	/* A stalled server (SIGSTOP): pending checks fail by their deadline. */
	kill(redis_pid, SIGSTOP);
	waiter_reset(&w, 5);
	t0 = timer_now_ms();
	for (unsigned i = 0; i < 5; i++)
		store_rate(n.st, "msg", "192.0.2.90", 100, 60000, on_done, &w, i);
	run_until(&n, &w, 2000);
	assert_int_equal(w.fail, 5);
	/* Deadline 100 ms on a 100 ms wheel: answered within 2 ticks + slack. */
	assert_true(w.last_ms - t0 <= 100 + 2 * TIMER_TICK_MS + 50);

	/* Killed: the connection breaks; pending and new checks fail fast. */
	waiter_reset(&w, 3);
	for (unsigned i = 0; i < 3; i++)
		store_rate(n.st, "msg", "192.0.2.90", 100, 60000, on_done, &w, i);
	store_worker_turn(n.st);
	kill(redis_pid, SIGKILL);
	waitpid(redis_pid, NULL, 0);
	redis_pid = -1;
	t0 = timer_now_ms();
	run_until(&n, &w, 2000);
	assert_int_equal(w.fail, 3);
	assert_true(w.last_ms - t0 <= 100 + 2 * TIMER_TICK_MS + 50);
	for (int i = 0; i < 5; i++) {
		t0 = timer_now_ms();
		assert_int_equal(node_rate(&n, "msg", "192.0.2.90", 100, 60000, 1000), STORE_FAIL);
		assert_true(timer_now_ms() - t0 <= 100 + 2 * TIMER_TICK_MS + 50);
		run_until(&n, NULL, 100);
	}

	/* Back on the same port: the same store reconnects by itself. */
	redis_pid = redis_start(redis_port, NULL, NULL);
	t0 = timer_now_ms();
	while (timer_now_ms() - t0 < 10000) {
		if (node_rate(&n, "msg", "192.0.2.91", 100, 60000, 1000) == STORE_ALLOW) {
			ok = 1;
			break;
		}
		run_until(&n, NULL, 100);
	}
	assert_true(ok);
	store_stats(n.st, &ss);
	assert_true(ss.reconnects >= 1);
	assert_true(ss.failures >= 8);
	node_free(&n);
}

static void
test_redis_password(void **state)
{
	struct tnode n;
	int port;
	pid_t pid;
	char addr[64];

	(void)state;
	if (!have_redis)
		skip();
	port = free_port();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	pid = redis_start(port, "s3cret pass", NULL);
	node_init(&n, addr, "s3cret pass", 500);
	node_ready(&n);
	assert_int_equal(node_rate(&n, "msg", "192.0.2.60", 1, 60000, 1000), STORE_ALLOW);
	assert_int_equal(node_rate(&n, "msg", "192.0.2.60", 1, 60000, 1000), STORE_DENY);
	node_free(&n);
	/* A wrong password answers FAIL, never ALLOW/DENY from an unauthenticated link. */
	node_init(&n, addr, "wrong", 500);
	for (int i = 0; i < 3; i++)
		assert_int_equal(node_rate(&n, "msg", "192.0.2.61", 1, 60000, 1000), STORE_FAIL);
	node_free(&n);
	redis_stop(pid);
}

static void
test_redis_unix(void **state)
{
	struct tnode n;
	pid_t pid;
	char path[64], addr[80];

	(void)state;
	if (!have_redis)
		skip();
	snprintf(path, sizeof(path), "/tmp/mxgate-test-redis-%d.sock", (int)getpid());
	unlink(path);
	pid = redis_start(0, NULL, path);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	node_init(&n, addr, NULL, 500);
	node_ready(&n);
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.70", 2, 60000, 1000), STORE_ALLOW);
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.70", 2, 60000, 1000), STORE_ALLOW);
	assert_int_equal(node_rate(&n, "rcpt", "192.0.2.70", 2, 60000, 1000), STORE_DENY);
	node_free(&n);
	redis_stop(pid);
	unlink(path);
}

/*
 * Not a pass/fail test: 10,000 checks issued in one turn (so batched,
 * and the calls pipelined in one write), timed until the last answer;
 * 5 rounds, best reported.
 */
static void
test_redis_throughput(void **state)
{
	struct tnode n;
	static struct waiter w;
	struct store_stats s0, s1;
	double best = 0, cpu0, cpu1, srv0, srv1;
	char key[32];
	long long e0, e1;
	struct rusage ru;

	(void)state;
	if (!have_redis)
		skip();
	node_init(&n, redis_addr, NULL, 2000);
	node_ready(&n);
	store_stats(n.st, &s0);
	e0 = redis_evalsha_calls();
	srv0 = proc_cpu_s(redis_pid);
	getrusage(RUSAGE_THREAD, &ru);
	cpu0 = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
	for (int round = 0; round < 5; round++) {
		uint64_t t0 = timer_now_ms(), t1;

		waiter_reset(&w, 10000);
		for (unsigned i = 0; i < 10000; i++) {
			snprintf(key, sizeof(key), "10.1.%u.%u", (i % 1000) / 256, i % 256);
			store_rate(n.st, "msg", key, 1000000, 60000, on_done, &w, 64);
		}
		run_until(&n, &w, 10000);
		t1 = timer_now_ms();
		assert_int_equal(w.got, 10000);
		assert_int_equal(w.allow, 10000);
		if (t1 > t0 && 10000.0 * 1000 / (double)(t1 - t0) > best)
			best = 10000.0 * 1000 / (double)(t1 - t0);
	}
	srv1 = proc_cpu_s(redis_pid);
	getrusage(RUSAGE_THREAD, &ru);
	cpu1 = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
	       (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
	store_stats(n.st, &s1);
	e1 = redis_evalsha_calls();
	print_message("redis store: CPU per check: client %.2f us (this thread, incl. the test's loop), "
		      "redis-server %.2f us\n", (cpu1 - cpu0) / 50000.0, (srv1 - srv0) * 1e6 / 50000.0);
	/* 10,000 in a turn: calls of SBATCH_MAX (128) checks each. */
	assert_int_equal(s1.roundtrips - s0.roundtrips, 5 * ((10000 + 127) / 128));
	assert_int_equal(e1 - e0, 5 * ((10000 + 127) / 128));
	print_message("redis store: %.0f checks/s (best of 5 x 10k pipelined, one ring), "
		      "%.2f round trips per check (client), %.2f EVALSHA per check (server)\n",
		      best, (double)(s1.roundtrips - s0.roundtrips) / (double)(s1.checks - s0.checks),
		      (double)(e1 - e0) / (double)(s1.checks - s0.checks));
	node_free(&n);
}

int
main(void)
{
	const struct CMUnitTest embedded[] = {
		cmocka_unit_test(test_emb_rate_window),
		cmocka_unit_test(test_emb_rate_threads),
		cmocka_unit_test(test_emb_peek),
		cmocka_unit_test(test_emb_leases),
		cmocka_unit_test(test_emb_connect),
		cmocka_unit_test(test_emb_mail),
		cmocka_unit_test(test_emb_mail_threads),
		cmocka_unit_test(test_emb_memory_bounded),
	};
	const struct CMUnitTest redis[] = {
		cmocka_unit_test(test_redis_rate_exact),
		cmocka_unit_test(test_redis_peek),
		cmocka_unit_test(test_redis_two_instances),
		cmocka_unit_test(test_redis_leases),
		cmocka_unit_test(test_redis_connect),
		cmocka_unit_test(test_redis_mail),
		cmocka_unit_test(test_redis_mail_two_instances),
		cmocka_unit_test(test_redis_release_carried),
		cmocka_unit_test(test_redis_noscript),
		cmocka_unit_test(test_redis_password),
		cmocka_unit_test(test_redis_unix),
		cmocka_unit_test(test_redis_throughput),
		cmocka_unit_test(test_redis_write_backpressure),
		cmocka_unit_test(test_redis_forget_and_late_reply),
		cmocka_unit_test(test_redis_down_and_back),
	};
	int failed;

	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests_name("store_embedded", embedded, NULL, NULL);
	failed += cmocka_run_group_tests_name("store_redis", redis, redis_group_setup, redis_group_teardown);
	return failed ? 1 : 0;
}
