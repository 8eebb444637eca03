/*
 * load_tls.c - owns mxload's TLS client context and, with --tls-resume,
 * the session each worker offers on its next handshakes.
 *
 * The context comes from core (tls_client_ctx_new): a benchmark tool does
 * not verify the server unless --tls-verify names a CA.
 *
 * Resumption without reaching into conn: core owns each conn's WOLFSSL
 * object and conn.h has no accessor for it, but the context's callbacks
 * are handed that object. The new-session callback gives every session
 * the server grants (a TLS 1.2 id or ticket, a TLS 1.3 ticket) and the
 * worker keeps the newest; the info callback runs at the top of every
 * wolfSSL_connect, and on the first call for a WOLFSSL (marked in its
 * ex_data) offers the kept session, before the ClientHello is built.
 * Both run in the worker's thread (its ring pumps the handshake), so a
 * thread-local pointer finds the worker and nothing is shared.
 */
#include <wolfssl/options.h>	/* first: it fixes the layout of every other header */
#include <wolfssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include "load.h"
#include "load_tls.h"
#include "tls.h"

#if defined(OPENSSL_EXTRA) && defined(HAVE_EXT_CACHE) && defined(HAVE_EX_DATA)
#define LOAD_TLS_RESUME 1
#else
#define LOAD_TLS_RESUME 0
#endif

int
load_tls_can_resume(void)
{
	return LOAD_TLS_RESUME;
}

#if LOAD_TLS_RESUME
static __thread struct load_worker *load_tls_self;
static int load_tls_idx = -1;		/* ex_data slot: "session offered" */
static char load_tls_mark;

/* The server granted a session: keep it (1 = the reference is ours). */
static int
load_tls_new_session(WOLFSSL *ssl, WOLFSSL_SESSION *sess)
{
	struct load_worker *w = load_tls_self;
	WOLFSSL_SESSION *old;

	(void)ssl;
	if (w == NULL)
		return 0;
	old = w->tls_session;
	w->tls_session = sess;
	/* The same object again (a second TLS 1.3 ticket) still drops one reference. */
	if (old)
		wolfSSL_SESSION_free(old);
	return 1;
}

/*
 * SSL_ST_CONNECT: wolfSSL_connect was entered. The object is not const
 * for us (core made it); the callback's prototype is OpenSSL's.
 */
static void
load_tls_info(const WOLFSSL *cssl, int where, int ret)
{
	struct load_worker *w = load_tls_self;
	WOLFSSL *ssl = (WOLFSSL *)(uintptr_t)cssl;

	(void)ret;
	if (where != SSL_ST_CONNECT || w == NULL || wolfSSL_get_ex_data(ssl, load_tls_idx))
		return;
	wolfSSL_set_ex_data(ssl, load_tls_idx, &load_tls_mark);
	/* wolfSSL copies the session; a refusal (expired) just means a full handshake. */
	if (w->tls_session)
		wolfSSL_set_session(ssl, w->tls_session);
}
#endif

int
load_tls_setup(struct load_cfg *cfg, char *err, size_t errlen)
{
	if (tls_global_init() < 0) {
		snprintf(err, errlen, "wolfSSL initialisation failed");
		return -1;
	}
	cfg->tls_ctx = tls_client_ctx_new(cfg->tls_ca != NULL, cfg->tls_ca, err, errlen);
	if (cfg->tls_ctx == NULL) {
		tls_global_cleanup();
		return -1;
	}
	if (!cfg->tls_resume)
		return 0;
#if LOAD_TLS_RESUME
	{
		WOLFSSL_CTX *ctx = tls_ctx_native(cfg->tls_ctx);

		load_tls_idx = wolfSSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (load_tls_idx < 0) {
			snprintf(err, errlen, "no wolfSSL ex_data slot for --tls-resume");
			load_tls_teardown(cfg);
			return -1;
		}
		wolfSSL_CTX_sess_set_new_cb(ctx, load_tls_new_session);
		wolfSSL_CTX_set_info_callback(ctx, load_tls_info);
	}
	return 0;
#else
	snprintf(err, errlen, "--tls-resume: the linked wolfSSL lacks OPENSSL_EXTRA/HAVE_EXT_CACHE");
	load_tls_teardown(cfg);
	return -1;
#endif
}

void
load_tls_teardown(struct load_cfg *cfg)
{
	if (cfg->tls_ctx == NULL)
		return;
	tls_ctx_free(cfg->tls_ctx);
	cfg->tls_ctx = NULL;
	tls_global_cleanup();
}

void
load_tls_worker_begin(struct load_worker *w)
{
#if LOAD_TLS_RESUME
	load_tls_self = w;
#else
	(void)w;
#endif
}

void
load_tls_worker_end(struct load_worker *w)
{
#if LOAD_TLS_RESUME
	load_tls_self = NULL;
	if (w->tls_session)
		wolfSSL_SESSION_free(w->tls_session);
#endif
	w->tls_session = NULL;
}
