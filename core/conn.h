/*
 * conn.h - a stream socket driven by the ring: receive (into the ring's
 * provided buffers, or a private buffer), an ordered send queue of
 * copied bytes and zero-copy references to received buffers, connect,
 * and a close that waits for every operation in flight.
 *
 * Ownership: bytes given to conn_write are copied; a buffer given to
 * conn_write_pbuf gets a reference that is dropped when the kernel has
 * sent its last byte, so the memory is not reused before. One send is
 * in flight at a time (two could reorder); short sends resume where
 * they stopped. Writes are queued; conn_flush starts sending, so the
 * replies to a pipelined group leave in one send.
 *
 * Receiving is one-shot and re-armed after each completion unless
 * paused: pausing is the back-pressure, nothing is read while paused.
 */
#ifndef CORE_CONN_H
#define CORE_CONN_H

#include <sys/uio.h>
#include <sys/socket.h>
#include "ring.h"
#include "net.h"

#define CONN_IOV_MAX 64
#define CONN_SEG_REF (-2)

struct conn;
struct conn_ops {
	/*
	 * Bytes arrived. bid >= 0: they live in provided buffer bid, valid
	 * for this call only unless the callee takes pbuf_ref(); bid < 0:
	 * in the conn's private buffer, valid for this call only.
	 */
	void (*on_recv)(struct conn *c, char *data, size_t len, int bid);
	/* Peer closed (err 0) or receive/send failed (-errno). Optional: default closes. */
	void (*on_eof)(struct conn *c, int err);
	/* The send queue became empty. Optional. */
	void (*on_drain)(struct conn *c);
	/* conn_connect finished: 0 or -errno. Optional. */
	void (*on_connect)(struct conn *c, int res);
	/* Everything finished after conn_close; the fd is closed; owner may free c. */
	void (*on_closed)(struct conn *c);
	/* conn_tls_start's handshake finished: 0, or -EPROTO (owner closes). */
	void (*on_tls)(struct conn *c, int err);
};

struct conn_tls;

struct conn_seg {
	const char *p;
	uint32_t len;
	int32_t bid;		/* >= 0: provided buffer reference; CONN_SEG_REF: caller's memory */
	char *chunk;		/* malloc'd copy space (bid < 0), freed when sent */
	uint32_t cap;		/* chunk capacity */
};

struct conn {
	struct ring *ring;
	int fd;
	const struct conn_ops *ops;
	void *owner;
	struct ring_op recv_op, send_op, connect_op;
	unsigned inflight;	/* operations the kernel still holds, + callbacks running */
	unsigned recv_armed:1, recv_paused:1, recv_started:1, sending:1,
		 closing:1, close_after_send:1, eof:1, starved:1, closed_notified:1,
		 drained:1;	/* the last receive left the socket empty */
	char *rbuf;		/* private receive buffer, or NULL for pbufs */
	uint32_t rbuf_size;
	struct conn_seg *segs;	/* circular queue */
	uint32_t seg_head, seg_count, seg_cap;
	size_t queued;		/* bytes queued, not yet sent */
	size_t tls_queued;	/* plaintext waiting to be encrypted */
	struct conn_tls *tls;	/* NULL: plain; else the record layer (conn_tls.c) */
	struct conn *next_tls_pump;
	uint64_t bytes_in, bytes_out;
	struct msghdr msg;
	struct iovec iov[CONN_IOV_MAX];
	struct conn *next_starved, *next_closing;
	struct net_addr connect_addr;
};

/* fd may be -1 before conn_connect. */
void conn_init(struct conn *c, struct ring *r, int fd, const struct conn_ops *ops, void *owner);
/* Receive into a private buffer of size bytes instead of the pbuf pool. Call before conn_recv_start. */
int conn_use_private_buffer(struct conn *c, uint32_t size);
/* Arms the first receive. */
void conn_recv_start(struct conn *c);
void conn_recv_pause(struct conn *c);
void conn_recv_resume(struct conn *c);

/* Frees the ring's cache of send chunks (at ring_destroy). */
void conn_chunks_release(struct ring *r);

/* Queue a copy of p[0..n). Returns 0 or -1 (ENOMEM). */
int conn_write(struct conn *c, const void *p, size_t n);
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue a reference to received memory in pbuf bid (takes a pbuf_ref). */
int conn_write_pbuf(struct conn *c, const char *p, size_t n, int bid);
/*
 * Queue a reference to memory the caller keeps unchanged until the conn
 * closes or the bytes are sent (static or long-lived data): no copy.
 */
int conn_write_ref(struct conn *c, const void *p, size_t n);
/* Start sending the queue if nothing is in flight. */
void conn_flush(struct conn *c);
static inline size_t conn_queued(const struct conn *c) { return c->queued + c->tls_queued; }

/*
 * Creates the socket and connects; on_connect reports. fd must be -1.
 * cc: a TCP congestion control for the socket (not for unix ones), or NULL
 * for the system's; if it cannot be set, the connect goes on and *cc_err
 * gets -errno (else 0).
 */
int conn_connect(struct conn *c, const struct net_addr *a, const char *cc, int *cc_err);

/*
 * Abortive close: no more callbacks but on_closed, which comes once
 * every operation in flight has completed (never from inside this call).
 * Unsent data is dropped. Idempotent.
 */
void conn_close(struct conn *c);
/* Graceful: send what is queued, then close (on_closed as above). */
void conn_close_after_send(struct conn *c);

/*
 * TLS under the conn: from now on received bytes go through the record
 * layer and on_recv sees plaintext (bid -1); writes are encrypted at
 * conn_flush. Bytes queued before this call leave in clear, first (the
 * STARTTLS "220" reply). on_tls reports the handshake. ctx is a
 * struct tls_ctx; sni_host (clients) may be NULL. Returns 0, -ENOMEM,
 * -EPROTO when wolfSSL cannot make the session (its allocation or its
 * random generator failed), or -EALREADY (TLS already, or closing).
 */
struct tls_ctx;
int conn_tls_start(struct conn *c, struct tls_ctx *ctx, int server, const char *sni_host);
/* Why conn_tls_start failed, for logs: "out of memory", ... */
const char *conn_tls_start_error(int rc);
/* Ciphertext that arrived before conn_tls_start (after a PROXY header): read it first. */
int conn_tls_push_input(struct conn *c, const void *p, size_t n);
/* After a finished handshake: "TLSv1.3", the cipher, whether the session was resumed. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);
int conn_tls_resumed(const struct conn *c);
/* Why the handshake failed (for the log). */
const char *conn_tls_error(const struct conn *c);
/* Server side: the SNI name the client sent, or NULL. */
const char *conn_tls_sni(const struct conn *c);
static inline int conn_tls_active(const struct conn *c) { return c->tls != NULL; }

/* Called by ring_run at the end of each turn (internal). */
void conn_ring_turn(struct ring *r);

#endif
