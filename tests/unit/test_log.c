/*
 * test_log.c - unit tests of core/log.c's JSON fields (log_kv_json): the
 * transaction and connection lines become members, numbers stay numbers,
 * quoted and <address> values are taken whole, reserved keys are left
 * out, bare words after the first are not fields, and a small output
 * buffer is cut short, never overrun. Messages are read from a
 * guard-page buffer (guard.h), so an over-read faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "guard.h"
#include "log.h"

static struct guard g;

static int
setup(void **state)
{
	(void)state;
	return guard_init(&g, 4096);
}

static int
teardown(void **state)
{
	(void)state;
	guard_free(&g);
	return 0;
}

/* The fields of msg, which is copied with its NUL as the guarded buffer's last octet. */
static const char *
fields(const char *msg)
{
	static char out[2048];
	const char *m = guard_copy(&g, msg, strlen(msg) + 1);

	log_kv_json(out, sizeof(out), m);
	return out;
}

static void
test_transaction_line(void **state)
{
	(void)state;
	assert_string_equal(
	    fields("msg id=1A2B conn=C3 client=192.0.2.7 from=<a@example.org> rcpts=2 "
		   "size=1234 backend=sink status=accepted reply=\"250 2.0.0 Ok: queued as X1\" ms=5"),
	    ",\"event\":\"msg\",\"id\":\"1A2B\",\"conn\":\"C3\",\"client\":\"192.0.2.7\","
	    "\"from\":\"<a@example.org>\",\"rcpts\":2,\"size\":1234,\"backend\":\"sink\","
	    "\"status\":\"accepted\",\"reply\":\"250 2.0.0 Ok: queued as X1\",\"ms\":5");
}

static void
test_values(void **state)
{
	(void)state;
	/* the null sender, and an address with a space in its quoted local part */
	assert_string_equal(fields("msg from=<> rcpts=0"), ",\"event\":\"msg\",\"from\":\"<>\",\"rcpts\":0");
	assert_string_equal(fields("x from=<\\x22a b\\x22@h> n=1"),
			    ",\"event\":\"x\",\"from\":\"<\\\\x22a b\\\\x22@h>\",\"n\":1");
	/* leading zeros, signs, long and mixed digits stay strings */
	assert_string_equal(fields("a=007 b=-1 c=1234567890123456 d=12ab e=0"),
			    ",\"a\":\"007\",\"b\":\"-1\",\"c\":\"1234567890123456\",\"d\":\"12ab\",\"e\":0");
	/* a quoted number is a string; an empty value too */
	assert_string_equal(fields("a=\"42\" b="), ",\"a\":\"42\",\"b\":\"\"");
	/* an unterminated quote or address runs to the end */
	assert_string_equal(fields("a=\"open text"), ",\"a\":\"open text\"");
	assert_string_equal(fields("a=<open"), ",\"a\":\"<open\"");
}

static void
test_words_and_reserved(void **state)
{
	(void)state;
	/* only the first bare word is the event; later words are text */
	assert_string_equal(fields("conn=C1 client=::1 TLS handshake timeout"),
			    ",\"conn\":\"C1\",\"client\":\"::1\"");
	assert_string_equal(fields("listening on 127.0.0.1:25"), ",\"event\":\"listening\"");
	/* capitals or punctuation are not a key; a lone word is no event */
	assert_string_equal(fields("Reloaded X=1 a.b=2"), "");
	assert_string_equal(fields("starting"), "");
	assert_string_equal(fields(""), "");
	/* keys the line itself uses are never fields */
	assert_string_equal(fields("ev ts=1 level=x msg=y event=z ok=1"), ",\"event\":\"ev\",\"ok\":1");
}

static void
test_escaping(void **state)
{
	(void)state;
	/* control bytes and backslashes from a message become JSON escapes */
	assert_string_equal(fields("a=b\\c d=\"x\ty\""), ",\"a\":\"b\\\\c\",\"d\":\"x\\u0009y\"");
}

static void
test_small_buffer(void **state)
{
	static const char msg[] = "msg id=ABCDEFGHIJ client=192.0.2.1 reply=\"a long reply text that cannot fit\"";
	char out[64];
	const char *m;
	size_t n;

	(void)state;
	m = guard_copy(&g, msg, sizeof(msg));
	memset(out, 'Z', sizeof(out));
	n = log_kv_json(out, 48, m);
	/* whole members only, NUL-terminated inside the 48 bytes, nothing written past them */
	assert_true(n < 48);
	assert_int_equal(strlen(out), n);
	assert_string_equal(out, ",\"event\":\"msg\",\"id\":\"ABCDEFGHIJ\"");
	for (size_t i = 48; i < sizeof(out); i++)
		assert_int_equal(out[i], 'Z');
	assert_int_equal(log_kv_json(out, 0, m), 0);
	assert_int_equal(log_kv_json(out, 1, m), 0);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transaction_line),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_words_and_reserved),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_small_buffer),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
