/*
 * bench_data_scan.c - micro-benchmark of proxy/data_scan.c: GB/s over
 * 1 MB dot-stuffed messages of 78-octet text lines (plus CRLF), fed in
 * 64 KB chunks as a recv loop would, and whole. Not a test_* file, so
 * the Makefile does not build it; build by hand:
 *
 *   cc -std=gnu11 -O2 -D_GNU_SOURCE -Iproxy tests/unit/bench_data_scan.c \
 *      proxy/data_scan.c -o /tmp/bench_data_scan && /tmp/bench_data_scan
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "data_scan.h"

#define MSG_SIZE (1024 * 1024)
#define LINE 78

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 MB of 78-octet lines, some starting with a (stuffed) dot, then the end. */
static size_t
make_msg(char *buf)
{
	static const char text[] = "The quick brown fox jumps over the lazy dog. "
	    "0123456789 abcdefghijklmnopqrstuvwxyz ";
	size_t n = 0, i, line = 0;

	while (n + LINE + 2 + 3 <= MSG_SIZE) {
		for (i = 0; i < LINE; i++)
			buf[n + i] = text[(line * 7 + i) % (sizeof(text) - 1)];
		if (line % 50 == 0)
			buf[n] = '.';
		n += LINE;
		buf[n++] = '\r';
		buf[n++] = '\n';
		line++;
	}
	memcpy(buf + n, ".\r\n", 3);
	return n + 3;
}

static double
run(const char *msg, size_t len, size_t chunk, int iters)
{
	struct data_scan s;
	size_t pos, n, used;
	double t0 = now();
	int it;

	for (it = 0; it < iters; it++) {
		data_scan_init(&s, 0);
		for (pos = 0; pos < len; pos += used) {
			n = len - pos < chunk ? len - pos : chunk;
			used = data_scan(&s, msg + pos, n);
			if (s.done)
				break;
		}
		if (!s.done || s.flags != 0 || s.offset != len) {
			fprintf(stderr, "bench: scanner disagrees (done %d flags %#x)\n",
			    s.done, s.flags);
			exit(1);
		}
	}
	return (double)len * iters / (now() - t0) / 1e9;
}

int
main(void)
{
	char *msg = malloc(MSG_SIZE);
	size_t len;
	int i;

	if (msg == NULL)
		return 1;
	len = make_msg(msg);
	run(msg, len, len, 50);	/* warm up */
	for (i = 0; i < 3; i++) {
		printf("1 MB, %d-octet lines: whole %.2f GB/s, 64 KB chunks %.2f GB/s, "
		    "1500 B chunks %.2f GB/s\n", LINE, run(msg, len, len, 2000),
		    run(msg, len, 65536, 2000), run(msg, len, 1500, 2000));
	}
	free(msg);
	return 0;
}
