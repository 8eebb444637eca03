/*
 * test_proxy_proto.c - unit tests of proxy/proxy_proto.c: valid v1 TCP4,
 * TCP6 and UNKNOWN lines, every malformed v1 form, PP_AGAIN for every
 * proper prefix of valid headers (fed one octet at a time), v2 LOCAL and
 * PROXY over IPv4/IPv6/UNSPEC/UDP/UNIX with TLVs, truncation, bad
 * version/command/family/length, the allow masks, and `used` stopping
 * exactly at the header's end. Every input is parsed from a guard-page
 * buffer (guard.h), so an over-read faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include "guard.h"
#include "proxy_proto.h"

static struct guard g;
static struct pp_result res;

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static const char *const st_names[] = { "PP_OK", "PP_AGAIN", "PP_INVALID" };

static const char *const smtp_tail = "EHLO client.example\r\n";

static int
setup(void **state)
{
	(void)state;
	return guard_init(&g, 2 * PP_V2_MAX);
}

static int
teardown(void **state)
{
	(void)state;
	guard_free(&g);
	return 0;
}

/* pp_parse of a guarded copy; checks the invariants of every answer. */
static enum pp_status
pp(const void *data, size_t len, int allow)
{
	const char *copy = guard_copy(&g, data, len);
	enum pp_status st;

	assert_true(copy != NULL || len == 0);
	if (copy == NULL)
		copy = (const char *)g.map + g.cap;
	memset(&res, 0x5a, sizeof(res));
	st = pp_parse(copy, len, allow, &res);
	assert_true(st == PP_OK || st == PP_AGAIN || st == PP_INVALID);
	if (st == PP_OK) {
		assert_true(res.used > 0 && res.used <= len);
		assert_true(res.version == 1 || res.version == 2);
	}
	return st;
}

static void
expect_st(const void *data, size_t len, int allow, enum pp_status want, const char *what)
{
	enum pp_status st = pp(data, len, allow);

	if (st != want)
		fail_msg("%s (len %zu, allow %d): %s, want %s", what, len, allow,
		    st_names[st], st_names[want]);
}

static void
expect_invalid_str(const char *s, int allow)
{
	expect_st(s, strlen(s), allow, PP_INVALID, s);
}

/*
 * The header hdr[0..len) must be PP_AGAIN at every proper prefix (as if
 * it arrived one octet per read), PP_OK with used == len when whole, and
 * still used == len when the client's first command follows it.
 */
static void
expect_whole(const void *hdr, size_t len, int allow)
{
	unsigned char buf[PP_V2_MAX + 64];
	size_t k, tail = strlen(smtp_tail);

	assert_true(len + tail <= sizeof(buf) && 2 * len <= sizeof(buf));
	for (k = 0; k < len; k++)
		expect_st(hdr, k, allow, PP_AGAIN, "proper prefix");
	expect_st(hdr, len, allow, PP_OK, "whole header");
	assert_int_equal(res.used, len);
	memcpy(buf, hdr, len);
	memcpy(buf + len, smtp_tail, tail);
	expect_st(buf, len + tail, allow, PP_OK, "header + data");
	assert_int_equal(res.used, len);
	/* a pipelining client could even send a second header-like line */
	memcpy(buf + len, hdr, len);
	expect_st(buf, 2 * len, allow, PP_OK, "header twice");
	assert_int_equal(res.used, len);
}

static void
check_addr(const struct net_addr *a, const char *ip, unsigned port)
{
	char text[INET6_ADDRSTRLEN];

	if (strchr(ip, ':') == NULL) {
		assert_int_equal(a->u.sa.sa_family, AF_INET);
		assert_int_equal(a->len, sizeof(struct sockaddr_in));
		assert_non_null(inet_ntop(AF_INET, &a->u.sin.sin_addr, text, sizeof(text)));
		assert_int_equal(ntohs(a->u.sin.sin_port), port);
	} else {
		unsigned char want[16];

		assert_int_equal(a->u.sa.sa_family, AF_INET6);
		assert_int_equal(a->len, sizeof(struct sockaddr_in6));
		assert_int_equal(inet_pton(AF_INET6, ip, want), 1);
		assert_memory_equal(&a->u.sin6.sin6_addr, want, 16);
		assert_non_null(inet_ntop(AF_INET6, &a->u.sin6.sin6_addr, text, sizeof(text)));
		assert_int_equal(ntohs(a->u.sin6.sin6_port), port);
		return;
	}
	assert_string_equal(text, ip);
}

/* A valid v1 line, checked whole, by prefixes and with data after it. */
static void
v1_ok(const char *line, int local, const char *src, unsigned sport,
    const char *dst, unsigned dport)
{
	int allow;

	for (allow = PP_ALLOW_V1; allow <= (PP_ALLOW_V1 | PP_ALLOW_V2); allow += 2) {
		expect_whole(line, strlen(line), allow);
		expect_st(line, strlen(line), allow, PP_OK, line);
		assert_int_equal(res.version, 1);
		assert_int_equal(res.local, local);
		assert_int_equal(res.used, strlen(line));
		if (!local) {
			check_addr(&res.src, src, sport);
			check_addr(&res.dst, dst, dport);
		}
	}
	/* the same line is never a v2 header */
	expect_invalid_str(line, PP_ALLOW_V2);
}

static void
test_v1_valid(void **state)
{
	(void)state;
	v1_ok("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", 0,
	    "192.0.2.1", 56324, "198.51.100.2", 25);
	v1_ok("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", 0,
	    "0.0.0.0", 0, "255.255.255.255", 65535);
	v1_ok("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "1.2.3.4", 1, "5.6.7.8", 2);
	v1_ok("PROXY TCP6 2001:db8::1 2001:db8::2 40000 587\r\n", 0,
	    "2001:db8::1", 40000, "2001:db8::2", 587);
	v1_ok("PROXY TCP6 ::1 :: 10 20\r\n", 0, "::1", 10, "::", 20);
	v1_ok("PROXY TCP6 ::ffff:192.0.2.1 2001:DB8:0:0:0:0:0:2 1024 25\r\n", 0,
	    "::ffff:192.0.2.1", 1024, "2001:db8::2", 25);
	/* the longest TCP6 line with uncompressed addresses: 104 octets */
	v1_ok("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 0,
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_int_equal(strlen("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), 104);
	/* the spec's own worst case, exactly PP_V1_MAX octets */
	v1_ok("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 1,
	    NULL, 0, NULL, 0);
	assert_int_equal(strlen("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), PP_V1_MAX);
	v1_ok("PROXY UNKNOWN\r\n", 1, NULL, 0, NULL, 0);
	v1_ok("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", 1,
	    NULL, 0, NULL, 0);
	v1_ok("PROXY UNKNOWN garbage \x01\x7f\xff anything\r\n", 1, NULL, 0, NULL, 0);
	v1_ok("PROXY UNKNOWNX\r\n", 1, NULL, 0, NULL, 0);
}

static void
test_v1_unknown_limits(void **state)
{
	char line[PP_V1_MAX + 8];
	size_t n;

	(void)state;
	/* UNKNOWN padded to exactly 107 octets is fine, 108 is not */
	n = (size_t)snprintf(line, sizeof(line), "PROXY UNKNOWN ");
	memset(line + n, 'a', PP_V1_MAX - 2 - n);
	memcpy(line + PP_V1_MAX - 2, "\r\n", 3);
	expect_whole(line, PP_V1_MAX, PP_ALLOW_V1);
	assert_int_equal(res.local, 1);
	memset(line + n, 'a', PP_V1_MAX - 1 - n);
	memcpy(line + PP_V1_MAX - 1, "\r\n", 3);
	expect_invalid_str(line, PP_ALLOW_V1);
	/* without any CRLF: waits up to 106 octets, then gives up */
	memset(line, 'a', sizeof(line));
	memcpy(line, "PROXY UNKNOWN", 13);
	expect_st(line, PP_V1_MAX - 1, PP_ALLOW_V1, PP_AGAIN, "106 no CRLF");
	expect_st(line, PP_V1_MAX, PP_ALLOW_V1, PP_INVALID, "107 no CRLF");
	expect_st(line, PP_V1_MAX + 8, PP_ALLOW_V1, PP_INVALID, "115 no CRLF");
	/* a CR must be followed by LF; a bare LF is not an end */
	expect_invalid_str("PROXY UNKNOWN\r\r\n", PP_ALLOW_V1);
	expect_invalid_str("PROXY UNKNOWN\rx\r\n", PP_ALLOW_V1);
	expect_invalid_str("PROXY UNKNOWN\n", PP_ALLOW_V1);
	expect_invalid_str("PROXY UNKNOWN foo\nbar\r\n", PP_ALLOW_V1);
	expect_st("PROXY UNKNOWN\r", 14, PP_ALLOW_V1, PP_AGAIN, "CR only");
}

static void
test_v1_malformed(void **state)
{
	static const char *const bad[] = {
		/* keyword and protocol */
		"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"Proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY unknown\r\n",
		"PROXY UNKNOW\r\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"PROXY TCP4\r\n",
		"PROXY TCP4 \r\n",
		"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		/* spaces */
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\t2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r \n",
		/* missing fields */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8\r\n",
		"PROXY TCP4 1.2.3.4\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
		/* ports */
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 25 65536\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 99999 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 100000 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 025 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 25 025\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 00 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 +1 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 0x19 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 2a 25\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 25 2a\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1.0 25\r\n",
		/* addresses of the wrong family or malformed */
		"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
		"PROXY TCP6 ::1 5.6.7.8 1 2\r\n",
		"PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
		"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.08 1 2\r\n",
		"PROXY TCP4 1234.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 host 5.6.7.8 1 2\r\n",
		"PROXY TCP4 [1.2.3.4] 5.6.7.8 1 2\r\n",
		"PROXY TCP6 [::1] ::2 1 2\r\n",
		"PROXY TCP6 ::1%lo ::2 1 2\r\n",
		"PROXY TCP6 2001:db8:::1 ::2 1 2\r\n",
		"PROXY TCP6 2001:db8::g ::2 1 2\r\n",
		"PROXY TCP6 12345::1 ::2 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::2 1 2\r\n",
		/* line ends */
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r",
		"PROXY TCP4 1.2.3.4\r\n5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2X\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
		"GET / HTTP/1.0\r\n",
		"EHLO x\r\n",
		"\n",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_invalid_str(bad[i], PP_ALLOW_V1);
		expect_invalid_str(bad[i], PP_ALLOW_V1 | PP_ALLOW_V2);
	}
	/* a bare CRLF could still start a v2 signature */
	expect_invalid_str("\r\n", PP_ALLOW_V1);
	expect_st("\r\n", 2, PP_ALLOW_V1 | PP_ALLOW_V2, PP_AGAIN, "CRLF");
	/* a NUL inside the line */
	expect_st("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33, PP_ALLOW_V1,
	    PP_INVALID, "NUL");
}

static void
test_v1_early_invalid(void **state)
{
	(void)state;
	/* no need to wait for the CRLF to know these are hopeless */
	expect_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 02", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 123456", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", PP_ALLOW_V1);
	expect_st("PROXY TCP4 1.2.3.4 ", 19, PP_ALLOW_V1, PP_AGAIN, "after src");
	expect_invalid_str("PROXY TCP4 1.2.3.4.5 ", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP4 1.2.3.4x", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP4 1111111111111111", PP_ALLOW_V1);
	expect_st("PROXY TCP6 1", 12, PP_ALLOW_V1, PP_AGAIN, "TCP6 1");
	expect_invalid_str("PROXY TCP6 1 ", PP_ALLOW_V1);
	expect_invalid_str("PROXY TCP7", PP_ALLOW_V1);
	expect_invalid_str("PROXY X", PP_ALLOW_V1);
	expect_invalid_str("PROXy", PP_ALLOW_V1);
	expect_invalid_str("PX", PP_ALLOW_V1);
	expect_invalid_str("X", PP_ALLOW_V1);
	expect_invalid_str("PROXY UNKNOWX", PP_ALLOW_V1);
}

static void
test_v1_too_long(void **state)
{
	char line[256];
	size_t n;

	(void)state;
	/* 116 octets: every field valid, but longer than the spec's 107 */
	n = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n");
	assert_true(n > PP_V1_MAX);
	expect_invalid_str(line, PP_ALLOW_V1);
	expect_st(line, PP_V1_MAX - 1, PP_ALLOW_V1, PP_AGAIN, "106 of 116");
	expect_st(line, PP_V1_MAX, PP_ALLOW_V1, PP_INVALID, "107 of 116");
	/* a TCP6 line of exactly 107 octets passes, one more octet fails */
	n = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535\r\n");
	assert_int_equal(n, PP_V1_MAX);
	expect_whole(line, n, PP_ALLOW_V1);
	check_addr(&res.dst, "fff:ffff:ffff:ffff:ffff:ffff:1.2.3.4", 65535);
	n = (size_t)snprintf(line, sizeof(line), "PROXY TCP6 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
	    "ffff:ffff:ffff:ffff:ffff:ffff:1.2.3.4 65535 65535\r\n");
	assert_int_equal(n, PP_V1_MAX + 1);
	expect_invalid_str(line, PP_ALLOW_V1);
	/* a long run of spaces never ends in a header */
	memset(line, ' ', sizeof(line));
	memcpy(line, "PROXY UNKNOWN", 13);
	expect_st(line, sizeof(line), PP_ALLOW_V1, PP_INVALID, "spaces");
}

static void
test_v1_prefixes(void **state)
{
	(void)state;
	/* a few partial lines that must wait, not fail */
	expect_st("", 0, PP_ALLOW_V1, PP_AGAIN, "empty");
	expect_st("P", 1, PP_ALLOW_V1, PP_AGAIN, "P");
	expect_st("PRO", 3, PP_ALLOW_V1, PP_AGAIN, "PRO");
	expect_st("PROXY ", 6, PP_ALLOW_V1, PP_AGAIN, "PROXY SP");
	expect_st("PROXY U", 7, PP_ALLOW_V1, PP_AGAIN, "PROXY U");
	expect_st("PROXY TCP", 9, PP_ALLOW_V1, PP_AGAIN, "PROXY TCP");
	expect_st("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", 31, PP_ALLOW_V1, PP_AGAIN, "no LF");
	expect_st("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", 30, PP_ALLOW_V1, PP_AGAIN, "no CRLF");
	expect_st("PROXY TCP4 1.2.3.4 5.6.7.8 0", 28, PP_ALLOW_V1, PP_AGAIN, "port 0");
	expect_st("PROXY TCP4 1.2.3.4 5.6.7.8 6553", 31, PP_ALLOW_V1, PP_AGAIN, "port 6553");
	expect_st("PROXY TCP4 1.2.3.4 5.6.7.8 65535", 32, PP_ALLOW_V1, PP_AGAIN, "port 65535");
	expect_st("PROXY TCP6 ::", 13, PP_ALLOW_V1, PP_AGAIN, "TCP6 ::");
}

/* Builds a v2 header into buf; returns its length (16 + plen). */
static size_t
v2(unsigned char *buf, unsigned char ver_cmd, unsigned char fam,
    unsigned len, const void *payload, size_t plen)
{
	memcpy(buf, sig, 12);
	buf[12] = ver_cmd;
	buf[13] = fam;
	buf[14] = (unsigned char)(len >> 8);
	buf[15] = (unsigned char)len;
	if (plen > 0)
		memcpy(buf + 16, payload, plen);
	return 16 + plen;
}

static const unsigned char addr4[12] = {
	192, 0, 2, 1,		/* src */
	198, 51, 100, 2,	/* dst */
	0xdc, 0x04,		/* sport 56324 */
	0x00, 0x19,		/* dport 25 */
};

static const unsigned char addr6[36] = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
	0x9c, 0x40,		/* 40000 */
	0x02, 0x4b,		/* 587 */
};

/* ALPN "smtp", an AUTHORITY and a NOOP padding TLV */
static const unsigned char tlvs[] = {
	0x01, 0x00, 0x04, 's', 'm', 't', 'p',
	0x02, 0x00, 0x0b, 'm', 'x', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.',
	0x04, 0x00, 0x00,
	0xea, 0x00, 0x02, 0x01, 0x02,
};

static void
test_v2_proxy_v4(void **state)
{
	unsigned char buf[256], pay[128];
	size_t n;

	(void)state;
	n = v2(buf, 0x21, 0x11, 12, addr4, 12);
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.version, 2);
	assert_int_equal(res.local, 0);
	check_addr(&res.src, "192.0.2.1", 56324);
	check_addr(&res.dst, "198.51.100.2", 25);

	/* with TLVs: skipped, and used covers them */
	memcpy(pay, addr4, 12);
	memcpy(pay + 12, tlvs, sizeof(tlvs));
	n = v2(buf, 0x21, 0x11, (unsigned)(12 + sizeof(tlvs)), pay, 12 + sizeof(tlvs));
	expect_whole(buf, n, PP_ALLOW_V1 | PP_ALLOW_V2);
	assert_int_equal(res.version, 2);
	assert_int_equal(res.local, 0);
	assert_int_equal(res.used, 16 + 12 + sizeof(tlvs));
	check_addr(&res.src, "192.0.2.1", 56324);
	check_addr(&res.dst, "198.51.100.2", 25);
}

static void
test_v2_proxy_v6(void **state)
{
	unsigned char buf[256], pay[128];
	size_t n;

	(void)state;
	n = v2(buf, 0x21, 0x21, 36, addr6, 36);
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.local, 0);
	check_addr(&res.src, "2001:db8::1", 40000);
	check_addr(&res.dst, "2001:db8::2", 587);

	memcpy(pay, addr6, 36);
	memcpy(pay + 36, tlvs, sizeof(tlvs));
	n = v2(buf, 0x21, 0x21, (unsigned)(36 + sizeof(tlvs)), pay, 36 + sizeof(tlvs));
	expect_whole(buf, n, PP_ALLOW_V1 | PP_ALLOW_V2);
	assert_int_equal(res.local, 0);
	assert_int_equal(res.used, n);
	check_addr(&res.src, "2001:db8::1", 40000);
	check_addr(&res.dst, "2001:db8::2", 587);
}

static void
test_v2_local(void **state)
{
	unsigned char buf[256], pay[64];
	size_t n;

	(void)state;
	/* LOCAL (health checks): no addresses at all */
	n = v2(buf, 0x20, 0x00, 0, NULL, 0);
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.version, 2);
	assert_int_equal(res.local, 1);
	assert_int_equal(res.used, 16);
	/* LOCAL with an address block and TLVs: all skipped */
	memcpy(pay, addr4, 12);
	memcpy(pay + 12, tlvs, sizeof(tlvs));
	n = v2(buf, 0x20, 0x11, (unsigned)(12 + sizeof(tlvs)), pay, 12 + sizeof(tlvs));
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.local, 1);
	/* LOCAL ignores the family, even an undefined one, and any length */
	n = v2(buf, 0x20, 0xff, 3, "abc", 3);
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.local, 1);
	n = v2(buf, 0x20, 0x11, 4, "abcd", 4);
	expect_whole(buf, n, PP_ALLOW_V2);
	assert_int_equal(res.local, 1);
}

static void
test_v2_unspec_and_others(void **state)
{
	static const unsigned char fams[] = {
		0x00, 0x01, 0x02, 0x10, 0x12, 0x20, 0x22, 0x30, 0x31, 0x32,
	};
	unsigned char buf[512], pay[256];
	size_t i, n;

	(void)state;
	/* PROXY over UNSPEC, DGRAM or UNIX: keep the socket's addresses */
	for (i = 0; i < sizeof(fams); i++) {
		n = v2(buf, 0x21, fams[i], 0, NULL, 0);
		expect_whole(buf, n, PP_ALLOW_V2);
		assert_int_equal(res.local, 1);
		memset(pay, 0xa5, sizeof(pay));
		memcpy(pay, tlvs, sizeof(tlvs));
		n = v2(buf, 0x21, fams[i], 216 + 9, pay, 216 + 9);
		expect_whole(buf, n, PP_ALLOW_V2);
		assert_int_equal(res.local, 1);
		assert_int_equal(res.used, 16 + 216 + 9);
	}
}

static void
test_v2_invalid(void **state)
{
	unsigned char buf[256], pay[128];
	unsigned v, c;
	size_t n;

	(void)state;
	/* version nibble other than 2: decided at the 13th octet */
	for (v = 0; v < 16; v++) {
		if (v == 2)
			continue;
		n = v2(buf, (unsigned char)(v << 4 | 1), 0x11, 12, addr4, 12);
		expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "version");
		expect_st(buf, 13, PP_ALLOW_V2, PP_INVALID, "version early");
	}
	/* commands beyond LOCAL and PROXY */
	for (c = 2; c < 16; c++) {
		n = v2(buf, (unsigned char)(0x20 | c), 0x11, 12, addr4, 12);
		expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "command");
		expect_st(buf, 13, PP_ALLOW_V2, PP_INVALID, "command early");
	}
	/* PROXY: length shorter than the address block */
	n = v2(buf, 0x21, 0x11, 11, addr4, 11);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "short v4");
	expect_st(buf, 16, PP_ALLOW_V2, PP_INVALID, "short v4 at 16");
	n = v2(buf, 0x21, 0x11, 0, NULL, 0);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "empty v4");
	n = v2(buf, 0x21, 0x21, 35, addr6, 35);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "short v6");
	n = v2(buf, 0x21, 0x21, 12, addr4, 12);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "v6 with a v4 block");
	/* PROXY: families and transports the spec does not define */
	n = v2(buf, 0x21, 0x41, 12, addr4, 12);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "family 4");
	n = v2(buf, 0x21, 0xf1, 12, addr4, 12);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "family 15");
	n = v2(buf, 0x21, 0x13, 12, addr4, 12);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "transport 3");
	/* PROXY: TLVs torn at the end of the block */
	memcpy(pay, addr4, 12);
	memcpy(pay + 12, "\x01\x00\x05smtp", 7);
	n = v2(buf, 0x21, 0x11, 19, pay, 19);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "TLV value past the end");
	n = v2(buf, 0x21, 0x11, 14, pay, 14);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "TLV header torn");
	memcpy(pay + 36, "\x04\x00", 2);
	memcpy(pay, addr6, 36);
	n = v2(buf, 0x21, 0x21, 38, pay, 38);
	expect_st(buf, n, PP_ALLOW_V2, PP_INVALID, "v6 TLV header torn");
	/* a wrong octet anywhere in the signature */
	for (n = 0; n < 12; n++) {
		v2(buf, 0x21, 0x11, 12, addr4, 12);
		buf[n] ^= 0x40;
		expect_st(buf, 28, PP_ALLOW_V2, PP_INVALID, "signature");
		expect_st(buf, n + 1, PP_ALLOW_V2, PP_INVALID, "signature early");
	}
}

static void
test_v2_truncated(void **state)
{
	unsigned char buf[PP_V2_MAX + 64];
	size_t n;

	(void)state;
	/* declared length not yet arrived: wait */
	n = v2(buf, 0x21, 0x11, 100, addr4, 12);
	expect_st(buf, n, PP_ALLOW_V2, PP_AGAIN, "12 of 100");
	expect_st(buf, 16, PP_ALLOW_V2, PP_AGAIN, "header only");
	expect_st(buf, 15, PP_ALLOW_V2, PP_AGAIN, "15");
	/* the largest header: 16 + 65535, a NOOP TLV filling the block */
	memset(buf, 0, sizeof(buf));
	n = v2(buf, 0x21, 0x11, 65535, addr4, 12);
	buf[28] = 0x04;
	buf[29] = (unsigned char)((65535 - 12 - 3) >> 8);
	buf[30] = (unsigned char)(65535 - 12 - 3);
	expect_st(buf, PP_V2_MAX - 1, PP_ALLOW_V2, PP_AGAIN, "max - 1");
	expect_st(buf, PP_V2_MAX, PP_ALLOW_V2, PP_OK, "max");
	assert_int_equal(res.used, PP_V2_MAX);
	check_addr(&res.src, "192.0.2.1", 56324);
	memcpy(buf + PP_V2_MAX, smtp_tail, strlen(smtp_tail));
	expect_st(buf, PP_V2_MAX + strlen(smtp_tail), PP_ALLOW_V2, PP_OK, "max + data");
	assert_int_equal(res.used, PP_V2_MAX);
	(void)n;
}

static void
test_allow_masks(void **state)
{
	const char *line = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	unsigned char buf[64];
	size_t n = v2(buf, 0x21, 0x11, 12, addr4, 12);

	(void)state;
	/* v1 only: the v2 signature is refused at its first octet */
	expect_st(buf, n, PP_ALLOW_V1, PP_INVALID, "v2 with v1 only");
	expect_st(buf, 1, PP_ALLOW_V1, PP_INVALID, "v2 octet 1 with v1 only");
	/* v2 only: "P" is refused at once */
	expect_st(line, strlen(line), PP_ALLOW_V2, PP_INVALID, "v1 with v2 only");
	expect_st(line, 1, PP_ALLOW_V2, PP_INVALID, "P with v2 only");
	/* both: each is recognised */
	expect_st(line, strlen(line), PP_ALLOW_V1 | PP_ALLOW_V2, PP_OK, "v1 with both");
	assert_int_equal(res.version, 1);
	expect_st(buf, n, PP_ALLOW_V1 | PP_ALLOW_V2, PP_OK, "v2 with both");
	assert_int_equal(res.version, 2);
	/* nothing allowed: nothing is a header */
	expect_st(line, strlen(line), 0, PP_INVALID, "v1 with none");
	expect_st(buf, n, 0, PP_INVALID, "v2 with none");
	expect_st("", 0, 0, PP_INVALID, "empty with none");
	/* unknown bits are ignored */
	expect_st(line, strlen(line), PP_ALLOW_V1 | 0x100, PP_OK, "extra bits");
	/* empty input waits whatever is allowed */
	expect_st("", 0, PP_ALLOW_V1, PP_AGAIN, "empty v1");
	expect_st("", 0, PP_ALLOW_V2, PP_AGAIN, "empty v2");
	expect_st("", 0, PP_ALLOW_V1 | PP_ALLOW_V2, PP_AGAIN, "empty both");
	/* neither 'P' nor CR: plain SMTP from a client that skipped the header */
	expect_st("EHLO", 4, PP_ALLOW_V1 | PP_ALLOW_V2, PP_INVALID, "EHLO");
	expect_st("\n", 1, PP_ALLOW_V1 | PP_ALLOW_V2, PP_INVALID, "LF");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_valid),
		cmocka_unit_test(test_v1_unknown_limits),
		cmocka_unit_test(test_v1_malformed),
		cmocka_unit_test(test_v1_early_invalid),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v1_prefixes),
		cmocka_unit_test(test_v2_proxy_v4),
		cmocka_unit_test(test_v2_proxy_v6),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_unspec_and_others),
		cmocka_unit_test(test_v2_invalid),
		cmocka_unit_test(test_v2_truncated),
		cmocka_unit_test(test_allow_masks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
