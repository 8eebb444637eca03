/*
 * smtp_parse.c - owns the client command-line parser: verb recognition,
 * the argument rules of each verb, RFC 5321 / RFC 6531 path syntax and
 * ESMTP parameters. Pure: no I/O, no allocation; every slice points into
 * the caller's line, which must outlive the struct smtp_cmd.
 *
 * Caveats, on purpose:
 *  - Every control byte (0x00-0x1f, including HT) and DEL (0x7f) anywhere
 *    in the line is SMTP_PARSE_BAD_CHAR. RFC 5321 4.1.1 commands use SP
 *    only, and a CR or NUL here is a smuggling or injection attempt.
 *  - Bytes >= 0x80 are accepted (RFC 6531 SMTPUTF8); in paths and
 *    parameter values they must form valid UTF-8 (RFC 3629 section 4).
 *    HELO/VRFY/EXPN/NOOP/HELP arguments are passed through unchecked.
 *  - The path limit is 256 octets counted from '<' to '>' inclusive
 *    (RFC 5321 4.5.3.1.3), so the 255-octet domain limit (4.5.3.1.2) is
 *    in practice reached through the path limit first.
 *  - Address literals: IPv4 and "IPv6:" only; RFC 5321 4.1.3 General-
 *    address-literal tags are not registered, so they are refused.
 *  - ASCII domain labels are at most 63 octets (RFC 1035 2.3.4); U-labels
 *    are not length-checked (their A-label form is what counts).
 */
#include <arpa/inet.h>
#include <string.h>
#include "smtp_parse.h"

typedef unsigned char u8;

/* RFC 5321 4.5.3.1.1-3 */
#define LOCAL_MAX	64
#define DOMAIN_MAX	255
#define PATH_MAX_OCTETS	256
#define LABEL_MAX	63
/* RFC 4422 3.1: sasl-mech = 1*20mech-char */
#define SASL_MECH_MAX	20

static const char *const verb_names[SMTP_VERB_COUNT] = {
	[SMTP_UNKNOWN] = "",
	[SMTP_HELO] = "HELO", [SMTP_EHLO] = "EHLO", [SMTP_LHLO] = "LHLO",
	[SMTP_MAIL] = "MAIL", [SMTP_RCPT] = "RCPT", [SMTP_DATA] = "DATA",
	[SMTP_BDAT] = "BDAT", [SMTP_RSET] = "RSET", [SMTP_NOOP] = "NOOP",
	[SMTP_QUIT] = "QUIT", [SMTP_VRFY] = "VRFY", [SMTP_EXPN] = "EXPN",
	[SMTP_HELP] = "HELP", [SMTP_STARTTLS] = "STARTTLS", [SMTP_AUTH] = "AUTH",
};

enum path_kind {
	PATH_BAD,
	PATH_NULL,		/* <> */
	PATH_POSTMASTER,	/* <postmaster>, any case, no domain */
	PATH_MAILBOX,
};

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_letdig(int c)
{
	return is_alpha(c) || is_digit(c);
}

/* RFC 5322 3.2.3 atext, the alphabet of an RFC 5321 Atom. */
static int
is_atext(int c)
{
	return is_letdig(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= SMTP_VERB_COUNT)
		return "";
	return verb_names[v];
}

static int
mem_eq_ci(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	size_t i;

	for (i = 0; i < n; i++)
		if (lower(x[i]) != lower(y[i]))
			return 0;
	return 1;
}

int
slice_eq_ci(struct slice s, const char *word)
{
	size_t n = strlen(word);

	if (s.len != n)
		return 0;
	return n == 0 || mem_eq_ci(s.p, word, n);
}

/*
 * Length of the valid UTF-8 sequence at p (p[0] >= 0x80), 0 when it is
 * invalid: RFC 3629 section 4 excludes overlong forms, surrogates and
 * code points above U+10FFFF, which is what the lo/hi second-byte ranges
 * encode.
 */
static size_t
utf8_len(const u8 *p, const u8 *end)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c == 0xe0)
		n = 3, lo = 0xa0;
	else if (c == 0xed)
		n = 3, hi = 0x9f;
	else if (c >= 0xe1 && c <= 0xef)
		n = 3;
	else if (c == 0xf0)
		n = 4, lo = 0x90;
	else if (c == 0xf4)
		n = 4, hi = 0x8f;
	else if (c >= 0xf1 && c <= 0xf3)
		n = 4;
	else
		return 0;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * RFC 5321 4.1.2 Domain = sub-domain *("." sub-domain), sub-domain =
 * Let-dig [Ldh-str] (no leading or trailing hyphen); RFC 6531 3.3 lets
 * a sub-domain be a U-label, so UTF-8 counts as a letter. Returns the
 * end of the domain or NULL.
 */
static const u8 *
parse_domain(const u8 *p, const u8 *end)
{
	const u8 *start = p, *label;
	int ascii, hyphen;
	size_t n;

	for (;;) {
		label = p;
		ascii = 1;
		hyphen = 1;	/* a label may not start with '-' either */
		while (p < end) {
			if (is_letdig(*p)) {
				p++;
				hyphen = 0;
			} else if (*p == '-' && p != label) {
				p++;
				hyphen = 1;
			} else if (*p >= 0x80) {
				if ((n = utf8_len(p, end)) == 0)
					return NULL;
				p += n;
				ascii = 0;
				hyphen = 0;
			} else {
				break;
			}
		}
		if (p == label || hyphen)
			return NULL;
		if (ascii && p - label > LABEL_MAX)
			return NULL;
		if (p < end && *p == '.') {
			p++;
			continue;
		}
		break;
	}
	if (p - start > DOMAIN_MAX)
		return NULL;
	return p;
}

/* RFC 5321 4.1.3 IPv4-address-literal: Snum 3("." Snum), Snum 0..255. */
static int
ipv4_ok(const u8 *p, const u8 *end)
{
	unsigned v;
	int groups, digits;

	for (groups = 0; groups < 4; groups++) {
		if (groups > 0) {
			if (p >= end || *p != '.')
				return 0;
			p++;
		}
		v = 0;
		for (digits = 0; p < end && is_digit(*p) && digits < 3; digits++)
			v = v * 10 + (unsigned)(*p++ - '0');
		if (digits == 0 || v > 255)
			return 0;
	}
	return p == end;
}

/*
 * RFC 5321 4.1.3 address-literal at p ('['). IPv6 text is checked with
 * inet_pton, which accepts exactly the full, compressed and v4-suffixed
 * forms of the RFC grammar. Returns the octet after ']' or NULL.
 */
static const u8 *
parse_addr_literal(const u8 *p, const u8 *end)
{
	const u8 *q = p + 1, *close;
	char buf[INET6_ADDRSTRLEN + 1];
	u8 addr[16];
	size_t n;

	close = memchr(q, ']', (size_t)(end - q));
	if (close == NULL)
		return NULL;
	n = (size_t)(close - q);
	if (n >= 5 && mem_eq_ci(q, "IPv6:", 5)) {
		n -= 5;
		if (n == 0 || n >= sizeof(buf))
			return NULL;
		memcpy(buf, q + 5, n);
		buf[n] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return NULL;
	} else if (!ipv4_ok(q, close)) {
		return NULL;
	}
	return close + 1;
}

/* RFC 5321 4.1.2 Quoted-string with RFC 6531 UTF-8 in qtextSMTP. */
static const u8 *
parse_quoted(const u8 *p, const u8 *end)
{
	size_t n;

	p++;	/* the opening DQUOTE */
	while (p < end && *p != '"') {
		if (*p == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (p + 1 >= end || p[1] < 32 || p[1] > 126)
				return NULL;
			p += 2;
		} else if (*p >= 0x80) {
			if ((n = utf8_len(p, end)) == 0)
				return NULL;
			p += n;
		} else if (*p >= 32 && *p <= 126) {
			p++;	/* qtextSMTP: all printable but '"' and '\' */
		} else {
			return NULL;
		}
	}
	if (p >= end)
		return NULL;
	return p + 1;
}

/* RFC 5321 4.1.2 Dot-string = Atom *("." Atom), UTF-8 as atext. */
static const u8 *
parse_dot_string(const u8 *p, const u8 *end)
{
	const u8 *atom;
	size_t n;

	for (;;) {
		atom = p;
		while (p < end) {
			if (is_atext(*p)) {
				p++;
			} else if (*p >= 0x80) {
				if ((n = utf8_len(p, end)) == 0)
					return NULL;
				p += n;
			} else {
				break;
			}
		}
		if (p == atom)
			return NULL;	/* empty atom: leading, trailing or double dot */
		if (p < end && *p == '.') {
			p++;
			continue;
		}
		return p;
	}
}

/*
 * RFC 5321 4.1.2 Path = "<" [ A-d-l ":" ] Mailbox ">", also "<>" and
 * "<Postmaster>" (4.1.1.3). p points at '<'. On success *after is the
 * octet after '>' and *mbox the mailbox with the source route dropped
 * (7.13 / appendix C: relays must ignore it).
 */
static enum path_kind
parse_path(const u8 *p, const u8 *end, const u8 **after, struct slice *mbox)
{
	const u8 *start = p, *m, *q;
	int routed = 0;

	p++;
	if (p < end && *p == '>') {
		mbox->p = (const char *)p;
		mbox->len = 0;
		*after = p + 1;
		return PATH_NULL;
	}
	/* A-d-l = At-domain *( "," At-domain ) */
	while (p < end && *p == '@') {
		routed = 1;
		if ((p = parse_domain(p + 1, end)) == NULL || p >= end)
			return PATH_BAD;
		if (*p == ':') {
			p++;
			break;
		}
		if (*p != ',' || p + 1 >= end || p[1] != '@')
			return PATH_BAD;
		p++;
	}
	m = p;
	if (!routed && end - p >= 11 && mem_eq_ci(p, "postmaster>", 11)) {
		mbox->p = (const char *)p;
		mbox->len = 10;
		*after = p + 11;
		return PATH_POSTMASTER;
	}
	if (p >= end)
		return PATH_BAD;
	q = *p == '"' ? parse_quoted(p, end) : parse_dot_string(p, end);
	if (q == NULL || q - m > LOCAL_MAX || q >= end || *q != '@')
		return PATH_BAD;
	p = q + 1;
	if (p < end && *p == '[')
		p = parse_addr_literal(p, end);
	else
		p = parse_domain(p, end);
	if (p == NULL || p >= end || *p != '>')
		return PATH_BAD;
	if (p + 1 - start > PATH_MAX_OCTETS)
		return PATH_BAD;
	mbox->p = (const char *)m;
	mbox->len = (size_t)(p - m);
	*after = p + 1;
	return PATH_MAILBOX;
}

static int
slice_eq_slice_ci(struct slice a, struct slice b)
{
	return a.len == b.len && mem_eq_ci(a.p, b.p, a.len);
}

/*
 * RFC 5321 4.1.2 Mail-parameters = esmtp-param *(SP esmtp-param),
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), esmtp-value =
 * 1*(%d33-60 / %d62-126), widened to UTF-8 by RFC 6531 3.3. Runs of SP
 * between parameters are tolerated. A keyword given twice is refused:
 * RFC 1869 6 leaves it undefined, and two SIZE= values could be read
 * differently by us and by the backend.
 */
static enum smtp_parse_status
parse_params(const u8 *p, const u8 *end, struct smtp_cmd *cmd, const char **why)
{
	struct smtp_param *prm;
	const u8 *k, *v;
	unsigned i;
	size_t n;

	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p >= end)
			return SMTP_PARSE_OK;
		if (cmd->nparams == SMTP_MAX_PARAMS) {
			*why = "Too many parameters";
			return SMTP_PARSE_SYNTAX;
		}
		k = p;
		if (!is_letdig(*p))
			goto bad;
		while (p < end && (is_letdig(*p) || *p == '-'))
			p++;
		prm = &cmd->params[cmd->nparams];
		prm->key.p = (const char *)k;
		prm->key.len = (size_t)(p - k);
		prm->value.p = NULL;
		prm->value.len = 0;
		if (p < end && *p == '=') {
			v = ++p;
			while (p < end && *p != ' ') {
				if (*p >= 0x80) {
					if ((n = utf8_len(p, end)) == 0)
						goto bad;
					p += n;
				} else if (*p > 32 && *p < 127 && *p != '=') {
					p++;
				} else {
					goto bad;
				}
			}
			if (p == v)
				goto bad;
			prm->value.p = (const char *)v;
			prm->value.len = (size_t)(p - v);
		}
		if (p < end && *p != ' ')
			goto bad;
		for (i = 0; i < cmd->nparams; i++) {
			if (slice_eq_slice_ci(cmd->params[i].key, prm->key)) {
				*why = "Duplicate parameter";
				return SMTP_PARSE_SYNTAX;
			}
		}
		cmd->nparams++;
	}
bad:
	*why = "Syntax error in parameters";
	return SMTP_PARSE_SYNTAX;
}

/*
 * MAIL FROM:<path> [SP params] and RCPT TO:<path> [SP params]
 * (RFC 5321 4.1.1.2-3). One or more spaces after the colon are
 * tolerated, as Postfix does, because broken clients send them.
 */
static enum smtp_parse_status
parse_mail_rcpt(struct smtp_cmd *cmd, const char **why)
{
	int mail = cmd->verb == SMTP_MAIL;
	const char *kw = mail ? "FROM:" : "TO:";
	size_t kwlen = mail ? 5 : 3;
	const u8 *p = (const u8 *)cmd->arg.p, *end = p + cmd->arg.len, *after;
	enum path_kind kind;

	if (cmd->arg.len < kwlen || !mem_eq_ci(p, kw, kwlen))
		goto usage;
	p += kwlen;
	while (p < end && *p == ' ')
		p++;
	if (p >= end || *p != '<')
		goto usage;
	kind = parse_path(p, end, &after, &cmd->path);
	if (kind == PATH_BAD || (mail && kind == PATH_POSTMASTER) ||
	    (!mail && kind == PATH_NULL)) {
		cmd->path.p = NULL;
		cmd->path.len = 0;
		*why = mail ? "Bad sender address syntax" :
		    "Bad recipient address syntax";
		return SMTP_PARSE_SYNTAX;
	}
	cmd->null_path = kind == PATH_NULL;
	if (after < end && *after != ' ')
		goto usage;
	return parse_params(after, end, cmd, why);
usage:
	*why = mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
	return SMTP_PARSE_SYNTAX;
}

/* RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] */
static int
bdat_ok(struct slice a)
{
	const u8 *p = (const u8 *)a.p, *end = p + a.len, *d = p;

	while (p < end && is_digit(*p))
		p++;
	if (p == d)
		return 0;
	if (p == end)
		return 1;
	if (*p++ != ' ')
		return 0;
	return (size_t)(end - p) == 4 && mem_eq_ci(p, "LAST", 4);
}

/*
 * RFC 4954 4: "AUTH" SP sasl-mech [SP initial-response], mech-char =
 * UPPER-ALPHA / DIGIT / "-" / "_" (lower case tolerated), and the
 * initial response is one token (base64 or a lone "=", checked by sasl.c).
 */
static int
auth_ok(struct slice a)
{
	const u8 *p = (const u8 *)a.p, *end = p + a.len, *m = p, *r;

	while (p < end && (is_letdig(*p) || *p == '-' || *p == '_'))
		p++;
	if (p == m || p - m > SASL_MECH_MAX)
		return 0;
	if (p == end)
		return 1;
	if (*p++ != ' ')
		return 0;
	/*
	 * Any one token: whether it is valid base64 is the SASL layer's call,
	 * whose answer (501 5.5.2, RFC 4954 4) differs from a syntax error's.
	 */
	r = p;
	while (p < end && *p > ' ' && *p < 0x7f)
		p++;
	return p == end && p > r;
}

static enum smtp_verb
match_verb(const char *w, size_t n)
{
	int v;

	for (v = SMTP_HELO; v < SMTP_VERB_COUNT; v++)
		if (strlen(verb_names[v]) == n && mem_eq_ci(w, verb_names[v], n))
			return (enum smtp_verb)v;
	return SMTP_UNKNOWN;
}

enum smtp_parse_status
smtp_parse_line(const char *line, size_t len, struct smtp_cmd *cmd,
		const char **why)
{
	const char *dummy;
	size_t i, vlen;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	memset(cmd, 0, sizeof(*cmd));

	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	cmd->verb = match_verb(line, vlen);

	/* RFC 5321 2.3.8 / 4.1.1: no control characters in commands. */
	for (i = 0; i < len; i++) {
		u8 c = (u8)line[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "Bad character in command";
			return SMTP_PARSE_BAD_CHAR;
		}
	}
	if (cmd->verb == SMTP_UNKNOWN) {
		*why = "Command unrecognized";
		return SMTP_PARSE_UNKNOWN;
	}

	/* arg: after the verb and one SP, trailing spaces trimmed */
	cmd->arg.p = line + vlen + (vlen < len);
	cmd->arg.len = len - vlen - (vlen < len);
	while (cmd->arg.len > 0 && cmd->arg.p[cmd->arg.len - 1] == ' ')
		cmd->arg.len--;

	switch (cmd->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
	case SMTP_LHLO:
		/* RFC 5321 4.1.1.1: the domain (or literal) is required */
		if (cmd->arg.len == 0) {
			*why = cmd->verb == SMTP_HELO ? "Syntax: HELO hostname" :
			    cmd->verb == SMTP_EHLO ? "Syntax: EHLO hostname" :
			    "Syntax: LHLO hostname";
			return SMTP_PARSE_SYNTAX;
		}
		return SMTP_PARSE_OK;
	case SMTP_MAIL:
	case SMTP_RCPT:
		return parse_mail_rcpt(cmd, why);
	case SMTP_DATA:
	case SMTP_RSET:
	case SMTP_QUIT:
	case SMTP_STARTTLS:
		/* RFC 5321 4.1.1.4/5/10, RFC 3207 4: no parameters */
		if (cmd->arg.len != 0) {
			*why = cmd->verb == SMTP_DATA ? "Syntax: DATA" :
			    cmd->verb == SMTP_RSET ? "Syntax: RSET" :
			    cmd->verb == SMTP_QUIT ? "Syntax: QUIT" :
			    "Syntax: STARTTLS";
			return SMTP_PARSE_SYNTAX;
		}
		return SMTP_PARSE_OK;
	case SMTP_BDAT:
		if (!bdat_ok(cmd->arg)) {
			*why = "Syntax: BDAT size [LAST]";
			return SMTP_PARSE_SYNTAX;
		}
		return SMTP_PARSE_OK;
	case SMTP_AUTH:
		if (!auth_ok(cmd->arg)) {
			*why = "Syntax: AUTH mechanism [initial-response]";
			return SMTP_PARSE_SYNTAX;
		}
		return SMTP_PARSE_OK;
	case SMTP_VRFY:
	case SMTP_EXPN:
		/* RFC 5321 4.1.1.6/7: the string is required */
		if (cmd->arg.len == 0) {
			*why = cmd->verb == SMTP_VRFY ? "Syntax: VRFY address" :
			    "Syntax: EXPN list";
			return SMTP_PARSE_SYNTAX;
		}
		return SMTP_PARSE_OK;
	case SMTP_NOOP:
	case SMTP_HELP:
		/* RFC 5321 4.1.1.8/9: an argument is allowed and ignored */
		return SMTP_PARSE_OK;
	default:
		break;
	}
	*why = "Command unrecognized";
	return SMTP_PARSE_UNKNOWN;
}
