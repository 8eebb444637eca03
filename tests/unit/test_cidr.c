/*
 * test_cidr.c - unit tests of core/cidr.c: network parsing (valid forms,
 * garbage, prefix syntax and range, host bits), matching IPv4, IPv6,
 * IPv4-mapped and unix clients, lists, the /0 /32 /128 edges, and the
 * limits key with its IPv6 aggregation. Strings are parsed from a
 * guard-page buffer (guard.h), so an over-read faults.
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
#include "cidr.h"

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

/*
 * cidr_parse reads a NUL-terminated string, so the copy includes the NUL
 * as its last octet: any read past it hits the guard page.
 */
static int
parse(const char *s, struct cidr *c)
{
	const char *copy = guard_copy(&g, s, strlen(s) + 1);

	assert_non_null(copy);
	memset(c, 0x5a, sizeof(*c));
	return cidr_parse(copy, c);
}

static struct net_addr
ip(const char *s, unsigned port)
{
	struct net_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, &a.u.sin.sin_addr) == 1) {
		a.u.sin.sin_family = AF_INET;
		a.u.sin.sin_port = htons((uint16_t)port);
		a.len = sizeof(a.u.sin);
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &a.u.sin6.sin6_addr), 1);
		a.u.sin6.sin6_family = AF_INET6;
		a.u.sin6.sin6_port = htons((uint16_t)port);
		a.len = sizeof(a.u.sin6);
	}
	return a;
}

static struct net_addr
unix_addr(const char *path)
{
	struct net_addr a;

	memset(&a, 0, sizeof(a));
	a.u.sun.sun_family = AF_UNIX;
	snprintf(a.u.sun.sun_path, sizeof(a.u.sun.sun_path), "%s", path);
	a.len = sizeof(a.u.sun);
	return a;
}

/* Parses net (which must be valid) and matches addr against it. */
static int
matches(const char *net, const char *addr)
{
	struct cidr c;
	struct net_addr a = ip(addr, 25);

	assert_int_equal(parse(net, &c), 0);
	return cidr_match(&c, &a);
}

static void
expect_net(const char *s, int family, const char *addr, unsigned prefix)
{
	struct cidr c;
	uint8_t want[16] = { 0 };

	if (parse(s, &c) != 0)
		fail_msg("'%s' refused", s);
	assert_int_equal(c.family, family);
	assert_int_equal(c.prefix, prefix);
	assert_int_equal(inet_pton(family, addr, want), 1);
	assert_memory_equal(c.addr, want, family == AF_INET ? 4 : 16);
	if (family == AF_INET) {
		/* the unused tail must not carry stale octets */
		static const uint8_t zero[12];

		assert_memory_equal(c.addr + 4, zero, 12);
	}
}

static void
test_parse_valid(void **state)
{
	(void)state;
	expect_net("192.0.2.0/24", AF_INET, "192.0.2.0", 24);
	expect_net("192.0.2.7", AF_INET, "192.0.2.7", 32);
	expect_net("10.0.0.0/8", AF_INET, "10.0.0.0", 8);
	expect_net("0.0.0.0/0", AF_INET, "0.0.0.0", 0);
	expect_net("255.255.255.255/32", AF_INET, "255.255.255.255", 32);
	expect_net("2001:db8::/32", AF_INET6, "2001:db8::", 32);
	expect_net("2001:db8::1", AF_INET6, "2001:db8::1", 128);
	expect_net("::1/128", AF_INET6, "::1", 128);
	expect_net("::/0", AF_INET6, "::", 0);
	expect_net("::", AF_INET6, "::", 128);
	expect_net("::ffff:192.0.2.0/120", AF_INET6, "::ffff:192.0.2.0", 120);
	expect_net("2001:DB8:0:0:0:0:0:0/64", AF_INET6, "2001:db8::", 64);
}

static void
test_parse_host_bits(void **state)
{
	(void)state;
	/* accepted and cleared, so the stored network is canonical */
	expect_net("192.0.2.77/24", AF_INET, "192.0.2.0", 24);
	expect_net("10.255.255.255/8", AF_INET, "10.0.0.0", 8);
	expect_net("10.1.2.3/0", AF_INET, "0.0.0.0", 0);
	expect_net("192.0.2.255/25", AF_INET, "192.0.2.128", 25);
	expect_net("192.0.2.255/31", AF_INET, "192.0.2.254", 31);
	expect_net("2001:db8:ffff:ffff::1/32", AF_INET6, "2001:db8::", 32);
	expect_net("2001:db8::ffff/121", AF_INET6, "2001:db8::ff80", 121);
	expect_net("ffff::/1", AF_INET6, "8000::", 1);
	expect_net("ffff::1/0", AF_INET6, "::", 0);
}

static void
test_parse_invalid(void **state)
{
	static const char *const bad[] = {
		"", "/", "/24", "192.0.2.0/", "192.0.2.0/33", "192.0.2.0/-1",
		"192.0.2.0/+8", "192.0.2.0/08", "192.0.2.0/00", "192.0.2.0/ 8",
		"192.0.2.0/8 ", " 192.0.2.0", "192.0.2.0/8/8", "192.0.2.0/8a",
		"192.0.2.0/1000", "192.0.2", "192.0.2.256", "192.0.2.01",
		"192.0.2.0.1", "1.2.3.4:25", "2001:db8::/129", "2001:db8::/0128",
		"2001:db8::/", "[2001:db8::]/32", "[::1]", "2001:db8:::1",
		"2001:db8::g", "localhost", "example.test/24", "::1%lo",
		"::1/64%lo", "0x7f.0.0.1", "1.2.3.4/4294967328", "abc",
		"2001:db8::/99999999999999999999",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999/64",
	};
	struct cidr c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &c) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(cidr_parse(NULL, &c), -1);
}

static void
test_match_v4(void **state)
{
	(void)state;
	assert_true(matches("192.0.2.0/24", "192.0.2.0"));
	assert_true(matches("192.0.2.0/24", "192.0.2.255"));
	assert_false(matches("192.0.2.0/24", "192.0.3.0"));
	assert_false(matches("192.0.2.0/24", "192.0.1.255"));
	assert_true(matches("192.0.2.128/25", "192.0.2.200"));
	assert_false(matches("192.0.2.128/25", "192.0.2.127"));
	assert_true(matches("10.0.0.0/8", "10.200.3.4"));
	assert_false(matches("10.0.0.0/8", "11.0.0.0"));
	assert_true(matches("172.16.0.0/12", "172.31.255.255"));
	assert_false(matches("172.16.0.0/12", "172.32.0.0"));
	/* an IPv4 network never matches a native IPv6 client */
	assert_false(matches("0.0.0.0/0", "2001:db8::1"));
	assert_false(matches("0.0.0.0/0", "::"));
	/* nor a v4-compatible (not mapped) one */
	assert_false(matches("192.0.2.0/24", "::192.0.2.1"));
}

static void
test_match_v6(void **state)
{
	(void)state;
	assert_true(matches("2001:db8::/32", "2001:db8::1"));
	assert_true(matches("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(matches("2001:db8::/32", "2001:db9::"));
	assert_false(matches("2001:db8::/32", "2001:db7:ffff::"));
	assert_true(matches("2001:db8:1:2::/64", "2001:db8:1:2:abcd::9"));
	assert_false(matches("2001:db8:1:2::/64", "2001:db8:1:3::"));
	assert_true(matches("2001:db8::80/121", "2001:db8::ff"));
	assert_false(matches("2001:db8::80/121", "2001:db8::7f"));
	/* an IPv6 network never matches an AF_INET client */
	assert_false(matches("::/0", "192.0.2.1"));
	assert_false(matches("::ffff:0:0/96", "192.0.2.1"));
}

static void
test_match_mapped(void **state)
{
	(void)state;
	/* dual-stack sockets report IPv4 peers this way */
	assert_true(matches("192.0.2.0/24", "::ffff:192.0.2.9"));
	assert_false(matches("192.0.2.0/24", "::ffff:192.0.3.9"));
	assert_true(matches("192.0.2.9", "::ffff:192.0.2.9"));
	assert_false(matches("192.0.2.9", "::ffff:192.0.2.8"));
	assert_true(matches("0.0.0.0/0", "::ffff:0.0.0.0"));
	assert_true(matches("0.0.0.0/0", "::ffff:255.255.255.255"));
	/* mapped-looking but with a wrong 12-octet prefix: not IPv4 */
	assert_false(matches("192.0.2.0/24", "::fffe:192.0.2.9"));
	assert_false(matches("192.0.2.0/24", "1::ffff:192.0.2.9"));
	/* it is still an IPv6 address for IPv6 networks */
	assert_true(matches("::ffff:0:0/96", "::ffff:192.0.2.9"));
	assert_true(matches("::/0", "::ffff:192.0.2.9"));
	assert_false(matches("2001:db8::/32", "::ffff:192.0.2.9"));
}

static void
test_match_unix(void **state)
{
	struct net_addr u = unix_addr("/run/mxgate.sock"), empty;
	struct cidr c;

	(void)state;
	assert_int_equal(parse("0.0.0.0/0", &c), 0);
	assert_false(cidr_match(&c, &u));
	assert_int_equal(parse("::/0", &c), 0);
	assert_false(cidr_match(&c, &u));
	memset(&empty, 0, sizeof(empty));	/* AF_UNSPEC */
	assert_false(cidr_match(&c, &empty));
	assert_int_equal(parse("0.0.0.0/0", &c), 0);
	assert_false(cidr_match(&c, &empty));
}

static void
test_edges(void **state)
{
	(void)state;
	/* /0 matches the whole family */
	assert_true(matches("0.0.0.0/0", "0.0.0.0"));
	assert_true(matches("0.0.0.0/0", "255.255.255.255"));
	assert_true(matches("0.0.0.0/0", "203.0.113.7"));
	assert_true(matches("::/0", "::"));
	assert_true(matches("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_true(matches("::/0", "2001:db8::1"));
	/* /32 and /128 match one address; the last bit counts */
	assert_true(matches("192.0.2.1/32", "192.0.2.1"));
	assert_false(matches("192.0.2.1/32", "192.0.2.0"));
	assert_false(matches("192.0.2.0/32", "192.0.2.1"));
	assert_true(matches("255.255.255.255/32", "255.255.255.255"));
	assert_false(matches("255.255.255.255/32", "255.255.255.254"));
	assert_true(matches("2001:db8::1/128", "2001:db8::1"));
	assert_false(matches("2001:db8::1/128", "2001:db8::"));
	assert_false(matches("2001:db8::/128", "2001:db8::1"));
	assert_true(matches("::1", "::1"));
	assert_false(matches("::1", "::"));
	/* /1, /31, /127: the masks of partial octets */
	assert_true(matches("128.0.0.0/1", "200.1.1.1"));
	assert_false(matches("128.0.0.0/1", "127.255.255.255"));
	assert_true(matches("192.0.2.0/31", "192.0.2.1"));
	assert_false(matches("192.0.2.0/31", "192.0.2.2"));
	assert_true(matches("2001:db8::/127", "2001:db8::1"));
	assert_false(matches("2001:db8::/127", "2001:db8::2"));
	assert_true(matches("8000::/1", "ffff::"));
	assert_false(matches("8000::/1", "7fff::"));
}

static void
test_list(void **state)
{
	char *items[] = { "10.0.0.0/8", "2001:db8::/32", "192.0.2.1" };
	char *bad_items[] = { "10.0.0.0/8", "::1", "10.0.0.0/33", "::2" };
	struct cidr_list l, empty = { NULL, 0 };
	struct net_addr a, u = unix_addr("/tmp/x");
	unsigned bad = 77;

	(void)state;
	assert_int_equal(cidr_list_parse(&l, items, 3, &bad), 0);
	assert_int_equal(l.n, 3);
	assert_non_null(l.v);
	a = ip("10.9.8.7", 1);
	assert_true(cidr_list_match(&l, &a));
	a = ip("::ffff:10.9.8.7", 1);
	assert_true(cidr_list_match(&l, &a));
	a = ip("2001:db8:5::1", 1);
	assert_true(cidr_list_match(&l, &a));
	a = ip("192.0.2.1", 1);
	assert_true(cidr_list_match(&l, &a));
	a = ip("192.0.2.2", 1);
	assert_false(cidr_list_match(&l, &a));
	a = ip("2001:db9::1", 1);
	assert_false(cidr_list_match(&l, &a));
	assert_false(cidr_list_match(&l, &u));
	cidr_list_free(&l);
	assert_null(l.v);
	assert_int_equal(l.n, 0);
	cidr_list_free(&l);	/* twice is harmless */

	/* the index of the first bad entry, and nothing left allocated */
	assert_int_equal(cidr_list_parse(&l, bad_items, 4, &bad), -1);
	assert_int_equal(bad, 2);
	assert_null(l.v);
	assert_int_equal(l.n, 0);

	/* an empty list matches nothing */
	assert_int_equal(cidr_list_parse(&l, items, 0, &bad), 0);
	assert_int_equal(l.n, 0);
	a = ip("10.0.0.1", 1);
	assert_false(cidr_list_match(&l, &a));
	assert_false(cidr_list_match(&empty, &a));
	cidr_list_free(&l);
}

/* The key of addr as a string, checking length and NUL termination. */
static const char *
key(const char *addr, unsigned prefix)
{
	static char buf[64];
	struct net_addr a = ip(addr, 2525);
	size_t n;

	memset(buf, 'x', sizeof(buf));
	n = cidr_client_key(&a, prefix, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(n, strlen(buf));
	return buf;
}

static void
test_key_v4(void **state)
{
	(void)state;
	assert_string_equal(key("192.0.2.1", 64), "192.0.2.1");
	assert_string_equal(key("0.0.0.0", 64), "0.0.0.0");
	assert_string_equal(key("255.255.255.255", 0), "255.255.255.255");
	/* the IPv6 prefix never aggregates IPv4 */
	assert_string_equal(key("192.0.2.1", 1), "192.0.2.1");
	/* mapped IPv4 is counted with the plain IPv4 client */
	assert_string_equal(key("::ffff:192.0.2.1", 64), "192.0.2.1");
	assert_string_equal(key("::ffff:192.0.2.1", 128), "192.0.2.1");
}

static void
test_key_v6(void **state)
{
	char a[64];

	(void)state;
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 64), "2001:db8:1:2::/64");
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 48), "2001:db8:1::/48");
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 128), "2001:db8:1:2:3:4:5:6/128");
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 1), "::/1");
	assert_string_equal(key("8001:db8:1:2:3:4:5:6", 1), "8000::/1");
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 0), "::/0");
	assert_string_equal(key("2001:db8:1:2:3:4:5:6", 56), "2001:db8:1::/56");
	assert_string_equal(key("2001:db8:1:2ff:3:4:5:6", 56), "2001:db8:1:200::/56");
	/* beyond 128 is clamped rather than read as garbage */
	assert_string_equal(key("2001:db8::1", 200), "2001:db8::1/128");
	assert_string_equal(key("::1", 128), "::1/128");
	/* non-canonical input text, canonical key */
	assert_string_equal(key("2001:0DB8:0000:0001:0:0:0:9", 64), "2001:db8:0:1::/64");

	/* two addresses of one /64 share a key ... */
	snprintf(a, sizeof(a), "%s", key("2001:db8:aa:bb:1::1", 64));
	assert_string_equal(a, key("2001:db8:aa:bb:ffff:ffff:ffff:ffff", 64));
	assert_string_equal(a, "2001:db8:aa:bb::/64");
	/* ... and neighbours in the next /64 do not */
	assert_string_not_equal(a, key("2001:db8:aa:bc:1::1", 64));
	/* the same address under different prefixes gives different keys */
	snprintf(a, sizeof(a), "%s", key("2001:db8:aa:bb:1::1", 48));
	assert_string_not_equal(a, key("2001:db8:aa:bb:1::1", 64));
	assert_string_not_equal(a, key("2001:db8:aa:bb:1::1", 128));
	assert_string_not_equal(a, key("2001:db8:aa:bb:1::1", 1));
	/* /128 keeps every address apart */
	snprintf(a, sizeof(a), "%s", key("2001:db8:aa:bb:1::1", 128));
	assert_string_not_equal(a, key("2001:db8:aa:bb:1::2", 128));
}

static void
test_key_edge(void **state)
{
	struct net_addr u = unix_addr("/run/x.sock"), v6 = ip("2001:db8:1:2:3:4:5:6", 1);
	struct net_addr v4 = ip("192.0.2.123", 1);
	char buf[64], small[8];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(cidr_client_key(&u, 64, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	/* truncation: still NUL-terminated, returns what was written */
	memset(small, 'x', sizeof(small));
	assert_int_equal(cidr_client_key(&v6, 64, small, sizeof(small)), 7);
	assert_string_equal(small, "2001:db");
	assert_int_equal(cidr_client_key(&v4, 64, small, sizeof(small)), 7);
	assert_string_equal(small, "192.0.2");
	assert_int_equal(cidr_client_key(&v4, 64, small, 1), 0);
	assert_string_equal(small, "");
	assert_int_equal(cidr_client_key(&v4, 64, small, 0), 0);
	/* the port never enters the key */
	v4 = ip("192.0.2.123", 40000);
	assert_int_equal(cidr_client_key(&v4, 64, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "192.0.2.123");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_host_bits),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_match_v4),
		cmocka_unit_test(test_match_v6),
		cmocka_unit_test(test_match_mapped),
		cmocka_unit_test(test_match_unix),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_key_v4),
		cmocka_unit_test(test_key_v6),
		cmocka_unit_test(test_key_edge),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
