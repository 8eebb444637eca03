/*
 * pbuf.h - a ring's provided-buffer pool: the receive buffers the kernel
 * picks from for every conn of the ring, each handed back when its last
 * reference (the receive, then any sends queued from it) is dropped.
 *
 * Freed buffers go on a stack, and the kernel's buffer ring is kept only
 * as deep as a turn's receives need, topped up from the top of the stack:
 * the kernel then copies into memory freed a moment ago and still in the
 * CPU's cache, as a read/write proxy reusing one buffer would. Handing
 * the kernel every free buffer (it takes them first in, first out) cycles
 * the whole pool, 32 MB in mxgate, through the cache: at 1 MB messages the
 * receive copy, the scan and the send copy cost a third more per byte.
 */
#ifndef CORE_PBUF_H
#define CORE_PBUF_H

#include <liburing.h>
#include <stdint.h>

#define PBUF_GROUP 1
/* Kept in the kernel ring at least (while there are free buffers). */
#define PBUF_DEPTH_MIN 8

struct pbuf_pool {
	struct io_uring_buf_ring *br;
	char *base;
	uint32_t nbufs, size, mask;
	uint32_t avail;			/* free buffers in the kernel ring */
	uint32_t nfree;			/* free buffers held back on stack[] */
	uint32_t depth;			/* what the kernel ring is topped up to */
	uint32_t demand;		/* buffers taken or missed since pbuf_turn */
	uint16_t *refs;
	uint16_t *stack;		/* held-back bids, the latest freed on top */
};

/* nbufs a power of 2, at most 32768. Returns 0 or -errno. */
int pbuf_pool_init(struct pbuf_pool **out, struct io_uring *u, unsigned nbufs, unsigned size);
void pbuf_pool_destroy(struct pbuf_pool *p, struct io_uring *u);

static inline char *pbuf_ptr(const struct pbuf_pool *p, int bid) { return p->base + (size_t)bid * p->size; }
/* Free buffers, in the kernel ring or held back. */
static inline uint32_t pbuf_free_count(const struct pbuf_pool *p) { return p->avail + p->nfree; }

/* The kernel filled buffer bid (a completion with IORING_CQE_F_BUFFER);
 * the caller now holds its one reference. */
void pbuf_taken(struct pbuf_pool *p, int bid);
/* A receive found the kernel ring empty (-ENOBUFS). */
void pbuf_missed(struct pbuf_pool *p);
/* Tops the kernel ring up to its depth; returns the buffers now in it. */
uint32_t pbuf_refill(struct pbuf_pool *p);
/* Before each submit (a loop turn's end, an early submit): fits the
 * depth to the demand since the last call, then refills. */
void pbuf_turn(struct pbuf_pool *p);

/* Keeps a received buffer alive past its on_recv call. */
static inline void pbuf_ref(struct pbuf_pool *p, int bid) { p->refs[bid]++; }
/* Drops a reference; the last one frees the buffer. */
void pbuf_unref(struct pbuf_pool *p, int bid);

#endif
