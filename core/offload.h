/*
 * offload.h - runs slow CPU work (password hashing: yescrypt spends tens
 * of ms by design) on a small process-wide thread pool, and delivers each
 * job's completion back on the thread of the ring that asked, so the
 * caller's state is touched by its own worker thread only.
 *
 * Per ring, an offload_q owns an eventfd whose read is armed on the ring;
 * a pool thread that finishes a job queues it on its q and bumps the
 * eventfd, and the read's completion calls the done functions.
 *
 * Rules:
 *  - work(arg) runs on a pool thread: it must not touch the ring or
 *    anything of the worker but what arg gives it.
 *  - done(arg) runs on the ring's thread, from the eventfd completion
 *    inside ring_run, never from inside offload_submit; exactly once for
 *    every job that offload_submit accepted (see offload_q_free for the
 *    one exception to "after work").
 *  - The caller owns arg and keeps it alive until done has run, even if
 *    the requester went away meanwhile (a session that closes with a job
 *    outstanding defers its free to done).
 *  - The number of jobs alive in the process (accepted, done not yet
 *    called) is bounded by OFFLOAD_MAX_JOBS, so a flood of requests
 *    cannot grow memory without limit: over it offload_submit fails
 *    with EAGAIN.
 */
#ifndef CORE_OFFLOAD_H
#define CORE_OFFLOAD_H

#include "ring.h"

#define OFFLOAD_DEFAULT_THREADS	2
#define OFFLOAD_MAX_JOBS	1024

struct offload_q;
typedef void offload_fn(void *arg);

/*
 * Starts the pool with n threads (0: OFFLOAD_DEFAULT_THREADS). Optional:
 * the first offload_submit starts it with the default. Does nothing if
 * it is already running. Returns 0 or -errno.
 */
int offload_pool_start(unsigned n);
/*
 * Stops and joins the pool threads; jobs still queued are run first. For
 * process exit, after every offload_q_free. A later submit starts a new pool.
 */
void offload_pool_stop(void);

/*
 * Creates the q of ring r (call on r's thread, after ring_init): an
 * eventfd and a read armed on it. Returns NULL with errno set on failure.
 */
struct offload_q *offload_q_new(struct ring *r);

/*
 * Queues work(arg) for a pool thread and done(arg) for r's thread after
 * it. Call on r's thread. Returns 0, or -1 with errno EAGAIN (OFFLOAD_MAX_JOBS reached: the
 * caller answers with a temporary failure), ENOMEM, EINVAL (NULL
 * argument), ESHUTDOWN (q is being freed). May be called from a done.
 */
int offload_submit(struct offload_q *q, offload_fn *work, offload_fn *done, void *arg);

/* Jobs of q accepted and whose done has not run yet. */
unsigned offload_q_pending(const struct offload_q *q);

/*
 * Frees q, on r's thread, after ring_run has returned and before
 * ring_destroy (it dispatches the ring's completions itself while it
 * waits, like redis_conn_free, so it must not run inside ring_run).
 * Jobs of q still outstanding are finished here, so that no done is
 * ever called after this returns: jobs not yet started are taken off the
 * queue and their work is NOT run; running ones are waited for; then the
 * done of each is called from inside this function. A done that may see
 * a skipped job must therefore find a "failed" result in arg: initialise
 * it so before offload_submit. Submitting to q from those dones fails
 * with ESHUTDOWN. NULL is ignored.
 */
void offload_q_free(struct offload_q *q);

#endif
