/*
 * hist.h - log-linear latency histogram (HdrHistogram-like): values are
 * counted exactly below 2^HIST_SUB_BITS and in 2^HIST_SUB_BITS linear
 * buckets per power of two above, so any percentile is within ~1.6 % of
 * the true value over the whole 64-bit range with a fixed 30 KB table.
 * One histogram per thread, no locking; merge them at the end.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((65 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count, sum, min, max;
	uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* Adds every value of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/*
 * The value at percentile p (0..100): the middle of the bucket holding
 * it, clamped to the observed min and max. 0 when the histogram is empty.
 */
uint64_t hist_percentile(const struct hist *h, double p);
/* Bucket index of v, and the lowest value of bucket i (exposed for tests). */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned i);

#endif
