/*
 * worker.c - one worker thread (see worker.h): sets up its ring and its
 * own SO_REUSEPORT listening sockets, accepts into sessions, applies a
 * new config snapshot handed over by main (listeners opened and closed
 * by difference; open sessions keep the snapshot they began with), and
 * drains on stop: listeners close at once, idle sessions get 421, busy
 * ones finish their transaction until drain_timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "backend.h"
#include "log.h"
#include "mem.h"
#include "session.h"
#include "store.h"
#include "worker.h"
#include "offload.h"

#define WORKER_RING_ENTRIES 2048
/*
 * Receive buffers, shared by all sessions of the worker. Larger ones mean
 * fewer receives and fewer, larger sends to the backend: 128 KiB against
 * 32 KiB cost 17 % less CPU per 100 KB message and 10-25 % less per 1 MB
 * one, side by side (2026-11-29), once the backend links do not use BBR
 * (see CFG_CONGESTION_DEFAULT): under its pacing the larger sends cost
 * twice as much at 1 MB. pbuf.c hands the kernel only as many as a turn
 * needs, the hottest first, so a quiet worker keeps to a few. Overridable
 * for experiments.
 */
#ifndef WORKER_PBUFS
#define WORKER_PBUFS 256
#endif
#ifndef WORKER_PBUF_SIZE
#define WORKER_PBUF_SIZE (128 * 1024)
#endif
#define WORKER_BACKLOG 4096
#define DRAIN_GRACE_MS 2000
/* At start, the longest wait for the backends' EHLO before listening. */
#define SETTLE_MAX_MS 1000

static void worker_ev_arm(struct worker *w);

void
worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->evfd, &one, sizeof(one)) < 0)
		log_warn("worker %u: wake: %s", w->id, strerror(errno));
}

void
worker_session_add(struct worker *w, struct session *s)
{
	LIST_INSERT_HEAD(&w->sessions, s, entry);
	w->nsessions++;
}

void
worker_session_del(struct worker *w, struct session *s)
{
	LIST_REMOVE(s, entry);
	w->nsessions--;
}

void
worker_txn_id(struct worker *w, char buf[static WORKER_TXN_ID_SIZE])
{
	/* "%08X%02X%06X" of prefix, worker, counter, by hand: one per message. */
	static const char hex[] = "0123456789ABCDEF";
	uint64_t v = ((uint64_t)w->id_prefix << 32) | ((uint64_t)(w->id & 0xff) << 24) |
		     (++w->txn_counter & 0xffffff);

	for (int i = WORKER_TXN_ID_SIZE - 2; i >= 0; i--, v >>= 4)
		buf[i] = hex[v & 0xf];
	buf[WORKER_TXN_ID_SIZE - 1] = '\0';
}

static const struct cfg_listener *
listener_for(const struct config *cfg, const struct net_addr *a)
{
	for (unsigned i = 0; i < cfg->nlisteners; i++)
		for (unsigned j = 0; j < cfg->listeners[i].naddrs; j++)
			if (net_addr_equal(&cfg->listeners[i].addrs[j], a))
				return &cfg->listeners[i];
	return NULL;
}

static void
on_accept(struct acceptor *a, int fd, const struct net_addr *peer)
{
	struct wlistener *wl = a->owner;
	struct worker *w = wl->worker;
	const struct cfg_listener *lst = listener_for(w->cfg, &wl->addr);

	if (lst == NULL || w->stopping) {
		close(fd);
		return;
	}
	session_new(w, fd, peer, w->cfg, lst);
}

static void
on_listener_stopped(struct acceptor *a)
{
	struct wlistener *wl = a->owner;
	struct worker *w = wl->worker;
	struct wlistener **pp;

	for (pp = &w->listeners; *pp; pp = &(*pp)->next) {
		if (*pp == wl) {
			*pp = wl->next;
			break;
		}
	}
	w->nlisteners_open--;
	free(wl);
}

/* Opens what cfg lists and this worker lacks; stops what it no longer lists. */
static int
worker_listeners_sync(struct worker *w, char *err, size_t errlen)
{
	const struct config *cfg = w->cfg;
	struct wlistener *wl;

	for (wl = w->listeners; wl; wl = wl->next)
		if (!wl->stopped && (w->stopping || listener_for(cfg, &wl->addr) == NULL)) {
			wl->stopped = 1;
			acceptor_stop(&wl->acc);
		}
	if (w->stopping)
		return 0;
	for (unsigned i = 0; i < cfg->nlisteners; i++) {
		for (unsigned j = 0; j < cfg->listeners[i].naddrs; j++) {
			const struct net_addr *addr = &cfg->listeners[i].addrs[j];
			int fd, found = 0;

			for (wl = w->listeners; wl && !found; wl = wl->next)
				found = !wl->stopped && net_addr_equal(&wl->addr, addr);
			if (found)
				continue;
			fd = net_listen(addr, WORKER_BACKLOG, 1, err, errlen);
			if (fd < 0)
				return -1;
			wl = xcalloc(1, sizeof(*wl));
			wl->addr = *addr;
			wl->worker = w;
			wl->acc.on_stopped = on_listener_stopped;
			wl->next = w->listeners;
			w->listeners = wl;
			w->nlisteners_open++;
			acceptor_start(&wl->acc, &w->ring, fd, on_accept, wl);
		}
	}
	return 0;
}

static void
worker_pools_sync(struct worker *w)
{
	for (unsigned i = 0; i < w->cfg->nbackends; i++) {
		struct bpool *p = bpool_get(w, &w->cfg->backends[i], w->cfg);

		/* The newest config's settings win; sessions of older ones share the pool. */
		bpool_configure(p, &w->cfg->backends[i], w->cfg);
		bpool_prewarm(p);
	}
}

/* Every pool has learned its backend's EHLO, or failed to. */
static int
worker_pools_settled(const struct worker *w)
{
	for (const struct bpool *p = w->pools; p; p = p->next)
		if (!p->caps_known && p->down_until_ms == 0)
			return 0;
	return 1;
}

static void
settle_turn(struct ring *r, void *arg)
{
	if (worker_pools_settled(arg))
		r->stop = 1;
}

static void
settle_timeout(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, settle_timer);

	w->ring.stop = 1;
}

/*
 * Runs the ring, before any listener exists, until the first link of
 * every pool has its backend's EHLO reply (or failed), for at most
 * SETTLE_MAX_MS: the first client's EHLO then offers what the backends
 * offer (DSN), as every later one does, instead of racing the links.
 */
static void
worker_settle_pools(struct worker *w)
{
	if (worker_pools_settled(w))
		return;
	timer_init(&w->settle_timer, settle_timeout);
	timer_arm(&w->ring.timers, &w->settle_timer, SETTLE_MAX_MS);
	ring_run(&w->ring, settle_turn, w);
	timer_cancel(&w->ring.timers, &w->settle_timer);
	if (!worker_pools_settled(w))
		log_warn("worker %u: a backend has not answered EHLO within %d ms; listening without its capabilities",
			 w->id, SETTLE_MAX_MS);
	w->ring.stop = 0;
}

static void
drain_timeout(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, drain_timer);
	struct session *s, *next;

	log_info("worker %u: drain_timeout reached, closing %u session(s)", w->id, w->nsessions);
	for (s = LIST_FIRST(&w->sessions); s; s = next) {
		next = LIST_NEXT(s, entry);
		session_kill(s);
	}
	w->drain_deadline_ms = timer_now_ms() + DRAIN_GRACE_MS;
}

static void
worker_begin_stop(struct worker *w)
{
	struct session *s, *next;
	char err[256];

	if (w->stopping)
		return;
	w->stopping = 1;
	worker_listeners_sync(w, err, sizeof(err));
	for (s = LIST_FIRST(&w->sessions); s; s = next) {
		next = LIST_NEXT(s, entry);
		session_shutdown(s);
	}
	timer_init(&w->drain_timer, drain_timeout);
	timer_arm(&w->ring.timers, &w->drain_timer, w->cfg->drain_timeout_ms);
}

static void
worker_apply_config(struct worker *w, struct config *cfg)
{
	char err[512];
	struct config *old = w->cfg;

	w->cfg = cfg;
	if (worker_listeners_sync(w, err, sizeof(err)) < 0)
		log_error("worker %u: reload: %s (the other listeners are in force)", w->id, err);
	worker_pools_sync(w);
	config_unref(old);
}

static void
worker_ev_done(struct ring_op *op, int res, uint32_t flags)
{
	struct worker *w = container_of(op, struct worker, ev_op);
	struct config *cfg;

	(void)res;
	(void)flags;
	cfg = __atomic_exchange_n(&w->pending_cfg, NULL, __ATOMIC_ACQ_REL);
	if (cfg)
		worker_apply_config(w, cfg);
	if (__atomic_load_n(&w->stop_requested, __ATOMIC_ACQUIRE))
		worker_begin_stop(w);
	worker_ev_arm(w);
}

static void
worker_ev_arm(struct worker *w)
{
	struct io_uring_sqe *sqe = ring_sqe(&w->ring);

	io_uring_prep_read(sqe, w->evfd, &w->ev_val, sizeof(w->ev_val), 0);
	ring_sqe_op(sqe, &w->ev_op);
}

static void
worker_stop_check(struct ring *r, struct worker *w)
{
	unsigned links = 0;

	if (!w->stopping)
		return;
	if (w->nsessions) {
		if (w->drain_deadline_ms && timer_now_ms() > w->drain_deadline_ms) {
			log_warn("worker %u: %u session(s) did not close in time", w->id, w->nsessions);
			r->stop = 1;
		}
		return;
	}
	bpool_close_all(w);
	for (struct bpool *p = w->pools; p; p = p->next)
		links += p->nlinks;
	if ((links == 0 && w->nlisteners_open == 0) ||
	    (w->drain_deadline_ms && timer_now_ms() > w->drain_deadline_ms))
		r->stop = 1;
	else if (!w->drain_deadline_ms)
		w->drain_deadline_ms = timer_now_ms() + DRAIN_GRACE_MS;
}

static void
worker_turn(struct ring *r, void *arg)
{
	struct worker *w = arg;

	worker_stop_check(r, w);
	/* Last: every store request queued during this turn leaves in one write. */
	if (w->store)
		store_worker_turn(w->store);
}

void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int ret;

	w->id_prefix = (uint32_t)time(NULL);
	ret = ring_init(&w->ring, WORKER_RING_ENTRIES, WORKER_PBUFS, WORKER_PBUF_SIZE);
	if (ret < 0) {
		snprintf(w->init_err, sizeof(w->init_err), "io_uring setup: %s", strerror(-ret));
		w->init_status = -1;
		sem_post(w->started);
		return NULL;
	}
	w->evfd = eventfd(0, EFD_CLOEXEC);
	w->ev_op.cb = worker_ev_done;
	w->offload = offload_q_new(&w->ring);
	if (w->offload == NULL) {
		snprintf(w->init_err, sizeof(w->init_err), "offload queue: %s", strerror(errno));
		w->init_status = -1;
		sem_post(w->started);
	} else if (w->evfd < 0) {
		snprintf(w->init_err, sizeof(w->init_err), "eventfd: %s", strerror(errno));
		w->init_status = -1;
		sem_post(w->started);
	} else {
		/* Backends first, so the first client's EHLO already offers what they offer. */
		worker_pools_sync(w);
		worker_settle_pools(w);
		if (worker_listeners_sync(w, w->init_err, sizeof(w->init_err)) < 0)
			w->init_status = -1;	/* main stops us; the loop below closes what is open */
		else if (w->store_shared)
			w->store = store_worker_new(w->store_shared, &w->ring);
		sem_post(w->started);
	}
	if (w->evfd >= 0)
		worker_ev_arm(w);
	ring_run(&w->ring, worker_turn, w);
	/* Before the store: a last password check's completion may still use the session's state. */
	w->exiting = 1;
	offload_q_free(w->offload);
	if (w->store)
		store_worker_free(w->store);
	bpool_destroy_all(w);
	ring_destroy(&w->ring);
	if (w->evfd >= 0)
		close(w->evfd);
	return NULL;
}
