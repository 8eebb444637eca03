/*
 * guard.c - owns the guard-page buffer helper of tests/unit (see
 * guard.h). Linked into every unit test, so it must not define main.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "guard.h"

int
guard_init(struct guard *g, size_t cap)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t room = (cap + page - 1) / page * page;
	void *m;

	if (room == 0)
		room = page;
	m = mmap(NULL, room + page, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -1;
	/* the last page is the guard: reading it faults */
	if (mprotect((unsigned char *)m + room, page, PROT_NONE) != 0) {
		munmap(m, room + page);
		return -1;
	}
	g->map = m;
	g->maplen = room + page;
	g->cap = room;
	return 0;
}

const char *
guard_copy(struct guard *g, const void *data, size_t len)
{
	unsigned char *dst;

	if (len > g->cap)
		return NULL;
	dst = g->map + g->cap - len;
	if (len > 0)
		memcpy(dst, data, len);
	return (const char *)dst;
}

const char *
guard_str(struct guard *g, const char *s)
{
	return guard_copy(g, s, strlen(s));
}

void
guard_free(struct guard *g)
{
	if (g->map != NULL)
		munmap(g->map, g->maplen);
	g->map = NULL;
	g->maplen = g->cap = 0;
}
