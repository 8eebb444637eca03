/*
 * assets.h - what a config snapshot needs built from the files it names:
 * the TLS server context (with its SNI sites), a client context per
 * backend that speaks STARTTLS, and the [auth] users table. Built on the
 * main thread when a config is loaded or reloaded; a failure keeps the
 * running snapshot (and so the old certificates) and says why.
 */
#ifndef PROXY_ASSETS_H
#define PROXY_ASSETS_H

#include <stddef.h>
#include "config.h"

struct tls_ctx;
struct auth_users;

struct assets {
	struct tls_ctx *server;		/* NULL without [tls] */
	struct tls_ctx **backend_tls;	/* per config backend; NULL when tls = no */
	unsigned nbackends;
	struct auth_users *users;	/* NULL without [auth] */
};

/* Builds and attaches c->assets. Returns 0, or -1 with err "FILE:LINE: why". */
int assets_build(struct config *c, char *err, size_t errlen);

static inline struct assets *assets_of(const struct config *c) { return c->assets; }

#endif
