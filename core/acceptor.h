/*
 * acceptor.h - multishot accept on a listening socket owned by one
 * worker (SO_REUSEPORT gives each worker its own), re-armed when the
 * kernel ends the multishot (e.g. on EMFILE).
 */
#ifndef CORE_ACCEPTOR_H
#define CORE_ACCEPTOR_H

#include "ring.h"
#include "net.h"

struct acceptor;
/* fd is the accepted, non-blocking socket; peer its address. */
typedef void acceptor_fn(struct acceptor *a, int fd, const struct net_addr *peer);

struct acceptor {
	struct ring *ring;
	struct ring_op op;
	struct timer retry;		/* re-arm later after EMFILE/ENFILE */
	int fd;
	int armed, stopping;
	acceptor_fn *on_accept;
	void (*on_stopped)(struct acceptor *a);	/* optional: after acceptor_stop completes */
	void *owner;
};

/* Takes ownership of listen_fd. */
void acceptor_start(struct acceptor *a, struct ring *r, int listen_fd, acceptor_fn *fn, void *owner);
/*
 * Stops listening at once (new connections are refused, not queued),
 * cancels the accept, closes the fd; on_stopped (if set) follows.
 */
void acceptor_stop(struct acceptor *a);

#endif
