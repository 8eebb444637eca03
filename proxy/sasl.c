/*
 * sasl.c - owns the pure SASL PLAIN/LOGIN wire functions of SMTP AUTH:
 * base64, the AUTH arguments, the PLAIN message and the LOGIN answers
 * (see sasl.h). Decoded passwords only ever live in the caller's struct
 * sasl_cred or in a stack buffer that is wiped before returning.
 */
#include <string.h>
#include <stdint.h>
#include "sasl.h"

/*
 * The value of one base64 character, or -1. Arithmetic instead of a
 * table or branches, so decoding a password takes the same time whatever
 * its characters are (the technique of libsodium's base64 decoder).
 * Each term is all-ones only when c lies inside its range: both
 * differences are then negative, and >> 8 of a negative int is -1 (GCC
 * shifts arithmetically); outside, the AND is a small non-negative number
 * and shifts to 0.
 */
static int
b64_val(unsigned char ch)
{
	int c = ch, v = -1;

	v += (((0x40 - c) & (c - 0x5b)) >> 8) & (c - 64);	/* A-Z: 0..25 */
	v += (((0x60 - c) & (c - 0x7b)) >> 8) & (c - 70);	/* a-z: 26..51 */
	v += (((0x2f - c) & (c - 0x3a)) >> 8) & (c + 5);	/* 0-9: 52..61 */
	v += (((0x2a - c) & (c - 0x2c)) >> 8) & 63;		/* +: 62 */
	v += (((0x2e - c) & (c - 0x30)) >> 8) & 64;		/* /: 63 */
	return v;
}

/* The character of a 6-bit value, branch-free for the same reason. */
static char
b64_chr(unsigned v)
{
	int x = (int)v, c = x + 'A';

	c += ((25 - x) >> 8) & ('a' - 'A' - 26);	/* 26..: a-z */
	c += ((51 - x) >> 8) & ('0' - 'a' - 26);	/* 52..: 0-9 */
	c += ((61 - x) >> 8) & ('+' - '0' - 10);	/* 62: + */
	c += ((62 - x) >> 8) & ('/' - '+' - 1);		/* 63: / */
	return (char)c;
}

ssize_t
sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		int last = i + 4 == len;
		int a = b64_val(p[i]), b = b64_val(p[i + 1]), c, d;
		size_t n = 3;
		uint32_t w;

		if (a < 0 || b < 0)
			return -1;
		if (last && p[i + 2] == '=') {
			/* "xx==": one octet; the 4 low bits of b are padding and must be 0 */
			if (p[i + 3] != '=' || (b & 0x0f))
				return -1;
			c = d = 0;
			n = 1;
		} else if (last && p[i + 3] == '=') {
			/* "xxx=": two octets; the 2 low bits of c must be 0 */
			c = b64_val(p[i + 2]);
			if (c < 0 || (c & 0x03))
				return -1;
			d = 0;
			n = 2;
		} else {
			/* '=' anywhere else is not in the alphabet: b64_val gives -1 */
			c = b64_val(p[i + 2]);
			d = b64_val(p[i + 3]);
			if (c < 0 || d < 0)
				return -1;
		}
		if (cap - o < n)
			return -1;
		w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
		out[o++] = (unsigned char)(w >> 16);
		if (n > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (n > 2)
			out[o++] = (unsigned char)w;
	}
	return (ssize_t)o;
}

ssize_t
sasl_b64_encode(const void *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = in;
	size_t i, o = 0;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || cap < SASL_B64_ENCODED_LEN(len) + 1)
		return -1;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = b64_chr(w >> 18);
		out[o++] = b64_chr((w >> 12) & 63);
		out[o++] = b64_chr((w >> 6) & 63);
		out[o++] = b64_chr(w & 63);
	}
	if (len - i == 1) {
		uint32_t w = (uint32_t)p[i] << 16;

		out[o++] = b64_chr(w >> 18);
		out[o++] = b64_chr((w >> 12) & 63);
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = b64_chr(w >> 18);
		out[o++] = b64_chr((w >> 12) & 63);
		out[o++] = b64_chr((w >> 6) & 63);
		out[o++] = '=';
	}
	out[o] = '\0';
	return (ssize_t)o;
}

static int
is_mech_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

enum sasl_status
sasl_parse_auth(const char *args, size_t len, struct sasl_auth_cmd *out)
{
	size_t i = 0, m, r;

	memset(out, 0, sizeof(*out));
	for (m = 0; i < len && is_mech_char((unsigned char)args[i]); i++, m++) {
		if (m == SASL_MECH_NAME_MAX)
			return SASL_MALFORMED;
		out->mech_name[m] = (char)(args[i] >= 'a' && args[i] <= 'z' ? args[i] - 32 : args[i]);
	}
	if (m == 0 || (i < len && args[i] != ' '))
		return SASL_MALFORMED;
	if (strcmp(out->mech_name, "PLAIN") == 0)
		out->mech = SASL_MECH_PLAIN;
	else if (strcmp(out->mech_name, "LOGIN") == 0)
		out->mech = SASL_MECH_LOGIN;
	while (i < len && args[i] == ' ')
		i++;
	if (i == len)
		return SASL_OK;
	for (r = i; i < len && args[i] != ' '; i++)
		;
	out->has_initial = 1;
	if (!(i - r == 1 && args[r] == '=')) {
		out->initial = args + r;
		out->initial_len = i - r;
	}
	while (i < len && args[i] == ' ')
		i++;
	if (i != len) {
		memset(out, 0, sizeof(*out));
		return SASL_MALFORMED;
	}
	return SASL_OK;
}

const char *
sasl_mech_name(enum sasl_mech m)
{
	switch (m) {
	case SASL_MECH_PLAIN:
		return "PLAIN";
	case SASL_MECH_LOGIN:
		return "LOGIN";
	default:
		return "";
	}
}

/* Longest PLAIN message: authzid NUL authcid NUL passwd. */
#define PLAIN_MAX (SASL_USER_MAX + 1 + SASL_USER_MAX + 1 + SASL_PASS_MAX)

enum sasl_status
sasl_plain_decode(const char *b64, size_t len, struct sasl_cred *out)
{
	unsigned char buf[PLAIN_MAX];
	const unsigned char *z1, *z2, *authcid, *pass;
	size_t n, zlen, clen, plen;
	ssize_t got;
	enum sasl_status st = SASL_MALFORMED;

	memset(out, 0, sizeof(*out));
	got = sasl_b64_decode(b64, len, buf, sizeof(buf));
	if (got <= 0)
		goto out;
	n = (size_t)got;
	z1 = memchr(buf, '\0', n);
	if (z1 == NULL)
		goto out;
	authcid = z1 + 1;
	z2 = memchr(authcid, '\0', n - (size_t)(authcid - buf));
	if (z2 == NULL)
		goto out;
	pass = z2 + 1;
	zlen = (size_t)(z1 - buf);
	clen = (size_t)(z2 - authcid);
	plen = n - (size_t)(pass - buf);
	/* a third NUL would sit inside the password */
	if (memchr(pass, '\0', plen) != NULL)
		goto out;
	if (clen == 0 || clen > SASL_USER_MAX || plen == 0 || plen > SASL_PASS_MAX)
		goto out;
	/* Acting as another identity is proxy authorization, which we do not offer. */
	if (zlen != 0 && (zlen != clen || memcmp(buf, authcid, clen) != 0))
		goto out;
	memcpy(out->user, authcid, clen);
	out->user[clen] = '\0';
	out->user_len = clen;
	memcpy(out->pass, pass, plen);
	out->pass[plen] = '\0';
	out->pass_len = plen;
	st = SASL_OK;
out:
	explicit_bzero(buf, sizeof(buf));
	if (st != SASL_OK)
		sasl_cred_wipe(out);
	return st;
}

/* Decodes one LOGIN answer into field[0..max], NUL-terminated; 0 or -1 (field wiped). */
static int
login_field(const char *b64, size_t len, char *field, size_t max, size_t *outlen)
{
	ssize_t got = sasl_b64_decode(b64, len, (unsigned char *)field, max);

	if (got <= 0 || memchr(field, '\0', (size_t)got) != NULL) {
		explicit_bzero(field, max + 1);
		*outlen = 0;
		return -1;
	}
	field[got] = '\0';
	*outlen = (size_t)got;
	return 0;
}

enum sasl_status
sasl_login_user(const char *b64, size_t len, struct sasl_cred *out)
{
	if (login_field(b64, len, out->user, SASL_USER_MAX, &out->user_len) < 0)
		return SASL_MALFORMED;
	return SASL_OK;
}

enum sasl_status
sasl_login_pass(const char *b64, size_t len, struct sasl_cred *out)
{
	if (login_field(b64, len, out->pass, SASL_PASS_MAX, &out->pass_len) < 0)
		return SASL_MALFORMED;
	return SASL_OK;
}

int
sasl_is_abort(const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	return len == 1 && line[0] == '*';
}

void
sasl_cred_wipe(struct sasl_cred *c)
{
	explicit_bzero(c, sizeof(*c));
}
