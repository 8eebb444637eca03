/*
 * load_parse.c - parsing of mxload's sizes, durations, counts and rates
 * (see load_parse.h). Pure functions: no state, no allocation.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "load_parse.h"

/* Leading digits only (strtoull would accept signs and spaces). */
static int
load_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	*end = p;
	return 0;
}

static int
load_scale(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul && v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int
load_parse_uint(const char *s, uint64_t *out)
{
	const char *end;

	if (load_digits(s, out, &end) < 0 || *end != '\0')
		return -1;
	return 0;
}

int
load_parse_size(const char *s, uint64_t *out)
{
	const char *end;
	uint64_t v, mul;

	if (load_digits(s, &v, &end) < 0)
		return -1;
	if (end[0] == '\0')
		mul = 1;
	else if (end[1] != '\0' && !((end[1] == 'b' || end[1] == 'B') && end[2] == '\0'))
		return -1;
	else if (end[0] == 'k' || end[0] == 'K')
		mul = 1024;
	else if (end[0] == 'm' || end[0] == 'M')
		mul = 1024 * 1024;
	else if (end[0] == 'g' || end[0] == 'G')
		mul = 1024ull * 1024 * 1024;
	else
		return -1;
	return load_scale(v, mul, out);
}

int
load_parse_duration(const char *s, uint64_t *out_ms)
{
	const char *end;
	uint64_t v, mul;

	if (load_digits(s, &v, &end) < 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else
		return -1;
	return load_scale(v, mul, out_ms);
}

int
load_parse_rate(const char *s, double *out)
{
	char *end;
	double v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end != '\0' || !isfinite(v) || v <= 0)
		return -1;
	*out = v;
	return 0;
}
