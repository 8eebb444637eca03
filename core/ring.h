/*
 * ring.h - one io_uring per worker thread and its event loop.
 *
 * Every submission carries a pointer to a struct ring_op as user_data;
 * the loop walks a batch of completions and calls op->cb for each, so
 * one handler exists per kind of operation and objects embed their ops.
 * The ring also owns the worker's timer wheel (ticked by one periodic
 * IORING_OP_TIMEOUT) and its provided-buffer pool for receives.
 */
#ifndef CORE_RING_H
#define CORE_RING_H

#include <liburing.h>
#include <stdint.h>
#include "core.h"
#include "pbuf.h"
#include "timer.h"

/* Received bytes after which a batch's sends go to the kernel (ring.c). */
#define RING_RX_BATCH (256 * 1024)

struct ring_op;
/* res and flags are the CQE's. */
typedef void ring_cb(struct ring_op *op, int res, uint32_t flags);
struct ring_op {
	ring_cb *cb;
};

struct conn;

struct ring {
	struct io_uring uring;
	struct timer_wheel timers;
	struct pbuf_pool *pbufs;
	struct ring_op tick_op;
	struct __kernel_timespec tick_ts;
	struct conn *starved;		/* conns waiting for a free pbuf */
	struct conn *closing;		/* conns whose close completes next turn */
	struct conn *tls_pump;		/* TLS conns with decrypted input to deliver */
	void *chunks;			/* conn.c's free send chunks (a list) */
	unsigned nchunks;
	int stop;			/* ring_run returns when set */
	int no_poll_first;		/* the kernel refused IORING_RECVSEND_POLL_FIRST */
	size_t rx_unsent;		/* bytes received since the last submit */
	size_t rx_batch;		/* RING_RX_BATCH; tests lower it */
	uint64_t cqe_overflows;
};

/*
 * Sets up the ring in the calling thread (SINGLE_ISSUER|DEFER_TASKRUN
 * when the kernel has them) with `entries` SQEs, and a provided-buffer
 * pool of nbufs buffers of bufsize bytes each (nbufs a power of 2; 0 for
 * none). Returns 0 or -errno.
 */
int ring_init(struct ring *r, unsigned entries, unsigned nbufs, unsigned bufsize);
void ring_destroy(struct ring *r);

/* A free SQE; submits pending ones first when the queue is full. Never NULL. */
struct io_uring_sqe *ring_sqe(struct ring *r);
static inline void ring_sqe_op(struct io_uring_sqe *sqe, struct ring_op *op) { io_uring_sqe_set_data(sqe, op); }

/*
 * Runs the loop until r->stop is set: submit, wait for at least one
 * completion, dispatch the batch, advance timers, then call turn(r, arg)
 * (may be NULL) once per iteration. Ticks at least every TIMER_TICK_MS.
 */
void ring_run(struct ring *r, void (*turn)(struct ring *r, void *arg), void *arg);

/*
 * Outside ring_run (an object being freed after the loop stopped): submit,
 * wait up to wait_ms for a completion, and dispatch what is ready, so the
 * kernel can hand back operations that were cancelled. No timers, no turn.
 */
void ring_poll(struct ring *r, unsigned wait_ms);

#endif
