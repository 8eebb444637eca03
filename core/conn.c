/*
 * conn.c - stream sockets on the ring (see conn.h): one-shot receives
 * re-armed unless paused, an ordered send queue with one sendmsg in
 * flight, and a close that completes only once the kernel holds no
 * operation of the conn, so its memory is never freed under the kernel.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conn.h"
#include "conn_tls.h"
#include "log.h"

#define CONN_CHUNK 4096
/*
 * Free chunks a ring keeps for the next reply or command: every reply
 * and backend command takes one and gives it back when sent, several
 * per message, and a list costs less than jemalloc's 4 KB class (2 us
 * of 56 per 1 KB message in perf, 2026-11-28). Bounded: 256 KB a ring.
 */
#if defined(__SANITIZE_ADDRESS__)
static const unsigned chunks_kept = 0;	/* ASan must see a chunk used after its send */
#else
static const unsigned chunks_kept = 64;
#endif

struct free_chunk {
	struct free_chunk *next;
};

static char *
chunk_get(struct ring *r)
{
	struct free_chunk *f = r->chunks;

	if (f == NULL)
		return malloc(CONN_CHUNK);
	r->chunks = f->next;
	r->nchunks--;
	return (char *)f;
}

static void
chunk_put(struct ring *r, char *p, uint32_t cap)
{
	struct free_chunk *f = (struct free_chunk *)p;

	if (cap != CONN_CHUNK || r->nchunks >= chunks_kept) {
		free(p);
		return;
	}
	f->next = r->chunks;
	r->chunks = f;
	r->nchunks++;
}

void
conn_chunks_release(struct ring *r)
{
	while (r->chunks) {
		struct free_chunk *f = r->chunks;

		r->chunks = f->next;
		free(f);
	}
	/* Full from now on: a chunk released after this is freed, not kept. */
	r->nchunks = chunks_kept;
}

static void conn_recv_done(struct ring_op *op, int res, uint32_t flags);
static void conn_send_done(struct ring_op *op, int res, uint32_t flags);
static void conn_connect_done(struct ring_op *op, int res, uint32_t flags);
static void conn_send_now(struct conn *c);

void
conn_init(struct conn *c, struct ring *r, int fd, const struct conn_ops *ops, void *owner)
{
	memset(c, 0, sizeof(*c));
	c->ring = r;
	c->fd = fd;
	c->ops = ops;
	c->owner = owner;
	c->recv_op.cb = conn_recv_done;
	c->send_op.cb = conn_send_done;
	c->connect_op.cb = conn_connect_done;
	c->drained = 1;		/* a new socket: the peer has had no time to send */
}

int
conn_use_private_buffer(struct conn *c, uint32_t size)
{
	c->rbuf = malloc(size);
	if (c->rbuf == NULL)
		return -1;
	c->rbuf_size = size;
	return 0;
}

void
conn_maybe_finish(struct conn *c)
{
	if (!c->closing || c->inflight || c->closed_notified)
		return;
	c->closed_notified = 1;
	/* on_closed runs at the end of the turn, never inside a caller's stack. */
	c->next_closing = c->ring->closing;
	c->ring->closing = c;
}

static void
conn_starve(struct conn *c)
{
	if (c->starved)
		return;
	c->starved = 1;
	c->next_starved = c->ring->starved;
	c->ring->starved = c;
}

static void
conn_unstarve(struct conn *c)
{
	struct conn **pp;

	if (!c->starved)
		return;
	for (pp = &c->ring->starved; *pp; pp = &(*pp)->next_starved) {
		if (*pp == c) {
			*pp = c->next_starved;
			break;
		}
	}
	c->starved = 0;
}

/*
 * One-shot receives, re-armed after each completion, on purpose: a
 * multishot receive saves the re-arm per command but reads a flooding
 * client ahead into the whole buffer pool before a pause can stop it
 * (test_unread_replies_bounded caught +6 MB), in bulk it makes the sends
 * to the backend larger (costlier under BBR's pacing here), and with the
 * kernel's byte cap (6.16+) it measured no cheaper (2026-11-28).
 */
static void
conn_arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->recv_paused || c->closing || c->eof || c->starved)
		return;
	if (c->rbuf == NULL && c->ring->pbufs->avail == 0 && pbuf_refill(c->ring->pbufs) == 0) {
		conn_starve(c);
		return;
	}
	sqe = ring_sqe(c->ring);
	if (c->rbuf) {
		io_uring_prep_recv(sqe, c->fd, c->rbuf, c->rbuf_size, 0);
	} else {
		io_uring_prep_recv(sqe, c->fd, NULL, c->ring->pbufs->size, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = PBUF_GROUP;
	}
	/*
	 * After a receive that left the socket empty, asking now only fails
	 * with EAGAIN before the kernel arms its poll: wait for data first.
	 * At 1 KB a message took 15 receives, half of them such misses.
	 */
	if (c->drained && !c->ring->no_poll_first)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	ring_sqe_op(sqe, &c->recv_op);
	c->recv_armed = 1;
	c->inflight++;
}

void
conn_recv_start(struct conn *c)
{
	c->recv_started = 1;
	conn_arm_recv(c);
}

void
conn_recv_pause(struct conn *c)
{
	c->recv_paused = 1;
}

void
conn_recv_resume(struct conn *c)
{
	if (!c->recv_paused)
		return;
	c->recv_paused = 0;
	if (c->tls)
		conn_tls_input_resumed(c);
	if (c->recv_started)
		conn_arm_recv(c);
}

void
conn_fail(struct conn *c, int err)
{
	c->eof = 1;
	if (c->ops->on_eof) {
		c->inflight++;
		c->ops->on_eof(c, err);
		c->inflight--;
	} else {
		conn_close(c);
	}
}

static void
conn_recv_done(struct ring_op *op, int res, uint32_t flags)
{
	struct conn *c = container_of(op, struct conn, recv_op);
	int bid = -1;
	char *data;

	c->recv_armed = 0;
	c->inflight--;
	if (flags & IORING_CQE_F_BUFFER) {
		bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
		pbuf_taken(c->ring->pbufs, bid);
	}
	if (c->closing || c->eof) {
		if (bid >= 0)
			pbuf_unref(c->ring->pbufs, bid);
		conn_maybe_finish(c);
		return;
	}
	if (res == -ENOBUFS) {
		pbuf_missed(c->ring->pbufs);
		conn_starve(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		conn_arm_recv(c);
		return;
	}
	if (res == -EINVAL && c->drained && !c->ring->no_poll_first) {
		/* A kernel before 5.19 has no POLL_FIRST: receive without it. */
		c->ring->no_poll_first = 1;
		conn_arm_recv(c);
		return;
	}
	if (res <= 0) {
		if (bid >= 0)
			pbuf_unref(c->ring->pbufs, bid);
		conn_fail(c, res);
		conn_maybe_finish(c);
		return;
	}
	data = bid >= 0 ? pbuf_ptr(c->ring->pbufs, bid) : c->rbuf;
	c->drained = (uint32_t)res < (c->rbuf ? c->rbuf_size : c->ring->pbufs->size);
	c->bytes_in += (uint64_t)res;
	c->ring->rx_unsent += (size_t)res;
	c->inflight++;
	if (c->tls)
		conn_tls_input(c, data, (size_t)res);
	else
		c->ops->on_recv(c, data, (size_t)res, bid);
	c->inflight--;
	if (bid >= 0)
		pbuf_unref(c->ring->pbufs, bid);
	conn_arm_recv(c);
	conn_maybe_finish(c);
}

static struct conn_seg *
conn_seg_push(struct conn *c)
{
	if (c->seg_count == c->seg_cap) {
		uint32_t cap = c->seg_cap ? c->seg_cap * 2 : 8;
		struct conn_seg *segs = malloc(cap * sizeof(*segs));

		if (segs == NULL)
			return NULL;
		for (uint32_t i = 0; i < c->seg_count; i++)
			segs[i] = c->segs[(c->seg_head + i) % c->seg_cap];
		free(c->segs);
		c->segs = segs;
		c->seg_cap = cap;
		c->seg_head = 0;
	}
	return &c->segs[(c->seg_head + c->seg_count++) % c->seg_cap];
}

static void
conn_seg_release(struct conn *c, struct conn_seg *s)
{
	if (s->bid >= 0)
		pbuf_unref(c->ring->pbufs, s->bid);
	else if (s->bid != CONN_SEG_REF)
		chunk_put(c->ring, s->chunk, s->cap);
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->tls)
		return conn_tls_queue(c, p, n);
	return conn_raw_write(c, p, n);
}

int
conn_raw_write(struct conn *c, const void *p, size_t n)
{
	struct conn_seg *s;

	if (n == 0 || c->closing)
		return 0;
	if (c->seg_count) {
		s = &c->segs[(c->seg_head + c->seg_count - 1) % c->seg_cap];
		if (s->bid == -1) {
			/* Append after the bytes already queued: memory never moves under a send. */
			size_t used = (size_t)(s->p - s->chunk) + s->len;
			if (s->cap - used >= n) {
				memcpy(s->chunk + used, p, n);
				s->len += (uint32_t)n;
				c->queued += n;
				return 0;
			}
		}
	}
	s = conn_seg_push(c);
	if (s == NULL)
		return -1;
	s->cap = (uint32_t)(n > CONN_CHUNK ? n : CONN_CHUNK);
	s->chunk = s->cap == CONN_CHUNK ? chunk_get(c->ring) : malloc(s->cap);
	if (s->chunk == NULL) {
		c->seg_count--;
		return -1;
	}
	memcpy(s->chunk, p, n);
	s->p = s->chunk;
	s->len = (uint32_t)n;
	s->bid = -1;
	c->queued += n;
	return 0;
}

int
conn_printf(struct conn *c, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return conn_write(c, buf, (size_t)n);
}

/* Queues memory the conn does not copy; bid says how it is released once sent. */
static int
conn_queue_ref(struct conn *c, const char *p, size_t n, int32_t bid)
{
	struct conn_seg *s;

	if (n == 0 || c->closing)
		return 0;
	s = conn_seg_push(c);
	if (s == NULL)
		return -1;
	s->p = p;
	s->len = (uint32_t)n;
	s->bid = bid;
	s->chunk = NULL;
	s->cap = 0;
	c->queued += n;
	return 0;
}

int
conn_write_pbuf(struct conn *c, const char *p, size_t n, int bid)
{
	if (c->tls)
		return conn_tls_queue(c, p, n);
	if (conn_queue_ref(c, p, n, bid) < 0)
		return -1;
	if (n && !c->closing)
		pbuf_ref(c->ring->pbufs, bid);
	return 0;
}

int
conn_write_ref(struct conn *c, const void *p, size_t n)
{
	if (c->tls)
		return conn_tls_queue(c, p, n);
	return conn_queue_ref(c, p, n, CONN_SEG_REF);
}

void
conn_flush(struct conn *c)
{
	if (c->tls)
		conn_tls_encrypt(c);
	if (!c->sending && c->queued && !c->closing)
		conn_send_now(c);
}

static void
conn_send_now(struct conn *c)
{
	struct io_uring_sqe *sqe;
	uint32_t n = 0;

	for (uint32_t i = 0; i < c->seg_count && n < CONN_IOV_MAX; i++) {
		struct conn_seg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
		c->iov[n].iov_base = (void *)s->p;
		c->iov[n].iov_len = s->len;
		n++;
	}
	sqe = ring_sqe(c->ring);
	if (n == 1) {
		/* A plain send skips sendmsg's header and iovec copies. */
		io_uring_prep_send(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len, MSG_NOSIGNAL);
	} else {
		memset(&c->msg, 0, sizeof(c->msg));
		c->msg.msg_iov = c->iov;
		c->msg.msg_iovlen = n;
		io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
	}
	ring_sqe_op(sqe, &c->send_op);
	c->sending = 1;
	c->inflight++;
}

static void
conn_consume(struct conn *c, size_t n)
{
	c->queued -= n;
	c->bytes_out += n;
	while (n) {
		struct conn_seg *s = &c->segs[c->seg_head];
		if (s->len > n) {
			s->p += n;
			s->len -= (uint32_t)n;
			return;
		}
		n -= s->len;
		conn_seg_release(c, s);
		c->seg_head = (c->seg_head + 1) % c->seg_cap;
		c->seg_count--;
	}
}

static void
conn_send_done(struct ring_op *op, int res, uint32_t flags)
{
	struct conn *c = container_of(op, struct conn, send_op);

	(void)flags;
	c->sending = 0;
	c->inflight--;
	if (c->closing) {
		conn_maybe_finish(c);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		conn_send_now(c);
		return;
	}
	if (res < 0) {
		conn_fail(c, res);
		conn_maybe_finish(c);
		return;
	}
	conn_consume(c, (size_t)res);
	if (c->queued) {
		conn_send_now(c);
		return;
	}
	if (c->close_after_send) {
		conn_close(c);
		return;
	}
	if (c->ops->on_drain && c->tls_queued == 0) {
		c->inflight++;
		c->ops->on_drain(c);
		c->inflight--;
		conn_maybe_finish(c);
	}
}

int
conn_connect(struct conn *c, const struct net_addr *a, const char *cc, int *cc_err)
{
	struct io_uring_sqe *sqe;
	int ret;

	c->fd = net_socket_for(a);
	if (c->fd < 0)
		return -errno;
	ret = a->u.sa.sa_family == AF_UNIX ? 0 : net_set_congestion(c->fd, cc);
	if (cc_err)
		*cc_err = ret;
	c->connect_addr = *a;
	sqe = ring_sqe(c->ring);
	io_uring_prep_connect(sqe, c->fd, &c->connect_addr.u.sa, c->connect_addr.len);
	ring_sqe_op(sqe, &c->connect_op);
	c->inflight++;
	return 0;
}

static void
conn_connect_done(struct ring_op *op, int res, uint32_t flags)
{
	struct conn *c = container_of(op, struct conn, connect_op);

	(void)flags;
	c->inflight--;
	if (c->closing) {
		conn_maybe_finish(c);
		return;
	}
	c->inflight++;
	if (c->ops->on_connect)
		c->ops->on_connect(c, res);
	c->inflight--;
	conn_maybe_finish(c);
}

void
conn_close(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->closing)
		return;
	c->closing = 1;
	conn_unstarve(c);
	if (c->fd >= 0) {
		/* Wakes a pending recv (0) and send (EPIPE) so they complete now. */
		shutdown(c->fd, SHUT_RDWR);
		if (c->inflight) {
			sqe = ring_sqe(c->ring);
			io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
			ring_sqe_op(sqe, NULL);
		}
	}
	conn_maybe_finish(c);
}

void
conn_close_after_send(struct conn *c)
{
	if (c->closing)
		return;
	if (c->tls)
		conn_tls_shutdown(c);
	if (c->queued == 0) {
		conn_close(c);
		return;
	}
	c->close_after_send = 1;
	conn_flush(c);
}

void
conn_ring_turn(struct ring *r)
{
	/* Give freed buffers to conns that found none: no more than there are
	 * buffers, or the rest would only fail with ENOBUFS again. */
	unsigned budget = r->pbufs ? pbuf_free_count(r->pbufs) : 0;

	while (r->starved && budget) {
		struct conn *c = r->starved;

		budget--;
		r->starved = c->next_starved;
		c->starved = 0;
		conn_arm_recv(c);
	}
	conn_tls_ring_turn(r);
	while (r->closing) {
		struct conn *c = r->closing;
		r->closing = c->next_closing;
		conn_tls_free(c);
		while (c->seg_count) {
			conn_seg_release(c, &c->segs[c->seg_head]);
			c->seg_head = (c->seg_head + 1) % c->seg_cap;
			c->seg_count--;
		}
		free(c->segs);
		c->segs = NULL;
		free(c->rbuf);
		c->rbuf = NULL;
		c->queued = 0;
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		if (c->ops->on_closed)
			c->ops->on_closed(c);
	}
}
