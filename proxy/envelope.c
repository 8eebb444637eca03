/*
 * envelope.c - pure helpers for envelope relay and trace headers (see
 * envelope.h). No I/O: unit-tested in tests/unit/test_envelope.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "envelope.h"

static int
fail(struct env_verdict *v, int code, const char *text)
{
	v->code = code;
	v->text = text;
	return -1;
}

/* RFC 3461 4: xtext is printable ASCII except '+' and '=' unless "+HH". */
static int
is_xtext(struct slice s, size_t maxlen)
{
	if (s.len == 0 || s.len > maxlen)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c == '+') {
			if (i + 2 >= s.len)
				return 0;
			for (int k = 1; k <= 2; k++) {
				unsigned char h = (unsigned char)s.p[i + (size_t)k];
				if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
					return 0;
			}
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return 1;
}

static int
append(char *out, size_t outlen, size_t *pos, const char *p, size_t n)
{
	if (*pos + n >= outlen)
		return -1;
	memcpy(out + *pos, p, n);
	*pos += n;
	out[*pos] = '\0';
	return 0;
}

static int
append_param(char *out, size_t outlen, size_t *pos, const struct smtp_param *pm)
{
	if (append(out, outlen, pos, " ", 1) < 0 ||
	    append(out, outlen, pos, pm->key.p, pm->key.len) < 0)
		return -1;
	if (pm->value.p && (append(out, outlen, pos, "=", 1) < 0 ||
			    append(out, outlen, pos, pm->value.p, pm->value.len) < 0))
		return -1;
	return 0;
}

static int
start_line(char *out, size_t outlen, size_t *pos, const char *verb, const struct smtp_cmd *cmd)
{
	*pos = 0;
	if (append(out, outlen, pos, verb, strlen(verb)) < 0 ||
	    append(out, outlen, pos, "<", 1) < 0 ||
	    append(out, outlen, pos, cmd->path.p, cmd->path.len) < 0 ||
	    append(out, outlen, pos, ">", 1) < 0)
		return -1;
	return 0;
}

int
envelope_mail(const struct smtp_cmd *cmd, uint64_t max_size, int dsn,
	      char *out, size_t outlen, struct env_verdict *v)
{
	size_t pos;

	memset(v, 0, sizeof(*v));
	if (start_line(out, outlen, &pos, "MAIL FROM:", cmd) < 0)
		return fail(v, 501, "5.5.4 Command too long");
	for (unsigned i = 0; i < cmd->nparams; i++) {
		const struct smtp_param *pm = &cmd->params[i];
		int pass = 1;

		if (slice_eq_ci(pm->key, "SIZE")) {
			char num[24];
			char *end;

			if (!pm->value.p || pm->value.len == 0 || pm->value.len > 20)
				return fail(v, 501, "5.5.4 Bad SIZE parameter");
			memcpy(num, pm->value.p, pm->value.len);
			num[pm->value.len] = '\0';
			for (size_t k = 0; k < pm->value.len; k++)
				if (num[k] < '0' || num[k] > '9')
					return fail(v, 501, "5.5.4 Bad SIZE parameter");
			v->size = strtoull(num, &end, 10);
			if (max_size && v->size > max_size)
				return fail(v, 552, "5.3.4 Message size exceeds fixed limit");
		} else if (slice_eq_ci(pm->key, "BODY")) {
			if (!pm->value.p)
				return fail(v, 501, "5.5.4 Bad BODY parameter");
			if (slice_eq_ci(pm->value, "8BITMIME"))
				v->body_8bit = 1;
			else if (!slice_eq_ci(pm->value, "7BIT"))
				return fail(v, 555, "5.5.4 Unsupported BODY parameter");
		} else if (slice_eq_ci(pm->key, "SMTPUTF8")) {
			if (pm->value.p)
				return fail(v, 501, "5.5.4 SMTPUTF8 takes no value");
			v->smtputf8 = 1;
		} else if (slice_eq_ci(pm->key, "RET") && dsn) {
			if (!pm->value.p || (!slice_eq_ci(pm->value, "FULL") && !slice_eq_ci(pm->value, "HDRS")))
				return fail(v, 501, "5.5.4 Bad RET parameter");
		} else if (slice_eq_ci(pm->key, "ENVID") && dsn) {
			if (!pm->value.p || !is_xtext(pm->value, 100))
				return fail(v, 501, "5.5.4 Bad ENVID parameter");
		} else if (slice_eq_ci(pm->key, "AUTH")) {
			/* RFC 4954 5: only meaningful from an authenticated client; not passed on. */
			pass = 0;
		} else {
			return fail(v, 555, "5.5.4 Unsupported MAIL parameter");
		}
		if (pass && append_param(out, outlen, &pos, pm) < 0)
			return fail(v, 501, "5.5.4 Command too long");
	}
	return (int)pos;
}

static int
notify_ok(struct slice s)
{
	const char *p = s.p, *end = s.p + s.len;
	int never = 0, n = 0;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct slice w = { p, (size_t)((comma ? comma : end) - p) };

		if (slice_eq_ci(w, "NEVER"))
			never = 1;
		else if (!slice_eq_ci(w, "SUCCESS") && !slice_eq_ci(w, "FAILURE") && !slice_eq_ci(w, "DELAY"))
			return 0;
		n++;
		p = comma ? comma + 1 : end;
		if (comma && p == end)
			return 0;
	}
	/* RFC 3461 4.1: NEVER stands alone. */
	return n > 0 && (!never || n == 1);
}

int
envelope_rcpt(const struct smtp_cmd *cmd, int dsn, char *out, size_t outlen,
	      struct env_verdict *v)
{
	size_t pos;

	memset(v, 0, sizeof(*v));
	if (start_line(out, outlen, &pos, "RCPT TO:", cmd) < 0)
		return fail(v, 501, "5.5.4 Command too long");
	for (unsigned i = 0; i < cmd->nparams; i++) {
		const struct smtp_param *pm = &cmd->params[i];

		if (slice_eq_ci(pm->key, "NOTIFY") && dsn) {
			if (!pm->value.p || !notify_ok(pm->value))
				return fail(v, 501, "5.5.4 Bad NOTIFY parameter");
		} else if (slice_eq_ci(pm->key, "ORCPT") && dsn) {
			const char *semi = pm->value.p ? memchr(pm->value.p, ';', pm->value.len) : NULL;
			struct slice rest;

			if (semi == NULL || semi == pm->value.p)
				return fail(v, 501, "5.5.4 Bad ORCPT parameter");
			rest.p = semi + 1;
			rest.len = pm->value.len - (size_t)(rest.p - pm->value.p);
			/* utf-8-addr-xtext (RFC 6533) may carry UTF-8; accept 8-bit too. */
			for (size_t k = 0; k < rest.len; k++)
				if ((unsigned char)rest.p[k] < 33 || rest.p[k] == '=' || (unsigned char)rest.p[k] == 127)
					return fail(v, 501, "5.5.4 Bad ORCPT parameter");
			if (rest.len == 0 || rest.len > 500)
				return fail(v, 501, "5.5.4 Bad ORCPT parameter");
		} else {
			return fail(v, 555, "5.5.4 Unsupported RCPT parameter");
		}
		if (append_param(out, outlen, &pos, pm) < 0)
			return fail(v, 501, "5.5.4 Command too long");
	}
	return (int)pos;
}

struct slice
envelope_domain(struct slice path)
{
	struct slice d = { NULL, 0 };

	for (size_t i = path.len; i > 0; i--) {
		if (path.p[i - 1] == '@') {
			d.p = path.p + i;
			d.len = path.len - i;
			break;
		}
	}
	return d;
}

int
envelope_domain_listed(struct slice domain, char *const *list, unsigned n)
{
	/* A trailing dot names the same domain. */
	if (domain.len && domain.p[domain.len - 1] == '.')
		domain.len--;
	for (unsigned i = 0; i < n; i++) {
		if (strlen(list[i]) == domain.len && strncasecmp(list[i], domain.p, domain.len) == 0)
			return 1;
	}
	return 0;
}

size_t
envelope_clean_reply(const char *in, size_t len, char *out, size_t outlen)
{
	size_t o = 0;
	const char *p = in, *end = in + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n && p[n - 1] == '\r')
			n--;
		if (n >= 3 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		    p[2] >= '0' && p[2] <= '9') {
			if (o + n + 3 > outlen)
				break;
			memcpy(out + o, p, 3);
			/*
			 * A continuation whatever the backend said: only the last
			 * line written may read as final (below), or a client
			 * would take what follows it for its next reply.
			 */
			out[o + 3] = '-';
			o += 4;
			for (size_t i = 4; i < n; i++) {
				unsigned char c = (unsigned char)p[i];
				out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
			}
			out[o++] = '\r';
			out[o++] = '\n';
		}
		p = nl ? nl + 1 : end;
	}
	/* The last line written is the final one. */
	if (o >= 6) {
		size_t ls = o - 2;
		while (ls > 0 && out[ls - 1] != '\n')
			ls--;
		out[ls + 3] = ' ';
	}
	return o;
}

unsigned
envelope_forward_attrs(const char *words, size_t len)
{
	static const struct { const char *name; unsigned bit; } names[] = {
		{ "NAME", FWD_NAME }, { "ADDR", FWD_ADDR }, { "PORT", FWD_PORT },
		{ "PROTO", FWD_PROTO }, { "HELO", FWD_HELO }, { "LOGIN", FWD_LOGIN },
	};
	const char *p = words, *end = words + len;
	unsigned bits = 0;

	while (p < end) {
		const char *w;

		while (p < end && *p == ' ')
			p++;
		w = p;
		while (p < end && *p != ' ')
			p++;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == (size_t)(p - w) && strncasecmp(w, names[i].name, (size_t)(p - w)) == 0)
				bits |= names[i].bit;
	}
	return bits;
}

/* RFC 3461 4: bytes outside "!".."~", and '+' and '=', become "+HH". */
static int
append_xtext(char *out, size_t outlen, size_t *pos, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *v; v++) {
		unsigned char ch = (unsigned char)*v;
		if (ch < 33 || ch > 126 || ch == '+' || ch == '=') {
			char enc[3] = { '+', hex[ch >> 4], hex[ch & 15] };
			if (append(out, outlen, pos, enc, 3) < 0)
				return -1;
		} else if (append(out, outlen, pos, (const char *)&ch, 1) < 0) {
			return -1;
		}
	}
	return 0;
}

static int
append_attr(char *out, size_t outlen, size_t *pos, const char *name, const char *prefix, const char *v)
{
	if (append(out, outlen, pos, " ", 1) < 0 || append(out, outlen, pos, name, strlen(name)) < 0 ||
	    append(out, outlen, pos, "=", 1) < 0 ||
	    (prefix && append(out, outlen, pos, prefix, strlen(prefix)) < 0))
		return -1;
	return append_xtext(out, outlen, pos, v);
}

int
envelope_forward_line(const char *verb, unsigned attrs, const struct forward_info *fi,
		      char *out, size_t outlen)
{
	char port[16];
	size_t pos = 0;

	if (append(out, outlen, &pos, verb, strlen(verb)) < 0)
		return -1;
	if ((attrs & FWD_NAME) && append_attr(out, outlen, &pos, "NAME", NULL, "[UNAVAILABLE]") < 0)
		return -1;
	if ((attrs & FWD_ADDR) && append_attr(out, outlen, &pos, "ADDR",
					      strchr(fi->addr, ':') ? "IPv6:" : NULL, fi->addr) < 0)
		return -1;
	if ((attrs & FWD_PORT) && fi->port) {
		snprintf(port, sizeof(port), "%u", fi->port);
		if (append_attr(out, outlen, &pos, "PORT", NULL, port) < 0)
			return -1;
	}
	if ((attrs & FWD_PROTO) && append_attr(out, outlen, &pos, "PROTO", NULL, fi->proto) < 0)
		return -1;
	if ((attrs & FWD_HELO) && append_attr(out, outlen, &pos, "HELO", NULL,
					      fi->helo && *fi->helo ? fi->helo : "[UNAVAILABLE]") < 0)
		return -1;
	if ((attrs & FWD_LOGIN) && fi->login && append_attr(out, outlen, &pos, "LOGIN", NULL, fi->login) < 0)
		return -1;
	/* RFC 5321 4.5.3.1.4: the line with CRLF must fit in 512 octets. */
	if (pos + 2 > 512)
		return -1;
	return (int)pos;
}

/*
 * Client-chosen text goes in a comment: at most max octets of it, each
 * outside printable ASCII or a parenthesis written as '?'.
 */
static int
append_comment(char *out, size_t outlen, size_t *pos, const char *p, size_t max)
{
	size_t n = strnlen(p, max);

	if (append(out, outlen, pos, p, n) < 0)
		return -1;
	for (char *c = out + *pos - n; c < out + *pos; c++)
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e || *c == '(' || *c == ')')
			*c = '?';
	return 0;
}

/*
 * The header's date. localtime and strftime cost more than the rest of
 * the header together, so each thread formats a second once.
 */
static const char *
received_date(time_t when)
{
	static __thread time_t last = (time_t)-1;
	static __thread char date[64];
	struct tm tm;

	if (when != last || date[0] == '\0') {
		localtime_r(&when, &tm);
		if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
			date[0] = '\0';
		last = when;
	}
	return date;
}

#define APPEND(str) append(out, outlen, &pos, (str), strlen(str))

size_t
envelope_received(const struct received_info *ri, char *out, size_t outlen)
{
	const char *helo = ri->helo && *ri->helo ? ri->helo : "unknown";
	size_t pos = 0;
	int bad;

	/* Built by hand, not with snprintf: it goes with every message. */
	bad = APPEND("Received: from ") < 0 || append_comment(out, outlen, &pos, helo, 127) < 0 ||
	      APPEND(strchr(ri->client_ip, ':') ? " ([IPv6:" : " ([") < 0 ||
	      APPEND(ri->client_ip) < 0 || APPEND("])") < 0;
	/* As Postfix writes them, so tools that read its headers read ours. */
	if (!bad && ri->tls_version)
		bad = APPEND("\r\n\t(using ") < 0 || APPEND(ri->tls_version) < 0 ||
		      APPEND(" with cipher ") < 0 ||
		      APPEND(ri->tls_cipher ? ri->tls_cipher : "unknown") < 0 || APPEND(")") < 0;
	if (!bad && ri->auth_user)
		bad = APPEND("\r\n\t(Authenticated sender: ") < 0 ||
		      append_comment(out, outlen, &pos, ri->auth_user, 255) < 0 || APPEND(")") < 0;
	if (!bad)
		bad = APPEND("\r\n\tby ") < 0 || APPEND(ri->hostname) < 0 ||
		      APPEND(" (mxgate) with ") < 0 || APPEND(ri->proto) < 0 ||
		      APPEND(" id ") < 0 || APPEND(ri->id) < 0;
	if (!bad && ri->rcpt)
		bad = APPEND("\r\n\tfor <") < 0 || APPEND(ri->rcpt) < 0 || APPEND(">") < 0;
	if (!bad)
		bad = APPEND(";\r\n\t") < 0 || APPEND(received_date(ri->when)) < 0 ||
		      APPEND("\r\n") < 0;
	return bad ? 0 : pos;
}

#undef APPEND
