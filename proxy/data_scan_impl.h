/*
 * data_scan_impl.h - for tests, fuzzers and benchmarks only: the
 * implementations behind data_scan() (proxy/data_scan.h), callable one
 * by one so that each can be checked against the model and against the
 * others. Production code calls data_scan(), which picks the fastest
 * one the CPU has, once.
 */
#ifndef PROXY_DATA_SCAN_IMPL_H
#define PROXY_DATA_SCAN_IMPL_H

#include <stddef.h>
#include "data_scan.h"

enum data_scan_impl {
	DATA_SCAN_IMPL_SCALAR = 0,	/* byte at a time, any CPU */
	DATA_SCAN_IMPL_SSE2,		/* 16/32 octets at a time (x86-64 baseline) */
	DATA_SCAN_IMPL_AVX2,		/* 64-octet blocks with bit masks */
	DATA_SCAN_IMPL_AVX512,		/* the same blocks, masks from AVX-512BW */
	DATA_SCAN_IMPL_COUNT
};

/* Nonzero when `which` is compiled in and this CPU can run it. */
int data_scan_impl_available(int which);
/* "scalar", "sse2", "avx2", "avx512"; "?" for anything else. */
const char *data_scan_impl_name(int which);
/* The one data_scan() uses on this CPU. */
int data_scan_impl_default(void);
/*
 * data_scan() with implementation `which`, which must be available.
 * Scanner states are interchangeable: chunks of one stream may go to
 * different implementations.
 */
size_t data_scan_impl_scan(int which, struct data_scan *s, const char *buf,
			   size_t len);

#endif
