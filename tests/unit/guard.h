/*
 * guard.h - guard-page buffers for the unit tests of pure parsers. Input
 * is copied so that its last octet sits right before a PROT_NONE page:
 * any read past the end faults at once, with or without ASan
 * (picohttpparser test.c does the same).
 */
#ifndef TESTS_GUARD_H
#define TESTS_GUARD_H

#include <stddef.h>

struct guard {
	unsigned char *map;	/* the whole mapping */
	size_t maplen;
	size_t cap;		/* usable octets before the guard page */
};

/* Maps room for cap octets plus the guard page; 0 or -1 (errno set). */
int guard_init(struct guard *g, size_t cap);
/*
 * Copies data[0..len) so that it ends at the guard page and returns the
 * copy; NULL when len > cap. The previous copy is overwritten.
 */
const char *guard_copy(struct guard *g, const void *data, size_t len);
/* guard_copy of a NUL-terminated string, without the NUL. */
const char *guard_str(struct guard *g, const char *s);
void guard_free(struct guard *g);

#endif
