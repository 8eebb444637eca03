/*
 * test_offload.c - unit tests of core/offload.c on a real ring: 100 jobs
 * whose work runs on pool threads and whose done runs on the ring's
 * thread (never inside offload_submit), a prompt eventfd wake-up (not
 * the 100 ms tick), the OFFLOAD_MAX_JOBS bound
 * (EAGAIN, then room again once delivered), a done that submits the
 * next job, bad arguments, and offload_q_free with jobs queued and
 * running: each done exactly once, inside the free, none after, and
 * another ring's jobs untouched. Each ring run is bounded in time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "offload.h"
#include "ring.h"
#include "timer.h"

#define RUN_LIMIT_MS 3000

static pthread_t ring_thread;

/* The gate holds work functions until opened, so jobs can be kept queued or running. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open = 1;
static int gate_waiting;		/* works blocked at the gate */

static void
gate_set(int open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static void
gate_pass(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_waiting++;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	gate_waiting--;
	pthread_mutex_unlock(&gate_mu);
}

/* Waits (bounded) until n works are blocked at the gate. */
static int
gate_wait_for(int n)
{
	struct timespec until;
	int ok = 1;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&gate_mu);
	while (gate_waiting < n && ok)
		ok = pthread_cond_timedwait(&gate_cv, &gate_mu, &until) == 0;
	ok = gate_waiting >= n;
	pthread_mutex_unlock(&gate_mu);
	return ok;
}

struct job {
	int worked;		/* set by work, on a pool thread */
	pthread_t work_thread;
	int done;		/* done calls */
	int done_worked;	/* what done saw of worked */
};

static struct ring *test_ring;
static unsigned dones, want_dones;
static uint64_t deadline_ms;

static void
work_fn(void *arg)
{
	struct job *j = arg;

	gate_pass();
	/* a little CPU, so the two pool threads overlap */
	for (volatile int i = 0; i < 20000; i++)
		;
	j->work_thread = pthread_self();
	__atomic_store_n(&j->worked, 1, __ATOMIC_RELEASE);
}

static void
done_fn(void *arg)
{
	struct job *j = arg;

	/* cmocka's asserts must run on this (the test's) thread: done is here by contract */
	assert_true(pthread_equal(pthread_self(), ring_thread));
	j->done++;
	j->done_worked = __atomic_load_n(&j->worked, __ATOMIC_ACQUIRE);
	if (++dones == want_dones)
		test_ring->stop = 1;
}

static void
limit_turn(struct ring *r, void *arg)
{
	(void)arg;
	if (timer_now_ms() > deadline_ms)
		r->stop = 1;
}

/* Runs the ring until want dones have run or RUN_LIMIT_MS passed. */
static void
run_until(struct ring *r, unsigned want)
{
	want_dones = want;
	if (dones >= want)
		return;
	r->stop = 0;
	deadline_ms = timer_now_ms() + RUN_LIMIT_MS;
	ring_run(r, limit_turn, NULL);
}

static int
setup_one(void **state)
{
	struct ring *r = calloc(1, sizeof(*r));

	if (r == NULL || ring_init(r, 64, 0, 0) < 0)
		return -1;
	ring_thread = pthread_self();
	test_ring = r;
	dones = 0;
	gate_set(1);
	*state = r;
	return 0;
}

static int
teardown_one(void **state)
{
	struct ring *r = *state;

	ring_destroy(r);
	free(r);
	offload_pool_stop();
	return 0;
}

static void
test_hundred_jobs(void **state)
{
	struct ring *r = *state;
	struct offload_q *q = offload_q_new(r);
	struct job jobs[100];
	int other_thread = 0;

	assert_non_null(q);
	assert_int_equal(offload_pool_start(0), 0);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 100; i++)
		assert_int_equal(offload_submit(q, work_fn, done_fn, &jobs[i]), 0);
	/* never from inside offload_submit, even if the work is finished already */
	usleep(20000);
	assert_int_equal(dones, 0);
	assert_int_equal(offload_q_pending(q), 100);

	run_until(r, 100);
	assert_int_equal(dones, 100);
	assert_int_equal(offload_q_pending(q), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].done_worked, 1);
		assert_false(pthread_equal(jobs[i].work_thread, ring_thread));
		if (!pthread_equal(jobs[i].work_thread, jobs[0].work_thread))
			other_thread = 1;
	}
	/* two pool threads by default; with 100 jobs both take some (not guaranteed, so informative) */
	if (!other_thread)
		print_message("note: one pool thread ran every job\n");
	offload_q_free(q);
}

static void
test_queue_full(void **state)
{
	struct ring *r = *state;
	struct offload_q *q = offload_q_new(r);
	struct job *jobs = calloc(OFFLOAD_MAX_JOBS + 1, sizeof(*jobs));
	struct job extra;
	int n = 0;

	assert_non_null(q);
	assert_non_null(jobs);
	gate_set(0);
	while (n <= OFFLOAD_MAX_JOBS && offload_submit(q, work_fn, done_fn, &jobs[n]) == 0)
		n++;
	assert_int_equal(n, OFFLOAD_MAX_JOBS);
	assert_int_equal(errno, EAGAIN);
	/* still full while the works wait at the gate */
	assert_true(gate_wait_for(OFFLOAD_DEFAULT_THREADS));
	assert_int_equal(offload_submit(q, work_fn, done_fn, &extra), -1);
	assert_int_equal(errno, EAGAIN);
	gate_set(1);
	run_until(r, OFFLOAD_MAX_JOBS);
	assert_int_equal(dones, OFFLOAD_MAX_JOBS);
	for (int i = 0; i < n; i++)
		assert_int_equal(jobs[i].done, 1);
	assert_int_equal(jobs[OFFLOAD_MAX_JOBS].done, 0);
	/* delivered jobs give their room back */
	memset(&extra, 0, sizeof(extra));
	assert_int_equal(offload_submit(q, work_fn, done_fn, &extra), 0);
	run_until(r, OFFLOAD_MAX_JOBS + 1);
	assert_int_equal(extra.done, 1);
	offload_q_free(q);
	free(jobs);
}

/* The eventfd wakes the ring at once: no wait for the 100 ms timer tick. */
static void
test_wakeup_latency(void **state)
{
	struct ring *r = *state;
	struct offload_q *q = offload_q_new(r);
	uint64_t best = UINT64_MAX;

	assert_non_null(q);
	assert_int_equal(offload_pool_start(0), 0);
	for (int i = 0; i < 5; i++) {
		struct job j;
		uint64_t t0;

		memset(&j, 0, sizeof(j));
		dones = 0;
		t0 = timer_now_ms();
		assert_int_equal(offload_submit(q, work_fn, done_fn, &j), 0);
		run_until(r, 1);
		assert_int_equal(j.done, 1);
		if (timer_now_ms() - t0 < best)
			best = timer_now_ms() - t0;
	}
	if (best >= TIMER_TICK_MS / 2)
		fail_msg("fastest of 5 round trips took %llu ms", (unsigned long long)best);
	offload_q_free(q);
}

/* A done that queues the next job, as a session may after a check. */
static struct offload_q *chain_q;
static int chain_left;

static void
chain_done(void *arg)
{
	struct job *j = arg;

	assert_true(pthread_equal(pthread_self(), ring_thread));
	j->done++;
	dones++;
	if (--chain_left > 0)
		assert_int_equal(offload_submit(chain_q, work_fn, chain_done, j), 0);
	else
		test_ring->stop = 1;
}

static void
test_chain_and_args(void **state)
{
	struct ring *r = *state;
	struct job j;

	memset(&j, 0, sizeof(j));
	chain_q = offload_q_new(r);
	assert_non_null(chain_q);
	assert_int_equal(offload_submit(chain_q, NULL, done_fn, &j), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(offload_submit(chain_q, work_fn, NULL, &j), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(offload_submit(NULL, work_fn, done_fn, &j), -1);
	assert_int_equal(errno, EINVAL);

	/* the pool starts on first use, after a stop too */
	offload_pool_stop();
	chain_left = 10;
	assert_int_equal(offload_submit(chain_q, work_fn, chain_done, &j), 0);
	r->stop = 0;
	deadline_ms = timer_now_ms() + RUN_LIMIT_MS;
	ring_run(r, limit_turn, NULL);
	assert_int_equal(j.done, 10);
	assert_int_equal(offload_q_pending(chain_q), 0);
	offload_q_free(chain_q);
	offload_q_free(NULL);
}

/* The dones offload_q_free calls: count, and try to submit again (refused). */
static struct offload_q *closing_q;
static int free_dones, free_dones_worked, resubmit_errno;

static void
free_done(void *arg)
{
	struct job *j = arg;
	struct job again;

	assert_true(pthread_equal(pthread_self(), ring_thread));
	j->done++;
	j->done_worked = __atomic_load_n(&j->worked, __ATOMIC_ACQUIRE);
	free_dones++;
	free_dones_worked += j->done_worked;
	if (offload_submit(closing_q, work_fn, free_done, &again) < 0)
		resubmit_errno = errno;
}

static void *
open_gate_later(void *unused)
{
	(void)unused;
	usleep(100000);
	gate_set(1);
	return NULL;
}

static void
test_free_with_jobs_outstanding(void **state)
{
	struct ring *r = *state;
	struct offload_q *q = offload_q_new(r), *other = offload_q_new(r);
	struct job jobs[10], other_job;
	pthread_t opener;
	uint64_t t0;

	assert_non_null(q);
	assert_non_null(other);
	assert_int_equal(offload_pool_start(2), 0);
	memset(jobs, 0, sizeof(jobs));
	memset(&other_job, 0, sizeof(other_job));
	gate_set(0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(offload_submit(q, work_fn, free_done, &jobs[i]), 0);
	/* both pool threads hold one job of q at the gate, 8 wait in the queue */
	assert_true(gate_wait_for(2));
	/* a job of another ring's q, queued behind them, must survive the free */
	assert_int_equal(offload_submit(other, work_fn, done_fn, &other_job), 0);

	closing_q = q;
	free_dones = free_dones_worked = resubmit_errno = 0;
	dones = 0;
	assert_int_equal(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
	t0 = timer_now_ms();
	offload_q_free(q);
	/* it waited for the two running works (the gate opened after ~100 ms) */
	assert_true(timer_now_ms() - t0 >= 50);
	assert_int_equal(pthread_join(opener, NULL), 0);
	assert_int_equal(free_dones, 10);
	assert_int_equal(free_dones_worked, 2);	/* the 8 queued were skipped */
	assert_int_equal(resubmit_errno, ESHUTDOWN);
	for (int i = 0; i < 10; i++)
		assert_int_equal(jobs[i].done, 1);

	/* the other q's job still runs and is delivered (maybe already by the free's drain) */
	run_until(r, 1);
	assert_int_equal(other_job.done, 1);
	assert_int_equal(other_job.done_worked, 1);
	/* and nothing of the freed q came after */
	usleep(20000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(jobs[i].done, 1);
	offload_q_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hundred_jobs, setup_one, teardown_one),
		cmocka_unit_test_setup_teardown(test_wakeup_latency, setup_one, teardown_one),
		cmocka_unit_test_setup_teardown(test_queue_full, setup_one, teardown_one),
		cmocka_unit_test_setup_teardown(test_chain_and_args, setup_one, teardown_one),
		cmocka_unit_test_setup_teardown(test_free_with_jobs_outstanding, setup_one, teardown_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
