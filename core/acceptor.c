/*
 * acceptor.c - multishot accept for one listening socket of one worker.
 * Stopping shuts the socket down first, which takes it out of the
 * listening state at once (clients get a refusal, not a hang), then
 * waits for the kernel to end the accept before closing the fd.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "acceptor.h"
#include "log.h"

#define ACCEPTOR_RETRY_MS 100

static void acceptor_done(struct ring_op *op, int res, uint32_t flags);
static void acceptor_arm(struct acceptor *a);

static void
acceptor_retry(struct timer *t)
{
	struct acceptor *a = container_of(t, struct acceptor, retry);

	if (!a->stopping && !a->armed)
		acceptor_arm(a);
}

static void
acceptor_arm(struct acceptor *a)
{
	struct io_uring_sqe *sqe = ring_sqe(a->ring);

	io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	ring_sqe_op(sqe, &a->op);
	a->armed = 1;
}

void
acceptor_start(struct acceptor *a, struct ring *r, int listen_fd, acceptor_fn *fn, void *owner)
{
	a->ring = r;
	a->fd = listen_fd;
	a->on_accept = fn;
	a->owner = owner;
	a->stopping = 0;
	a->op.cb = acceptor_done;
	timer_init(&a->retry, acceptor_retry);
	acceptor_arm(a);
}

static void
acceptor_done(struct ring_op *op, int res, uint32_t flags)
{
	struct acceptor *a = container_of(op, struct acceptor, op);

	if (res >= 0) {
		struct net_addr peer;

		if (a->stopping) {
			close(res);
		} else {
			memset(&peer, 0, sizeof(peer));
			peer.len = sizeof(peer.u);
			if (getpeername(res, &peer.u.sa, &peer.len) < 0) {
				close(res);	/* already reset by the peer */
			} else {
				a->on_accept(a, res, &peer);
			}
		}
	} else if (res != -ECANCELED && res != -EINVAL && !a->stopping) {
		log_warn("accept: %s", strerror(-res));
	}
	if (flags & IORING_CQE_F_MORE)
		return;
	a->armed = 0;
	if (a->stopping) {
		if (a->fd >= 0) {
			close(a->fd);
			a->fd = -1;
		}
		if (a->on_stopped)
			a->on_stopped(a);
		return;
	}
	/* Out of descriptors: asking again at once would spin; pending clients wait in the backlog. */
	if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
		timer_arm(&a->ring->timers, &a->retry, ACCEPTOR_RETRY_MS);
		return;
	}
	/* The kernel ended the multishot for another reason: ask again. */
	acceptor_arm(a);
}

void
acceptor_stop(struct acceptor *a)
{
	struct io_uring_sqe *sqe;

	if (a->stopping)
		return;
	a->stopping = 1;
	timer_cancel(&a->ring->timers, &a->retry);
	shutdown(a->fd, SHUT_RDWR);
	if (!a->armed) {
		close(a->fd);
		a->fd = -1;
		if (a->on_stopped)
			a->on_stopped(a);
		return;
	}
	sqe = ring_sqe(a->ring);
	io_uring_prep_cancel(sqe, &a->op, 0);
	ring_sqe_op(sqe, NULL);
}
