/*
 * hist.c - the log-linear histogram (see hist.h). Bucket i covers
 * [hist_bucket_low(i), hist_bucket_low(i + 1)); the width doubles every
 * HIST_SUB buckets, which keeps the relative error constant.
 */
#include <string.h>
#include "hist.h"

void
hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned
hist_index(uint64_t v)
{
	unsigned msb;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	/* Group msb-SUB_BITS+1, then the SUB_BITS bits below the leading one. */
	return ((msb - HIST_SUB_BITS + 1) << HIST_SUB_BITS) +
	       (unsigned)((v >> (msb - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

uint64_t
hist_bucket_low(unsigned i)
{
	unsigned group, shift;

	if (i < HIST_SUB)
		return i;
	group = i >> HIST_SUB_BITS;
	shift = group - 1;
	return (uint64_t)(HIST_SUB + (i & (HIST_SUB - 1))) << shift;
}

void
hist_record(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void
hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

static uint64_t
hist_bucket_mid(unsigned i)
{
	uint64_t lo = hist_bucket_low(i);
	/* The last bucket's upper end would overflow: its width is lo's. */
	uint64_t width = i + 1 < HIST_BUCKETS ? hist_bucket_low(i + 1) - lo : lo;

	return lo + width / 2;
}

uint64_t
hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0, v;

	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* Nearest-rank: the smallest value with at least p % at or below it. */
	rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen < rank)
			continue;
		v = hist_bucket_mid(i);
		if (v < h->min)
			v = h->min;
		if (v > h->max)
			v = h->max;
		return v;
	}
	return h->max;
}
