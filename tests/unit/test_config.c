/*
 * test_config.c - unit tests of conf/config.c: the value parsers, a full
 * round trip, the defaults, and every error with its "PATH:LINE:" prefix.
 * Each test writes its config text to a temporary file under /tmp.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config.h"
#include "log.h"
#include "net.h"

/* A minimal valid file, as building blocks for the error cases. */
#define LISTENER "[listener smtp]\nlisten = 127.0.0.1:2525\nrelay_domains = *\n"
#define BACKEND  "[backend sink]\naddress = 127.0.0.1:2600\n"

/* Writes text to a fresh temporary file; returns its (static) path. */
static const char *
write_conf(const char *text)
{
	static char path[64];
	size_t len = strlen(text);
	int fd;

	snprintf(path, sizeof(path), "/tmp/mxgate-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static struct config *
load_ok(const char *text)
{
	struct config *c = NULL;
	char err[512];
	const char *path = write_conf(text);
	int rc = config_load(path, &c, err, sizeof(err));

	unlink(path);
	if (rc != 0)
		fail_msg("config_load failed: %s\n--- config ---\n%s", err, text);
	assert_non_null(c);
	assert_int_equal(c->refs, 1);
	return c;
}

/*
 * Loads text expecting failure with "PATH:LINE: " followed by a message
 * that contains want.
 */
static void
expect_err(const char *text, int line, const char *want)
{
	struct config *c = (struct config *)1;
	char err[512], prefix[128];
	const char *path = write_conf(text);
	int rc = config_load(path, &c, err, sizeof(err));

	unlink(path);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	if (rc != -1 || c != NULL || strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err + strlen(prefix), want) == NULL)
		fail_msg("rc=%d err='%s'\nwanted '%s%s...'\n--- config ---\n%s",
			 rc, err, prefix, want, text);
}

/* ------------------------------------------------------------------ */

static void
test_duration(void **state)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "250ms", 250 }, { "30s", 30000 }, { "5m", 300000 }, { "1h", 3600000 },
		{ "2d", 172800000 }, { "10", 10000 }, { "0", 0 }, { "0ms", 0 },
		{ "007s", 7000 }, { "18446744073709551615ms", UINT64_MAX },
		{ "18446744073709551s", 18446744073709551000ULL },
	};
	static const char *const bad[] = {
		"", "s", "ms", "-1s", "+1s", "1.5s", "5M", "1H", "10 s", " 10s", "10s ",
		"1w", "1h30m", "abc", "10sec", "1e3",
		"18446744073709551616ms",	/* > UINT64_MAX */
		"18446744073709552s",		/* overflows when scaled */
		"213503982334602d",		/* overflows when scaled */
		"99999999999999999999999",
	};
	uint64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = 12345;
		if (config_parse_duration(ok[i].s, &ms) != 0)
			fail_msg("'%s' refused", ok[i].s);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_duration(bad[i], &ms) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(config_parse_duration(NULL, &ms), -1);
}

static void
test_size(void **state)
{
	static const struct { const char *s; uint64_t b; } ok[] = {
		{ "512", 512 }, { "0", 0 }, { "64k", 65536 }, { "64K", 65536 },
		{ "50M", 52428800 }, { "50m", 52428800 }, { "1G", 1073741824 },
		{ "1g", 1073741824 }, { "17179869183G", 17179869183ULL << 30 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "k", "M", "-1", "+1", "1.5M", "50MB", "50Mb", "64kb", "1T", "10 k",
		" 1k", "1k ", "0x10", "abc",
		"17179869184G",			/* 2^64 */
		"18014398509481984k",		/* 2^64 */
		"18446744073709551616",		/* 2^64 */
	};
	uint64_t b;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		b = 12345;
		if (config_parse_size(ok[i].s, &b) != 0)
			fail_msg("'%s' refused", ok[i].s);
		assert_int_equal(b, ok[i].b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_size(bad[i], &b) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(config_parse_size(NULL, &b), -1);
}

static void
test_rate(void **state)
{
	static const struct { const char *s; unsigned n; uint64_t ms; } ok[] = {
		{ "60/1m", 60, 60000 }, { "5/10m", 5, 600000 }, { "200/1h", 200, 3600000 },
		{ "10/1", 10, 1000 }, { "1/250ms", 1, 250 }, { "4294967295/1d", 4294967295U, 86400000 },
	};
	static const char *const bad[] = {
		"", "60", "/1m", "60/", "0/1m", "60/0", "60/0s", "60/1x", "60 / 1m", "-1/1m",
		"60/1m/2", "4294967296/1s", "60/m", "1.5/1s", "60/18446744073709552s",
	};
	unsigned n;
	uint64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		n = 0, ms = 0;
		if (config_parse_rate(ok[i].s, &n, &ms) != 0)
			fail_msg("'%s' refused", ok[i].s);
		assert_int_equal(n, ok[i].n);
		assert_int_equal(ms, ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_rate(bad[i], &n, &ms) != -1)
			fail_msg("'%s' accepted", bad[i]);
}

static void
test_bool(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True", "On" };
	static const char *const no[] = { "no", "false", "off", "0", "NO", "False", "OFF" };
	static const char *const bad[] = { "", "y", "n", "2", "yess", "enable", " yes", "yes " };
	int v;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		v = -1;
		assert_int_equal(config_parse_bool(yes[i], &v), 0);
		assert_int_equal(v, 1);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		v = -1;
		assert_int_equal(config_parse_bool(no[i], &v), 0);
		assert_int_equal(v, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_bool(bad[i], &v) != -1)
			fail_msg("'%s' accepted", bad[i]);
}

/* ------------------------------------------------------------------ */

static void
assert_addr(const struct net_addr *a, const char *want)
{
	char buf[NET_ADDR_STRLEN];
	struct net_addr w;
	char err[128];

	assert_int_equal(net_addr_parse(want, &w, err, sizeof(err)), 0);
	if (!net_addr_equal(a, &w))
		fail_msg("address %s, wanted %s", net_addr_format(a, buf, sizeof(buf)), want);
}

static void
test_full(void **state)
{
	static const char text[] =
		"; a full file: every key of the three sections\n"	/* 1 */
		"# comment styles: ';' and '#'\n"
		"[server]\n"
		"hostname = mx1.example.test ; inline comment\n"
		"workers = 4   # inline hash comment\n"			/* 5 */
		"max_message_size = 10M\n"
		"max_recipients = 50\n"
		"max_errors = 3\n"
		"timeout_command = 90s\n"
		"timeout_data = 1h\n"					/* 10 */
		"drain_timeout = 250ms\n"
		"log = /var/log/mxgate.log\n"
		"log_format = json\n"
		"log_level = debug\n"
		"\n"							/* 15 */
		"[listener mx]\n"
		"listen = 127.0.0.1:2525 , [::1]:2525\n"
		"mode = relay\n"
		"tls = none\n"
		"require_tls = no\n"					/* 20 */
		"proxy_protocol = off\n"
		"proxy_trusted = 10.0.0.0/8, 192.0.2.1, fd00::/8\n"
		"relay_domains = Example.TEST, sub.example.test\n"
		"backends = b3, b1\n"
		"\n"							/* 25 */
		"[backend b1]\n"
		"address = 127.0.0.1:2600\n"
		"protocol = smtp\n"
		"weight = 1000\n"
		"max_connections = 100000\n"				/* 30 */
		"tls = no\n"
		"tls_verify = no\n"
		"tls_ca = /etc/ssl/ca.pem\n"
		"forward_client = none\n"
		"\n"							/* 35 */
		"  [listener local]\n"
		"  listen = unix:/tmp/mxgate.sock\n"
		"  relay_domains = *, example.org\n"
		"\n"
		"[backend b2]\n"					/* 40 */
		"address = [::1]:2601\n"
		"[backend b3]\r\n"
		"address: unix:/run/lmtp.sock\r\n"
		"weight = 7\r\n";
	struct config *c = load_ok(text);

	(void)state;
	assert_string_equal(c->hostname, "mx1.example.test");
	assert_int_equal(c->workers, 4);
	assert_int_equal(c->max_message_size, 10 << 20);
	assert_int_equal(c->max_recipients, 50);
	assert_int_equal(c->max_errors, 3);
	assert_int_equal(c->timeout_command_ms, 90000);
	assert_int_equal(c->timeout_data_ms, 3600000);
	assert_int_equal(c->drain_timeout_ms, 250);
	assert_string_equal(c->log, "/var/log/mxgate.log");
	assert_int_equal(c->log_json, 1);
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_non_null(strstr(c->path, "/tmp/mxgate-test-config-"));

	assert_int_equal(c->nlisteners, 2);
	struct cfg_listener *l = &c->listeners[0];
	assert_string_equal(l->name, "mx");
	assert_int_equal(l->line, 16);
	assert_int_equal(l->naddrs, 2);
	assert_addr(&l->addrs[0], "127.0.0.1:2525");
	assert_addr(&l->addrs[1], "[::1]:2525");
	assert_int_equal(l->mode, CFG_MODE_RELAY);
	assert_int_equal(l->tls, CFG_TLS_NONE);
	assert_int_equal(l->require_tls, 0);
	assert_int_equal(l->proxy_protocol, CFG_PROXY_OFF);
	assert_int_equal(l->nproxy_trusted, 3);
	assert_string_equal(l->proxy_trusted[0], "10.0.0.0/8");
	assert_string_equal(l->proxy_trusted[1], "192.0.2.1/32");
	assert_string_equal(l->proxy_trusted[2], "fd00::/8");
	assert_int_equal(l->nrelay_domains, 2);
	assert_string_equal(l->relay_domains[0], "example.test");
	assert_string_equal(l->relay_domains[1], "sub.example.test");
	assert_int_equal(l->relay_any, 0);
	assert_int_equal(l->nbackends, 2);
	assert_int_equal(l->backends[0], 2);
	assert_int_equal(l->backends[1], 0);

	l = &c->listeners[1];
	assert_string_equal(l->name, "local");
	assert_int_equal(l->line, 36);
	assert_int_equal(l->naddrs, 1);
	assert_addr(&l->addrs[0], "unix:/tmp/mxgate.sock");
	assert_int_equal(l->relay_any, 1);
	assert_int_equal(l->nrelay_domains, 2);
	assert_string_equal(l->relay_domains[0], "*");
	assert_string_equal(l->relay_domains[1], "example.org");
	assert_int_equal(l->nbackends, 3);	/* default: all, in file order */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(l->backends[i], i);
	assert_int_equal(l->nproxy_trusted, 2);

	assert_int_equal(c->nbackends, 3);
	struct cfg_backend *b = &c->backends[0];
	assert_string_equal(b->name, "b1");
	assert_int_equal(b->line, 26);
	assert_addr(&b->addr, "127.0.0.1:2600");
	assert_int_equal(b->protocol, CFG_PROTO_SMTP);
	assert_int_equal(b->weight, 1000);
	assert_int_equal(b->max_connections, 100000);
	assert_int_equal(b->tls, 0);
	assert_int_equal(b->tls_verify, 0);
	assert_string_equal(b->tls_ca, "/etc/ssl/ca.pem");
	assert_int_equal(b->forward_client, CFG_FORWARD_NONE);

	b = &c->backends[1];
	assert_string_equal(b->name, "b2");
	assert_int_equal(b->line, 40);
	assert_addr(&b->addr, "[::1]:2601");
	assert_int_equal(b->weight, 1);
	assert_int_equal(b->tls_verify, 1);
	assert_null(b->tls_ca);

	b = &c->backends[2];
	assert_string_equal(b->name, "b3");
	assert_int_equal(b->line, 42);
	assert_addr(&b->addr, "unix:/run/lmtp.sock");
	assert_int_equal(b->weight, 7);

	config_unref(c);
}

static void
test_defaults(void **state)
{
	struct config *c = load_ok(LISTENER BACKEND);
	char host[256] = "";

	(void)state;
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(c->hostname, host[0] ? host : "localhost");
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->max_message_size, 50 << 20);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->max_errors, 10);
	assert_int_equal(c->timeout_command_ms, 5 * 60 * 1000);
	assert_int_equal(c->timeout_data_ms, 10 * 60 * 1000);
	assert_int_equal(c->drain_timeout_ms, 30 * 1000);
	assert_string_equal(c->log, "stderr");
	assert_int_equal(c->log_json, 0);
	assert_int_equal(c->log_level, LOG_LVL_INFO);

	assert_int_equal(c->nlisteners, 1);
	struct cfg_listener *l = &c->listeners[0];
	assert_string_equal(l->name, "smtp");
	assert_int_equal(l->line, 1);
	assert_int_equal(l->mode, CFG_MODE_RELAY);
	assert_int_equal(l->tls, CFG_TLS_NONE);
	assert_int_equal(l->require_tls, 0);
	assert_int_equal(l->proxy_protocol, CFG_PROXY_OFF);
	assert_int_equal(l->nproxy_trusted, 2);
	assert_string_equal(l->proxy_trusted[0], "127.0.0.0/8");
	assert_string_equal(l->proxy_trusted[1], "::1/128");
	assert_int_equal(l->relay_any, 1);
	assert_int_equal(l->nbackends, 1);
	assert_int_equal(l->backends[0], 0);

	assert_int_equal(c->nbackends, 1);
	struct cfg_backend *b = &c->backends[0];
	assert_string_equal(b->name, "sink");
	assert_int_equal(b->line, 4);
	assert_int_equal(b->protocol, CFG_PROTO_SMTP);
	assert_int_equal(b->weight, 1);
	assert_int_equal(b->max_connections, 100);
	assert_int_equal(b->tls, 0);
	assert_int_equal(b->tls_verify, 1);
	assert_null(b->tls_ca);
	assert_int_equal(b->forward_client, CFG_FORWARD_NONE);
	config_unref(c);
}

/* Words are case-insensitive; the lower bounds of the ranges are accepted. */
static void
test_case_insensitive(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok("[server]\nworkers = AUTO\nlog_level = WARN\nlog_format = Text\n"
		    "drain_timeout = 0\nmax_message_size = 1\n" LISTENER BACKEND);
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->log_level, LOG_LVL_WARN);
	assert_int_equal(c->log_json, 0);
	assert_int_equal(c->drain_timeout_ms, 0);
	assert_int_equal(c->max_message_size, 1);
	config_unref(c);
}

static void
test_refcount(void **state)
{
	struct config *c = load_ok(LISTENER BACKEND);

	(void)state;
	config_ref(c);
	assert_int_equal(c->refs, 2);
	config_unref(c);
	assert_int_equal(c->refs, 1);
	config_unref(c);	/* freed; LeakSanitizer checks the rest */
	config_unref(NULL);
}

static void
test_long_line(void **state)
{
	char text[4096];
	size_t n = 0;
	struct config *c;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "[listener smtp]\nlisten = 127.0.0.1:2525\nrelay_domains = ");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sdomain%d.example.test", i ? ", " : "", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "   ; a comment\n" BACKEND);
	c = load_ok(text);
	assert_int_equal(c->listeners[0].nrelay_domains, 40);
	assert_string_equal(c->listeners[0].relay_domains[0], "domain0.example.test");
	assert_string_equal(c->listeners[0].relay_domains[39], "domain39.example.test");
	config_unref(c);

	/* Line numbers stay right after a long line (and a long comment). */
	n = 0;
	n += (size_t)snprintf(text + n, sizeof(text) - n, ";");
	for (int i = 0; i < 300; i++)
		text[n++] = 'c';
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\n[listener smtp]\nlisten = 127.0.0.1:2525\nrelay_domains = ");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%sd%d.example.test", i ? "," : "", i);
	snprintf(text + n, sizeof(text) - n, "\nbogus = 1\n");
	expect_err(text, 5, "unknown key 'bogus' in [listener smtp]");

	/* A long value that is bad is reported at its line. */
	n = 0;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\n[listener smtp]\nlisten = 127.0.0.1:2525\nrelay_domains = ");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "d%d.example.test,", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	expect_err(text, 4, "bad value for relay_domains");

	/* A long line without '=' is a syntax error. */
	memset(text, 'x', 300);
	snprintf(text + 300, sizeof(text) - 300, "\n");
	expect_err(text, 1, "syntax error");
}

/* ------------------------------------------------------------------ */
/* Errors, each with the line it must name                            */
/* ------------------------------------------------------------------ */

static void
test_err_sections(void **state)
{
	static const char *const later[] = {
		"tls", "route example.test", "redis", "limits", "access", "dnsbl", "auth", "metrics",
	};
	char text[512], want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		snprintf(text, sizeof(text), LISTENER BACKEND "\n[%s]\nkey = value\n", later[i]);
		snprintf(want, sizeof(want), "section [%.*s] is not supported by this version",
			 (int)strcspn(later[i], " "), later[i]);
		expect_err(text, 7, want);
	}
	/* Empty: inih alone would not even report it. */
	expect_err(LISTENER BACKEND "[metrics]\n", 6, "section [metrics] is not supported by this version");
	expect_err(LISTENER BACKEND "[foo]\n", 6, "unknown section [foo]");
	expect_err("[listener]\nlisten = 127.0.0.1:1\n", 1, "section [listener] needs a name");
	expect_err(LISTENER "[backend  ]\n", 4, "section [backend] needs a name");
	expect_err("[listener a,b]\n", 1, "bad listener name 'a,b'");
	expect_err("[server x]\n", 1, "section [server] takes no name");
	expect_err("[server]\n[server]\n", 2, "duplicate section [server] (first at line 1)");
	expect_err(LISTENER BACKEND "\n[listener smtp]\n", 7, "duplicate section [listener smtp] (first at line 1)");
	expect_err(LISTENER BACKEND "[backend sink]\n", 6, "duplicate section [backend sink] (first at line 4)");
	expect_err("[server\nhostname = x\n", 1, "syntax error");
	expect_err("[server] junk\n", 1, "syntax error");
	expect_err("hostname = x\n[server]\n", 1, "key 'hostname' is outside of any section");
}

static void
test_err_keys(void **state)
{
	(void)state;
	expect_err("[server]\nhostname = x\nbogus = 1\n", 3, "unknown key 'bogus' in [server]");
	expect_err(LISTENER "address = 1.2.3.4:5\n", 4, "unknown key 'address' in [listener smtp]");
	expect_err(LISTENER BACKEND "listen = 1.2.3.4:5\n", 6, "unknown key 'listen' in [backend sink]");
	expect_err("[server]\nhostname = a\n\n; c\nhostname = b\n", 5,
		   "duplicate key 'hostname' in [server] (first at line 2)");
	expect_err(LISTENER "relay_domains = a.test\n", 4,
		   "duplicate key 'relay_domains' in [listener smtp] (first at line 3)");
	expect_err(BACKEND "address = 127.0.0.1:1\n", 3,
		   "duplicate key 'address' in [backend sink] (first at line 2)");
	/* A line without '=' (inih's own syntax error), and continuation lines. */
	expect_err("[server]\nhostname = x\nworkers\n", 3, "syntax error");
	expect_err("[server]\nhostname = x\n   y\n", 3, "syntax error");
	/* Keys are case-sensitive, like the contract spells them. */
	expect_err("[server]\nHostname = x\n", 2, "unknown key 'Hostname' in [server]");
	/* The first error wins, even when inih's comes first. */
	expect_err("[server]\nworkers\nbogus = 1\n", 2, "syntax error");
}

static void
test_err_values(void **state)
{
	static const struct { const char *text; int line; const char *want; } cases[] = {
		{ "[server]\nhostname =\n", 2, "bad value for hostname: '' (expected" },
		{ "[server]\nhostname = a b\n", 2, "bad value for hostname: 'a b' (expected" },
		{ "[server]\nworkers = 0\n", 2, "bad value for workers: '0' (expected auto or a number from 1 to 256)" },
		{ "[server]\nworkers = 257\n", 2, "bad value for workers: '257'" },
		{ "[server]\nworkers = many\n", 2, "bad value for workers: 'many'" },
		{ "[server]\nworkers = -1\n", 2, "bad value for workers: '-1'" },
		{ "[server]\nmax_message_size = 50MB\n", 2, "bad value for max_message_size: '50MB' (expected a size like 512, 64k, 50M or 1G)" },
		{ "[server]\nmax_message_size = 0\n", 2, "bad value for max_message_size: '0'" },
		{ "[server]\nmax_message_size = 99999999999G\n", 2, "bad value for max_message_size" },
		{ "[server]\nmax_recipients = 0\n", 2, "bad value for max_recipients: '0' (expected a number from 1 to 100000)" },
		{ "[server]\nmax_recipients = 4294967297\n", 2, "bad value for max_recipients" },
		{ "[server]\nmax_errors = x\n", 2, "bad value for max_errors: 'x'" },
		{ "[server]\ntimeout_command = -5s\n", 2, "bad value for timeout_command: '-5s' (expected a duration like 250ms, 30s, 5m, 1h or 2d)" },
		{ "[server]\ntimeout_command = 0\n", 2, "bad value for timeout_command: '0' (expected a duration from 1ms to 1d)" },
		{ "[server]\ntimeout_data = 2d\n", 2, "bad value for timeout_data: '2d'" },
		{ "[server]\ntimeout_data = 10 minutes\n", 2, "bad value for timeout_data: '10 minutes'" },
		{ "[server]\ndrain_timeout = 99999999999999999999s\n", 2, "bad value for drain_timeout" },
		{ "[server]\nlog =\n", 2, "bad value for log: ''" },
		{ "[server]\nlog_format = xml\n", 2, "bad value for log_format: 'xml' (expected text or json)" },
		{ "[server]\nlog_level = trace\n", 2, "bad value for log_level: 'trace' (expected error, warn, info or debug)" },
		{ "[listener a]\nlisten = nowhere\n", 2, "bad value for listen: 'nowhere' (expected host:port" },
		{ "[listener a]\nlisten = 127.0.0.1:25,\n", 2, "bad value for listen: '127.0.0.1:25,' (expected a comma-separated list" },
		{ "[listener a]\nlisten = 127.0.0.1:25, bad\n", 2, "bad value for listen: 'bad'" },
		{ "[listener a]\nlisten =\n", 2, "bad value for listen: ''" },
		{ "[listener a]\nmode = smtp\n", 2, "bad value for mode: 'smtp' (expected relay or submission)" },
		{ "[listener a]\ntls = yes\n", 2, "bad value for tls: 'yes' (expected none, starttls or implicit)" },
		{ "[listener a]\nrequire_tls = maybe\n", 2, "bad value for require_tls: 'maybe' (expected yes or no)" },
		{ "[listener a]\nproxy_protocol = v3\n", 2, "bad value for proxy_protocol: 'v3' (expected off, v1, v2 or auto)" },
		{ "[listener a]\nproxy_trusted = 10.0.0.0/33\n", 2, "bad value for proxy_trusted: '10.0.0.0/33'" },
		{ "[listener a]\nproxy_trusted = ::1/129\n", 2, "bad value for proxy_trusted: '::1/129'" },
		{ "[listener a]\nproxy_trusted = 10.0.0.0/8,,::1\n", 2, "bad value for proxy_trusted: '10.0.0.0/8,,::1'" },
		{ "[listener a]\nproxy_trusted = example.test\n", 2, "bad value for proxy_trusted: 'example.test'" },
		{ "[listener a]\nrelay_domains = a.test, , b.test\n", 2, "bad value for relay_domains: 'a.test, , b.test'" },
		{ "[listener a]\nrelay_domains = user@a.test\n", 2, "bad value for relay_domains: 'user@a.test'" },
		{ "[listener a]\nrelay_domains = *.a.test\n", 2, "bad value for relay_domains: '*.a.test'" },
		{ "[listener a]\nbackends = x,\n", 2, "bad value for backends: 'x,'" },
		{ "[backend b]\naddress = 127.0.0.1\n", 2, "bad value for address: '127.0.0.1' (expected host:port" },
		{ "[backend b]\nprotocol = http\n", 2, "bad value for protocol: 'http' (expected smtp or lmtp)" },
		{ "[backend b]\nweight = 0\n", 2, "bad value for weight: '0' (expected a number from 1 to 1000)" },
		{ "[backend b]\nweight = 1001\n", 2, "bad value for weight: '1001'" },
		{ "[backend b]\nmax_connections = 0\n", 2, "bad value for max_connections: '0' (expected a number from 1 to 100000)" },
		{ "[backend b]\nmax_connections = 100001\n", 2, "bad value for max_connections: '100001'" },
		{ "[backend b]\ntls = implicit\n", 2, "bad value for tls: 'implicit' (expected no or starttls)" },
		{ "[backend b]\ntls_verify = 2\n", 2, "bad value for tls_verify: '2' (expected yes or no)" },
		{ "[backend b]\ntls_ca =\n", 2, "bad value for tls_ca: ''" },
		{ "[backend b]\nforward_client = all\n", 2, "bad value for forward_client: 'all' (expected none, xclient or xforward)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_err(cases[i].text, cases[i].line, cases[i].want);
}

static void
test_err_validation(void **state)
{
	(void)state;
	expect_err(BACKEND, 0, "no [listener NAME] section");
	expect_err(LISTENER, 0, "no [backend NAME] section");
	expect_err("", 0, "no [listener NAME] section");
	expect_err("; only a comment\n[server]\n", 0, "no [listener NAME] section");
	expect_err(BACKEND "\n[listener smtp]\nrelay_domains = *\n", 4, "listener smtp: listen is required");
	expect_err(BACKEND "[listener smtp]\nlisten = 127.0.0.1:2525\n", 3,
		   "listener smtp: relay_domains is required in relay mode (use '*' to accept any domain)");
	expect_err(LISTENER "[backend sink]\nweight = 2\n", 4, "backend sink: address is required");
	expect_err(LISTENER "[backend sink]\n", 4, "backend sink: address is required");
	expect_err(LISTENER "backends = sink, other\n" BACKEND, 4, "listener smtp: no [backend other] in this file");
	expect_err(LISTENER "backends = sink, sink\n" BACKEND, 4, "backend sink is named twice");
	expect_err(LISTENER BACKEND "[listener two]\nrelay_domains = *\nlisten = [::1]:1, 127.0.0.1:2525\n",
		   8, "listen address 127.0.0.1:2525 is already used by listener smtp (line 2)");
	expect_err("[listener smtp]\nrelay_domains = *\nlisten = 127.0.0.1:1, 127.0.0.1:1\n" BACKEND,
		   3, "listen address 127.0.0.1:1 is given twice");
	/* Validation reports the first problem in file order. */
	expect_err("[backend b]\n[listener a]\n", 1, "backend b: address is required");
	expect_err("[listener a]\n[backend b]\n", 1, "listener a: listen is required");
}

static void
test_err_not_supported(void **state)
{
	static const struct { const char *key; const char *text; } cases[] = {
		{ "tls = starttls", LISTENER "tls = starttls\n" BACKEND },
		{ "tls = implicit", LISTENER "tls = implicit\n" BACKEND },
		{ "require_tls = yes", LISTENER "require_tls = true\n" BACKEND },
		{ "mode = submission", LISTENER "mode = submission\n" BACKEND },
		{ "proxy_protocol = v1", LISTENER "proxy_protocol = v1\n" BACKEND },
		{ "proxy_protocol = v2", LISTENER "proxy_protocol = v2\n" BACKEND },
		{ "proxy_protocol = auto", LISTENER "proxy_protocol = auto\n" BACKEND },
		{ "tls = starttls", BACKEND LISTENER "[backend two]\naddress = 127.0.0.1:1\ntls = starttls\n" },
		{ "protocol = lmtp", BACKEND LISTENER "[backend two]\naddress = 127.0.0.1:1\nprotocol = lmtp\n" },
		{ "forward_client = xclient", BACKEND LISTENER "[backend two]\naddress = 127.0.0.1:1\nforward_client = xclient\n" },
		{ "forward_client = xforward", BACKEND LISTENER "[backend two]\naddress = 127.0.0.1:1\nforward_client = xforward\n" },
	};
	char want[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), "%s is not supported by this version", cases[i].key);
		/* The refused key is always on line 4 or 8 of these files. */
		expect_err(cases[i].text, cases[i].text[1] == 'l' ? 4 : 8, want);
	}
	/* A relay listener that asks for submission still gets the submission refusal first. */
	expect_err(BACKEND "[listener s]\nlisten = 127.0.0.1:587\nmode = submission\n", 5,
		   "mode = submission is not supported by this version");
}

static void
test_err_file(void **state)
{
	struct config *c = (struct config *)1;
	char err[256];

	(void)state;
	assert_int_equal(config_load("/nonexistent/mxgate.conf", &c, err, sizeof(err)), -1);
	assert_null(c);
	assert_true(strncmp(err, "/nonexistent/mxgate.conf:0: ", 28) == 0);
	/* A NUL byte in the file. */
	{
		static const char text[] = "[server]\nhostname = a\0b\n";
		char path[] = "/tmp/mxgate-test-config-XXXXXX", prefix[64];
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
		close(fd);
		assert_int_equal(config_load(path, &c, err, sizeof(err)), -1);
		unlink(path);
		snprintf(prefix, sizeof(prefix), "%s:2: ", path);
		assert_true(strncmp(err, prefix, strlen(prefix)) == 0);
	}
	/* A tiny error buffer is still terminated. */
	err[0] = 'x';
	assert_int_equal(config_load("/nonexistent/mxgate.conf", &c, err, 8), -1);
	assert_int_equal(strlen(err), 7);
}

/* The example shipped in conf/ must load (when run from the project root). */
static void
test_example_conf(void **state)
{
	struct config *c = NULL;
	char err[512];

	(void)state;
	if (access("conf/mxgate.conf", R_OK) != 0)
		skip();
	if (config_load("conf/mxgate.conf", &c, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c->hostname, "mx.example.test");
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "smtp");
	assert_addr(&c->listeners[0].addrs[0], "127.0.0.1:2525");
	assert_int_equal(c->listeners[0].relay_any, 1);
	assert_int_equal(c->nbackends, 1);
	assert_string_equal(c->backends[0].name, "sink");
	assert_addr(&c->backends[0].addr, "127.0.0.1:2600");
	config_unref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_case_insensitive),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_err_sections),
		cmocka_unit_test(test_err_keys),
		cmocka_unit_test(test_err_values),
		cmocka_unit_test(test_err_validation),
		cmocka_unit_test(test_err_not_supported),
		cmocka_unit_test(test_err_file),
		cmocka_unit_test(test_example_conf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
