/*
 * test_smtp_parse.c - unit tests of proxy/smtp_parse.c: every verb and
 * its argument rule, MAIL/RCPT path syntax (RFC 5321 4.1.2, RFC 6531),
 * ESMTP parameters, control characters and length limits. Every line is
 * parsed from a guard-page buffer (guard.h), so an over-read faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "guard.h"
#include "smtp_parse.h"

static struct guard g;
static struct smtp_cmd cmd;
static const char *why;
static const char *cur;		/* the guarded copy of the last line */
static size_t cur_len;

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

static const char *const status_names[] = { "OK", "UNKNOWN", "SYNTAX", "BAD_CHAR" };

/* Every slice the parser returns must lie inside the line. */
static void
assert_inside(struct slice s)
{
	if (s.len == 0)
		return;
	assert_non_null(s.p);
	assert_true(s.p >= cur && s.p + s.len <= cur + cur_len);
}

static enum smtp_parse_status
parse_n(const char *line, size_t n)
{
	enum smtp_parse_status st;
	unsigned i;

	cur = guard_copy(&g, line, n);
	cur_len = n;
	assert_non_null(cur);
	memset(&cmd, 0x5a, sizeof(cmd));
	why = "unset";
	st = smtp_parse_line(cur, n, &cmd, &why);
	if (st == SMTP_PARSE_OK) {
		assert_inside(cmd.arg);
		assert_inside(cmd.path);
		assert_true(cmd.nparams <= SMTP_MAX_PARAMS);
		for (i = 0; i < cmd.nparams; i++) {
			assert_true(cmd.params[i].key.len > 0);
			assert_inside(cmd.params[i].key);
			assert_inside(cmd.params[i].value);
		}
	} else {
		/* every refusal explains itself */
		assert_non_null(why);
		assert_true(strlen(why) > 0 && strcmp(why, "unset") != 0);
	}
	return st;
}

static void
expect_n(const char *line, size_t n, enum smtp_parse_status want)
{
	enum smtp_parse_status st = parse_n(line, n);

	if (st != want)
		fail_msg("\"%.*s\": got %s (%s), want %s", (int)n, line,
		    status_names[st], st == SMTP_PARSE_OK ? "-" : why,
		    status_names[want]);
}

static void
expect(const char *line, enum smtp_parse_status want)
{
	expect_n(line, strlen(line), want);
}

static void
expect_why(const char *line, enum smtp_parse_status want, const char *w)
{
	expect(line, want);
	if (strcmp(why, w) != 0)
		fail_msg("\"%s\": why \"%s\", want \"%s\"", line, why, w);
}

static void
assert_slice(struct slice s, const char *want)
{
	if (s.len != strlen(want) || memcmp(s.p, want, s.len) != 0)
		fail_msg("slice \"%.*s\", want \"%s\"", (int)s.len,
		    s.p ? s.p : "", want);
}

/* MAIL or RCPT line that must parse, with the given path. */
static void
expect_path(const char *line, const char *path)
{
	expect(line, SMTP_PARSE_OK);
	assert_slice(cmd.path, path);
	assert_int_equal(cmd.null_path, 0);
}

/* ---- verbs ---- */

static void
test_every_verb(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
	} t[] = {
		{ "HELO client.example", SMTP_HELO },
		{ "EHLO client.example", SMTP_EHLO },
		{ "LHLO client.example", SMTP_LHLO },
		{ "MAIL FROM:<a@b.example>", SMTP_MAIL },
		{ "RCPT TO:<a@b.example>", SMTP_RCPT },
		{ "DATA", SMTP_DATA },
		{ "BDAT 10", SMTP_BDAT },
		{ "RSET", SMTP_RSET },
		{ "NOOP", SMTP_NOOP },
		{ "QUIT", SMTP_QUIT },
		{ "VRFY user", SMTP_VRFY },
		{ "EXPN list", SMTP_EXPN },
		{ "HELP", SMTP_HELP },
		{ "STARTTLS", SMTP_STARTTLS },
		{ "AUTH PLAIN", SMTP_AUTH },
	};
	char buf[64];
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		expect(t[i].line, SMTP_PARSE_OK);
		assert_int_equal(cmd.verb, t[i].verb);
		/* the canonical name is the line's first word */
		j = strlen(smtp_verb_name(t[i].verb));
		assert_true(j > 0);
		assert_memory_equal(smtp_verb_name(t[i].verb), t[i].line, j);
		assert_true(t[i].line[j] == ' ' || t[i].line[j] == '\0');
		/* case-insensitive: all lower, then alternating */
		strcpy(buf, t[i].line);
		for (j = 0; buf[j] && buf[j] != ' '; j++)
			buf[j] = (char)(buf[j] | 0x20);
		expect(buf, SMTP_PARSE_OK);
		assert_int_equal(cmd.verb, t[i].verb);
		for (j = 0; buf[j] && buf[j] != ' '; j += 2)
			buf[j] = (char)(buf[j] & ~0x20);
		expect(buf, SMTP_PARSE_OK);
		assert_int_equal(cmd.verb, t[i].verb);
	}
}

static void
test_unknown(void **state)
{
	static const char *const t[] = {
		"", "X", "HEL", "HELOO x", "MAILFROM:<a@b>", "MAIL:FROM:<a@b>",
		" MAIL FROM:<a@b>", "STARTTLSX", "XCLIENT ADDR=1.2.3.4", "DAT",
		"GET / HTTP/1.1", "\xc3\xa9HLO x", "EHLO\xc2\xa0x",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		expect_why(t[i], SMTP_PARSE_UNKNOWN, "Command unrecognized");
		assert_int_equal(cmd.verb, SMTP_UNKNOWN);
	}
	/* why may be NULL */
	cur = guard_str(&g, "BOGUS");
	assert_int_equal(smtp_parse_line(cur, 5, &cmd, NULL), SMTP_PARSE_UNKNOWN);
	cur = guard_str(&g, "DATA x");
	assert_int_equal(smtp_parse_line(cur, 6, &cmd, NULL), SMTP_PARSE_SYNTAX);
}

static void
test_verb_name_and_slice_eq(void **state)
{
	struct slice s = { "mAiL", 4 }, e = { NULL, 0 };

	(void)state;
	assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "");
	assert_string_equal(smtp_verb_name(SMTP_MAIL), "MAIL");
	assert_string_equal(smtp_verb_name(SMTP_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_AUTH), "AUTH");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "");
	assert_string_equal(smtp_verb_name((enum smtp_verb)-1), "");
	assert_true(slice_eq_ci(s, "MAIL"));
	assert_true(slice_eq_ci(s, "mail"));
	assert_false(slice_eq_ci(s, "MAI"));
	assert_false(slice_eq_ci(s, "MAILS"));
	assert_false(slice_eq_ci(s, "RCPT"));
	assert_true(slice_eq_ci(e, ""));
	assert_false(slice_eq_ci(e, "x"));
	/* only ASCII letters fold: '@' (0x40) is not '`' (0x60) */
	s.p = "@";
	s.len = 1;
	assert_false(slice_eq_ci(s, "`"));
}

/* ---- argument rules ---- */

static void
test_no_arg_verbs(void **state)
{
	static const char *const ok[] = {
		"DATA", "RSET", "QUIT", "STARTTLS", "DATA ", "quit   ",
	};
	static const struct {
		const char *line;
		const char *why;
	} bad[] = {
		{ "DATA x", "Syntax: DATA" },
		{ "RSET now", "Syntax: RSET" },
		{ "QUIT bye", "Syntax: QUIT" },
		{ "STARTTLS x", "Syntax: STARTTLS" },
		{ "DATA  x", "Syntax: DATA" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		expect(ok[i], SMTP_PARSE_OK);
		assert_int_equal(cmd.arg.len, 0);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i].line, SMTP_PARSE_SYNTAX, bad[i].why);
}

static void
test_arg_slices(void **state)
{
	(void)state;
	expect("HELO client.example", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "client.example");
	/* one SP is eaten, trailing spaces trimmed */
	expect("EHLO   [192.0.2.1]   ", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "  [192.0.2.1]");
	expect("ehlo x y", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "x y");
	/* UTF-8 in HELO is passed through */
	expect("EHLO \xe4\xbe\x8b\xe5\xad\x90.example", SMTP_PARSE_OK);
	expect_why("HELO", SMTP_PARSE_SYNTAX, "Syntax: HELO hostname");
	expect_why("EHLO ", SMTP_PARSE_SYNTAX, "Syntax: EHLO hostname");
	expect_why("LHLO   ", SMTP_PARSE_SYNTAX, "Syntax: LHLO hostname");
	expect_why("VRFY", SMTP_PARSE_SYNTAX, "Syntax: VRFY address");
	expect_why("EXPN ", SMTP_PARSE_SYNTAX, "Syntax: EXPN list");
	expect("VRFY <postmaster>", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "<postmaster>");
	expect("EXPN staff", SMTP_PARSE_OK);
	expect("NOOP", SMTP_PARSE_OK);
	assert_int_equal(cmd.arg.len, 0);
	expect("NOOP anything at all \xff", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "anything at all \xff");
	expect("HELP", SMTP_PARSE_OK);
	expect("HELP MAIL", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "MAIL");
}

static void
test_bdat(void **state)
{
	static const char *const ok[] = {
		"BDAT 0", "BDAT 100", "BDAT 100 LAST", "bdat 7 last", "BDAT 5 Last",
		"BDAT 0 LAST", "BDAT 18446744073709551615",
	};
	static const char *const bad[] = {
		"BDAT", "BDAT ", "BDAT x", "BDAT -1", "BDAT 1x", "BDAT 100 FIRST",
		"BDAT 100 LAST x", "BDAT 100  LAST", "BDAT LAST", "BDAT 1 LASTX",
		"BDAT +5",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(ok[i], SMTP_PARSE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i], SMTP_PARSE_SYNTAX, "Syntax: BDAT size [LAST]");
	expect("BDAT 100 LAST", SMTP_PARSE_OK);
	assert_slice(cmd.arg, "100 LAST");
}

static void
test_auth(void **state)
{
	static const char *const ok[] = {
		"AUTH PLAIN", "AUTH LOGIN", "auth cram-md5", "AUTH SCRAM-SHA-256",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH LOGIN =", "AUTH X_Y",
		"AUTH ABCDEFGHIJKLMNOPQRST",	/* 20, RFC 4422 3.1 */
		"AUTH PLAIN a+b/c=",
		/* One token, not base64: the SASL layer answers it (501 5.5.2). */
		"AUTH PLAIN !!",
	};
	static const char *const bad[] = {
		"AUTH", "AUTH ", "AUTH PL@IN", "AUTH PLAIN a b",
		"AUTH ABCDEFGHIJKLMNOPQRSTU",	/* 21 */
		"AUTH PLAIN  x", "AUTH =",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(ok[i], SMTP_PARSE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i], SMTP_PARSE_SYNTAX,
		    "Syntax: AUTH mechanism [initial-response]");
}

/* ---- MAIL / RCPT ---- */

static void
test_mail_forms(void **state)
{
	(void)state;
	expect_path("MAIL FROM:<a@b.example>", "a@b.example");
	assert_int_equal(cmd.nparams, 0);
	expect_path("mail from:<A@B.EXAMPLE>", "A@B.EXAMPLE");
	expect_path("Mail From:<a@b>", "a@b");
	/* a space (or several) after the colon is tolerated, as Postfix does */
	expect_path("MAIL FROM: <a@b.example>", "a@b.example");
	expect_path("MAIL FROM:   <a@b.example>", "a@b.example");
	expect_path("MAIL FROM:<a@b.example>   ", "a@b.example");

	expect("MAIL FROM:<>", SMTP_PARSE_OK);
	assert_int_equal(cmd.null_path, 1);
	assert_int_equal(cmd.path.len, 0);
	expect("MAIL FROM:<> SIZE=0", SMTP_PARSE_OK);
	assert_int_equal(cmd.null_path, 1);
	assert_int_equal(cmd.nparams, 1);

	static const char *const usage[] = {
		"MAIL", "MAIL ", "MAIL FROM", "MAIL FROM:", "MAIL FROM: ",
		"MAIL FROM:a@b.example", "MAIL FROM <a@b.example>",
		"MAIL FROM=<a@b>", "MAIL TO:<a@b.example>", "MAIL  FROM:<a@b>",
		"MAIL FROM:<a@b.example>x", "MAIL FROM:<>x", "MAIL FROMM:<a@b>",
		"MAIL FROM:<a@b>SIZE=1",
	};
	size_t i;

	for (i = 0; i < sizeof(usage) / sizeof(usage[0]); i++)
		expect_why(usage[i], SMTP_PARSE_SYNTAX, "Syntax: MAIL FROM:<address>");
	expect_why("MAIL FROM:<a@b.example", SMTP_PARSE_SYNTAX,
	    "Bad sender address syntax");
	expect_why("MAIL FROM:<postmaster>", SMTP_PARSE_SYNTAX,
	    "Bad sender address syntax");
	expect_why("MAIL FROM:<<a@b>>", SMTP_PARSE_SYNTAX,
	    "Bad sender address syntax");
}

static void
test_rcpt_forms(void **state)
{
	size_t i;

	(void)state;
	expect_path("RCPT TO:<a@b.example>", "a@b.example");
	expect_path("rcpt to:<a@b.example>", "a@b.example");
	expect_path("RCPT TO: <a@b.example>", "a@b.example");
	/* RFC 5321 4.1.1.3: <Postmaster> without a domain, any case */
	expect_path("RCPT TO:<postmaster>", "postmaster");
	expect_path("RCPT TO:<POSTMASTER>", "POSTMASTER");
	expect_path("RCPT TO:<PostMaster> NOTIFY=NEVER", "PostMaster");
	assert_int_equal(cmd.nparams, 1);
	expect_path("RCPT TO:<Postmaster@example.com>", "Postmaster@example.com");
	expect_why("RCPT TO:<>", SMTP_PARSE_SYNTAX, "Bad recipient address syntax");
	expect_why("RCPT TO:<postmasters>", SMTP_PARSE_SYNTAX,
	    "Bad recipient address syntax");
	expect_why("RCPT TO:<postmaste>", SMTP_PARSE_SYNTAX,
	    "Bad recipient address syntax");
	expect_why("RCPT TO:<@a.example:postmaster>", SMTP_PARSE_SYNTAX,
	    "Bad recipient address syntax");
	expect_why("RCPT TO:<user>", SMTP_PARSE_SYNTAX,
	    "Bad recipient address syntax");

	static const char *const usage[] = {
		"RCPT", "RCPT TO", "RCPT TO:", "RCPT FROM:<a@b>", "RCPT TO:a@b",
		"RCPT TO <a@b>", "RCPT TO:<a@b>x", "RCPT TO:<postmaster>x",
	};

	for (i = 0; i < sizeof(usage) / sizeof(usage[0]); i++)
		expect_why(usage[i], SMTP_PARSE_SYNTAX, "Syntax: RCPT TO:<address>");
}

static void
test_source_routes(void **state)
{
	static const char *const bad[] = {
		"RCPT TO:<@a.example u@c.example>", "RCPT TO:<@:u@c.example>",
		"RCPT TO:<@a.example,u@c.example>", "RCPT TO:<@a.example,:u@c>",
		"RCPT TO:<@a.example:>", "RCPT TO:<@a.example:@b.example:u@c>",
		"RCPT TO:<@a.example,@:u@c>", "RCPT TO:<@-a.example:u@c>",
		"RCPT TO:<@a.example;@b.example:u@c>", "RCPT TO:<@a.example",
		"MAIL FROM:<@a.example:>",
		/* At-domain = "@" Domain: no address literal there */
		"MAIL FROM:<@a.example,@[192.0.2.1]:u@c.example>",
	};
	size_t i;

	(void)state;
	/* RFC 5321 4.1.2 A-d-l, ignored as 7.13 and appendix C ask */
	expect_path("RCPT TO:<@a.example:u@c.example>", "u@c.example");
	expect_path("RCPT TO:<@a.example,@b.example:u@c.example>", "u@c.example");
	expect_path("RCPT TO:<@a,@b,@c:u@d>", "u@d");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], SMTP_PARSE_SYNTAX);
}

static void
test_local_parts(void **state)
{
	static const char *const ok[][2] = {
		{ "RCPT TO:<a.b@x.example>", "a.b@x.example" },
		{ "RCPT TO:<a+tag@x.example>", "a+tag@x.example" },
		{ "RCPT TO:<!#$%&'*+-/=?^_`{|}~@x.example>",
		  "!#$%&'*+-/=?^_`{|}~@x.example" },
		{ "RCPT TO:<\"john doe\"@x.example>", "\"john doe\"@x.example" },
		{ "RCPT TO:<\"a\\\"b\"@x.example>", "\"a\\\"b\"@x.example" },
		{ "RCPT TO:<\"a\\\\b\"@x.example>", "\"a\\\\b\"@x.example" },
		{ "RCPT TO:<\"\"@x.example>", "\"\"@x.example" },
		{ "RCPT TO:<\"a@b\"@x.example>", "\"a@b\"@x.example" },
		{ "RCPT TO:<\"<>,:;[]\"@x.example>", "\"<>,:;[]\"@x.example" },
		{ "RCPT TO:<\"j\xc3\xb6rg\"@x.example>", "\"j\xc3\xb6rg\"@x.example" },
		{ "RCPT TO:<1@2.3>", "1@2.3" },
	};
	static const char *const bad[] = {
		"RCPT TO:<.a@x.example>", "RCPT TO:<a.@x.example>",
		"RCPT TO:<a..b@x.example>", "RCPT TO:<a b@x.example>",
		"RCPT TO:<a@b@x.example>", "RCPT TO:<@x.example>",
		"RCPT TO:<a(b)@x.example>", "RCPT TO:<a,b@x.example>",
		"RCPT TO:<a[b]@x.example>", "RCPT TO:<a\\b@x.example>",
		"RCPT TO:<a\"b@x.example>", "RCPT TO:<\"ab@x.example>",
		"RCPT TO:<\"a\"b@x.example>", "RCPT TO:<\"a\"\"b\"@x.example>",
		"RCPT TO:<\"a\\\"@x.example>", "RCPT TO:<a:b@x.example>",
		"RCPT TO:<\"a\\\xc3\xa9\"@x.example>",	/* quoted-pair is ASCII only */
		"RCPT TO:<a<b@x.example>",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect_path(ok[i][0], ok[i][1]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i], SMTP_PARSE_SYNTAX, "Bad recipient address syntax");
}

static void
test_domains(void **state)
{
	static const char *const ok[] = {
		"RCPT TO:<a@x-y.example>", "RCPT TO:<a@localhost>",
		"RCPT TO:<a@1.2.3.4.example>", "RCPT TO:<a@x--y.example>",
		"RCPT TO:<a@A.B.C>", "RCPT TO:<a@123>",
	};
	static const char *const bad[] = {
		"RCPT TO:<a@-x.example>", "RCPT TO:<a@x-.example>",
		"RCPT TO:<a@x..example>", "RCPT TO:<a@.x.example>",
		"RCPT TO:<a@x.example.>", "RCPT TO:<a@x_y.example>",
		"RCPT TO:<a@>", "RCPT TO:<a@x example>", "RCPT TO:<a@x.example >",
		"RCPT TO:<a@x/y>", "RCPT TO:<a@-> ",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(ok[i], SMTP_PARSE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i], SMTP_PARSE_SYNTAX, "Bad recipient address syntax");
}

static void
test_address_literals(void **state)
{
	static const char *const ok[] = {
		"RCPT TO:<a@[192.0.2.1]>", "RCPT TO:<a@[0.0.0.0]>",
		"RCPT TO:<a@[255.255.255.255]>", "RCPT TO:<a@[010.001.000.1]>",
		"RCPT TO:<a@[IPv6:2001:db8::1]>", "RCPT TO:<a@[ipv6:::1]>",
		"RCPT TO:<a@[IPv6:2001:db8:0:0:0:0:0:1]>",
		"RCPT TO:<a@[IPv6:::ffff:192.0.2.1]>",
		"MAIL FROM:<\"x y\"@[192.0.2.1]> SIZE=1",
	};
	static const char *const bad[] = {
		"RCPT TO:<a@[256.1.1.1]>", "RCPT TO:<a@[1.2.3]>",
		"RCPT TO:<a@[1.2.3.4.5]>", "RCPT TO:<a@[1.2.3.4>",
		"RCPT TO:<a@[1..2.3]>", "RCPT TO:<a@[1.2.3.1234]>",
		"RCPT TO:<a@[IPv6:1.2.3.4]>", "RCPT TO:<a@[IPv6:2001:db8::g]>",
		"RCPT TO:<a@[IPv6:1:2:3:4:5:6:7:8:9]>", "RCPT TO:<a@[IPv6:]>",
		"RCPT TO:<a@[]>", "RCPT TO:<a@[x-tag:abc]>",	/* general literal */
		"RCPT TO:<a@[192.0.2.1].example>", "RCPT TO:<a@[ 1.2.3.4]>",
		"RCPT TO:<a@[IPv6:2001:db8::1%eth0]>", "RCPT TO:<a@[-1.2.3.4]>",
		("RCPT TO:<a@[IPv6:"
		"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]>"),
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(ok[i], SMTP_PARSE_OK);
	expect_path("RCPT TO:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], SMTP_PARSE_SYNTAX);
}

/* RFC 6531: UTF-8 in local parts and domains, and only valid UTF-8. */
static void
test_utf8(void **state)
{
	static const char *const ok[] = {
		("RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
		    "\xe5\xb9\xbf\xe5\x91\x8a>"),		/* 用户@例子.广告 */
		"RCPT TO:<jos\xc3\xa9@ex\xc3\xa4mple.com>",	/* josé@exämple.com */
		"MAIL FROM:<\xf0\x9f\x98\x80@x.example> SMTPUTF8",	/* U+1F600 */
		"RCPT TO:<\xf4\x8f\xbf\xbf@x.example>",	/* U+10FFFF */
		"RCPT TO:<\xed\x9f\xbf@x.example>",		/* U+D7FF */
		"RCPT TO:<a@\xc3\xa9-x.example>",
	};
	static const char *const bad[] = {
		"RCPT TO:<\xc3@x.example>",		/* truncated */
		"RCPT TO:<a\xc3@x.example>",		/* truncated before '@' */
		"RCPT TO:<\xc0\xaf@x.example>",	/* overlong '/' */
		"RCPT TO:<\xe0\x80\xaf@x.example>",	/* overlong */
		"RCPT TO:<\xed\xa0\x80@x.example>",	/* surrogate U+D800 */
		"RCPT TO:<\xf4\x90\x80\x80@x.example>",	/* above U+10FFFF */
		"RCPT TO:<\xf5\x80\x80\x80@x.example>",
		"RCPT TO:<\xff@x.example>", "RCPT TO:<\x80@x.example>",
		"RCPT TO:<a@\x80x.example>", "RCPT TO:<a@x\xe4\xbe.example>",
		"RCPT TO:<\"\xc3\"@x.example>", "RCPT TO:<a@x.\xc3>",
		"RCPT TO:<@\xc3:a@x.example>",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		expect(ok[i], SMTP_PARSE_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(bad[i], SMTP_PARSE_SYNTAX);
	/* a bare 0x80+ octet is not a control character */
	expect("NOOP \x80\xff", SMTP_PARSE_OK);
}

/* ---- parameters ---- */

static void
test_params(void **state)
{
	(void)state;
	expect("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8",
	    SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, 3);
	assert_slice(cmd.params[0].key, "SIZE");
	assert_slice(cmd.params[0].value, "1000");
	assert_slice(cmd.params[1].key, "BODY");
	assert_slice(cmd.params[1].value, "8BITMIME");
	assert_slice(cmd.params[2].key, "SMTPUTF8");
	/* no "=value": NULL and 0 */
	assert_null(cmd.params[2].value.p);
	assert_int_equal(cmd.params[2].value.len, 0);
	assert_true(slice_eq_ci(cmd.params[0].key, "size"));

	expect("MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159 AUTH=<>",
	    SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, 3);
	assert_slice(cmd.params[2].value, "<>");
	expect("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;a+2Bb@b.example", SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, 2);
	assert_slice(cmd.params[1].value, "rfc822;a+2Bb@b.example");
	/* runs of spaces between parameters are tolerated */
	expect("MAIL FROM:<a@b.example>  SIZE=1   BODY=7BIT  ", SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, 2);
	assert_slice(cmd.params[1].value, "7BIT");
	expect("MAIL FROM:<a@b.example> X-1=v 9Z", SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, 2);
	/* UTF-8 values (RFC 6531 3.3) */
	expect("MAIL FROM:<a@b.example> X=\xc3\xa9t\xc3\xa9", SMTP_PARSE_OK);
	assert_slice(cmd.params[0].value, "\xc3\xa9t\xc3\xa9");

	static const char *const bad[] = {
		"MAIL FROM:<a@b.example> SIZE=", "MAIL FROM:<a@b.example> =1",
		"MAIL FROM:<a@b.example> -SIZE=1", "MAIL FROM:<a@b.example> SI_ZE=1",
		"MAIL FROM:<a@b.example> SIZE==1", "MAIL FROM:<a@b.example> SIZE=1=2",
		"MAIL FROM:<a@b.example> SIZE:1", "MAIL FROM:<a@b.example> X=\xc3",
		"MAIL FROM:<a@b.example> X=\xc0\x80", "RCPT TO:<a@b.example> =",
		"MAIL FROM:<a@b.example> S\xc3\xa9=1",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_why(bad[i], SMTP_PARSE_SYNTAX, "Syntax error in parameters");
}

static void
test_param_limits(void **state)
{
	char line[512];
	size_t n, i;

	(void)state;
	/* duplicates, in any case, are refused (RFC 1869 6 leaves them undefined) */
	expect_why("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", SMTP_PARSE_SYNTAX,
	    "Duplicate parameter");
	expect_why("MAIL FROM:<a@b.example> SIZE=1 size=1", SMTP_PARSE_SYNTAX,
	    "Duplicate parameter");
	expect_why("RCPT TO:<a@b.example> NOTIFY=NEVER BODY=7BIT NOTIFY=NEVER",
	    SMTP_PARSE_SYNTAX, "Duplicate parameter");
	expect_why("MAIL FROM:<a@b.example> SMTPUTF8 SMTPUTF8", SMTP_PARSE_SYNTAX,
	    "Duplicate parameter");
	expect("MAIL FROM:<a@b.example> SIZE=1 SIZES=1", SMTP_PARSE_OK);

	/* SMTP_MAX_PARAMS fit, one more does not */
	n = (size_t)snprintf(line, sizeof(line), "MAIL FROM:<a@b.example>");
	for (i = 0; i < SMTP_MAX_PARAMS; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " K%zu=v%zu", i, i);
	expect(line, SMTP_PARSE_OK);
	assert_int_equal(cmd.nparams, SMTP_MAX_PARAMS);
	assert_slice(cmd.params[SMTP_MAX_PARAMS - 1].key, "K15");
	assert_slice(cmd.params[SMTP_MAX_PARAMS - 1].value, "v15");
	snprintf(line + n, sizeof(line) - n, " EXTRA");
	expect_why(line, SMTP_PARSE_SYNTAX, "Too many parameters");
}

/* ---- control characters ---- */

static void
test_bad_chars(void **state)
{
	static const char *const lines[] = {
		"MAIL FROM:<a@b.example>", "RCPT TO:<a@b.example> NOTIFY=NEVER",
		"EHLO client.example", "NOOP hello", "XYZZY foo", "DATA",
	};
	static const unsigned char bad[] = {
		0x00, 0x01, '\t', '\n', 0x0b, '\r', 0x1b, 0x1f, 0x7f,
	};
	char buf[128];
	size_t i, j, k, n;

	(void)state;
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		n = strlen(lines[i]);
		for (j = 0; j < sizeof(bad); j++) {
			/* replace each position in turn, and append */
			for (k = 0; k <= n; k++) {
				memcpy(buf, lines[i], n);
				buf[k] = (char)bad[j];
				expect_n(buf, k == n ? n + 1 : n, SMTP_PARSE_BAD_CHAR);
				assert_string_equal(why, "Bad character in command");
			}
		}
	}
	/* the smuggling-shaped ones, spelled out */
	expect_n("MAIL FROM:<a@b>\0RCPT TO:<c@d>", 29, SMTP_PARSE_BAD_CHAR);
	expect("MAIL FROM:<a@b>\rRCPT TO:<c@d>", SMTP_PARSE_BAD_CHAR);
	expect("RCPT TO:<a@b.example>\r", SMTP_PARSE_BAD_CHAR);
	expect("MAIL\tFROM:<a@b.example>", SMTP_PARSE_BAD_CHAR);
	expect("MAIL FROM:\t<a@b.example>", SMTP_PARSE_BAD_CHAR);
	expect("HELP\x7f", SMTP_PARSE_BAD_CHAR);
	expect_n("\0", 1, SMTP_PARSE_BAD_CHAR);
	/* the verb is still reported when it was recognised */
	expect("NOOP \x7f", SMTP_PARSE_BAD_CHAR);
	assert_int_equal(cmd.verb, SMTP_NOOP);
}

/* ---- length limits (RFC 5321 4.5.3.1) ---- */

/* "RCPT TO:<" local "@" domain ">" with a local part of l octets and a
 * domain of d octets (labels of at most 63 octets). */
static const char *
make_rcpt(char *buf, size_t l, size_t d, int quoted)
{
	size_t n, i, lab = 0;

	n = (size_t)sprintf(buf, "RCPT TO:<");
	if (quoted) {
		buf[n++] = '"';
		memset(buf + n, 'q', l - 2);
		n += l - 2;
		buf[n++] = '"';
	} else {
		memset(buf + n, 'l', l);
		n += l;
	}
	buf[n++] = '@';
	for (i = 0; i < d; i++) {
		/* a dot every 63 letters, never first or last */
		if (lab == 63 && i + 1 < d) {
			buf[n++] = '.';
			lab = 0;
		} else {
			buf[n++] = 'd';
			lab++;
		}
	}
	buf[n++] = '>';
	buf[n] = '\0';
	return buf;
}

static void
test_lengths(void **state)
{
	char buf[1024];

	(void)state;
	/* local part 64 / 65 (4.5.3.1.1) */
	expect(make_rcpt(buf, 64, 10, 0), SMTP_PARSE_OK);
	assert_int_equal(cmd.path.len, 64 + 1 + 10);
	expect_why(make_rcpt(buf, 65, 10, 0), SMTP_PARSE_SYNTAX,
	    "Bad recipient address syntax");
	/* the quotes count */
	expect(make_rcpt(buf, 64, 10, 1), SMTP_PARSE_OK);
	expect(make_rcpt(buf, 65, 10, 1), SMTP_PARSE_SYNTAX);

	/* path 256 / 257 octets with the brackets (4.5.3.1.3) */
	expect(make_rcpt(buf, 64, 256 - 2 - 65, 0), SMTP_PARSE_OK);
	assert_int_equal(cmd.path.len, 254);
	expect(make_rcpt(buf, 64, 257 - 2 - 65, 0), SMTP_PARSE_SYNTAX);
	expect(make_rcpt(buf, 1, 256 - 2 - 2, 0), SMTP_PARSE_OK);
	assert_int_equal(cmd.path.len, 254);
	expect(make_rcpt(buf, 1, 257 - 2 - 2, 0), SMTP_PARSE_SYNTAX);

	/*
	 * Domain 255 / 256 (4.5.3.1.2): a 255-octet domain cannot fit in a
	 * 256-octet path ("<" + "x@" + 255 + ">" = 259), so both are refused;
	 * the path limit is what bounds domains in practice.
	 */
	expect(make_rcpt(buf, 1, 255, 0), SMTP_PARSE_SYNTAX);
	expect(make_rcpt(buf, 1, 256, 0), SMTP_PARSE_SYNTAX);

	/* labels: 63 fine, 64 not (RFC 1035 2.3.4) */
	expect("RCPT TO:<a@"
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"
	    ".example>", SMTP_PARSE_OK);
	expect("RCPT TO:<a@"
	    "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd"
	    ".example>", SMTP_PARSE_SYNTAX);

	/* the source route counts towards the path */
	expect(make_rcpt(buf, 64, 256 - 2 - 65, 0), SMTP_PARSE_OK);
	{
		char routed[1100];

		snprintf(routed, sizeof(routed), "RCPT TO:<@r.example:%s",
		    buf + strlen("RCPT TO:<"));
		expect(routed, SMTP_PARSE_SYNTAX);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_verb),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_verb_name_and_slice_eq),
		cmocka_unit_test(test_no_arg_verbs),
		cmocka_unit_test(test_arg_slices),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_mail_forms),
		cmocka_unit_test(test_rcpt_forms),
		cmocka_unit_test(test_source_routes),
		cmocka_unit_test(test_local_parts),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_address_literals),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_param_limits),
		cmocka_unit_test(test_bad_chars),
		cmocka_unit_test(test_lengths),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
