/*
 * fuzz_data_scan.c - libFuzzer target for proxy/data_scan.c. The first
 * two input octets choose max_line and a chunking pattern; the rest is
 * the DATA stream. Every implementation the CPU has (data_scan_impl.h:
 * scalar, sse2, avx2), fed whole and fed in chunks (each in an
 * exact-size heap block, so ASan sees over-reads), and a feed whose
 * chunks go to the implementations in turn, must agree with a
 * byte-at-a-time reference model, and so with each other, on the end,
 * the flags, first_flag_at and the final scanner state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "data_scan.h"
#include "data_scan_impl.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)
#define NOT_ENDED ((size_t)-1)

struct result {
	size_t end;
	uint32_t flags;
	uint64_t first;
	uint32_t state, line_len;	/* scanner only, when not ended */
};

static void
mflag(struct result *r, uint32_t f, size_t at)
{
	if (r->flags == 0)
		r->first = at;
	r->flags |= f;
}

/* The rules, one octet at a time with lookahead (see test_data_scan.c). */
static void
model(const uint8_t *b, size_t n, uint32_t max, struct result *r)
{
	size_t i, len = 0;
	int bol = 1;

	r->end = NOT_ENDED;
	r->flags = 0;
	r->first = 0;
	for (i = 0; i < n; i++) {
		uint8_t c = b[i];

		if (bol) {
			bol = 0;
			len = 0;
			if (c == '.') {
				if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n') {
					r->end = i + 3;
					return;
				}
				continue;
			}
		}
		if (++len > max)
			mflag(r, DATA_FLAG_LONG_LINE, i);
		if (c == '\0')
			mflag(r, DATA_FLAG_NUL, i);
		else if (c == '\r' && i + 1 < n && b[i + 1] != '\n')
			mflag(r, DATA_FLAG_BARE_CR, i);
		else if (c == '\n') {
			if (i > 0 && b[i - 1] == '\r')
				bol = 1;
			else
				mflag(r, DATA_FLAG_BARE_LF, i);
		}
	}
}

/*
 * Feeds b[0..n) to implementation which (-1: the next available one for
 * each chunk, in turn); pattern 0: whole, else chunk sizes cycle
 * through 1..pattern.
 */
static void
run(int which, const uint8_t *b, size_t n, uint32_t max, unsigned pattern,
    struct result *r)
{
	struct data_scan s;
	size_t pos = 0, chunk, used;
	unsigned step = 0;
	int w = which < 0 ? 0 : which;
	char *c;

	data_scan_init(&s, max);
	r->end = NOT_ENDED;
	while (pos < n) {
		chunk = pattern == 0 ? n - pos : 1 + (step++ * 7 + pattern) % pattern;
		if (chunk > n - pos)
			chunk = n - pos;
		c = malloc(chunk);
		if (c == NULL)
			abort();
		memcpy(c, b + pos, chunk);
		if (which < 0)
			do
				w = (w + 1) % DATA_SCAN_IMPL_COUNT;
			while (!data_scan_impl_available(w));
		used = data_scan_impl_scan(w, &s, c, chunk);
		free(c);
		CHECK(used <= chunk);
		if (s.done) {
			r->end = pos + used;
			CHECK(s.offset == r->end);
			break;
		}
		CHECK(used == chunk);
		pos += chunk;
		CHECK(s.offset == pos);
	}
	r->flags = s.flags;
	r->first = s.first_flag_at;
	r->state = s.done ? 0 : s.state;
	r->line_len = s.done ? 0 : s.line_len;
}

static void
same(const struct result *a, const struct result *b)
{
	CHECK(a->end == b->end);
	CHECK(a->flags == b->flags);
	CHECK(a->flags == 0 || a->first == b->first);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result want, got, first;
	uint32_t max;
	unsigned pattern;
	int w, any = 0;

	if (size < 2)
		return 0;
	/* small limits so that long lines are reachable by the fuzzer */
	max = data[0] < 128 ? 0 : (uint32_t)(data[0] - 127);
	pattern = data[1] % 64;
	data += 2;
	size -= 2;
	model(data, size, max ? max : DATA_LINE_MAX, &want);
	for (w = 0; w < DATA_SCAN_IMPL_COUNT; w++) {
		if (!data_scan_impl_available(w))
			continue;
		run(w, data, size, max, 0, &got);
		same(&got, &want);
		/* the implementations also leave the same state */
		if (!any)
			first = got;
		CHECK(got.state == first.state && got.line_len == first.line_len);
		any = 1;
		run(w, data, size, max, pattern ? pattern : 1, &got);
		same(&got, &want);
		CHECK(got.state == first.state && got.line_len == first.line_len);
	}
	CHECK(any);
	run(-1, data, size, max, pattern ? pattern : 1, &got);
	same(&got, &want);
	CHECK(got.state == first.state && got.line_len == first.line_len);
	return 0;
}
