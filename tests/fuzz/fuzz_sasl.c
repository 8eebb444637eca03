/*
 * fuzz_sasl.c - libFuzzer target for proxy/sasl.c, the AUTH text a
 * client sends before it is anybody (RFC 4954). Octet 0 picks what the
 * rest is fed to; every input and output buffer is an exact-size heap
 * block, so ASan sees any over-read or over-write:
 *  - base64: the decoder is strict, so whatever it accepts encodes back
 *    to exactly the same text; the decoded length never exceeds cap;
 *  - the AUTH arguments: a parsed mechanism is PLAIN, LOGIN or unknown
 *    with a 1..20 character upper-case name, and the initial response
 *    lies inside the line;
 *  - a PLAIN message and LOGIN answers: on success user and password are
 *    non-empty, within their limits, NUL-terminated and free of NUL; on
 *    failure the touched fields are wiped.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sasl.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int
all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		if (c[i])
			return 0;
	return 1;
}

static void
check_field(const char *f, size_t len, size_t max)
{
	CHECK(len >= 1 && len <= max);
	CHECK(f[len] == '\0');
	CHECK(memchr(f, '\0', len) == NULL);
}

static void
check_b64(const char *in, size_t len, size_t cap)
{
	unsigned char *out = malloc(cap ? cap : 1);
	char *again;
	ssize_t n;

	if (out == NULL)
		return;
	n = sasl_b64_decode(in, len, out, cap);
	CHECK(n >= -1 && (n < 0 || (size_t)n <= cap));
	if (n >= 0) {
		size_t elen = SASL_B64_ENCODED_LEN((size_t)n) + 1;

		again = malloc(elen);
		if (again != NULL) {
			CHECK(sasl_b64_encode(out, (size_t)n, again, elen) == (ssize_t)len);
			CHECK(memcmp(again, in, len) == 0);
			free(again);
		}
	}
	free(out);
}

static void
check_auth(const char *in, size_t len)
{
	struct sasl_auth_cmd a;
	size_t m;

	if (sasl_parse_auth(in, len, &a) != SASL_OK)
		return;
	CHECK(a.mech == SASL_MECH_UNKNOWN || a.mech == SASL_MECH_PLAIN || a.mech == SASL_MECH_LOGIN);
	m = strlen(a.mech_name);
	CHECK(m >= 1 && m <= SASL_MECH_NAME_MAX);
	for (size_t i = 0; i < m; i++)
		CHECK(!(a.mech_name[i] >= 'a' && a.mech_name[i] <= 'z'));
	if (a.mech != SASL_MECH_UNKNOWN)
		CHECK(strcmp(a.mech_name, sasl_mech_name(a.mech)) == 0);
	if (a.initial_len)
		CHECK(a.initial >= in && a.initial + a.initial_len <= in + len);
	else
		CHECK(a.initial == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl_cred *c;
	char *in;
	size_t len;

	if (size < 2 || size > 16384)
		return 0;
	len = size - 2;
	in = malloc(len ? len : 1);
	c = malloc(sizeof(*c));
	if (in == NULL || c == NULL)
		goto done;
	memcpy(in, data + 2, len);
	memset(c, 0x55, sizeof(*c));
	switch (data[0] % 5) {
	case 0:
		check_b64(in, len, (size_t)data[1] * 13);
		break;
	case 1:
		check_auth(in, len);
		break;
	case 2:
		if (sasl_plain_decode(in, len, c) == SASL_OK) {
			check_field(c->user, c->user_len, SASL_USER_MAX);
			check_field(c->pass, c->pass_len, SASL_PASS_MAX);
		} else {
			CHECK(all_zero(c, sizeof(*c)));
		}
		break;
	case 3:
		if (sasl_login_user(in, len, c) == SASL_OK)
			check_field(c->user, c->user_len, SASL_USER_MAX);
		else
			CHECK(all_zero(c->user, sizeof(c->user)) && c->user_len == 0);
		break;
	case 4:
		if (sasl_login_pass(in, len, c) == SASL_OK)
			check_field(c->pass, c->pass_len, SASL_PASS_MAX);
		else
			CHECK(all_zero(c->pass, sizeof(c->pass)) && c->pass_len == 0);
		break;
	}
	sasl_cred_wipe(c);
	CHECK(all_zero(c, sizeof(*c)));
done:
	free(in);
	free(c);
	return 0;
}
