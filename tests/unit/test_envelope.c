/*
 * test_envelope.c - the pure envelope helpers: MAIL/RCPT rebuilt from
 * parsed fields with parameter checks, relay-domain matching, backend
 * reply cleaning, and the Received: header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "envelope.h"
#include "smtp_parse.h"

static int
mail(const char *line, uint64_t max, int dsn, char *out, size_t outlen, struct env_verdict *v)
{
	static struct smtp_cmd cmd;

	assert_int_equal(smtp_parse_line(line, strlen(line), &cmd, NULL), SMTP_PARSE_OK);
	return envelope_mail(&cmd, max, dsn, out, outlen, v);
}

static int
rcpt(const char *line, int dsn, char *out, size_t outlen, struct env_verdict *v)
{
	static struct smtp_cmd cmd;

	assert_int_equal(smtp_parse_line(line, strlen(line), &cmd, NULL), SMTP_PARSE_OK);
	return envelope_rcpt(&cmd, dsn, out, outlen, v);
}

static void
test_mail_rebuilt(void **state)
{
	char out[600];
	struct env_verdict v;
	int n;

	(void)state;
	n = mail("mail from: <a@b.test> size=100 BODY=8bitmime SMTPUTF8", 1000, 0, out, sizeof(out), &v);
	assert_true(n > 0);
	assert_string_equal(out, "MAIL FROM:<a@b.test> size=100 BODY=8bitmime SMTPUTF8");
	assert_int_equal(v.size, 100);
	assert_true(v.body_8bit);
	assert_true(v.smtputf8);
	n = mail("MAIL FROM:<>", 1000, 0, out, sizeof(out), &v);
	assert_string_equal(out, "MAIL FROM:<>");
	/* AUTH= is not passed on. */
	n = mail("MAIL FROM:<a@b.test> AUTH=<>", 1000, 0, out, sizeof(out), &v);
	assert_true(n > 0);
	assert_string_equal(out, "MAIL FROM:<a@b.test>");
}

static void
test_mail_params_refused(void **state)
{
	char out[600];
	struct env_verdict v;

	(void)state;
	assert_int_equal(mail("MAIL FROM:<a@b.test> SIZE=1001", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 552);
	assert_memory_equal(v.text, "5.3.4", 5);
	assert_int_equal(mail("MAIL FROM:<a@b.test> SIZE=12x", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 501);
	assert_int_equal(mail("MAIL FROM:<a@b.test> BODY=BINARYMIME", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 555);
	assert_int_equal(mail("MAIL FROM:<a@b.test> SMTPUTF8=yes", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 501);
	assert_int_equal(mail("MAIL FROM:<a@b.test> FOO=bar", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 555);
	/* DSN parameters only when DSN is offered. */
	assert_int_equal(mail("MAIL FROM:<a@b.test> RET=FULL", 1000, 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 555);
	assert_true(mail("MAIL FROM:<a@b.test> RET=HDRS ENVID=abc+2Bdef", 1000, 1, out, sizeof(out), &v) > 0);
	assert_string_equal(out, "MAIL FROM:<a@b.test> RET=HDRS ENVID=abc+2Bdef");
	assert_int_equal(mail("MAIL FROM:<a@b.test> RET=ALL", 1000, 1, out, sizeof(out), &v), -1);
	assert_int_equal(mail("MAIL FROM:<a@b.test> ENVID=a+zz", 1000, 1, out, sizeof(out), &v), -1);
	assert_int_equal(mail("MAIL FROM:<a@b.test> ENVID=a+2", 1000, 1, out, sizeof(out), &v), -1);
	/* Too small an output buffer is an error, never an overflow. */
	assert_int_equal(mail("MAIL FROM:<a@b.test>", 1000, 0, out, 10, &v), -1);
}

static void
test_rcpt(void **state)
{
	char out[600];
	struct env_verdict v;

	(void)state;
	assert_true(rcpt("RCPT TO:<x@y.test>", 0, out, sizeof(out), &v) > 0);
	assert_string_equal(out, "RCPT TO:<x@y.test>");
	assert_true(rcpt("RCPT TO:<x@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.test", 1, out, sizeof(out), &v) > 0);
	assert_string_equal(out, "RCPT TO:<x@y.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y.test");
	assert_int_equal(rcpt("RCPT TO:<x@y.test> NOTIFY=NEVER,SUCCESS", 1, out, sizeof(out), &v), -1);
	assert_int_equal(rcpt("RCPT TO:<x@y.test> NOTIFY=SOMETIMES", 1, out, sizeof(out), &v), -1);
	assert_int_equal(rcpt("RCPT TO:<x@y.test> NOTIFY=SUCCESS,", 1, out, sizeof(out), &v), -1);
	assert_int_equal(rcpt("RCPT TO:<x@y.test> ORCPT=rfc822", 1, out, sizeof(out), &v), -1);
	assert_int_equal(rcpt("RCPT TO:<x@y.test> NOTIFY=NEVER", 0, out, sizeof(out), &v), -1);
	assert_int_equal(v.code, 555);
}

static void
test_domains(void **state)
{
	char *list[] = { "example.test", "b.test" };
	struct slice p = { "User@Example.TEST", 17 };
	struct slice d = envelope_domain(p);

	(void)state;
	assert_int_equal(d.len, 12);
	assert_true(envelope_domain_listed(d, list, 2));
	p.p = "a@example.test.";
	p.len = strlen(p.p);
	assert_true(envelope_domain_listed(envelope_domain(p), list, 2));
	p.p = "a@sub.example.test";
	p.len = strlen(p.p);
	assert_false(envelope_domain_listed(envelope_domain(p), list, 2));
	p.p = "a@example.test.evil";
	p.len = strlen(p.p);
	assert_false(envelope_domain_listed(envelope_domain(p), list, 2));
	p.p = "postmaster";
	p.len = strlen(p.p);
	assert_int_equal(envelope_domain(p).len, 0);
	/* The last '@' counts: a quoted local part may hold one. */
	p.p = "\"a@b\"@b.test";
	p.len = strlen(p.p);
	assert_true(envelope_domain_listed(envelope_domain(p), list, 2));
}

static void
test_clean_reply(void **state)
{
	char out[256];
	size_t n;

	(void)state;
	n = envelope_clean_reply("250 2.0.0 Ok: queued as ABC\r\n", 29, out, sizeof(out));
	assert_int_equal(n, 29);
	assert_memory_equal(out, "250 2.0.0 Ok: queued as ABC\r\n", n);
	/* Control bytes never reach the client; bare LF becomes CRLF. */
	n = envelope_clean_reply("550-first\x01line\n550 last\r\n", 25, out, sizeof(out));
	assert_memory_equal(out, "550-first?line\r\n550 last\r\n", n);
	/* A final line written with '-' is made final. */
	n = envelope_clean_reply("451-only\r\n", 10, out, sizeof(out));
	assert_memory_equal(out, "451 only\r\n", n);
	/* Garbage lines are dropped. */
	n = envelope_clean_reply("hello\r\n", 7, out, sizeof(out));
	assert_int_equal(n, 0);
	n = envelope_clean_reply("250\r\n", 5, out, sizeof(out));
	assert_memory_equal(out, "250 \r\n", n);
	/* Output is bounded. */
	n = envelope_clean_reply("250 0123456789012345678901234567890123456789\r\n", 46, out, 20);
	assert_true(n <= 20);
	/* Only the last line reads as final: a client must see one reply (found by fuzz_envelope). */
	n = envelope_clean_reply("444\r\n.\r\n250 ok\r\n550 no\r\n", 24, out, sizeof(out));
	assert_int_equal(n, 22);
	assert_memory_equal(out, "444-\r\n250-ok\r\n550 no\r\n", n);
}

static void
test_received(void **state)
{
	struct received_info ri = {
		.helo = "client(evil)\r\nX-Injected: 1", .client_ip = "::1", .hostname = "mx.test",
		.proto = "ESMTP", .id = "ABC123", .rcpt = "u@example.test", .when = 0,
	};
	char out[1024];
	size_t n = envelope_received(&ri, out, sizeof(out));

	(void)state;
	assert_true(n > 0);
	out[n] = '\0';
	assert_memory_equal(out, "Received: from client?evil???X-Injected:?1 ([IPv6:::1])\r\n\tby mx.test (mxgate) with ESMTP id ABC123\r\n\tfor <u@example.test>;\r\n\t", 115);
	/* Every line ends in CRLF and no line starts with a dot. */
	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\n')
			assert_int_equal(out[i - 1], '\r');
		if (out[i] == '\r')
			assert_int_equal(out[i + 1], '\n');
	}
	assert_memory_equal(out + n - 2, "\r\n", 2);
	ri.client_ip = "192.0.2.1";
	ri.rcpt = NULL;
	ri.helo = NULL;
	n = envelope_received(&ri, out, sizeof(out));
	out[n] = '\0';
	assert_non_null(strstr(out, "from unknown ([192.0.2.1])"));
	assert_null(strstr(out, "for <"));
	assert_int_equal(envelope_received(&ri, out, 20), 0);
}

/* The date is the header's last line, right for each second (it is cached per second). */
static void
test_received_date_and_tls(void **state)
{
	struct received_info ri = {
		.client_ip = "192.0.2.1", .hostname = "mx.test", .proto = "ESMTPSA", .id = "X1",
		.tls_version = "TLSv1.3", .tls_cipher = "TLS_AES_128_GCM_SHA256",
		.auth_user = "joe (admin)\r\n",
	};
	time_t whens[] = { 86400, 86400, 0, 1700000000, 1700000000 };
	char out[1024], want[64];
	struct tm tm;
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(whens) / sizeof(whens[0]); i++) {
		ri.when = whens[i];
		n = envelope_received(&ri, out, sizeof(out));
		assert_true(n > 0);
		out[n] = '\0';
		localtime_r(&ri.when, &tm);
		strftime(want, sizeof(want), ";\r\n\t%a, %d %b %Y %H:%M:%S %z\r\n", &tm);
		assert_string_equal(out + n - strlen(want), want);
	}
	assert_non_null(strstr(out, "from unknown ([192.0.2.1])\r\n\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)"
				    "\r\n\t(Authenticated sender: joe?\?admin?\?\?)\r\n\tby mx.test (mxgate) with ESMTPSA id X1;"));
	/* Too small for the date line: nothing, not a cut header. */
	assert_int_equal(envelope_received(&ri, out, n), 0);
	assert_int_equal(envelope_received(&ri, out, n + 1), n);
}

static void
test_forward(void **state)
{
	struct forward_info fi = { .addr = "192.0.2.7", .port = 4321, .helo = "a+b=c", .proto = "ESMTP" };
	char out[600];
	int n;
	unsigned attrs;

	(void)state;
	attrs = envelope_forward_attrs(" NAME ADDR PROTO HELO SOURCE PORT IDENT", 39);
	assert_int_equal(attrs, FWD_NAME | FWD_ADDR | FWD_PROTO | FWD_HELO | FWD_PORT);
	assert_int_equal(envelope_forward_attrs("name addr", 9), FWD_NAME | FWD_ADDR);
	n = envelope_forward_line("XFORWARD", attrs, &fi, out, sizeof(out));
	assert_true(n > 0);
	/* '+' and '=' in a value are xtext-encoded; NAME is unknown without reverse DNS. */
	assert_string_equal(out, "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=4321 PROTO=ESMTP HELO=a+2Bb+3Dc");
	/* Only what the backend offers is sent. */
	n = envelope_forward_line("XFORWARD", FWD_ADDR, &fi, out, sizeof(out));
	assert_string_equal(out, "XFORWARD ADDR=192.0.2.7");
	fi.addr = "2001:db8::1";
	fi.helo = NULL;
	fi.login = "joe";
	n = envelope_forward_line("XCLIENT", FWD_ADDR | FWD_HELO | FWD_LOGIN, &fi, out, sizeof(out));
	assert_string_equal(out, "XCLIENT ADDR=IPv6:2001:db8::1 HELO=[UNAVAILABLE] LOGIN=joe");
	/* A HELO name that would push the line past 512 octets is refused, not cut. */
	{
		char helo[600], big[1024];
		memset(helo, 'h', sizeof(helo) - 1);
		helo[sizeof(helo) - 1] = '\0';
		fi.helo = helo;
		assert_int_equal(envelope_forward_line("XFORWARD", FWD_HELO, &fi, out, sizeof(out)), -1);
		assert_int_equal(envelope_forward_line("XFORWARD", FWD_HELO, &fi, big, sizeof(big)), -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mail_rebuilt),
		cmocka_unit_test(test_mail_params_refused),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_clean_reply),
		cmocka_unit_test(test_received),
		cmocka_unit_test(test_received_date_and_tls),
		cmocka_unit_test(test_forward),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
