/*
 * envelope.h - pure helpers between the client dialog and the backend:
 * rebuild MAIL/RCPT lines from parsed fields (so nothing of the client's
 * raw line reaches a backend), check ESMTP parameters, clean a backend's
 * reply before relaying it, and format the Received: trace header.
 */
#ifndef PROXY_ENVELOPE_H
#define PROXY_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "smtp_parse.h"

/* What the envelope checks found, for the reply to the client. */
struct env_verdict {
	int code;		/* 0 = OK, else the SMTP reply code */
	const char *text;	/* "5.5.4 ..." (enhanced code and text) */
	uint64_t size;		/* MAIL SIZE= value, 0 when absent */
	int body_8bit;		/* BODY=8BITMIME */
	int smtputf8;		/* SMTPUTF8 */
};

/*
 * Checks the parameters of a MAIL command (SIZE, BODY, SMTPUTF8, RET,
 * ENVID; AUTH is accepted and dropped) and writes "MAIL FROM:<path> ..."
 * (no CRLF) into out. dsn: whether DSN parameters may be passed on.
 * Returns the length written, or -1 with v->code/v->text set.
 */
int envelope_mail(const struct smtp_cmd *cmd, uint64_t max_size, int dsn,
		  char *out, size_t outlen, struct env_verdict *v);
/* Same for RCPT (NOTIFY, ORCPT when dsn). */
int envelope_rcpt(const struct smtp_cmd *cmd, int dsn, char *out, size_t outlen,
		  struct env_verdict *v);

/* The domain of a path (after the last '@'), or a zero-length slice. */
struct slice envelope_domain(struct slice path);
/* relay_domains match: exact, case-insensitive (entries are lower case). */
int envelope_domain_listed(struct slice domain, char *const *list, unsigned n);

/*
 * Copies a backend reply (one or more "ddd-text" / "ddd text" lines)
 * into out as well-formed CRLF lines, control bytes replaced by '?'.
 * Returns the length (0 if nothing valid).
 */
size_t envelope_clean_reply(const char *in, size_t len, char *out, size_t outlen);

/* Attributes a backend lists after XFORWARD / XCLIENT in its EHLO reply. */
enum {
	FWD_NAME = 1u << 0, FWD_ADDR = 1u << 1, FWD_PORT = 1u << 2, FWD_PROTO = 1u << 3,
	FWD_HELO = 1u << 4, FWD_LOGIN = 1u << 5,
};

struct forward_info {
	const char *addr;	/* client IP ("192.0.2.1", "2001:db8::1") */
	unsigned port;		/* 0 = unknown */
	const char *helo;	/* NULL or "" = unknown */
	const char *proto;	/* "ESMTP" / "SMTP" */
	const char *login;	/* NULL = not authenticated */
};

/* The attribute bits named in "XFORWARD NAME ADDR ..." (the words after the keyword). */
unsigned envelope_forward_attrs(const char *words, size_t len);
/*
 * "XFORWARD ..." or "XCLIENT ..." (verb) with the attributes the backend
 * offers (attrs), values xtext-encoded (RFC 3461 4), IPv6 addresses
 * prefixed "IPv6:", NAME [UNAVAILABLE] (mxgate does no reverse DNS).
 * No CRLF. Returns the length, or -1 if it would not fit in outlen or
 * in the 512-octet command limit.
 */
int envelope_forward_line(const char *verb, unsigned attrs, const struct forward_info *fi,
			  char *out, size_t outlen);

struct received_info {
	const char *helo;	/* may be NULL */
	const char *client_ip;	/* "1.2.3.4" or "::1" */
	const char *hostname;
	const char *proto;	/* "ESMTP" / "SMTP" */
	const char *id;
	const char *rcpt;	/* only with one recipient, else NULL */
	time_t when;
	const char *tls_version;	/* "TLSv1.3", or NULL without TLS */
	const char *tls_cipher;
	const char *auth_user;	/* authenticated login, or NULL */
};
/* RFC 5321 4.4 trace header, CRLF-terminated, folded lines. Returns length. */
size_t envelope_received(const struct received_info *ri, char *out, size_t outlen);

#endif
