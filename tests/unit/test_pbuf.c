/*
 * test_pbuf.c - core/pbuf.c on a real ring: receives with buffer select
 * on socketpairs, handled the way conn.c does (taken, missed, unref,
 * turn). A one-at-a-time stream keeps to a handful of hot buffers instead
 * of cycling the pool; a burst larger than the kernel ring is missed once
 * and then finds buffers; the depth shrinks back slowly; a conn arming a
 * receive on an empty kernel ring refills it; no buffer is ever lost.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "pbuf.h"
#include "ring.h"

#define NBUFS 128
#define BUFSIZE 4096
#define NPAIRS 40

static struct ring ring;

static void
arm_recv(int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = ring_sqe(&ring);

	io_uring_prep_recv(sqe, fd, NULL, BUFSIZE, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = PBUF_GROUP;
	io_uring_sqe_set_data64(sqe, tag);
}

/* One completion: its tag, and the buffer it filled or -errno in *res. */
static uint64_t
next_cqe(int *res, int *bid)
{
	struct io_uring_cqe *cqe;
	uint64_t tag;

	for (;;) {
		assert_int_equal(io_uring_submit_and_wait(&ring.uring, 1) >= 0, 1);
		assert_int_equal(io_uring_peek_cqe(&ring.uring, &cqe), 0);
		if (io_uring_cqe_get_data(cqe) != &ring.tick_op)
			break;
		io_uring_cqe_seen(&ring.uring, cqe);	/* the ring's timer tick */
	}
	tag = cqe->user_data;
	*res = cqe->res;
	*bid = (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
	io_uring_cqe_seen(&ring.uring, cqe);
	return tag;
}

static void
assert_all_free(const struct pbuf_pool *p)
{
	assert_int_equal(pbuf_free_count(p), NBUFS);
	for (unsigned i = 0; i < NBUFS; i++)
		assert_int_equal(p->refs[i], 0);
}

static void
test_stream_stays_on_few_buffers(void **state)
{
	struct pbuf_pool *p = ring.pbufs;
	unsigned char used[NBUFS] = { 0 };
	unsigned distinct = 0;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 500; i++) {
		int res, bid;

		assert_int_equal(write(sv[1], "0123456789", 10), 10);
		arm_recv(sv[0], 1);
		next_cqe(&res, &bid);
		assert_int_equal(res, 10);
		assert_true(bid >= 0 && bid < NBUFS);
		pbuf_taken(p, bid);
		assert_memory_equal(pbuf_ptr(p, bid), "0123456789", 10);
		/* Still referenced by a queued send, then sent. */
		pbuf_ref(p, bid);
		pbuf_unref(p, bid);
		assert_int_equal(p->refs[bid], 1);
		pbuf_unref(p, bid);
		pbuf_turn(p);
		distinct += !used[bid];
		used[bid] = 1;
	}
	/* Handing every free buffer to the kernel would have used all 128. */
	assert_true(distinct <= PBUF_DEPTH_MIN + 2);
	assert_int_equal(p->depth, PBUF_DEPTH_MIN + 2);
	assert_all_free(p);
	close(sv[0]);
	close(sv[1]);
}

static void
test_burst_grows_then_shrinks(void **state)
{
	struct pbuf_pool *p = ring.pbufs;
	int sv[NPAIRS][2], bids[NPAIRS], missed[NPAIRS], nmissed = 0, nbids = 0;
	uint32_t depth;

	(void)state;
	for (int i = 0; i < NPAIRS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		assert_int_equal(write(sv[i][1], "x", 1), 1);
		arm_recv(sv[i][0], (uint64_t)i);
	}
	/* The kernel ring holds a few buffers: the rest of the burst misses. */
	for (int n = 0; n < NPAIRS; n++) {
		int res, bid;
		uint64_t tag = next_cqe(&res, &bid);

		if (res == -ENOBUFS) {
			pbuf_missed(p);
			missed[nmissed++] = (int)tag;
			continue;
		}
		assert_int_equal(res, 1);
		pbuf_taken(p, bid);
		bids[nbids++] = bid;
	}
	assert_true(nmissed > 0);
	assert_int_equal(nbids + nmissed, NPAIRS);
	for (int i = 0; i < nbids; i++)
		pbuf_unref(p, bids[i]);
	pbuf_turn(p);
	assert_int_equal(p->depth, 2 * NPAIRS + PBUF_DEPTH_MIN);
	assert_true(p->avail >= p->depth);
	/* Asked again, every missed receive finds a buffer. */
	for (int i = 0; i < nmissed; i++)
		arm_recv(sv[missed[i]][0], (uint64_t)missed[i]);
	nbids = 0;
	for (int i = 0; i < nmissed; i++) {
		int res, bid;

		next_cqe(&res, &bid);
		assert_int_equal(res, 1);
		pbuf_taken(p, bid);
		bids[nbids++] = bid;
	}
	for (int i = 0; i < nbids; i++)
		pbuf_unref(p, bids[i]);
	pbuf_turn(p);
	/* One quiet turn does not cut the depth; many bring it back down. */
	depth = p->depth;
	pbuf_turn(p);
	assert_true(p->depth < depth);
	assert_true(p->depth > depth - depth / 4);
	for (int i = 0; i < 100; i++)
		pbuf_turn(p);
	assert_int_equal(p->depth, PBUF_DEPTH_MIN);
	assert_all_free(p);
	for (int i = 0; i < NPAIRS; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static size_t conn_got;

static void
on_recv_count(struct conn *c, char *data, size_t len, int bid)
{
	(void)c;
	(void)data;
	assert_true(bid >= 0);	/* a pool buffer, not a private one */
	conn_got += len;
}

static const struct conn_ops count_ops = { .on_recv = on_recv_count };

/*
 * The kernel ring emptied within a turn while freed buffers wait on the
 * stack: a conn arming a receive then refills it instead of starving
 * (a starved conn waits for a turn end that ring_poll never runs).
 */
static void
test_arm_refills_empty_ring(void **state)
{
	struct pbuf_pool *p = ring.pbufs;
	struct conn c;
	int sv[2], cv[2], bids[NBUFS], n = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cv), 0);
	while (p->avail) {
		int res, bid;

		assert_int_equal(write(sv[1], "y", 1), 1);
		arm_recv(sv[0], 0);
		next_cqe(&res, &bid);
		assert_int_equal(res, 1);
		pbuf_taken(p, bid);
		bids[n++] = bid;
	}
	for (int i = 0; i < n; i++)
		pbuf_unref(p, bids[i]);
	assert_int_equal(p->avail, 0);
	assert_int_equal(pbuf_free_count(p), NBUFS);
	conn_init(&c, &ring, cv[0], &count_ops, NULL);
	conn_recv_start(&c);
	assert_false(c.starved);
	assert_true(c.recv_armed);
	assert_true(p->avail > 0);
	conn_got = 0;
	assert_int_equal(write(cv[1], "hello", 5), 5);
	for (int i = 0; i < 50 && conn_got < 5; i++)
		ring_poll(&ring, 100);
	assert_int_equal(conn_got, 5);
	conn_close(&c);
	for (int i = 0; i < 50 && c.inflight; i++)
		ring_poll(&ring, 100);
	assert_int_equal(c.inflight, 0);
	conn_ring_turn(&ring);	/* frees the closed conn, as ring_run would */
	pbuf_turn(p);
	assert_all_free(p);
	close(sv[0]);
	close(sv[1]);
	close(cv[1]);
}

static int
setup(void **state)
{
	(void)state;
	return ring_init(&ring, 128, NBUFS, BUFSIZE) < 0 ? -1 : 0;
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
		cmocka_unit_test(test_stream_stays_on_few_buffers),
		cmocka_unit_test(test_burst_grows_then_shrinks),
		cmocka_unit_test(test_arm_refills_empty_ring),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
