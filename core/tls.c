/*
 * tls.c - wolfSSL contexts (see tls.h): loading certificates and keys,
 * protocol range, cipher and group preference, session tickets, SNI
 * dispatch to further contexts, and client contexts for backends.
 */
#include <wolfssl/options.h>	/* first: it fixes the layout of every other header */
#include <wolfssl/ssl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "tls.h"

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

struct tls_sni {
	char *host;			/* lower case; "*.d" matches one label */
	struct tls_ctx *site;
};

struct tls_ctx {
	WOLFSSL_CTX *ctx;
	struct tls_sni *sni;		/* owned, with their sites */
	unsigned nsni;
};

/*
 * With AES-NI, AES-GCM is the fastest AEAD by far (~7 GB/s a core); without
 * it ChaCha20-Poly1305 is 2.4x faster than software AES, so it goes first.
 */
static const char ciphers_aesni[] =
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char ciphers_soft[] =
	"TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";

int
tls_have_aesni(void)
{
#ifdef WOLFSSL_AESNI
	return 1;
#else
	return 0;
#endif
}

const char *
tls_library_info(void)
{
	static char buf[96];

	snprintf(buf, sizeof(buf), "wolfSSL %s, AES-NI %s", wolfSSL_lib_version(),
		 tls_have_aesni() ? "on" : "off");
	return buf;
}

int
tls_global_init(void)
{
	return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

void
tls_global_cleanup(void)
{
	wolfSSL_Cleanup();
}

/* The reason a file cannot be used: the OS's if it cannot be read, else wolfSSL's. */
static void
file_err(char *err, size_t errlen, const char *what, const char *path, int rc)
{
	FILE *f = fopen(path, "r");
	char reason[128];

	if (f == NULL) {
		snprintf(err, errlen, "cannot load %s %s: %s", what, path, strerror(errno));
		return;
	}
	fclose(f);
	wolfSSL_ERR_error_string_n((unsigned long)(rc < 0 ? -rc : rc), reason, sizeof(reason));
	snprintf(err, errlen, "cannot load %s %s: %s (wolfSSL error %d)", what, path, reason, rc);
}

static void
set_preferences(WOLFSSL_CTX *ctx)
{
	int groups[] = { WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1 };

	wolfSSL_CTX_set_cipher_list(ctx, tls_have_aesni() ? ciphers_aesni : ciphers_soft);
	wolfSSL_CTX_set_groups(ctx, groups, (int)(sizeof(groups) / sizeof(groups[0])));
}

static int
host_matches(const char *pattern, const char *host)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(host, '.');
		return dot != NULL && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

/* SNI: switch the handshake to the site whose name matches; otherwise stay on the default. */
static int
sni_cb(WOLFSSL *ssl, int *ad, void *arg)
{
	struct tls_ctx *def = arg;
	const char *name = wolfSSL_get_servername(ssl, WOLFSSL_SNI_HOST_NAME);

	(void)ad;
	if (name == NULL || *name == '\0')
		return 0;
	/* Exact names first, so a wildcard never shadows a specific site. */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned i = 0; i < def->nsni; i++) {
			const char *h = def->sni[i].host;
			if ((h[0] == '*') != pass)
				continue;
			if (host_matches(h, name)) {
				wolfSSL_set_SSL_CTX(ssl, def->sni[i].site->ctx);
				return 0;
			}
		}
	}
	return 0;
}

struct tls_ctx *
tls_server_ctx_new(const struct tls_server_opts *o, char *err, size_t errlen)
{
	WOLFSSL_METHOD *m;
	struct tls_ctx *t;
	int rc;

	if ((o->protocols & (TLS_V12 | TLS_V13)) == TLS_V12)
		m = wolfTLSv1_2_server_method();
	else if ((o->protocols & (TLS_V12 | TLS_V13)) == TLS_V13)
		m = wolfTLSv1_3_server_method();
	else
		m = wolfSSLv23_server_method();
	t = calloc(1, sizeof(*t));
	if (t == NULL || m == NULL || (t->ctx = wolfSSL_CTX_new(m)) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context (out of memory)");
		free(t);
		return NULL;
	}
	if (o->protocols == (TLS_V12 | TLS_V13) || o->protocols == 0)
		wolfSSL_CTX_SetMinVersion(t->ctx, WOLFSSL_TLSV1_2);
	rc = wolfSSL_CTX_use_certificate_chain_file(t->ctx, o->certificate);
	if (rc != WOLFSSL_SUCCESS) {
		file_err(err, errlen, "certificate", o->certificate, rc);
		goto fail;
	}
	rc = wolfSSL_CTX_use_PrivateKey_file(t->ctx, o->key, WOLFSSL_FILETYPE_PEM);
	if (rc != WOLFSSL_SUCCESS) {
		file_err(err, errlen, "key", o->key, rc);
		goto fail;
	}
	if (wolfSSL_CTX_check_private_key(t->ctx) != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "key %s does not match certificate %s", o->key, o->certificate);
		goto fail;
	}
	set_preferences(t->ctx);
#ifdef WOLFSSL_OP_CIPHER_SERVER_PREFERENCE
	wolfSSL_CTX_set_options(t->ctx, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
#endif
	if (!o->session_tickets) {
		wolfSSL_CTX_NoTicketTLSv12(t->ctx);
		wolfSSL_CTX_no_ticket_TLSv13(t->ctx);
	}
	wolfSSL_CTX_set_servername_callback(t->ctx, sni_cb);
	wolfSSL_CTX_set_servername_arg(t->ctx, t);
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

int
tls_server_ctx_add_sni(struct tls_ctx *def, const char *host, struct tls_ctx *site)
{
	struct tls_sni *v = realloc(def->sni, sizeof(*v) * (def->nsni + 1));
	char *h = strdup(host);

	if (v == NULL || h == NULL) {
		free(h);
		if (v)
			def->sni = v;
		return -1;
	}
	def->sni = v;
	v[def->nsni].host = h;
	v[def->nsni].site = site;
	def->nsni++;
	return 0;
}

struct tls_ctx *
tls_client_ctx_new(int verify, const char *ca, char *err, size_t errlen)
{
	WOLFSSL_METHOD *m = wolfSSLv23_client_method();
	struct tls_ctx *t = calloc(1, sizeof(*t));
	int rc;

	if (t == NULL || m == NULL || (t->ctx = wolfSSL_CTX_new(m)) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context (out of memory)");
		free(t);
		return NULL;
	}
	wolfSSL_CTX_SetMinVersion(t->ctx, WOLFSSL_TLSV1_2);
	set_preferences(t->ctx);
	if (verify) {
		const char *path = ca ? ca : SYSTEM_CA_BUNDLE;
		rc = wolfSSL_CTX_load_verify_locations(t->ctx, path, NULL);
		if (rc != WOLFSSL_SUCCESS) {
			file_err(err, errlen, "CA file", path, rc);
			tls_ctx_free(t);
			return NULL;
		}
		wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(t->ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	return t;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->nsni; i++) {
		free(t->sni[i].host);
		tls_ctx_free(t->sni[i].site);
	}
	free(t->sni);
	/* wolfSSL frees it when the last connection using it is freed. */
	if (t->ctx)
		wolfSSL_CTX_free(t->ctx);
	free(t);
}

void *
tls_ctx_native(struct tls_ctx *t)
{
	return t->ctx;
}
