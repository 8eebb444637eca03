/*
 * mem.h - allocation shim. The build links jemalloc, which replaces
 * malloc/free, so these are thin: x* variants abort on failure and are
 * for start-up and small control objects; hot paths call malloc and
 * handle NULL themselves.
 */
#ifndef CORE_MEM_H
#define CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
