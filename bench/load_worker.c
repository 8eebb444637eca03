/*
 * load_worker.c - one mxload worker thread: its own ring (created in the
 * thread, as PERFORMANCE.md asks), its share of the sessions, the
 * token bucket that paces --rate, the Date header cache and the buffered
 * --id-log writer. A worker's loop ends when its last session is done.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "load.h"
#include "load_tls.h"

#define LOAD_IDS_CAP 65536
#define LOAD_PACE_MAX_NS 100000000ull	/* re-check --duration/SIGINT at least this often */
#define LOAD_PBUF_SIZE 2048		/* replies are small; a long EHLO just takes two */

uint64_t
load_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned
load_pow2(unsigned v, unsigned lo, unsigned hi)
{
	unsigned p = lo;

	while (p < v && p < hi)
		p <<= 1;
	return p;
}

static int
load_stopped(const struct load_worker *w)
{
	return __atomic_load_n(&w->cfg->stop, __ATOMIC_RELAXED);
}

/* Is there work left for a session (peek, claims nothing)? */
int
load_worker_more(struct load_worker *w)
{
	const struct load_cfg *cfg = w->cfg;

	if (load_stopped(w))
		return 0;
	if (cfg->messages)
		return __atomic_load_n(&w->cfg->claimed, __ATOMIC_RELAXED) < cfg->messages;
	return timer_now_ms() < cfg->deadline_ms;
}

/* Neither stopped nor past --duration (the message count aside). */
int
load_worker_live(struct load_worker *w)
{
	return !load_stopped(w) && (w->cfg->deadline_ms == 0 || timer_now_ms() < w->cfg->deadline_ms);
}

/* Takes one message of the run; 0 when none is left (or time is up). */
int
load_worker_claim(struct load_worker *w)
{
	struct load_cfg *cfg = w->cfg;

	if (load_stopped(w))
		return 0;
	if (cfg->messages)
		return __atomic_fetch_add(&cfg->claimed, 1, __ATOMIC_RELAXED) < cfg->messages;
	return timer_now_ms() < cfg->deadline_ms;
}

static void
load_worker_refill(struct load_worker *w)
{
	uint64_t now = load_now_ns();

	w->tokens += (double)(now - w->refill_ns) * w->rate / 1e9;
	if (w->tokens > w->burst)
		w->tokens = w->burst;
	w->refill_ns = now;
}

static void
load_worker_pace_arm(struct load_worker *w)
{
	struct io_uring_sqe *sqe;
	uint64_t ns;

	if (w->pace_armed)
		return;
	/* Sleep until the next token is due, at least 50 us, at most 100 ms. */
	ns = (uint64_t)((1.0 - w->tokens) / w->rate * 1e9);
	ns = MAX(ns, 50000ull);
	ns = MIN(ns, LOAD_PACE_MAX_NS);
	w->pace_ts.tv_sec = (long long)(ns / 1000000000ull);
	w->pace_ts.tv_nsec = (long long)(ns % 1000000000ull);
	sqe = ring_sqe(&w->ring);
	io_uring_prep_timeout(sqe, &w->pace_ts, 0, 0);
	ring_sqe_op(sqe, &w->pace_op);
	w->pace_armed = 1;
}

static struct load_sess *
load_worker_pop(struct load_worker *w)
{
	struct load_sess *s = w->wait_head;

	load_worker_unwait(w, s);
	return s;
}

static void
load_worker_pace_done(struct ring_op *op, int res, uint32_t flags)
{
	struct load_worker *w = container_of(op, struct load_worker, pace_op);
	/* Bounded: at most the sessions waiting now (each leaves the queue). */
	unsigned budget = w->nsess;

	(void)res;
	(void)flags;
	w->pace_armed = 0;
	load_worker_refill(w);
	while (w->wait_head && budget--) {
		if (load_worker_more(w)) {
			if (w->tokens < 1.0)
				break;
			w->tokens -= 1.0;
		}
		/* With no work left, load_sess_go says QUIT. */
		load_sess_go(load_worker_pop(w));
	}
	if (w->wait_head)
		load_worker_pace_arm(w);
}

/* 1: s may start a transaction now; 0: s was queued until a token comes. */
int
load_worker_token(struct load_worker *w, struct load_sess *s)
{
	if (w->rate <= 0)
		return 1;
	load_worker_refill(w);
	/* FIFO: a session that waited goes before one that just arrived. */
	if (w->wait_head == NULL && w->tokens >= 1.0) {
		w->tokens -= 1.0;
		return 1;
	}
	s->wait_next = NULL;
	s->wait_prev = w->wait_tail;
	if (w->wait_tail)
		w->wait_tail->wait_next = s;
	else
		w->wait_head = s;
	w->wait_tail = s;
	load_worker_pace_arm(w);
	return 0;
}

void
load_worker_unwait(struct load_worker *w, struct load_sess *s)
{
	if (s->wait_prev)
		s->wait_prev->wait_next = s->wait_next;
	else
		w->wait_head = s->wait_next;
	if (s->wait_next)
		s->wait_next->wait_prev = s->wait_prev;
	else
		w->wait_tail = s->wait_prev;
	s->wait_next = s->wait_prev = NULL;
}

const char *
load_worker_date(struct load_worker *w)
{
	time_t now = time(NULL);

	if (now != w->date_sec) {
		w->date_sec = now;
		load_msg_date(w->date, now);
	}
	return w->date;
}

static void
load_worker_ids_flush(struct load_worker *w)
{
	size_t off = 0;
	unsigned tries = 0;

	/* One write per block on an O_APPEND fd: blocks of workers never interleave. */
	while (off < w->ids_len && tries++ < 100) {
		ssize_t n = write(w->cfg->id_fd, w->ids + off, w->ids_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	w->ids_len = 0;
}

void
load_worker_log_id(struct load_worker *w, const char *id, size_t len)
{
	if (w->ids_len + len + 1 > LOAD_IDS_CAP)
		load_worker_ids_flush(w);
	memcpy(w->ids + w->ids_len, id, len);
	w->ids[w->ids_len + len] = '\n';
	w->ids_len += len + 1;
}

void
load_worker_sess_done(struct load_worker *w)
{
	if (--w->active == 0)
		w->ring.stop = 1;
}

static int
load_worker_setup(struct load_worker *w)
{
	unsigned entries = load_pow2(w->nsess * 2, 256, 4096);
	unsigned nbufs = load_pow2(w->nsess, 64, 4096);
	int ret;

	ret = ring_init(&w->ring, entries, nbufs, LOAD_PBUF_SIZE);
	if (ret < 0)
		return ret;
	w->sess = calloc(w->nsess, sizeof(*w->sess));
	w->ids = w->cfg->id_fd >= 0 ? malloc(LOAD_IDS_CAP) : NULL;
	if (w->sess == NULL || (w->cfg->id_fd >= 0 && w->ids == NULL)) {
		ring_destroy(&w->ring);
		return -ENOMEM;
	}
	hist_init(&w->st.lat);
	w->pace_op.cb = load_worker_pace_done;
	w->rate = w->cfg->rate * w->nsess / w->cfg->connections;
	/* Burst of 10 ms of tokens: smooth, yet not bound to one wake-up per message. */
	w->burst = MAX(1.0, w->rate / 100);
	w->tokens = 1.0;
	w->refill_ns = load_now_ns();
	return 0;
}

void *
load_worker_main(void *arg)
{
	struct load_worker *w = arg;

	w->err = load_worker_setup(w);
	load_tls_worker_begin(w);
	if (w->err == 0 && w->nsess) {
		for (unsigned i = 0; i < w->nsess; i++)
			load_sess_init(&w->sess[i], w);
		w->active = w->nsess;
		for (unsigned i = 0; i < w->nsess; i++) {
			/* More connections than messages: the spare ones never open. */
			if (!load_worker_claim(w)) {
				w->active--;
				continue;
			}
			w->sess[i].prepaid = 1;
			load_sess_start(&w->sess[i]);
		}
		if (w->active)
			ring_run(&w->ring, NULL, NULL);
		if (w->ids_len)
			load_worker_ids_flush(w);
	}
	if (w->err == 0) {
		ring_destroy(&w->ring);
		/* Every conn, and so every WOLFSSL that used the session, is gone. */
		load_tls_worker_end(w);
		free(w->sess);
		free(w->ids);
		w->sess = NULL;
		w->ids = NULL;
	}
	w->end_ns = load_now_ns();
	__atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}
