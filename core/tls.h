/*
 * tls.h - TLS contexts (wolfSSL): a server context with its certificate,
 * protocol range and session tickets, further certificates picked by SNI,
 * and client contexts for backends. The record layer itself runs inside
 * conn (conn_tls_start), over in-memory I/O callbacks, so the ring stays
 * the only thing that touches sockets.
 *
 * Contexts are built on the main thread and shared read-only by the
 * workers; wolfSSL counts the connections that use a context, so freeing
 * one after a reload is safe while its handshakes finish.
 */
#ifndef CORE_TLS_H
#define CORE_TLS_H

#include <stddef.h>

struct tls_ctx;

/* Once per process, before any other call. Returns 0 or -1. */
int tls_global_init(void);
void tls_global_cleanup(void);

/* "wolfSSL 5.5.4, AES-NI on" (or off): which library is linked, for -V and the start log. */
const char *tls_library_info(void);
/* 1 when the linked wolfSSL has AES-NI: ciphers are ordered by it. */
int tls_have_aesni(void);

enum { TLS_V12 = 1, TLS_V13 = 2 };	/* bits of tls_server_opts.protocols */

struct tls_server_opts {
	const char *certificate;	/* PEM chain: leaf first */
	const char *key;		/* PEM private key */
	unsigned protocols;		/* TLS_V12 | TLS_V13 */
	int session_tickets;
};

/* NULL with err set ("cannot load certificate FILE: reason") on failure. */
struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *o, char *err, size_t errlen);
/*
 * Handshakes on def whose SNI names host (case-insensitive; "*.example.test"
 * matches one label) switch to site. def keeps a reference to site.
 */
int tls_server_ctx_add_sni(struct tls_ctx *def, const char *host, struct tls_ctx *site);

/*
 * Client context for backends: verify against ca (a PEM file, or the
 * system bundle when NULL) unless verify is 0.
 */
struct tls_ctx *tls_client_ctx_new(int verify, const char *ca, char *err, size_t errlen);

void tls_ctx_free(struct tls_ctx *t);

/* For conn.c: the wolfSSL context (WOLFSSL_CTX *). */
void *tls_ctx_native(struct tls_ctx *t);

#endif
