/*
 * bench_data_scan.c - micro-benchmark of proxy/data_scan.c: GB/s over
 * 1 MB dot-stuffed messages, fed whole, in 64 KB chunks as a recv loop
 * would, and in 1500 B chunks, for each implementation the CPU has
 * (data_scan_impl.h) and for data_scan() itself. Inputs: text lines of
 * 78 octets (plus CRLF; every 50th stuffed), 20 and 998 octets, 8-bit
 * (UTF-8) text of 78 octets, every line stuffed, and two flagged ones
 * (Unix LF line ends; one line of 1 MB). Not a test_* file, so the
 * Makefile does not build it; build by hand:
 *
 *   cc -std=gnu11 -O2 -D_GNU_SOURCE -Iproxy tests/unit/bench_data_scan.c \
 *      proxy/data_scan.c -o /tmp/bench_data_scan && /tmp/bench_data_scan
 *
 * Arguments: a substring of the input names to run only those.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "data_scan.h"
#include "data_scan_impl.h"

#define MSG_SIZE (1024 * 1024)

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * About 1 MB of `line`-octet lines (0: one line of it all), each
 * `stuff`-th starting with a stuffed dot (0: none), ended by `eol`, then
 * the end. utf8: the text is two-octet UTF-8 (and 8-bit octets).
 */
static size_t
make_msg(char *buf, size_t line, unsigned stuff, int utf8, const char *eol)
{
	static const char text[] = "The quick brown fox jumps over the lazy dog. "
	    "0123456789 abcdefghijklmnopqrstuvwxyz ";
	static const char utext[] = "\xc3\xa9t\xc3\xa9 \xc3\xa0 \xc3\xbc"
	    "ber \xe2\x82\xac\xc3\xa7" "a \xd0\xbf\xd1\x80\xd0\xb8 ";
	const char *t = utf8 ? utext : text;
	size_t tl = utf8 ? sizeof(utext) - 1 : sizeof(text) - 1;
	size_t el = strlen(eol), n = 0, i, nl = 0;

	if (line == 0)
		line = MSG_SIZE - 5 - el;
	while (n + line + el + 5 <= MSG_SIZE) {
		for (i = 0; i < line; i++)
			buf[n + i] = t[(nl * 7 + i) % tl];
		if (stuff != 0 && nl % stuff == 0)
			buf[n] = '.';
		if (utf8 && (buf[n + line - 1] & 0xc0) == 0xc0)
			buf[n + line - 1] = 'x';	/* no split sequence */
		n += line;
		memcpy(buf + n, eol, el);
		n += el;
		nl++;
	}
	memcpy(buf + n, "\r\n.\r\n", 5);
	return n + 5;
}

static double
run(int impl, const char *msg, size_t len, size_t chunk, int iters,
    uint32_t want_flags)
{
	struct data_scan s;
	size_t pos, n, used;
	double t0 = now();
	int it;

	for (it = 0; it < iters; it++) {
		data_scan_init(&s, 0);
		for (pos = 0; pos < len; pos += used) {
			n = len - pos < chunk ? len - pos : chunk;
			used = impl < 0 ? data_scan(&s, msg + pos, n) :
			    data_scan_impl_scan(impl, &s, msg + pos, n);
			if (s.done)
				break;
		}
		if (!s.done || s.flags != want_flags || s.offset != len) {
			fprintf(stderr, "bench: scanner disagrees (done %d flags %#x)\n",
			    s.done, s.flags);
			exit(1);
		}
	}
	return (double)len * iters / (now() - t0) / 1e9;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		size_t line;
		unsigned stuff;
		int utf8;
		const char *eol;
		uint32_t flags;
	} in[] = {
		{ "78-octet lines", 78, 50, 0, "\r\n", 0 },
		{ "20-octet lines", 20, 50, 0, "\r\n", 0 },
		{ "998-octet lines", 998, 50, 0, "\r\n", 0 },
		{ "8-bit 78-octet lines", 78, 50, 1, "\r\n", 0 },
		{ "78-octet lines all stuffed", 78, 1, 0, "\r\n", 0 },
		/* a bare LF ends no line: this is one long line too */
		{ "flagged: 78-octet LF lines", 78, 50, 0, "\n",
		  DATA_FLAG_BARE_LF | DATA_FLAG_LONG_LINE },
		{ "flagged: one 1 MB line", 0, 0, 0, "\r\n",
		  DATA_FLAG_LONG_LINE },
	};
	char *msg = malloc(MSG_SIZE);
	size_t len, i;
	int impl, rep;

	if (msg == NULL)
		return 1;
	printf("data_scan() uses %s\n",
	    data_scan_impl_name(data_scan_impl_default()));
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		if (argc > 1 && strstr(in[i].name, argv[1]) == NULL)
			continue;
		len = make_msg(msg, in[i].line, in[i].stuff, in[i].utf8,
		    in[i].eol);
		printf("1 MB, %s:\n", in[i].name);
		for (impl = -1; impl < DATA_SCAN_IMPL_COUNT; impl++) {
			double w = 0, c64 = 0, c15 = 0, x;

			if (impl >= 0 && !data_scan_impl_available(impl))
				continue;
			run(impl, msg, len, len, 20, in[i].flags);	/* warm up */
			/* best of 3 */
			for (rep = 0; rep < 3; rep++) {
				x = run(impl, msg, len, len, 300, in[i].flags);
				w = x > w ? x : w;
				x = run(impl, msg, len, 65536, 300, in[i].flags);
				c64 = x > c64 ? x : c64;
				x = run(impl, msg, len, 1500, 300, in[i].flags);
				c15 = x > c15 ? x : c15;
			}
			printf("  %-12s whole %6.2f GB/s, 64 KB chunks %6.2f GB/s, "
			    "1500 B chunks %6.2f GB/s\n", impl < 0 ? "data_scan()" :
			    data_scan_impl_name(impl), w, c64, c15);
		}
	}
	free(msg);
	return 0;
}
