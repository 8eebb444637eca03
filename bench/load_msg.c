/*
 * load_msg.c - builds the per-run command lines and the shared message
 * body, and formats the per-message header block (see load_msg.h).
 * The body exercises dot-stuffing: every 16th line starts with a dot and
 * every 64th is a lone dot, each sent with the extra "." of RFC 5321
 * section 4.5.2, so a sink that un-stuffs stores exactly body_len bytes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mem.h"
#include "load_msg.h"
#include "sasl.h"

#define LOAD_LINE 76			/* text per line, CRLF excluded, like most mailers */

static const char load_filler[] =
	"The quick brown fox jumps over the lazy dog 0123456789 "
	"PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS abcdefghijklmnopqrstuvwxyz "
	"The quick brown fox jumps over the lazy dog 0123456789 "
	"PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS abcdefghijklmnopqrstuvwxyz ";

/*
 * asprintf rather than snprintf(NULL, 0, ...) to size: GCC's
 * -Wformat-truncation takes UBSan's recoverable null checks for a NULL
 * format and fails the sanitizer build.
 */
static char *__attribute__((format(printf, 2, 3)))
load_strf(size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();	/* start-up only, like xmalloc */
	*len = (size_t)n;
	return s;
}

static void
load_msg_cmds(struct load_msg *m, const char *from, const char *domain, unsigned rcpts)
{
	size_t cap = 64 + strlen(from) + rcpts * (40 + strlen(domain)), len;
	char *p;

	m->cmds = xmalloc(cap);
	m->rcpt_off = xcalloc(rcpts + 1, sizeof(*m->rcpt_off));
	m->recipients = rcpts;
	p = m->cmds;
	p += sprintf(p, "MAIL FROM:<%s>\r\n", from);
	m->mail_len = (size_t)(p - m->cmds);
	for (unsigned i = 0; i < rcpts; i++) {
		m->rcpt_off[i] = (size_t)(p - m->cmds);
		p += sprintf(p, "RCPT TO:<user%u@%s>\r\n", i + 1, domain);
	}
	m->rcpt_off[rcpts] = (size_t)(p - m->cmds);
	m->data_off = m->rcpt_off[rcpts];
	len = (size_t)(p - m->cmds) + (size_t)sprintf(p, "DATA\r\n");
	m->cmds_len = len;
}

/* One plain (un-stuffed) line of n bytes for line number i into out. */
static void
load_msg_line(char *out, size_t n, unsigned i)
{
	size_t off = (i * 7u) % (sizeof(load_filler) - 1 - LOAD_LINE);

	memcpy(out, load_filler + off, n);
	if (i % 16 == 15)
		out[0] = '.';
}

/*
 * Body of about plain_len un-stuffed bytes. A remainder of one or two
 * bytes cannot form a line (CRLF alone takes two), so it is dropped.
 */
static void
load_msg_body(struct load_msg *m, size_t plain_len)
{
	size_t left = plain_len, wire = 0, plain = 0;
	unsigned i;
	char *p;

	/* Worst case every line gains a dot: 1 per 3 bytes of a lone-dot line. */
	m->body = xmalloc(plain_len + plain_len / 2 + 16);
	p = m->body;
	for (i = 0; left >= 3; i++) {
		size_t n = (i % 64 == 63) ? 1 : LOAD_LINE;

		if (n > left - 2)
			n = left - 2;
		if (i % 64 == 63)
			p[0] = '.';
		else
			load_msg_line(p, n, i);
		if (p[0] == '.') {
			/* RFC 5321 4.5.2: a line starting with "." gets one more. */
			memmove(p + 1, p, n);
			p++;
			wire++;
		}
		p[n] = '\r';
		p[n + 1] = '\n';
		p += n + 2;
		wire += n + 2;
		plain += n + 2;
		left -= n + 2;
	}
	m->body_wire_len = wire;
	m->body_len = plain;
}

void
load_msg_build(struct load_msg *m, const char *from, const char *domain,
	       const char *helo, unsigned recipients, uint64_t size)
{
	char hdr[LOAD_HDR_MAX], date[LOAD_DATE_MAX];
	size_t hdr_len, id_off, id_len;
	struct timespec ts;

	memset(m, 0, sizeof(*m));
	load_msg_cmds(m, from, domain, recipients);
	m->ehlo = load_strf(&m->ehlo_len, "EHLO %s\r\n", helo);
	m->helo = load_strf(&m->helo_len, "HELO %s\r\n", helo);
	m->hdr_prefix = load_strf(&m->hdr_prefix_len,
				  "From: <%s>\r\nTo: <user1@%s>\r\nSubject: mxload message ",
				  from, domain);
	/* Start time and pid make IDs unique across runs; thread and counter within one. */
	clock_gettime(CLOCK_REALTIME, &ts);
	m->id_base_len = (size_t)snprintf(m->id_base, sizeof(m->id_base), "%llx.%x.",
					  (unsigned long long)ts.tv_sec * 1000000ull +
					  (unsigned long long)ts.tv_nsec / 1000,
					  (unsigned)getpid());
	load_msg_date(date, ts.tv_sec);
	/* Size the body from a real header: the message is then ~size bytes. */
	hdr_len = load_msg_header(m, hdr, 0, 1000000, date, &id_off, &id_len);
	load_msg_body(m, size > hdr_len ? (size_t)(size - hdr_len) : 0);
}

void
load_msg_free(struct load_msg *m)
{
	free(m->cmds);
	free(m->rcpt_off);
	free(m->ehlo);
	free(m->helo);
	if (m->auth)
		explicit_bzero(m->auth, m->auth_len);
	free(m->auth);
	free(m->hdr_prefix);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

void
load_msg_auth(struct load_msg *m, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass), n = ul + pl + 2;
	size_t cap = 11 + SASL_B64_ENCODED_LEN(n) + 3;
	char *raw = xmalloc(n), *p;
	ssize_t b;

	/* No authorization identity: the server derives it from user. */
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[1 + ul] = '\0';
	memcpy(raw + 2 + ul, pass, pl);
	p = m->auth = xmalloc(cap);
	memcpy(p, "AUTH PLAIN ", 11);
	b = sasl_b64_encode(raw, n, p + 11, cap - 11);
	/* The password leaves no copy behind in freed memory. */
	explicit_bzero(raw, n);
	free(raw);
	if (b < 0)
		abort();	/* cap is SASL_B64_ENCODED_LEN + room: cannot happen */
	memcpy(p + 11 + b, "\r\n", 3);
	m->auth_len = 11 + (size_t)b + 2;
}

static char *
load_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Lower-case hex of v without leading zeros. */
static char *
load_put_hex(char *p, uint64_t v)
{
	char tmp[16];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *
load_put_dec(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

size_t
load_msg_header(const struct load_msg *m, char *out, unsigned thread, uint64_t seq,
		const char *date, size_t *id_off, size_t *id_len)
{
	char *p = out, *id;

	/* Hand-formatted: snprintf would cost more than the rest of a message. */
	p = load_put(p, m->hdr_prefix, m->hdr_prefix_len);
	p = load_put_dec(p, seq);
	p = load_put(p, "\r\nDate: ", 8);
	p = load_put(p, date, strlen(date));
	p = load_put(p, "\r\nMessage-ID: <", 15);
	id = p;
	p = load_put(p, m->id_base, m->id_base_len);
	p = load_put_hex(p, thread);
	*p++ = '.';
	p = load_put_hex(p, seq);
	p = load_put(p, "@mxload", 7);
	*id_off = (size_t)(id - out);
	*id_len = (size_t)(p - id);
	p = load_put(p, ">\r\n\r\n", 5);
	return (size_t)(p - out);
}

void
load_msg_date(char *buf, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, LOAD_DATE_MAX, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}
