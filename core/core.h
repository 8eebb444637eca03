/*
 * core.h - small helpers every module uses: branch hints, array size,
 * container_of, and the four-word result vocabulary (OK/AGAIN/DONE/ERR).
 */
#ifndef CORE_CORE_H
#define CORE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

enum {
	CORE_ERR = -1,
	CORE_OK = 0,
	CORE_AGAIN = 1,
	CORE_DONE = 2,
};

#endif
