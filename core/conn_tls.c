/*
 * conn_tls.c - the TLS record layer under a conn: wolfSSL over in-memory
 * I/O callbacks. Ciphertext arrives through the conn's receives and leaves
 * through its send queue, so the ring stays the only thing that touches
 * the socket and nothing here ever blocks: wolfSSL reads from the bytes
 * just received and says WANT_READ when they are used up.
 *
 * Plaintext writes are gathered and encrypted at conn_flush, so the
 * replies to a pipelined group become one record, not one per reply.
 */
#include <wolfssl/options.h>	/* first: it fixes the layout of every other header */
#include <wolfssl/ssl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn_tls.h"
#include "tls.h"

/* The largest TLS plaintext record: wolfSSL_read never returns more. */
#define TLS_RECORD_MAX 16384
/* Plaintext staging above this is given back to the allocator once sent. */
#define TLS_PT_KEEP (64 * 1024)
#define TLS_PT_SMALL 4096

struct conn_tls {
	WOLFSSL *ssl;
	const char *in;			/* ciphertext not yet read by wolfSSL */
	size_t in_len;
	char *stash;			/* owns `in` when it outlives a receive */
	size_t stash_cap;
	char *pt;			/* plaintext waiting for conn_flush */
	size_t pt_len, pt_cap;
	unsigned server:1, handshaking:1, established:1, shutdown_sent:1,
		 pumping:1, failed:1;
	char err[96];
};

/*
 * Decrypted bytes are handed to on_recv, which consumes them during the
 * call: one buffer per thread serves every conn of the ring.
 */
static __thread char tls_rd[TLS_RECORD_MAX];

static int
io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct conn *c = ctx;
	struct conn_tls *t = c->tls;
	size_t n;

	(void)ssl;
	if (t->in_len == 0)
		return c->eof ? WOLFSSL_CBIO_ERR_CONN_CLOSE : WOLFSSL_CBIO_ERR_WANT_READ;
	n = t->in_len < (size_t)sz ? t->in_len : (size_t)sz;
	memcpy(buf, t->in, n);
	t->in += n;
	t->in_len -= n;
	return (int)n;
}

static int
io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct conn *c = ctx;

	(void)ssl;
	if (conn_raw_write(c, buf, (size_t)sz) < 0)
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

static void
tls_note_error(struct conn_tls *t, int ret)
{
	int e = wolfSSL_get_error(t->ssl, ret);
	char reason[80];

	wolfSSL_ERR_error_string_n((unsigned long)(e < 0 ? -e : e), reason, sizeof(reason));
	snprintf(t->err, sizeof(t->err), "%s (%d)", reason, e);
}

/* Unread ciphertext must survive the receive buffer it came in. */
static int
tls_keep_input(struct conn_tls *t)
{
	if (t->in_len == 0) {
		t->in = NULL;
		if (t->stash_cap > TLS_RECORD_MAX) {
			free(t->stash);
			t->stash = NULL;
			t->stash_cap = 0;
		}
		return 0;
	}
	if (t->stash && t->in >= t->stash && t->in < t->stash + t->stash_cap) {
		memmove(t->stash, t->in, t->in_len);
	} else {
		if (t->stash_cap < t->in_len) {
			char *s = realloc(t->stash, t->in_len);
			if (s == NULL)
				return -1;
			t->stash = s;
			t->stash_cap = t->in_len;
		}
		memcpy(t->stash, t->in, t->in_len);
	}
	t->in = t->stash;
	return 0;
}

static void
tls_handshake_done(struct conn *c, int err)
{
	if (c->ops->on_tls)
		c->ops->on_tls(c, err);
	else if (err)
		conn_close(c);
}

/* Handshake as far as the input allows, then deliver decrypted records. */
static void
tls_pump(struct conn *c)
{
	struct conn_tls *t = c->tls;
	int r;

	if (t->failed || c->closing)
		return;
	if (t->handshaking) {
		r = t->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
		if (r != WOLFSSL_SUCCESS) {
			int e = wolfSSL_get_error(t->ssl, r);
			conn_flush(c);	/* our flight, or the alert that ends it */
			if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
				if (tls_keep_input(t) < 0)
					conn_close(c);
				return;
			}
			tls_note_error(t, r);
			t->failed = 1;
			tls_handshake_done(c, -EPROTO);
			return;
		}
		t->handshaking = 0;
		t->established = 1;
		/*
		 * The owner speaks first (an implicit-TLS greeting): its reply and
		 * what the handshake left queued (a session ticket) leave in one send.
		 */
		tls_handshake_done(c, 0);
		if (c->closing)
			return;
		conn_flush(c);
	}
	while (!c->recv_paused && !c->closing && !c->eof) {
		r = wolfSSL_read(t->ssl, tls_rd, sizeof(tls_rd));
		if (r > 0) {
			c->ops->on_recv(c, tls_rd, (size_t)r, -1);
			continue;
		}
		int e = wolfSSL_get_error(t->ssl, r);
		if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
			break;
		if (e == WOLFSSL_ERROR_ZERO_RETURN) {	/* close_notify */
			conn_fail(c, 0);
			return;
		}
		tls_note_error(t, r);
		t->failed = 1;
		conn_fail(c, -EPROTO);
		return;
	}
	if (c->closing)
		return;
	if (tls_keep_input(t) < 0) {
		conn_close(c);
		return;
	}
	conn_flush(c);		/* a key update or alert wolfSSL answered with */
}

void
conn_tls_input(struct conn *c, const char *data, size_t len)
{
	struct conn_tls *t = c->tls;

	if (t->in_len) {
		/* Input left from a paused pump: the new bytes go after it. */
		size_t need = t->in_len + len;
		if (need > t->stash_cap) {
			size_t off = (size_t)(t->in - t->stash);
			char *s = realloc(t->stash, need);
			if (s == NULL) {
				conn_close(c);
				return;
			}
			t->stash = s;
			t->stash_cap = need;
			t->in = s + off;
		}
		memmove(t->stash, t->in, t->in_len);
		memcpy(t->stash + t->in_len, data, len);
		t->in = t->stash;
		t->in_len = need;
	} else {
		t->in = data;
		t->in_len = len;
	}
	tls_pump(c);
}

int
conn_tls_queue(struct conn *c, const void *p, size_t n)
{
	struct conn_tls *t = c->tls;

	if (n == 0 || c->closing || t->shutdown_sent)
		return 0;
	if (t->pt_cap - t->pt_len < n) {
		size_t cap = t->pt_cap ? t->pt_cap : 4096;
		while (cap - t->pt_len < n)
			cap *= 2;
		char *s = realloc(t->pt, cap);
		if (s == NULL)
			return -1;
		t->pt = s;
		t->pt_cap = cap;
	}
	memcpy(t->pt + t->pt_len, p, n);
	t->pt_len += n;
	c->tls_queued += n;
	return 0;
}

void
conn_tls_encrypt(struct conn *c)
{
	struct conn_tls *t = c->tls;
	int r;

	if (!t->established || t->pt_len == 0 || c->closing || t->failed)
		return;
	/* io_send never blocks, so wolfSSL takes it all (in records of 16 KB). */
	r = wolfSSL_write(t->ssl, t->pt, (int)t->pt_len);
	if (r != (int)t->pt_len) {
		tls_note_error(t, r);
		t->failed = 1;
		conn_close(c);
		return;
	}
	t->pt_len = 0;
	c->tls_queued = 0;
	/*
	 * Replies (a few hundred bytes) would keep a 4 KB buffer on every idle
	 * session: only a sender of bulk data (a backend link in DATA) keeps
	 * its larger one, up to TLS_PT_KEEP, to spare a realloc per flush.
	 */
	if (t->pt_cap <= TLS_PT_SMALL || t->pt_cap > TLS_PT_KEEP) {
		free(t->pt);
		t->pt = NULL;
		t->pt_cap = 0;
	}
}

static void
tls_schedule(struct conn *c)
{
	struct conn_tls *t = c->tls;

	if (t->pumping || c->closing)
		return;
	t->pumping = 1;
	c->next_tls_pump = c->ring->tls_pump;
	c->ring->tls_pump = c;
}

void
conn_tls_input_resumed(struct conn *c)
{
	struct conn_tls *t = c->tls;

	if (t->in_len || (t->established && wolfSSL_pending(t->ssl) > 0))
		tls_schedule(c);
}

void
conn_tls_shutdown(struct conn *c)
{
	struct conn_tls *t = c->tls;

	if (!t->established || t->shutdown_sent || t->failed)
		return;
	conn_tls_encrypt(c);
	wolfSSL_shutdown(t->ssl);	/* queues close_notify; we do not wait for the peer's */
	t->shutdown_sent = 1;
}

void
conn_tls_ring_turn(struct ring *r)
{
	while (r->tls_pump) {
		struct conn *c = r->tls_pump;
		r->tls_pump = c->next_tls_pump;
		c->tls->pumping = 0;
		if (c->closing)
			continue;
		c->inflight++;
		tls_pump(c);
		c->inflight--;
		conn_maybe_finish(c);
	}
}

void
conn_tls_free(struct conn *c)
{
	struct conn_tls *t = c->tls;
	struct conn **pp;

	if (t == NULL)
		return;
	if (t->pumping) {
		for (pp = &c->ring->tls_pump; *pp; pp = &(*pp)->next_tls_pump) {
			if (*pp == c) {
				*pp = c->next_tls_pump;
				break;
			}
		}
	}
	wolfSSL_free(t->ssl);
	free(t->stash);
	free(t->pt);
	free(t);
	c->tls = NULL;
	c->tls_queued = 0;
}

int
conn_tls_start(struct conn *c, struct tls_ctx *ctx, int server, const char *sni_host)
{
	struct conn_tls *t;

	if (c->tls || c->closing)
		return -EALREADY;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->ssl = wolfSSL_new(tls_ctx_native(ctx));
	if (t->ssl == NULL) {
		free(t);
		return -EPROTO;
	}
	wolfSSL_SSLSetIORecv(t->ssl, io_recv);
	wolfSSL_SSLSetIOSend(t->ssl, io_send);
	wolfSSL_SetIOReadCtx(t->ssl, c);
	wolfSSL_SetIOWriteCtx(t->ssl, c);
	if (!server && sni_host && *sni_host) {
		wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, sni_host, (unsigned short)strlen(sni_host));
		wolfSSL_check_domain_name(t->ssl, sni_host);
	}
	t->server = server ? 1 : 0;
	t->handshaking = 1;
	c->tls = t;
	/* A client speaks first; either way the handshake starts outside the caller's stack. */
	if (!server)
		tls_schedule(c);
	return 0;
}

const char *
conn_tls_start_error(int rc)
{
	switch (rc) {
	case -ENOMEM:
		return "out of memory";
	case -EPROTO:
		return "wolfSSL_new failed: no memory or no random bytes";
	case -EALREADY:
		return "connection already under TLS or closing";
	default:
		return "unknown error";
	}
}

int
conn_tls_push_input(struct conn *c, const void *p, size_t n)
{
	struct conn_tls *t = c->tls;

	if (t == NULL || t->in_len)
		return -1;
	t->in = p;
	t->in_len = n;
	if (tls_keep_input(t) < 0)
		return -1;
	tls_schedule(c);
	return 0;
}

const char *
conn_tls_version(const struct conn *c)
{
	return c->tls && c->tls->established ? wolfSSL_get_version(c->tls->ssl) : NULL;
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return c->tls && c->tls->established ? wolfSSL_get_cipher_name(c->tls->ssl) : NULL;
}

int
conn_tls_resumed(const struct conn *c)
{
	return c->tls && c->tls->established && wolfSSL_session_reused(c->tls->ssl);
}

const char *
conn_tls_sni(const struct conn *c)
{
	if (c->tls == NULL)
		return NULL;
	return wolfSSL_get_servername(c->tls->ssl, WOLFSSL_SNI_HOST_NAME);
}

const char *
conn_tls_error(const struct conn *c)
{
	return c->tls && c->tls->err[0] ? c->tls->err : "handshake failed";
}
