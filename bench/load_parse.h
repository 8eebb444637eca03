/*
 * load_parse.h - mxload's command-line value syntax, the same as the
 * config file's: sizes "512 1k 100k 1M 2G" (powers of 1024) and
 * durations "250ms 10s 5m 1h" (a bare number is seconds).
 */
#ifndef BENCH_LOAD_PARSE_H
#define BENCH_LOAD_PARSE_H

#include <stdint.h>

/* Returns 0 and the value, or -1 on bad syntax or overflow. */
int load_parse_size(const char *s, uint64_t *out);
/* In milliseconds; returns 0 or -1. */
int load_parse_duration(const char *s, uint64_t *out_ms);
/* A plain non-negative integer with no suffix; returns 0 or -1. */
int load_parse_uint(const char *s, uint64_t *out);
/* A positive decimal number such as "250" or "0.5"; returns 0 or -1. */
int load_parse_rate(const char *s, double *out);

#endif
