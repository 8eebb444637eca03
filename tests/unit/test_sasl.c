/*
 * test_sasl.c - unit tests of proxy/sasl.c: base64 (RFC 4648 section 10
 * vectors, every octet and character, strictness, capacity), the PLAIN
 * message (RFC 4616 examples, malformed forms, field limits), the LOGIN
 * prompts and answers, the "*" abort, and the AUTH arguments. Inputs are
 * decoded from a guard-page buffer (guard.h), so an over-read faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "guard.h"
#include "sasl.h"

static struct guard g;

static int
setup(void **state)
{
	(void)state;
	return guard_init(&g, 8192);
}

static int
teardown(void **state)
{
	(void)state;
	guard_free(&g);
	return 0;
}

/* Decodes s (copied against the guard page); returns the length or -1. */
static ssize_t
dec(const char *s, unsigned char *out, size_t cap)
{
	return sasl_b64_decode(guard_str(&g, s), strlen(s), out, cap);
}

/* Base64 of n octets of p, in a static buffer. */
static const char *
enc(const void *p, size_t n)
{
	static char out[4096];

	assert_true(sasl_b64_encode(p, n, out, sizeof(out)) >= 0);
	return out;
}

static void
test_b64_rfc4648_vectors(void **state)
{
	static const struct { const char *plain, *b64; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	unsigned char out[16];
	char eout[16];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = strlen(v[i].plain);

		assert_int_equal(sasl_b64_encode(v[i].plain, n, eout, sizeof(eout)), (ssize_t)strlen(v[i].b64));
		assert_string_equal(eout, v[i].b64);
		assert_int_equal(dec(v[i].b64, out, sizeof(out)), (ssize_t)n);
		assert_memory_equal(out, v[i].plain, n);
	}
}

/* Reference value of a base64 character, the slow obvious way. */
static int
ref_val(int c)
{
	const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alpha, c) : NULL;

	return p ? (int)(p - alpha) : -1;
}

static void
test_b64_every_char_and_octet(void **state)
{
	unsigned char all[256], out[256];
	char q[5], e[400];
	int c;

	(void)state;
	/* each character in first position: decodes iff it is in the alphabet, to the right value */
	for (c = 0; c < 256; c++) {
		q[0] = (char)c;
		memcpy(q + 1, "AAA", 4);
		if (ref_val(c) < 0) {
			assert_int_equal(sasl_b64_decode(guard_copy(&g, q, 4), 4, out, 3), -1);
		} else {
			assert_int_equal(sasl_b64_decode(guard_copy(&g, q, 4), 4, out, 3), 3);
			assert_int_equal(out[0], ref_val(c) << 2);
		}
	}
	/* every octet value survives a round trip, at each of the three positions of a group */
	for (c = 0; c < 256; c++)
		all[c] = (unsigned char)c;
	for (size_t off = 0; off < 3; off++) {
		ssize_t n = sasl_b64_encode(all + off, 256 - off, e, sizeof(e));

		assert_int_equal(n, (ssize_t)SASL_B64_ENCODED_LEN(256 - off));
		assert_int_equal(sasl_b64_decode(guard_copy(&g, e, (size_t)n), (size_t)n, out, sizeof(out)),
				 (ssize_t)(256 - off));
		assert_memory_equal(out, all + off, 256 - off);
	}
	/* the encoder emits all 64 characters, in order, for 0x00 0x10 0x83 0x10 0x51 0x87 ... */
	{
		static const unsigned char seq[] = {
			0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3, 0x8f,
			0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9b, 0x71, 0xd7, 0x9f,
			0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7, 0xa2, 0x9a, 0xab, 0xb2, 0xdb, 0xaf,
			0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7, 0xe3, 0x9e, 0xbb, 0xf3, 0xdf, 0xbf,
		};

		assert_string_equal(enc(seq, sizeof(seq)),
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
	}
}

static void
test_b64_strict(void **state)
{
	static const char *bad[] = {
		"Zg=", "Zg", "Z", "Zm9vY", "Zg===", "Z===", "====", "=Zg=", "Z=g=",
		"Zm8=Zm8=",		/* padding in the middle */
		"Zg==Zm9v",
		"Zh==",			/* non-zero padding bits (canonical is Zg==) */
		"Zm9=",			/* non-zero padding bits (canonical is Zm8=) */
		"Zm9v Zm9v", " Zm9v", "Zm9v ", "Zm9v\r\n", "Zm9v\n", "Zm\t9v",
		"Zm9-", "Zm9_",		/* the URL-safe alphabet is not ours */
		"Zm9v!AAA", "Zm9\x80", "Zm9\xff",
	};
	unsigned char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dec(bad[i], out, sizeof(out)) != -1)
			fail_msg("'%s' accepted", bad[i]);
	/* a NUL inside */
	assert_int_equal(sasl_b64_decode(guard_copy(&g, "Zm\0v", 4), 4, out, sizeof(out)), -1);
	/* every padding form with clean bits is fine */
	assert_int_equal(dec("AA==", out, sizeof(out)), 1);
	assert_int_equal(dec("AAA=", out, sizeof(out)), 2);
	assert_int_equal(dec("////", out, sizeof(out)), 3);
	assert_memory_equal(out, "\xff\xff\xff", 3);
}

static void
test_b64_capacity(void **state)
{
	unsigned char out[8];
	char e[16];

	(void)state;
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(dec("Zm9vYmFy", out, 5), -1);
	assert_int_equal(out[5], 0xaa);			/* nothing written past cap */
	assert_int_equal(dec("Zm9vYmFy", out, 6), 6);
	assert_int_equal(dec("Zm9vYg==", out, 3), -1);
	assert_int_equal(dec("Zm9vYg==", out, 4), 4);
	assert_int_equal(dec("", out, 0), 0);
	/* encode needs room for the NUL */
	assert_int_equal(sasl_b64_encode("foob", 4, e, 8), -1);
	assert_int_equal(sasl_b64_encode("foob", 4, e, 9), 8);
	assert_string_equal(e, "Zm9vYg==");
	assert_int_equal(sasl_b64_encode("", 0, e, 1), 0);
	assert_string_equal(e, "");
	assert_int_equal(sasl_b64_encode("", 0, e, 0), -1);
	assert_int_equal(SASL_B64_DECODED_MAX(8), 6);
}

/* PLAIN of a raw message of n octets; returns the status, cred in *c. */
static enum sasl_status
plain(const void *msg, size_t n, struct sasl_cred *c)
{
	const char *b = enc(msg, n);

	memset(c, 0x5a, sizeof(*c));
	return sasl_plain_decode(guard_str(&g, b), strlen(b), c);
}

static void
assert_wiped(const struct sasl_cred *c)
{
	static const struct sasl_cred zero;

	assert_memory_equal(c, &zero, sizeof(zero));
}

static void
test_plain_good(void **state)
{
	struct sasl_cred c;

	(void)state;
	/* RFC 4616 section 4, first example */
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(sasl_plain_decode(guard_str(&g, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), 28, &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_int_equal(c.user_len, 3);
	assert_string_equal(c.pass, "tanstaaftanstaaf");
	assert_int_equal(c.pass_len, 16);
	/* authzid equal to authcid is not proxying */
	assert_int_equal(plain("tim\0tim\0pw", 10, &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_string_equal(c.pass, "pw");
	/* UTF-8 and spaces are data */
	assert_int_equal(plain("\0j\xc3\xb6rg\0pass word \xe2\x82\xac", 20, &c), SASL_OK);
	assert_string_equal(c.user, "j\xc3\xb6rg");
	assert_string_equal(c.pass, "pass word \xe2\x82\xac");
	sasl_cred_wipe(&c);
	assert_wiped(&c);
}

static void
test_plain_malformed(void **state)
{
	static const struct { const char *msg; size_t n; } bad[] = {
		{ "timpw", 5 },				/* no NUL */
		{ "\0timpw", 6 },			/* one NUL */
		{ "tim\0pw", 6 },
		{ "\0\0pw", 4 },			/* empty authcid */
		{ "\0tim\0", 5 },			/* empty password (RFC 4616: 1*SAFE) */
		{ "\0\0", 2 },
		{ "\0tim\0pa\0ss", 10 },		/* NUL inside the password */
		{ "\0tim\0pw\0", 8 },
		{ "Ursel\0Kurt\0xipj3plmq", 20 },	/* RFC 4616's proxy example: refused */
		{ "tim2\0tim\0pw", 11 },		/* authzid differs */
		{ "ti\0tim\0pw", 9 },
		{ "", 0 },
	};
	struct sasl_cred c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (plain(bad[i].msg, bad[i].n, &c) != SASL_MALFORMED)
			fail_msg("message %zu accepted", i);
		assert_wiped(&c);
	}
	/* bad base64 */
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(sasl_plain_decode(guard_str(&g, "AHRpbQB0YW5zdGFhZnRhbnN0YWF"), 27, &c), SASL_MALFORMED);
	assert_wiped(&c);
	assert_int_equal(sasl_plain_decode(guard_str(&g, "AHRpbQB0YW5zdGFh ZnRhbnN0YWFm"), 29, &c), SASL_MALFORMED);
	assert_int_equal(sasl_plain_decode(guard_str(&g, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"), 30, &c), SASL_MALFORMED);
	/* "=" (AUTH PLAIN =) reaches the decoder as an empty response */
	assert_int_equal(sasl_plain_decode(guard_str(&g, ""), 0, &c), SASL_MALFORMED);
	assert_int_equal(sasl_plain_decode(guard_str(&g, "="), 1, &c), SASL_MALFORMED);
	assert_int_equal(sasl_plain_decode(NULL, 0, &c), SASL_MALFORMED);
}

static void
test_plain_limits(void **state)
{
	char msg[3000];
	struct sasl_cred c;
	size_t n;

	(void)state;
	/* authcid of SASL_USER_MAX octets, password of SASL_PASS_MAX: accepted */
	msg[0] = '\0';
	memset(msg + 1, 'u', SASL_USER_MAX);
	msg[1 + SASL_USER_MAX] = '\0';
	memset(msg + 2 + SASL_USER_MAX, 'p', SASL_PASS_MAX);
	n = 2 + SASL_USER_MAX + SASL_PASS_MAX;
	assert_int_equal(plain(msg, n, &c), SASL_OK);
	assert_int_equal(c.user_len, SASL_USER_MAX);
	assert_int_equal(c.pass_len, SASL_PASS_MAX);
	assert_int_equal(strlen(c.pass), SASL_PASS_MAX);
	/* with an equal authzid in front: the longest message there is */
	memset(msg, 'u', SASL_USER_MAX);
	msg[SASL_USER_MAX] = '\0';
	memset(msg + SASL_USER_MAX + 1, 'u', SASL_USER_MAX);
	msg[2 * SASL_USER_MAX + 1] = '\0';
	memset(msg + 2 * SASL_USER_MAX + 2, 'p', SASL_PASS_MAX);
	assert_int_equal(plain(msg, 2 * SASL_USER_MAX + 2 + SASL_PASS_MAX, &c), SASL_OK);
	/* one password octet too many */
	msg[0] = '\0';
	memset(msg + 1, 'u', 3);
	msg[4] = '\0';
	memset(msg + 5, 'p', SASL_PASS_MAX + 1);
	assert_int_equal(plain(msg, 5 + SASL_PASS_MAX + 1, &c), SASL_MALFORMED);
	assert_wiped(&c);
	/* one authcid octet too many */
	msg[0] = '\0';
	memset(msg + 1, 'u', SASL_USER_MAX + 1);
	msg[2 + SASL_USER_MAX] = '\0';
	memcpy(msg + 3 + SASL_USER_MAX, "pw", 2);
	assert_int_equal(plain(msg, 5 + SASL_USER_MAX, &c), SASL_MALFORMED);
	/* a message longer than any valid one */
	memset(msg, 'x', 2500);
	msg[0] = '\0';
	msg[10] = '\0';
	assert_int_equal(plain(msg, 2500, &c), SASL_MALFORMED);
}

static void
test_login(void **state)
{
	struct sasl_cred c;
	char big[1100];

	(void)state;
	assert_string_equal(enc("Username:", 9), SASL_LOGIN_PROMPT_USER);
	assert_string_equal(enc("Password:", 9), SASL_LOGIN_PROMPT_PASS);

	memset(&c, 0, sizeof(c));
	assert_int_equal(sasl_login_user(guard_str(&g, "dGlt"), 4, &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_int_equal(c.user_len, 3);
	assert_int_equal(sasl_login_pass(guard_str(&g, "dGFuc3RhYWY="), 12, &c), SASL_OK);
	assert_string_equal(c.pass, "tanstaaf");
	assert_int_equal(c.pass_len, 8);
	assert_string_equal(c.user, "tim");		/* untouched by the password */

	/* empty, NUL inside, bad base64, "=" */
	assert_int_equal(sasl_login_user(guard_str(&g, ""), 0, &c), SASL_MALFORMED);
	assert_int_equal(c.user_len, 0);
	assert_string_equal(c.user, "");
	assert_string_equal(c.pass, "tanstaaf");	/* a user failure leaves the password */
	assert_int_equal(sasl_login_user(guard_str(&g, enc("ti\0m", 4)), 8, &c), SASL_MALFORMED);
	assert_int_equal(sasl_login_user(guard_str(&g, "dGlt\r\n"), 6, &c), SASL_MALFORMED);
	assert_int_equal(sasl_login_user(guard_str(&g, "="), 1, &c), SASL_MALFORMED);
	assert_int_equal(sasl_login_pass(guard_str(&g, ""), 0, &c), SASL_MALFORMED);
	assert_int_equal(c.pass_len, 0);
	assert_string_equal(c.pass, "");
	assert_int_equal(sasl_login_pass(guard_str(&g, enc("pa\0ss", 5)), 8, &c), SASL_MALFORMED);

	/* limits */
	memset(big, 'u', sizeof(big));
	assert_int_equal(sasl_login_user(guard_str(&g, enc(big, SASL_USER_MAX)), SASL_B64_ENCODED_LEN(SASL_USER_MAX), &c), SASL_OK);
	assert_int_equal(c.user_len, SASL_USER_MAX);
	assert_int_equal(sasl_login_user(guard_str(&g, enc(big, SASL_USER_MAX + 1)), SASL_B64_ENCODED_LEN(SASL_USER_MAX + 1), &c), SASL_MALFORMED);
	assert_int_equal(sasl_login_pass(guard_str(&g, enc(big, SASL_PASS_MAX)), SASL_B64_ENCODED_LEN(SASL_PASS_MAX), &c), SASL_OK);
	assert_int_equal(c.pass_len, SASL_PASS_MAX);
	assert_int_equal(sasl_login_pass(guard_str(&g, enc(big, SASL_PASS_MAX + 1)), SASL_B64_ENCODED_LEN(SASL_PASS_MAX + 1), &c), SASL_MALFORMED);
	sasl_cred_wipe(&c);
	assert_wiped(&c);
}

static void
test_abort(void **state)
{
	(void)state;
	assert_true(sasl_is_abort(guard_str(&g, "*"), 1));
	assert_true(sasl_is_abort(guard_str(&g, "*\r\n"), 3));
	assert_true(sasl_is_abort(guard_str(&g, "*\n"), 2));
	assert_false(sasl_is_abort(guard_str(&g, ""), 0));
	assert_false(sasl_is_abort(guard_str(&g, "**"), 2));
	assert_false(sasl_is_abort(guard_str(&g, "* "), 2));
	assert_false(sasl_is_abort(guard_str(&g, " *"), 2));
	assert_false(sasl_is_abort(guard_str(&g, "\r\n"), 2));
	assert_false(sasl_is_abort(guard_str(&g, "dGlt"), 4));
}

static enum sasl_status
auth(const char *args, struct sasl_auth_cmd *a)
{
	memset(a, 0x5a, sizeof(*a));
	return sasl_parse_auth(guard_str(&g, args), strlen(args), a);
}

static void
test_auth_args(void **state)
{
	struct sasl_auth_cmd a;
	const char *p;

	(void)state;
	assert_int_equal(auth("PLAIN", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_PLAIN);
	assert_int_equal(a.has_initial, 0);
	assert_null(a.initial);
	assert_int_equal(a.initial_len, 0);
	assert_string_equal(a.mech_name, "PLAIN");

	assert_int_equal(auth("plain", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_PLAIN);
	assert_string_equal(a.mech_name, "PLAIN");
	assert_int_equal(auth("LoGiN", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_LOGIN);

	/* initial response: a slice of the caller's line */
	p = guard_str(&g, "PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	assert_int_equal(sasl_parse_auth(p, 34, &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_PLAIN);
	assert_int_equal(a.has_initial, 1);
	assert_ptr_equal(a.initial, p + 6);
	assert_int_equal(a.initial_len, 28);

	/* "=" is an empty initial response (RFC 4954 4) */
	assert_int_equal(auth("PLAIN =", &a), SASL_OK);
	assert_int_equal(a.has_initial, 1);
	assert_null(a.initial);
	assert_int_equal(a.initial_len, 0);
	assert_int_equal(auth("LOGIN dGlt", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_LOGIN);
	assert_int_equal(a.initial_len, 4);
	/* "==" is not "=": it goes to the decoder, which refuses it */
	assert_int_equal(auth("PLAIN ==", &a), SASL_OK);
	assert_int_equal(a.initial_len, 2);

	/* extra spaces tolerated */
	assert_int_equal(auth("PLAIN  dGlt  ", &a), SASL_OK);
	assert_int_equal(a.initial_len, 4);
	assert_int_equal(auth("PLAIN ", &a), SASL_OK);
	assert_int_equal(a.has_initial, 0);

	/* well-formed but not ours: 504 */
	assert_int_equal(auth("CRAM-MD5", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_UNKNOWN);
	assert_string_equal(a.mech_name, "CRAM-MD5");
	assert_int_equal(auth("scram-sha-256 biwsbj11c2VyLHI9", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_UNKNOWN);
	assert_string_equal(a.mech_name, "SCRAM-SHA-256");
	assert_int_equal(auth("PLAINX", &a), SASL_OK);
	assert_int_equal(a.mech, SASL_MECH_UNKNOWN);
	assert_int_equal(auth("A2345678901234567890", &a), SASL_OK);	/* 20: the longest */
	assert_int_equal(auth("X_Y-9", &a), SASL_OK);

	/* malformed: 501 */
	assert_int_equal(auth("", &a), SASL_MALFORMED);
	assert_int_equal(auth(" PLAIN", &a), SASL_MALFORMED);
	assert_int_equal(auth("PLAIN a b", &a), SASL_MALFORMED);
	assert_int_equal(auth("PLAIN\tdGlt", &a), SASL_MALFORMED);
	assert_int_equal(auth("PL@IN", &a), SASL_MALFORMED);
	assert_int_equal(auth("PLAIN=", &a), SASL_MALFORMED);
	assert_int_equal(auth("A23456789012345678901", &a), SASL_MALFORMED);	/* 21 */
	assert_int_equal(auth("PL\xc3\x84IN", &a), SASL_MALFORMED);

	assert_string_equal(sasl_mech_name(SASL_MECH_PLAIN), "PLAIN");
	assert_string_equal(sasl_mech_name(SASL_MECH_LOGIN), "LOGIN");
	assert_string_equal(sasl_mech_name(SASL_MECH_UNKNOWN), "");
}

/* The whole PLAIN path as the session will run it: parse, then decode. */
static void
test_auth_then_plain(void **state)
{
	struct sasl_auth_cmd a;
	struct sasl_cred c;

	(void)state;
	assert_int_equal(auth("plain AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &a), SASL_OK);
	assert_int_equal(sasl_plain_decode(a.initial, a.initial_len, &c), SASL_OK);
	assert_string_equal(c.user, "tim");
	assert_int_equal(auth("PLAIN =", &a), SASL_OK);
	assert_int_equal(sasl_plain_decode(a.initial, a.initial_len, &c), SASL_MALFORMED);
	sasl_cred_wipe(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_rfc4648_vectors),
		cmocka_unit_test(test_b64_every_char_and_octet),
		cmocka_unit_test(test_b64_strict),
		cmocka_unit_test(test_b64_capacity),
		cmocka_unit_test(test_plain_good),
		cmocka_unit_test(test_plain_malformed),
		cmocka_unit_test(test_plain_limits),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_auth_args),
		cmocka_unit_test(test_auth_then_plain),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
