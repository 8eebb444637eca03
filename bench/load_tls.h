/*
 * load_tls.h - mxload's TLS client side (load_tls.c): the one client
 * context of the run and, with --tls-resume, the session each worker
 * keeps for its next connections. The record layer itself is core's
 * (conn_tls_start); this only decides what a handshake offers.
 */
#ifndef BENCH_LOAD_TLS_H
#define BENCH_LOAD_TLS_H

#include <stddef.h>

struct load_cfg;
struct load_worker;

/*
 * Once, before the workers start: tls_global_init and cfg->tls_ctx
 * (no certificate check unless cfg->tls_ca). Returns 0, or -1 with err set.
 */
int load_tls_setup(struct load_cfg *cfg, char *err, size_t errlen);
/* After the workers have ended: frees the context, cleans the library up. */
void load_tls_teardown(struct load_cfg *cfg);
/* 1 when the linked wolfSSL lets mxload resume sessions (--tls-resume). */
int load_tls_can_resume(void);

/* In the worker's thread, before its first / after its last connection. */
void load_tls_worker_begin(struct load_worker *w);
void load_tls_worker_end(struct load_worker *w);

#endif
