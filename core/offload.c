/*
 * offload.c - owns the process-wide offload thread pool, its bounded job
 * queue, and each ring's offload_q (eventfd + armed read) that brings
 * completions back to the ring's thread (see offload.h).
 *
 * One mutex guards the queue, the job count and the q fields the pool
 * threads touch (done list, running, closing): jobs take tens of ms, so
 * the lock is taken a few times per job and never contended for long.
 *
 * Memory: a job is malloc'd by offload_submit and freed on the ring
 * thread right after its done (or by offload_q_free); a q is freed by
 * offload_q_free once the kernel has returned its read.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "offload.h"
#include "log.h"

/* offload_q_free waits this long at most for the kernel to return the cancelled read. */
#define OFFLOAD_DRAIN_MS 500

struct offload_job {
	struct offload_job *next;
	struct offload_q *q;
	offload_fn *work, *done;
	void *arg;
};

struct offload_q {
	struct ring *ring;
	int efd;
	uint64_t efd_val;		/* the armed read's target */
	struct ring_op read_op;
	int armed;			/* ring thread only */
	unsigned pending;		/* ring thread only: accepted, done not called */
	/* Under pool.mu: */
	struct offload_job *done_head, **done_tail;	/* work finished, done not called */
	unsigned running;		/* jobs of this q inside work() now */
	int closing;			/* offload_q_free started */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;		/* a job was queued, or stop */
	pthread_cond_t idle_cv;		/* a job of a closing q finished its work */
	struct offload_job *head, **tail;	/* not started, FIFO */
	unsigned jobs;			/* alive: accepted, done not yet called */
	pthread_t *threads;
	unsigned nthreads;
	int stopping;
} pool = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.work_cv = PTHREAD_COND_INITIALIZER,
	.idle_cv = PTHREAD_COND_INITIALIZER,
	.tail = &pool.head,
};

static void
q_signal(struct offload_q *q)
{
	uint64_t one = 1;

	/* Under pool.mu, so offload_q_free cannot close the fd meanwhile. */
	while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *
pool_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool.mu);
	for (;;) {
		struct offload_job *j;
		struct offload_q *q;

		while (pool.head == NULL && !pool.stopping)
			pthread_cond_wait(&pool.work_cv, &pool.mu);
		j = pool.head;
		if (j == NULL)
			break;		/* stopping, and the queue is empty */
		pool.head = j->next;
		if (pool.head == NULL)
			pool.tail = &pool.head;
		q = j->q;
		q->running++;
		pthread_mutex_unlock(&pool.mu);

		j->work(j->arg);

		pthread_mutex_lock(&pool.mu);
		q->running--;
		j->next = NULL;
		*q->done_tail = j;
		q->done_tail = &j->next;
		if (q->closing)
			pthread_cond_broadcast(&pool.idle_cv);
		else if (q->done_head == j)
			q_signal(q);	/* the list was empty: nobody signalled yet */
	}
	pthread_mutex_unlock(&pool.mu);
	return NULL;
}

/* Under pool.mu. */
static int
pool_start_locked(unsigned n)
{
	sigset_t all, old;
	unsigned i;
	int err = 0;

	if (pool.nthreads)
		return 0;
	if (n == 0)
		n = OFFLOAD_DEFAULT_THREADS;
	pool.threads = calloc(n, sizeof(*pool.threads));
	if (pool.threads == NULL)
		return -ENOMEM;
	/* Signals are for main and the workers; the pool threads must never take one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		err = pthread_create(&pool.threads[i], NULL, pool_main, NULL);
		if (err)
			break;
		pthread_setname_np(pool.threads[i], "mx-offload");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (i == 0) {
		free(pool.threads);
		pool.threads = NULL;
		return -err;
	}
	/* Fewer threads than asked still make a working pool. */
	pool.nthreads = i;
	return 0;
}

int
offload_pool_start(unsigned n)
{
	int ret;

	pthread_mutex_lock(&pool.mu);
	ret = pool_start_locked(n);
	pthread_mutex_unlock(&pool.mu);
	return ret;
}

void
offload_pool_stop(void)
{
	pthread_t *threads;
	unsigned n, i;

	pthread_mutex_lock(&pool.mu);
	if (pool.nthreads == 0 || pool.stopping) {
		pthread_mutex_unlock(&pool.mu);
		return;
	}
	pool.stopping = 1;
	pthread_cond_broadcast(&pool.work_cv);
	threads = pool.threads;
	n = pool.nthreads;
	pthread_mutex_unlock(&pool.mu);

	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);

	pthread_mutex_lock(&pool.mu);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	pool.stopping = 0;
	pthread_mutex_unlock(&pool.mu);
}

static void q_read_done(struct ring_op *op, int res, uint32_t flags);

static void
q_arm(struct offload_q *q)
{
	struct io_uring_sqe *sqe = ring_sqe(q->ring);

	io_uring_prep_read(sqe, q->efd, &q->efd_val, sizeof(q->efd_val), 0);
	ring_sqe_op(sqe, &q->read_op);
	q->armed = 1;
}

struct offload_q *
offload_q_new(struct ring *r)
{
	struct offload_q *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	/* Blocking, like the worker's: the ring polls it, and a pool thread's write never waits in practice. */
	q->efd = eventfd(0, EFD_CLOEXEC);
	if (q->efd < 0) {
		free(q);
		return NULL;
	}
	q->ring = r;
	q->read_op.cb = q_read_done;
	q->done_tail = &q->done_head;
	q_arm(q);
	return q;
}

/* Takes q's finished jobs and calls their done, on the ring thread. */
static void
q_deliver(struct offload_q *q)
{
	struct offload_job *j, *next;
	unsigned n = 0;

	pthread_mutex_lock(&pool.mu);
	j = q->done_head;
	q->done_head = NULL;
	q->done_tail = &q->done_head;
	for (next = j; next; next = next->next)
		n++;
	/* Before the dones, so a done may submit the next job at once. */
	pool.jobs -= n;
	pthread_mutex_unlock(&pool.mu);
	q->pending -= n;
	for (; j; j = next) {
		next = j->next;
		j->done(j->arg);
		free(j);
	}
}

static void
q_read_done(struct ring_op *op, int res, uint32_t flags)
{
	struct offload_q *q = container_of(op, struct offload_q, read_op);

	(void)flags;
	q->armed = 0;
	if (q->closing)
		return;		/* offload_q_free is waiting for this */
	if (res == -EBADF || res == -EINVAL || res == -EFAULT)
		/* Cannot happen short of a bug; re-arming would spin. */
		log_error("offload: eventfd read: %s; completions stop", strerror(-res));
	else
		q_arm(q);
	q_deliver(q);
}

int
offload_submit(struct offload_q *q, offload_fn *work, offload_fn *done, void *arg)
{
	struct offload_job *j;
	int err;

	if (q == NULL || work == NULL || done == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* Written by offload_q_free on this same (ring) thread: no lock needed to read. */
	if (q->closing) {
		errno = ESHUTDOWN;
		return -1;
	}
	j = malloc(sizeof(*j));
	if (j == NULL) {
		errno = ENOMEM;
		return -1;
	}
	j->next = NULL;
	j->q = q;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&pool.mu);
	if (pool.jobs >= OFFLOAD_MAX_JOBS) {
		pthread_mutex_unlock(&pool.mu);
		free(j);
		errno = EAGAIN;
		return -1;
	}
	if (pool.nthreads == 0 && (err = pool_start_locked(0)) < 0) {
		pthread_mutex_unlock(&pool.mu);
		free(j);
		errno = -err;
		return -1;
	}
	pool.jobs++;
	*pool.tail = j;
	pool.tail = &j->next;
	pthread_cond_signal(&pool.work_cv);
	pthread_mutex_unlock(&pool.mu);
	q->pending++;
	return 0;
}

unsigned
offload_q_pending(const struct offload_q *q)
{
	return q->pending;
}

/* Dispatches completions like ring_run until the kernel has returned q's read. */
static void
q_drain(struct offload_q *q)
{
	struct ring *r = q->ring;
	uint64_t deadline = timer_now_ms() + OFFLOAD_DRAIN_MS;
	struct io_uring_sqe *sqe;

	if (!q->armed)
		return;
	sqe = ring_sqe(r);
	io_uring_prep_cancel(sqe, &q->read_op, 0);
	/* The cancel's own CQE carries no op: the loop below skips it. */
	io_uring_sqe_set_data(sqe, NULL);
	while (q->armed && timer_now_ms() < deadline)
		ring_poll(r, 10);
}

void
offload_q_free(struct offload_q *q)
{
	struct offload_job *done, *skipped = NULL, **skipped_tail = &skipped, **pp, *j, *next;
	unsigned n = 0;

	if (q == NULL)
		return;
	pthread_mutex_lock(&pool.mu);
	q->closing = 1;
	/* Not started: off the queue, their work is not worth its tens of ms now. */
	for (pp = &pool.head; *pp; ) {
		j = *pp;
		if (j->q == q) {
			*pp = j->next;
			j->next = NULL;
			*skipped_tail = j;
			skipped_tail = &j->next;
		} else {
			pp = &j->next;
		}
	}
	pool.tail = pp;
	while (q->running)
		pthread_cond_wait(&pool.idle_cv, &pool.mu);
	done = q->done_head;
	q->done_head = NULL;
	q->done_tail = &q->done_head;
	for (j = done; j; j = j->next)
		n++;
	for (j = skipped; j; j = j->next)
		n++;
	pool.jobs -= n;
	pthread_mutex_unlock(&pool.mu);
	q->pending = 0;
	/* Every accepted job gets its done exactly once: here, since no later chance exists. */
	for (j = done; j; j = next) {
		next = j->next;
		j->done(j->arg);
		free(j);
	}
	for (j = skipped; j; j = next) {
		next = j->next;
		j->done(j->arg);
		free(j);
	}
	q_drain(q);
	if (q->armed) {
		/* The kernel still holds the read that points into q: leave q to it. */
		log_warn("offload: eventfd read not returned by the kernel at close");
		return;
	}
	close(q->efd);
	free(q);
}
