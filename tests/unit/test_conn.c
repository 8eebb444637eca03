/*
 * test_conn.c - plain receives of core/conn.c on a real ring, two conns
 * joined by a socketpair: a receive after a short read asks the kernel
 * to poll first and one after a full buffer does not; a kernel that
 * refuses the poll-first flag (EINVAL) gets it no more, and the bytes
 * still arrive. Once a batch of completions has brought rx_batch bytes,
 * the ring hands the kernel what was queued before the next completion.
 * A connect takes the congestion control asked for, or goes on with the
 * system's when the kernel has no such one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "net.h"
#include "ring.h"
#include "timer.h"

#define RBUF 16

struct peer {
	struct conn conn;
	char got[256];
	size_t got_len;
	int drained[16];	/* conn.drained as each receive was delivered */
	unsigned deliveries;
	int closed;
};

static struct ring ring;
static struct peer a, b;
static size_t want_len;
static uint64_t deadline;

static void
on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct peer *p = c->owner;

	(void)bid;
	assert_true(p->got_len + len <= sizeof(p->got));
	memcpy(p->got + p->got_len, data, len);
	p->got_len += len;
	if (p->deliveries < 16)
		p->drained[p->deliveries] = c->drained;
	p->deliveries++;
}

static void
on_closed(struct conn *c)
{
	((struct peer *)c->owner)->closed = 1;
}

static const struct conn_ops ops = { .on_recv = on_recv, .on_closed = on_closed };

static int
done(void)
{
	return want_len ? a.got_len >= want_len : a.closed && b.closed;
}

static void
turn(struct ring *r, void *arg)
{
	(void)arg;
	if (done() || timer_now_ms() > deadline)
		r->stop = 1;
}

static int
run_until_done(void)
{
	deadline = timer_now_ms() + 5000;
	ring.stop = 0;
	ring_run(&ring, turn, NULL);
	return done();
}

/* The receive conn_recv_start just queued, not yet submitted. */
static struct io_uring_sqe *
last_sqe(void)
{
	return &ring.uring.sq.sqes[(ring.uring.sq.sqe_tail - 1) & ring.uring.sq.ring_mask];
}

static void
pair(void)
{
	int sv[2];

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&a.conn, &ring, sv[0], &ops, &a);
	conn_init(&b.conn, &ring, sv[1], &ops, &b);
	assert_int_equal(conn_use_private_buffer(&a.conn, RBUF), 0);
}

static void
unpair(void)
{
	want_len = 0;
	conn_close(&a.conn);
	conn_close(&b.conn);
	assert_true(run_until_done());
}

static void
test_poll_first_after_short_read(void **state)
{
	static const char msg[] = "0123456789abcdef0123456789abcdefXYZ";	/* 16 + 16 + 3 */

	(void)state;
	pair();
	conn_recv_start(&a.conn);
	/* A new socket counts as drained: its first receive waits for data. */
	assert_true(last_sqe()->ioprio & IORING_RECVSEND_POLL_FIRST);
	assert_int_equal(conn_write(&b.conn, msg, sizeof(msg) - 1), 0);
	conn_flush(&b.conn);
	want_len = sizeof(msg) - 1;
	assert_true(run_until_done());
	assert_memory_equal(a.got, msg, sizeof(msg) - 1);
	/* Full buffers leave more to read; the short last one drained the socket. */
	assert_int_equal(a.deliveries, 3);
	assert_int_equal(a.drained[0], 0);
	assert_int_equal(a.drained[1], 0);
	assert_int_equal(a.drained[2], 1);
	unpair();
}

static void
test_poll_first_refused(void **state)
{
	(void)state;
	pair();
	conn_recv_start(&a.conn);
	assert_true(last_sqe()->ioprio & IORING_RECVSEND_POLL_FIRST);
	/* As a kernel before 5.19 answers the flag: a receive flag it does not know. */
	last_sqe()->ioprio |= 1u << 15;
	assert_int_equal(conn_write(&b.conn, "hello", 5), 0);
	conn_flush(&b.conn);
	want_len = 5;
	assert_true(run_until_done());
	assert_memory_equal(a.got, "hello", 5);
	assert_int_equal(ring.no_poll_first, 1);
	unpair();
	/* From now on this ring's receives go without it. */
	pair();
	conn_recv_start(&a.conn);
	assert_int_equal(last_sqe()->ioprio & IORING_RECVSEND_POLL_FIRST, 0);
	unpair();
	ring.no_poll_first = 0;
}

/* Early submits: sq_ready as each of a batch's receives is delivered. */
static unsigned early_sq_ready[8], early_deliveries;

static void
on_recv_early(struct conn *c, char *data, size_t len, int bid)
{
	(void)c;
	(void)data;
	(void)len;
	(void)bid;
	if (early_deliveries < 8)
		early_sq_ready[early_deliveries] = io_uring_sq_ready(&ring.uring);
	early_deliveries++;
}

static const struct conn_ops early_ops = { .on_recv = on_recv_early };

/*
 * Two receives completing in one batch: the first one's handler re-arms
 * its receive (an SQE). With rx_batch at 1 byte that SQE is submitted
 * before the second completion is handled; with no limit it still waits.
 */
static int
early_batch(size_t rx_batch, unsigned *sq_ready_second)
{
	struct conn x, y;
	int sv1[2], sv2[2], one_batch;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv1), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	/* Data first, so both receives complete as soon as they are submitted. */
	assert_int_equal(write(sv1[1], "x", 1), 1);
	assert_int_equal(write(sv2[1], "y", 1), 1);
	conn_init(&x, &ring, sv1[0], &early_ops, NULL);
	conn_init(&y, &ring, sv2[0], &early_ops, NULL);
	assert_int_equal(conn_use_private_buffer(&x, RBUF), 0);
	assert_int_equal(conn_use_private_buffer(&y, RBUF), 0);
	ring.rx_batch = rx_batch;
	early_deliveries = 0;
	conn_recv_start(&x);
	conn_recv_start(&y);
	for (int i = 0; i < 50 && early_deliveries == 0; i++)
		ring_poll(&ring, 100);
	one_batch = early_deliveries == 2;
	*sq_ready_second = early_sq_ready[1];
	ring.rx_batch = RING_RX_BATCH;
	conn_close(&x);
	conn_close(&y);
	for (int i = 0; i < 50 && (x.inflight || y.inflight); i++)
		ring_poll(&ring, 100);
	assert_int_equal(x.inflight + y.inflight, 0);
	conn_ring_turn(&ring);	/* frees what the closes left, as ring_run would */
	close(sv1[1]);
	close(sv2[1]);
	return one_batch;
}

static void
test_early_submit(void **state)
{
	unsigned sq_ready, batches = 0;

	(void)state;
	/* The kernel decides what one batch holds: retry until both came in one. */
	for (int i = 0; i < 20 && batches < 2; i++) {
		if (early_batch(SIZE_MAX, &sq_ready)) {
			assert_int_equal(sq_ready, 1);
			batches++;
		}
	}
	for (int i = 0; i < 20 && batches < 4; i++) {
		if (early_batch(1, &sq_ready)) {
			assert_int_equal(sq_ready, 0);
			batches++;
		}
	}
	assert_int_equal(batches, 4);
}

static int connect_res = 1;

static void
on_connect(struct conn *c, int res)
{
	(void)c;
	connect_res = res;
}

static void
connect_turn(struct ring *r, void *arg)
{
	(void)arg;
	if (connect_res != 1 || timer_now_ms() > deadline)
		r->stop = 1;
}

/* Connects a to addr with congestion control cc; returns conn_connect's cc_err. */
static int
connect_with(const struct net_addr *addr, const char *cc, char *got, socklen_t gotlen)
{
	static const struct conn_ops cops = { .on_connect = on_connect, .on_closed = on_closed };
	int cc_err = 12345;

	memset(&a, 0, sizeof(a));
	conn_init(&a.conn, &ring, -1, &cops, &a);
	connect_res = 1;
	assert_int_equal(conn_connect(&a.conn, addr, cc, &cc_err), 0);
	deadline = timer_now_ms() + 5000;
	ring.stop = 0;
	ring_run(&ring, connect_turn, NULL);
	assert_int_equal(connect_res, 0);
	memset(got, 0, gotlen);
	assert_int_equal(getsockopt(a.conn.fd, IPPROTO_TCP, TCP_CONGESTION, got, &gotlen), 0);
	conn_close(&a.conn);
	b.closed = 1;	/* only a here */
	assert_true(run_until_done());
	return cc_err;
}

static void
test_connect_congestion(void **state)
{
	struct net_addr addr;
	char err[128], got[16], sys[16];
	int lfd, port;

	(void)state;
	assert_int_equal(net_addr_parse("127.0.0.1:0", &addr, err, sizeof(err)), 0);
	lfd = net_listen(&addr, 16, 0, err, sizeof(err));
	assert_true(lfd >= 0);
	port = net_local_port(lfd);
	addr.u.sin.sin_port = htons((uint16_t)port);

	assert_int_equal(connect_with(&addr, NULL, sys, sizeof(sys)), 0);
	assert_int_equal(connect_with(&addr, "reno", got, sizeof(got)), 0);
	assert_string_equal(got, "reno");
	/* No such one: the connect still happens, with the system's. */
	assert_int_equal(connect_with(&addr, "nosuch_cc", got, sizeof(got)), -ENOENT);
	assert_string_equal(got, sys);
	close(lfd);
}

static int
setup(void **state)
{
	(void)state;
	return ring_init(&ring, 64, 16, 4096) < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	ring_destroy(&ring);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poll_first_after_short_read),
		cmocka_unit_test(test_poll_first_refused),
		cmocka_unit_test(test_early_submit),
		cmocka_unit_test(test_connect_congestion),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
