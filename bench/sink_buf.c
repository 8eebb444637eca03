/*
 * sink_buf.c - owns mxsink's growable byte buffer (struct sink_buf):
 * partial command lines, held input, envelopes. Grows by doubling so
 * appending is amortized O(1).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sink.h"

static int
sink_buf_reserve(struct sink_buf *b, size_t extra)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->cap - b->len >= extra)
		return 0;
	while (cap - b->len < extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
sink_buf_append(struct sink_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (sink_buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
sink_buf_printf(struct sink_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(tmp))
		return sink_buf_append(b, tmp, (size_t)n);
	/* Long text (a long address): format again into the buffer itself. */
	if (sink_buf_reserve(b, (size_t)n + 1) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
sink_buf_free(struct sink_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
