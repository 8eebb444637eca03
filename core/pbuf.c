/*
 * pbuf.c - the provided-buffer pool (see pbuf.h): registration with the
 * kernel, references, and the hot-first refill of the kernel's ring.
 *
 * The kernel takes buffers only while this thread is inside
 * io_uring_enter (receives run as the ring's own deferred task work), so
 * the pool's counts and the ring's contents change only in this thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "pbuf.h"

int
pbuf_pool_init(struct pbuf_pool **out, struct io_uring *u, unsigned nbufs, unsigned size)
{
	struct io_uring_buf_reg reg;
	struct pbuf_pool *p;
	size_t ring_bytes = sizeof(struct io_uring_buf) * nbufs;
	int ret;

	if (nbufs == 0 || (nbufs & (nbufs - 1)) || nbufs > 32768)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->refs = calloc(nbufs, sizeof(*p->refs));
	p->stack = calloc(nbufs, sizeof(*p->stack));
	p->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Pages are touched only when a buffer is used, so an idle pool costs little RSS. */
	p->base = mmap(NULL, (size_t)nbufs * size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->refs == NULL || p->stack == NULL || p->br == MAP_FAILED || p->base == MAP_FAILED) {
		ret = -ENOMEM;
		goto fail;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)p->br;
	reg.ring_entries = nbufs;
	reg.bgid = PBUF_GROUP;
	ret = io_uring_register_buf_ring(u, &reg, 0);
	if (ret < 0)
		goto fail;
	p->nbufs = nbufs;
	p->size = size;
	p->mask = io_uring_buf_ring_mask(nbufs);
	io_uring_buf_ring_init(p->br);
	/* Buffer 0 on top: the low buffers are used first and the rest stay untouched. */
	for (unsigned i = 0; i < nbufs; i++)
		p->stack[i] = (uint16_t)(nbufs - 1 - i);
	p->nfree = nbufs;
	p->depth = PBUF_DEPTH_MIN;
	pbuf_refill(p);
	*out = p;
	return 0;
fail:
	if (p->br != MAP_FAILED && p->br)
		munmap(p->br, ring_bytes);
	if (p->base != MAP_FAILED && p->base)
		munmap(p->base, (size_t)nbufs * size);
	free(p->refs);
	free(p->stack);
	free(p);
	return ret;
}

void
pbuf_pool_destroy(struct pbuf_pool *p, struct io_uring *u)
{
	io_uring_unregister_buf_ring(u, PBUF_GROUP);
	munmap(p->br, sizeof(struct io_uring_buf) * p->nbufs);
	munmap(p->base, (size_t)p->nbufs * p->size);
	free(p->refs);
	free(p->stack);
	free(p);
}

void
pbuf_taken(struct pbuf_pool *p, int bid)
{
	p->avail--;
	p->demand++;
	p->refs[bid] = 1;
}

void
pbuf_missed(struct pbuf_pool *p)
{
	p->demand++;
}

uint32_t
pbuf_refill(struct pbuf_pool *p)
{
	int n = 0;

	while (p->avail + (uint32_t)n < p->depth && p->nfree) {
		uint16_t bid = p->stack[--p->nfree];

		io_uring_buf_ring_add(p->br, pbuf_ptr(p, bid), p->size, bid, p->mask, n++);
	}
	if (n) {
		io_uring_buf_ring_advance(p->br, n);
		p->avail += (uint32_t)n;
	}
	return p->avail;
}

/*
 * Twice the demand since the last call, so a burst a little larger
 * still finds buffers: it grows at once (every -ENOBUFS costs a receive
 * again) and shrinks by an eighth of the excess a call, so that one quiet
 * turn in a busy stretch does not cut it.
 */
void
pbuf_turn(struct pbuf_pool *p)
{
	uint32_t want = 2 * p->demand + PBUF_DEPTH_MIN;

	if (want > p->nbufs)
		want = p->nbufs;
	if (want >= p->depth)
		p->depth = want;
	else
		p->depth -= (p->depth - want + 7) / 8;
	p->demand = 0;
	pbuf_refill(p);
}

void
pbuf_unref(struct pbuf_pool *p, int bid)
{
	if (--p->refs[bid] != 0)
		return;
	p->stack[p->nfree++] = (uint16_t)bid;
}
