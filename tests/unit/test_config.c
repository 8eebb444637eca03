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

/* Like expect_err, but the message after "PATH:LINE: " must be exactly want. */
static void
expect_err_exact(const char *text, int line, const char *want)
{
	struct config *c = (struct config *)1;
	char err[512], full[768];
	const char *path = write_conf(text);
	int rc = config_load(path, &c, err, sizeof(err));

	unlink(path);
	snprintf(full, sizeof(full), "%s:%d: %s", path, line, want);
	if (rc != -1 || c != NULL || strcmp(err, full) != 0)
		fail_msg("rc=%d err='%s'\nwanted '%s'\n--- config ---\n%s", rc, err, full, text);
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
		"tls = starttls\n"
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
		"weight = 7\r\n"
		"congestion_control = reno\r\n";
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
	assert_int_equal(b->tls, 1);
	assert_int_equal(b->tls_verify, 0);
	assert_string_equal(b->tls_ca, "/etc/ssl/ca.pem");
	assert_int_equal(b->forward_client, CFG_FORWARD_NONE);
	assert_string_equal(b->congestion, CFG_CONGESTION_DEFAULT);

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
	assert_string_equal(b->congestion, "reno");	/* kept; unix links skip it */

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
	assert_int_equal(c->max_junk_commands, 0);
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
	assert_string_equal(b->congestion, "cubic");
	config_unref(c);
}

/*
 * congestion_control: a name the kernel takes (reno is always built in),
 * "system" for the system's (stored empty); a malformed name, or one
 * the kernel refuses, is an error at its line.
 */
static void
test_congestion(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok(LISTENER BACKEND "congestion_control = reno\n");
	assert_string_equal(c->backends[0].congestion, "reno");
	config_unref(c);
	c = load_ok(LISTENER BACKEND "congestion_control = System\n");
	assert_string_equal(c->backends[0].congestion, "");
	config_unref(c);
	expect_err(LISTENER BACKEND "congestion_control = Bad-X\n", 6,
		   "backend sink: bad value for congestion_control: 'Bad-X' (expected system, or a TCP congestion control");
	expect_err(LISTENER BACKEND "congestion_control = abcdefghijklmnop\n", 6,
		   "bad value for congestion_control: 'abcdefghijklmnop'");
	expect_err(LISTENER BACKEND "congestion_control = nosuch_cc\n", 6,
		   "backend sink: congestion_control = nosuch_cc cannot be used here: No such file or directory");
	expect_err(LISTENER BACKEND "congestion_control =\n", 6, "bad value for congestion_control: ''");
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
		"route example.test", "dnsbl", "metrics",
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
		{ "[server]\nmax_junk_commands = -1\n", 2, "max_junk_commands" },
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
	(void)state;
	/* LMTP backends come later: refused, never ignored. */
	expect_err(BACKEND LISTENER "[backend two]\naddress = 127.0.0.1:1\nprotocol = lmtp\n", 8,
		   "protocol = lmtp is not supported by this version");
}

/* ------------------------------------------------------------------ */
/* [redis], [limits], [access], PROXY and forward_client              */
/* ------------------------------------------------------------------ */

/* c is the network text ("2001:db8::/32"), in canonical (masked) form. */
static void
assert_cidr(const struct cidr *c, const char *want)
{
	char addr[64];
	unsigned char bin[16];
	const char *slash = strchr(want, '/');
	int family = strchr(want, ':') != NULL ? AF_INET6 : AF_INET;

	assert_non_null(slash);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - want), want);
	assert_int_equal(inet_pton(family, addr, bin), 1);
	if (c->family != family || c->prefix != (unsigned)atoi(slash + 1) ||
	    memcmp(c->addr, bin, family == AF_INET ? 4 : 16) != 0)
		fail_msg("network family %d prefix %u, wanted %s", c->family, c->prefix, want);
}

static void
test_redis(void **state)
{
	struct config *c;

	(void)state;
	/* Absent: the embedded store; the defaults are still filled in. */
	c = load_ok(LISTENER BACKEND);
	assert_int_equal(c->redis.enabled, 0);
	assert_addr(&c->redis.addr, "127.0.0.1:6379");
	assert_null(c->redis.password);
	assert_string_equal(c->redis.key_prefix, "mxgate:");
	assert_int_equal(c->redis.timeout_ms, 100);
	assert_int_equal(c->redis.on_failure_tempfail, 0);
	config_unref(c);

	/* Present and empty: enabled, with the defaults. */
	c = load_ok(LISTENER BACKEND "[redis]\n");
	assert_int_equal(c->redis.enabled, 1);
	assert_addr(&c->redis.addr, "127.0.0.1:6379");
	assert_null(c->redis.password);
	assert_string_equal(c->redis.key_prefix, "mxgate:");
	assert_int_equal(c->redis.timeout_ms, 100);
	assert_int_equal(c->redis.on_failure_tempfail, 0);
	config_unref(c);

	c = load_ok("[redis]\naddress = [::1]:6380\npassword = s3cret with space\n"
		    "key_prefix = mx1:{limits}:\ntimeout = 1m\non_failure = TempFail\n" LISTENER BACKEND);
	assert_int_equal(c->redis.enabled, 1);
	assert_addr(&c->redis.addr, "[::1]:6380");
	assert_string_equal(c->redis.password, "s3cret with space");
	assert_string_equal(c->redis.key_prefix, "mx1:{limits}:");
	assert_int_equal(c->redis.timeout_ms, 60000);
	assert_int_equal(c->redis.on_failure_tempfail, 1);
	config_unref(c);

	/* "password =" is allowed: no AUTH. */
	c = load_ok(LISTENER BACKEND "[redis]\naddress = unix:/run/redis/redis.sock\npassword =\n"
		    "timeout = 1ms\non_failure = allow\n");
	assert_addr(&c->redis.addr, "unix:/run/redis/redis.sock");
	assert_string_equal(c->redis.password, "");
	assert_int_equal(c->redis.timeout_ms, 1);
	assert_int_equal(c->redis.on_failure_tempfail, 0);
	config_unref(c);
}

static void
test_limits(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok(LISTENER BACKEND);
	assert_int_equal(c->limits.enabled, 0);
	assert_int_equal(c->limits.connection_rate.count, 0);
	assert_int_equal(c->limits.concurrency, 0);
	assert_int_equal(c->limits.ipv6_prefix, 64);
	config_unref(c);

	/* Present: enabled; every key absent = that limit off. */
	c = load_ok(LISTENER BACKEND "[limits]\n");
	assert_int_equal(c->limits.enabled, 1);
	assert_int_equal(c->limits.connection_rate.count, 0);
	assert_int_equal(c->limits.connection_rate.per_ms, 0);
	assert_int_equal(c->limits.concurrency, 0);
	assert_int_equal(c->limits.message_rate.count, 0);
	assert_int_equal(c->limits.recipient_rate.count, 0);
	assert_int_equal(c->limits.auth_failure_rate.count, 0);
	assert_int_equal(c->limits.ipv6_prefix, 64);
	config_unref(c);

	c = load_ok(LISTENER BACKEND "[limits]\nconnection_rate = 60/1m\nconcurrency = 20\n"
		    "message_rate = 200/1h\nrecipient_rate = 1000/1h\nauth_failure_rate = 5/10m\n"
		    "ipv6_prefix = 48\n");
	assert_int_equal(c->limits.enabled, 1);
	assert_int_equal(c->limits.connection_rate.count, 60);
	assert_int_equal(c->limits.connection_rate.per_ms, 60000);
	assert_int_equal(c->limits.concurrency, 20);
	assert_int_equal(c->limits.message_rate.count, 200);
	assert_int_equal(c->limits.message_rate.per_ms, 3600000);
	assert_int_equal(c->limits.recipient_rate.count, 1000);
	assert_int_equal(c->limits.recipient_rate.per_ms, 3600000);
	assert_int_equal(c->limits.auth_failure_rate.count, 5);
	assert_int_equal(c->limits.auth_failure_rate.per_ms, 600000);
	assert_int_equal(c->limits.ipv6_prefix, 48);
	config_unref(c);

	/* Bounds, and a single limit leaving the others off. */
	c = load_ok("[limits]\nconcurrency = 100000\nipv6_prefix = 128\n" LISTENER BACKEND);
	assert_int_equal(c->limits.concurrency, 100000);
	assert_int_equal(c->limits.ipv6_prefix, 128);
	assert_int_equal(c->limits.message_rate.count, 0);
	config_unref(c);
	c = load_ok("[limits]\nconcurrency = 1\nipv6_prefix = 1\nmessage_rate = 1/250ms\n" LISTENER BACKEND);
	assert_int_equal(c->limits.concurrency, 1);
	assert_int_equal(c->limits.ipv6_prefix, 1);
	assert_int_equal(c->limits.message_rate.count, 1);
	assert_int_equal(c->limits.message_rate.per_ms, 250);
	assert_int_equal(c->limits.connection_rate.count, 0);
	config_unref(c);
}

static void
test_access(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok(LISTENER BACKEND);
	assert_int_equal(c->access.allow.n, 0);
	assert_null(c->access.allow.v);
	assert_int_equal(c->access.deny.n, 0);
	assert_null(c->access.deny.v);
	config_unref(c);

	/* An empty section: no lists. */
	c = load_ok(LISTENER BACKEND "[access]\n");
	assert_int_equal(c->access.allow.n, 0);
	assert_int_equal(c->access.deny.n, 0);
	config_unref(c);

	c = load_ok(LISTENER BACKEND "[access]\n"
		    "allow = 10.0.0.0/8, 2001:db8::/32 , 192.0.2.7, ::1, fd00:1:2:3::/64\n"
		    "deny = 192.0.2.0/24,2001:DB8:BAD::/48, 198.51.100.9/16, 2001:db8::1/0\n");
	assert_int_equal(c->access.allow.n, 5);
	assert_cidr(&c->access.allow.v[0], "10.0.0.0/8");
	assert_cidr(&c->access.allow.v[1], "2001:db8::/32");
	assert_cidr(&c->access.allow.v[2], "192.0.2.7/32");
	assert_cidr(&c->access.allow.v[3], "::1/128");
	assert_cidr(&c->access.allow.v[4], "fd00:1:2:3::/64");
	assert_int_equal(c->access.deny.n, 4);
	assert_cidr(&c->access.deny.v[0], "192.0.2.0/24");
	assert_cidr(&c->access.deny.v[1], "2001:db8:bad::/48");
	assert_cidr(&c->access.deny.v[2], "198.51.0.0/16");	/* host bits cleared */
	assert_cidr(&c->access.deny.v[3], "::/0");
	config_unref(c);

	/* Only one of the two. */
	c = load_ok("[access]\ndeny = 2001:db8::/32\n" LISTENER BACKEND);
	assert_int_equal(c->access.allow.n, 0);
	assert_int_equal(c->access.deny.n, 1);
	assert_cidr(&c->access.deny.v[0], "2001:db8::/32");
	config_unref(c);
}

static void
test_proxy_and_forward(void **state)
{
	static const struct { const char *word; enum cfg_proxy_proto v; } protos[] = {
		{ "off", CFG_PROXY_OFF }, { "v1", CFG_PROXY_V1 }, { "v2", CFG_PROXY_V2 },
		{ "auto", CFG_PROXY_AUTO }, { "V2", CFG_PROXY_V2 },
	};
	static const struct { const char *word; enum cfg_forward v; } fwd[] = {
		{ "none", CFG_FORWARD_NONE }, { "xclient", CFG_FORWARD_XCLIENT },
		{ "xforward", CFG_FORWARD_XFORWARD }, { "XForward", CFG_FORWARD_XFORWARD },
	};
	char text[512];
	struct config *c;

	(void)state;
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		snprintf(text, sizeof(text), LISTENER "proxy_protocol = %s\n" BACKEND, protos[i].word);
		c = load_ok(text);
		assert_int_equal(c->listeners[0].proxy_protocol, protos[i].v);
		config_unref(c);
	}
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++) {
		snprintf(text, sizeof(text), LISTENER BACKEND "forward_client = %s\n", fwd[i].word);
		c = load_ok(text);
		assert_int_equal(c->backends[0].forward_client, fwd[i].v);
		config_unref(c);
	}

	/* Default trusted peers, parsed; the PROXY deadline is capped at 10s. */
	c = load_ok(LISTENER "proxy_protocol = auto\n" BACKEND);
	struct cfg_listener *l = &c->listeners[0];
	assert_int_equal(l->proxy_trusted_nets.n, 2);
	assert_cidr(&l->proxy_trusted_nets.v[0], "127.0.0.0/8");
	assert_cidr(&l->proxy_trusted_nets.v[1], "::1/128");
	assert_int_equal(l->proxy_timeout_ms, 10000);
	config_unref(c);

	/* Given ones; a shorter command timeout (even set after the listener) wins. */
	c = load_ok(LISTENER "proxy_protocol = v2\nproxy_trusted = 10.1.2.3/8, 192.0.2.1, 2001:db8::/32\n"
		    BACKEND "[server]\ntimeout_command = 3s\n"
		    "[listener two]\nlisten = 127.0.0.1:2526\nrelay_domains = *\n"
		    "proxy_trusted = fd00::1\n");
	l = &c->listeners[0];
	assert_int_equal(l->nproxy_trusted, 3);
	assert_int_equal(l->proxy_trusted_nets.n, 3);
	assert_cidr(&l->proxy_trusted_nets.v[0], "10.0.0.0/8");
	assert_cidr(&l->proxy_trusted_nets.v[1], "192.0.2.1/32");
	assert_cidr(&l->proxy_trusted_nets.v[2], "2001:db8::/32");
	assert_int_equal(l->proxy_timeout_ms, 3000);
	l = &c->listeners[1];
	assert_int_equal(l->proxy_protocol, CFG_PROXY_OFF);
	assert_int_equal(l->proxy_trusted_nets.n, 1);
	assert_cidr(&l->proxy_trusted_nets.v[0], "fd00::1/128");
	assert_int_equal(l->proxy_timeout_ms, 3000);
	config_unref(c);

	c = load_ok("[server]\ntimeout_command = 10001ms\n" LISTENER BACKEND);
	assert_int_equal(c->listeners[0].proxy_timeout_ms, 10000);
	config_unref(c);
}

static void
test_err_new_sections(void **state)
{
	/* Each file: the key on line 2 (or the header on the line given). */
	static const struct { const char *text; int line; const char *want; } cases[] = {
		/* [redis] */
		{ "[redis]\naddress = localhost:6379\n", 2,
		  "bad value for address: 'localhost:6379' (expected host:port, [ipv6]:port or unix:/path: " },
		{ "[redis]\naddress = 127.0.0.1\n", 2, "bad value for address: '127.0.0.1' (expected host:port" },
		{ "[redis]\naddress =\n", 2, "bad value for address: ''" },
		{ "[redis]\nkey_prefix =\n", 2,
		  "bad value for key_prefix: '' (expected a non-empty string without spaces, at most 255 bytes)" },
		{ "[redis]\nkey_prefix = a b\n", 2, "bad value for key_prefix: 'a b'" },
		{ "[redis]\ntimeout = 0\n", 2, "bad value for timeout: '0' (expected a duration from 1ms to 1m)" },
		{ "[redis]\ntimeout = 61s\n", 2, "bad value for timeout: '61s' (expected a duration from 1ms to 1m)" },
		{ "[redis]\ntimeout = 1h\n", 2, "bad value for timeout: '1h' (expected a duration from 1ms to 1m)" },
		{ "[redis]\ntimeout = fast\n", 2,
		  "bad value for timeout: 'fast' (expected a duration like 250ms, 30s, 5m, 1h or 2d)" },
		{ "[redis]\non_failure = deny\n", 2, "bad value for on_failure: 'deny' (expected allow or tempfail)" },
		{ "[redis]\non_failure =\n", 2, "bad value for on_failure: '' (expected allow or tempfail)" },
		{ "[redis]\nhost = 127.0.0.1\n", 2, "unknown key 'host' in [redis]" },
		{ "[redis]\ntimeout = 1s\ntimeout = 2s\n", 3, "duplicate key 'timeout' in [redis] (first at line 2)" },
		/* [limits] */
		{ "[limits]\nconnection_rate = 60\n", 2,
		  "bad value for connection_rate: '60' (expected COUNT/DURATION with a COUNT of at least 1, like 60/1m or 5/10m)" },
		{ "[limits]\nconnection_rate = 0/1m\n", 2, "bad value for connection_rate: '0/1m' (expected COUNT/DURATION" },
		{ "[limits]\nmessage_rate = 10/0s\n", 2, "bad value for message_rate: '10/0s' (expected COUNT/DURATION" },
		{ "[limits]\nrecipient_rate = 10 per hour\n", 2, "bad value for recipient_rate: '10 per hour'" },
		{ "[limits]\nauth_failure_rate = 5/10M\n", 2, "bad value for auth_failure_rate: '5/10M'" },
		{ "[limits]\nauth_failure_rate =\n", 2, "bad value for auth_failure_rate: ''" },
		{ "[limits]\nconcurrency = 0\n", 2,
		  "bad value for concurrency: '0' (expected a number from 1 to 100000)" },
		{ "[limits]\nconcurrency = 100001\n", 2, "bad value for concurrency: '100001'" },
		{ "[limits]\nconcurrency = 20/1m\n", 2, "bad value for concurrency: '20/1m'" },
		{ "[limits]\nipv6_prefix = 0\n", 2, "bad value for ipv6_prefix: '0' (expected a number from 1 to 128)" },
		{ "[limits]\nipv6_prefix = 129\n", 2, "bad value for ipv6_prefix: '129'" },
		{ "[limits]\nipv6_prefix = /64\n", 2, "bad value for ipv6_prefix: '/64'" },
		{ "[limits]\nrate = 1/1s\n", 2, "unknown key 'rate' in [limits]" },
		{ "[limits]\nconcurrency = 1\n\nconcurrency = 2\n", 4,
		  "duplicate key 'concurrency' in [limits] (first at line 2)" },
		/* [access] */
		{ "[access]\ndeny = 192.0.2.0/33\n", 2,
		  "bad value for deny: '192.0.2.0/33' (expected an address or network such as 192.0.2.0/24 or 2001:db8::/32)" },
		{ "[access]\nallow = 2001:db8::/129\n", 2, "bad value for allow: '2001:db8::/129' (expected an address" },
		{ "[access]\nallow = 10.0.0.0/8, 2001:db8::/32, example.test\n", 2, "bad value for allow: 'example.test'" },
		{ "[access]\nallow = 10.0.0.0/8,,::1\n", 2,
		  "bad value for allow: '10.0.0.0/8,,::1' (expected a comma-separated list without empty elements)" },
		{ "[access]\nallow =\n", 2, "bad value for allow: ''" },
		{ "[access]\ndeny = 10.0.0.0/\n", 2, "bad value for deny: '10.0.0.0/'" },
		{ "[access]\ndeny = 2001:db8:::/32\n", 2, "bad value for deny: '2001:db8:::/32'" },
		{ "[access]\ndeny = 10.0.0.0/8\nallow = 1.2.3.4/-1\n", 3, "bad value for allow: '1.2.3.4/-1'" },
		{ "[access]\ntrusted = 10.0.0.0/8\n", 2, "unknown key 'trusted' in [access]" },
		{ "[access]\nallow = ::1\nallow = 10.0.0.0/8\n", 3, "duplicate key 'allow' in [access] (first at line 2)" },
		/* Sections: once each, no name. */
		{ "[redis]\n\n[redis]\n", 3, "duplicate section [redis] (first at line 1)" },
		{ "[limits]\nconcurrency = 5\n[access]\n[limits]\nconcurrency = 5\n", 4,
		  "duplicate section [limits] (first at line 1)" },
		{ "[access]\nallow = 10.0.0.0/8\n[access]\n", 3, "duplicate section [access] (first at line 1)" },
		{ "[redis main]\n", 1, "section [redis] takes no name" },
		{ "[limits x]\n", 1, "section [limits] takes no name" },
		{ "[access x]\n", 1, "section [access] takes no name" },
		/* The listener's proxy_trusted says the same as the access lists. */
		{ "[listener a]\nproxy_trusted = 10.0.0.0/8, nope\n", 2,
		  "bad value for proxy_trusted: 'nope' (expected an address or network such as 192.0.2.0/24 or 2001:db8::/32)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_err(cases[i].text, cases[i].line, cases[i].want);

	/* Complete messages, exactly. */
	expect_err_exact(LISTENER BACKEND "[access]\nallow = x\n", 7,
			 "bad value for allow: 'x' (expected an address or network such as "
			 "192.0.2.0/24 or 2001:db8::/32)");
	expect_err_exact(LISTENER BACKEND "[access]\ndeny = 10.0.0.0/8, ::1, 2001:db8::/32, 10.0.0.0/08\n", 7,
			 "bad value for deny: '10.0.0.0/08' (expected an address or network such as "
			 "192.0.2.0/24 or 2001:db8::/32)");
	expect_err_exact(LISTENER BACKEND "[redis]\ntimeout = 2m\n", 7,
			 "bad value for timeout: '2m' (expected a duration from 1ms to 1m)");
	expect_err_exact(LISTENER BACKEND "[redis]\n[limits]\n[access]\n[redis]\n", 9,
			 "duplicate section [redis] (first at line 6)");
	expect_err_exact(LISTENER BACKEND "[limits]\nipv6_prefix = 64\nmessage_rate = 1/1w\n", 8,
			 "bad value for message_rate: '1/1w' (expected COUNT/DURATION with a COUNT of at "
			 "least 1, like 60/1m or 5/10m)");
	/* The existing bounds messages are unchanged by the new ones. */
	expect_err_exact("[server]\ntimeout_command = 0\n", 2,
			 "bad value for timeout_command: '0' (expected a duration from 1ms to 1d)");
	expect_err_exact("[server]\ndrain_timeout = 2d\n", 2,
			 "bad value for drain_timeout: '2d' (expected a duration from 0 to 1d)");

	/* A password is never repeated in the message. */
	expect_err_exact("[redis]\npassword = top\x01secret\n", 2,
			 "bad value for password (expected a string without control characters; "
			 "the value is not shown)");

	/* Errors after a new section has allocated (LeakSanitizer checks the frees). */
	expect_err(LISTENER BACKEND "[redis]\npassword = x\nkey_prefix = p:\n[access]\nallow = ::1\n"
		   "deny = 10.0.0.0/8\n[limits]\nconcurrency = 0\n", 13, "bad value for concurrency");
	expect_err("[access]\nallow = ::1\ndeny = 10.0.0.0/8\n" LISTENER, 0, "no [backend NAME] section");
	expect_err("[access]\nallow = ::1, 10.0.0.0/8\n" LISTENER "proxy_trusted = ::1\n[listener a]\n", 7,
		   "listener a: listen is required");
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

/* ------------------------------------------------------------------ */
/* [tls], [tls HOSTNAME], [auth] and the TLS keys of listeners/backends */
/* ------------------------------------------------------------------ */

static void
test_tls_section(void **state)
{
	static const char text[] =
		"[listener smtp]\n"				/* 1 */
		"listen = 127.0.0.1:2525\n"
		"relay_domains = *\n"
		"tls = starttls\n"
		"require_tls = yes\n"				/* 5 */
		"[listener smtps]\n"
		"listen = 127.0.0.1:2465\n"
		"relay_domains = *\n"
		"tls = implicit\n"
		"[backend sink]\n"				/* 10 */
		"address = 127.0.0.1:2600\n"
		"tls = starttls\n"
		"tls_verify = yes\n"
		"tls_ca = /etc/mxgate/ca.pem\n"
		"[backend other]\n"				/* 15 */
		"address = 127.0.0.1:2601\n"
		"tls = STARTTLS\n"
		"[tls]\n"
		"certificate = /etc/mxgate/server.crt\n"
		"key = /etc/mxgate/server.key\n"		/* 20 */
		"protocols = TLSv1.3\n"
		"session_tickets = no\n"
		"[tls Other.Example.TEST]\n"
		"certificate = /etc/mxgate/other.crt\n"
		"key = /etc/mxgate/other.key\n"			/* 25 */
		"\n"
		"[tls *.wild.example.test]\n"
		"key = /w.key\n"
		"certificate = /w.crt\n";
	struct config *c = load_ok(text);

	(void)state;
	assert_int_equal(c->listeners[0].tls, CFG_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].require_tls, 1);
	assert_int_equal(c->listeners[0].mode, CFG_MODE_RELAY);
	assert_int_equal(c->listeners[1].tls, CFG_TLS_IMPLICIT);
	assert_int_equal(c->listeners[1].require_tls, 0);
	assert_int_equal(c->backends[0].tls, 1);
	assert_int_equal(c->backends[0].tls_verify, 1);
	assert_string_equal(c->backends[0].tls_ca, "/etc/mxgate/ca.pem");
	assert_int_equal(c->backends[1].tls, 1);
	assert_int_equal(c->backends[1].tls_verify, 1);	/* default yes */
	assert_null(c->backends[1].tls_ca);		/* the system bundle */

	assert_int_equal(c->tls.enabled, 1);
	assert_null(c->tls.def.name);
	assert_int_equal(c->tls.def.line, 18);
	assert_string_equal(c->tls.def.certificate, "/etc/mxgate/server.crt");
	assert_string_equal(c->tls.def.key, "/etc/mxgate/server.key");
	assert_int_equal(c->tls.def.keyline[0], 19);	/* errors about the files name these lines */
	assert_int_equal(c->tls.def.keyline[1], 20);
	assert_int_equal(c->tls.protocols, CFG_TLS_V13);
	assert_int_equal(c->tls.session_tickets, 0);

	assert_int_equal(c->tls.nsites, 2);
	assert_string_equal(c->tls.sites[0].name, "other.example.test");	/* lower-cased */
	assert_int_equal(c->tls.sites[0].line, 23);
	assert_string_equal(c->tls.sites[0].certificate, "/etc/mxgate/other.crt");
	assert_string_equal(c->tls.sites[0].key, "/etc/mxgate/other.key");
	assert_int_equal(c->tls.sites[0].keyline[0], 24);
	assert_int_equal(c->tls.sites[0].keyline[1], 25);
	assert_string_equal(c->tls.sites[1].name, "*.wild.example.test");
	assert_int_equal(c->tls.sites[1].line, 27);
	assert_string_equal(c->tls.sites[1].certificate, "/w.crt");
	assert_string_equal(c->tls.sites[1].key, "/w.key");
	assert_int_equal(c->tls.sites[1].keyline[0], 29);	/* certificate, whatever the key order */
	assert_int_equal(c->tls.sites[1].keyline[1], 28);
	assert_int_equal(c->auth.enabled, 0);
	config_unref(c);

	/* Defaults: no [tls] at all; then [tls] with only the files. */
	c = load_ok(LISTENER BACKEND);
	assert_int_equal(c->tls.enabled, 0);
	assert_int_equal(c->tls.nsites, 0);
	assert_int_equal(c->listeners[0].tls, CFG_TLS_NONE);
	assert_int_equal(c->listeners[0].require_tls, 0);
	assert_int_equal(c->backends[0].tls, 0);
	assert_int_equal(c->backends[0].tls_verify, 1);
	config_unref(c);
	c = load_ok(LISTENER BACKEND "[tls]\ncertificate = a.crt\nkey = a.key\n");
	assert_int_equal(c->tls.enabled, 1);
	assert_int_equal(c->tls.protocols, CFG_TLS_V12 | CFG_TLS_V13);
	assert_int_equal(c->tls.session_tickets, 1);
	assert_string_equal(c->tls.def.certificate, "a.crt");
	config_unref(c);

	/* Protocol and mechanism names are case-insensitive lists; "none" is a backend tls too. */
	c = load_ok(LISTENER BACKEND "tls = none\n[tls]\ncertificate = a\nkey = b\n"
		    "protocols = tlsv1.2 , TLSV1.3\nsession_tickets = yes\n");
	assert_int_equal(c->tls.protocols, CFG_TLS_V12 | CFG_TLS_V13);
	assert_int_equal(c->backends[0].tls, 0);
	config_unref(c);
	c = load_ok(LISTENER BACKEND "[tls]\ncertificate = a\nkey = b\nprotocols = TLSv1.2\n");
	assert_int_equal(c->tls.protocols, CFG_TLS_V12);
	config_unref(c);
	/* A [tls] no listener uses is fine (certificates for a later reload, say). */
	c = load_ok("[tls]\ncertificate = a\nkey = b\n" LISTENER "tls = none\n" BACKEND);
	assert_int_equal(c->listeners[0].tls, CFG_TLS_NONE);
	config_unref(c);
}

static void
test_auth_section(void **state)
{
	static const char text[] =
		"[listener submission]\n"			/* 1 */
		"listen = 127.0.0.1:2587\n"
		"mode = submission\n"
		"tls = starttls\n"
		"[listener smtps]\n"				/* 5 */
		"listen = 127.0.0.1:2465\n"
		"mode = Submission\n"
		"tls = implicit\n"
		"relay_domains = example.test\n"
		"[backend sink]\n"				/* 10 */
		"address = 127.0.0.1:2600\n"
		"forward_client = xclient\n"
		"[tls]\n"
		"certificate = s.crt\n"
		"key = s.key\n"					/* 15 */
		"[auth]\n"
		"mechanisms = login\n"
		"users = /etc/mxgate/users\n"
		"[limits]\n"
		"auth_failure_rate = 2/1m\n";			/* 20 */
	struct config *c = load_ok(text);

	(void)state;
	/* submission needs no relay_domains: an authenticated client relays anywhere */
	assert_int_equal(c->listeners[0].mode, CFG_MODE_SUBMISSION);
	assert_int_equal(c->listeners[0].nrelay_domains, 0);
	assert_int_equal(c->listeners[0].tls, CFG_TLS_STARTTLS);
	assert_int_equal(c->listeners[1].mode, CFG_MODE_SUBMISSION);
	assert_int_equal(c->listeners[1].tls, CFG_TLS_IMPLICIT);
	assert_int_equal(c->listeners[1].nrelay_domains, 1);
	assert_int_equal(c->auth.enabled, 1);
	assert_string_equal(c->auth.users, "/etc/mxgate/users");
	assert_int_equal(c->auth.users_line, 18);
	assert_int_equal(c->auth.mechanisms, CFG_AUTH_LOGIN);
	assert_int_equal(c->limits.auth_failure_rate.count, 2);
	assert_int_equal(c->limits.auth_failure_rate.per_ms, 60000);
	config_unref(c);

	c = load_ok(LISTENER BACKEND "[auth]\nusers = u\n");
	assert_int_equal(c->auth.enabled, 1);
	assert_int_equal(c->auth.mechanisms, CFG_AUTH_PLAIN | CFG_AUTH_LOGIN);
	assert_int_equal(c->auth.users_line, 7);
	config_unref(c);
	c = load_ok(LISTENER BACKEND "[auth]\nusers = u\nmechanisms = PLAIN, LOGIN\n");
	assert_int_equal(c->auth.mechanisms, CFG_AUTH_PLAIN | CFG_AUTH_LOGIN);
	config_unref(c);
	c = load_ok(LISTENER BACKEND "[auth]\nusers = u\nmechanisms = Plain\n");
	assert_int_equal(c->auth.mechanisms, CFG_AUTH_PLAIN);
	config_unref(c);
	c = load_ok(LISTENER BACKEND);
	assert_int_equal(c->auth.enabled, 0);
	assert_null(c->auth.users);
	config_unref(c);
}

#define TLS_OK "[tls]\ncertificate = s.crt\nkey = s.key\n"
#define AUTH_OK "[auth]\nusers = /etc/mxgate/users\n"

static void
test_err_tls_auth(void **state)
{
	static const struct { const char *text; int line; const char *want; } cases[] = {
		/* listener keys that need a section or another key */
		{ LISTENER "tls = starttls\n" BACKEND, 4,
		  "listener smtp: tls = starttls needs a [tls] section with certificate and key" },
		{ LISTENER "tls = implicit\n" BACKEND, 4,
		  "listener smtp: tls = implicit needs a [tls] section with certificate and key" },
		{ LISTENER "require_tls = yes\n" BACKEND TLS_OK, 4,
		  "listener smtp: require_tls = yes needs tls = starttls (or implicit)" },
		{ LISTENER "tls = none\nrequire_tls = true\n" BACKEND TLS_OK, 5,
		  "listener smtp: require_tls = yes needs tls = starttls" },
		{ LISTENER "mode = submission\ntls = starttls\n" BACKEND TLS_OK, 4,
		  "listener smtp: mode = submission needs an [auth] section with users" },
		{ "[listener s]\nlisten = 127.0.0.1:1\ntls = implicit\nmode = submission\n" BACKEND TLS_OK, 4,
		  "listener s: mode = submission needs an [auth] section" },
		{ LISTENER "mode = submission\n" BACKEND TLS_OK AUTH_OK, 4,
		  "listener smtp: mode = submission needs tls = starttls or implicit" },
		{ LISTENER "mode = submission\ntls = none\n" BACKEND TLS_OK AUTH_OK, 4,
		  "listener smtp: mode = submission needs tls = starttls or implicit" },
		/* [tls] */
		{ LISTENER BACKEND "[tls]\nkey = s.key\n", 6, "[tls]: certificate is required" },
		{ LISTENER BACKEND "[tls]\ncertificate = s.crt\n", 6, "[tls]: key is required" },
		{ LISTENER BACKEND "[tls]\n", 6, "[tls]: certificate is required" },
		{ LISTENER BACKEND "[tls]\ncertificate =\nkey = k\n", 7, "bad value for certificate: ''" },
		{ LISTENER BACKEND "[tls]\nprotocols = TLSv1.1\n", 7,
		  "bad value for protocols: 'TLSv1.1' (expected TLSv1.2 and/or TLSv1.3)" },
		{ LISTENER BACKEND "[tls]\nprotocols = TLSv1.3, SSLv3\n", 7, "bad value for protocols: 'SSLv3'" },
		{ LISTENER BACKEND "[tls]\nprotocols = TLSv1.2,,TLSv1.3\n", 7, "bad value for protocols" },
		{ LISTENER BACKEND "[tls]\nprotocols =\n", 7, "bad value for protocols: ''" },
		{ LISTENER BACKEND "[tls]\nsession_tickets = sometimes\n", 7,
		  "bad value for session_tickets: 'sometimes' (expected yes or no)" },
		{ LISTENER BACKEND "[tls]\nciphers = HIGH\n", 7, "unknown key 'ciphers' in [tls]" },
		{ LISTENER BACKEND "[tls]\ncertificate = a\ncertificate = b\n", 8,
		  "duplicate key 'certificate' in [tls] (first at line 7)" },
		{ LISTENER BACKEND TLS_OK "[tls]\n", 9, "duplicate section [tls] (first at line 6)" },
		/* [tls HOSTNAME] */
		{ LISTENER BACKEND TLS_OK "[tls a.example.test]\ncertificate = a.crt\n", 9,
		  "[tls a.example.test]: certificate and key are required" },
		{ LISTENER BACKEND TLS_OK "[tls a.example.test]\nkey = a.key\n", 9,
		  "[tls a.example.test]: certificate and key are required" },
		{ LISTENER BACKEND "[tls a.example.test]\ncertificate = a.crt\nkey = a.key\n", 6,
		  "[tls a.example.test] needs a [tls] section" },
		{ LISTENER BACKEND TLS_OK "[tls a_b!.example.test]\n", 9, "bad host name in [tls a_b!.example.test]" },
		{ LISTENER BACKEND TLS_OK "[tls *.]\n", 9, "bad host name in [tls *.]" },
		{ LISTENER BACKEND TLS_OK "[tls a.example.test]\ncertificate = a\nkey = b\n[tls A.Example.Test]\n", 12,
		  "duplicate section [tls a.example.test] (first at line 9)" },
		{ LISTENER BACKEND TLS_OK "[tls a.example.test]\nprotocols = TLSv1.3\n", 10,
		  "unknown key 'protocols' in [tls a.example.test]" },
		{ LISTENER BACKEND TLS_OK "[tls a.example.test]\nkey = a\nkey = b\n", 11,
		  "duplicate key 'key' in [tls a.example.test] (first at line 10)" },
		/* [auth] */
		{ LISTENER BACKEND "[auth]\n", 6, "[auth]: users is required" },
		{ LISTENER BACKEND "[auth]\nmechanisms = PLAIN\n", 6, "[auth]: users is required" },
		{ LISTENER BACKEND "[auth]\nusers =\n", 7, "bad value for users: ''" },
		{ LISTENER BACKEND AUTH_OK "mechanisms = CRAM-MD5\n", 8,
		  "bad value for mechanisms: 'CRAM-MD5' (expected PLAIN and/or LOGIN)" },
		{ LISTENER BACKEND AUTH_OK "mechanisms = PLAIN, XOAUTH2\n", 8, "bad value for mechanisms: 'XOAUTH2'" },
		{ LISTENER BACKEND AUTH_OK "mechanisms =\n", 8, "bad value for mechanisms: ''" },
		{ LISTENER BACKEND AUTH_OK "realm = example.test\n", 8, "unknown key 'realm' in [auth]" },
		{ LISTENER BACKEND AUTH_OK "users = other\n", 8, "duplicate key 'users' in [auth] (first at line 7)" },
		{ LISTENER BACKEND AUTH_OK "[auth]\n", 8, "duplicate section [auth] (first at line 6)" },
		{ LISTENER BACKEND "[auth main]\n", 6, "section [auth] takes no name" },
		/* backends */
		{ LISTENER BACKEND "tls_ca = /ca.pem\n", 6, "backend sink: tls_ca needs tls = starttls" },
		{ LISTENER BACKEND "tls = no\ntls_ca = /ca.pem\n", 7, "backend sink: tls_ca needs tls = starttls" },
		{ LISTENER BACKEND "tls = yes\n", 6, "bad value for tls: 'yes' (expected no or starttls)" },
		/* [limits] auth_failure_rate */
		{ LISTENER BACKEND "[limits]\nauth_failure_rate = 0/1m\n", 7, "bad value for auth_failure_rate: '0/1m'" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_err(cases[i].text, cases[i].line, cases[i].want);

	/* Complete messages, exactly. */
	expect_err_exact(LISTENER "tls = starttls\n" BACKEND, 4,
			 "listener smtp: tls = starttls needs a [tls] section with certificate and key");
	expect_err_exact(LISTENER BACKEND "[tls]\nsession_tickets = 2\n", 7,
			 "bad value for session_tickets: '2' (expected yes or no)");

	/* Errors after [tls], [tls HOSTNAME] and [auth] have allocated (LeakSanitizer checks the frees). */
	expect_err(TLS_OK "[tls a.example.test]\ncertificate = a\nkey = b\n" AUTH_OK
		   "mechanisms = LOGIN\n" LISTENER "bogus = 1\n", 13, "unknown key 'bogus' in [listener smtp]");
	expect_err(TLS_OK "[tls a.example.test]\ncertificate = a\nkey = b\n" AUTH_OK LISTENER, 0,
		   "no [backend NAME] section");
}

/*
 * Validation reports the first problem in file order (see
 * test_err_validation), [tls], [tls HOSTNAME] and [auth] included.
 */
static void
test_err_tls_auth_file_order(void **state)
{
	(void)state;
	expect_err("[auth]\n" LISTENER "tls = starttls\n" BACKEND, 1, "[auth]: users is required");
	expect_err(LISTENER "tls_ca = x\n" BACKEND "[auth]\n", 4, "unknown key 'tls_ca' in [listener smtp]");
	expect_err(BACKEND "tls_ca = /ca.pem\n" LISTENER "[auth]\n", 3, "backend sink: tls_ca needs tls = starttls");
	expect_err(LISTENER "tls = implicit\n" BACKEND "[tls a.example.test]\ncertificate = a\nkey = b\n", 4,
		   "listener smtp: tls = implicit needs a [tls] section");
	expect_err(LISTENER "require_tls = yes\n" BACKEND "[tls]\nkey = k\n", 4,
		   "listener smtp: require_tls = yes needs tls = starttls");
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
	/* The demo needs neither Redis nor limits: those stay commented out. */
	assert_int_equal(c->redis.enabled, 0);
	assert_int_equal(c->limits.enabled, 0);
	assert_int_equal(c->access.allow.n, 0);
	assert_int_equal(c->access.deny.n, 0);
	assert_int_equal(c->listeners[0].proxy_protocol, CFG_PROXY_OFF);
	assert_int_equal(c->listeners[0].proxy_trusted_nets.n, 2);
	assert_int_equal(c->backends[0].forward_client, CFG_FORWARD_NONE);
	config_unref(c);
}

/*
 * The [redis], [limits] and [access] examples commented out in conf/
 * must load once uncommented: each runs from its ";[name]" header to the
 * next blank line, its ";key = value" lines being the keys.
 */
static void
test_example_conf_sections(void **state)
{
	FILE *in, *out;
	char line[1024], path[] = "/tmp/mxgate-test-config-XXXXXX", err[512];
	int fd, active = 0, found = 0;
	struct config *c = NULL;

	(void)state;
	in = fopen("conf/mxgate.conf", "r");
	if (in == NULL)
		skip();
	fd = mkstemp(path);
	assert_true(fd >= 0);
	out = fdopen(fd, "w");
	assert_non_null(out);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strcmp(line, ";[redis]\n") == 0 || strcmp(line, ";[limits]\n") == 0 ||
		    strcmp(line, ";[access]\n") == 0) {
			active = 1;
			found++;
		} else if (line[0] == '\n') {
			active = 0;
		}
		if (active && line[0] == ';' && strchr(line, '=') != NULL && line[1] != ' ')
			fputs(line + 1, out);
		else if (active && line[0] == ';' && line[1] == '[')
			fputs(line + 1, out);
		else
			fputs(line, out);
	}
	fclose(in);
	fclose(out);
	assert_int_equal(found, 3);
	if (config_load(path, &c, err, sizeof(err)) != 0) {
		unlink(path);
		fail_msg("%s", err);
	}
	unlink(path);
	assert_int_equal(c->redis.enabled, 1);
	assert_addr(&c->redis.addr, "127.0.0.1:6379");
	assert_string_equal(c->redis.password, "");
	assert_string_equal(c->redis.key_prefix, "mxgate:");
	assert_int_equal(c->redis.timeout_ms, 100);
	assert_int_equal(c->redis.on_failure_tempfail, 0);
	assert_int_equal(c->limits.enabled, 1);
	assert_int_equal(c->limits.connection_rate.count, 60);
	assert_int_equal(c->limits.concurrency, 20);
	assert_int_equal(c->limits.ipv6_prefix, 64);
	assert_int_equal(c->access.allow.n, 2);
	assert_int_equal(c->access.deny.n, 1);
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
		cmocka_unit_test(test_redis),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_proxy_and_forward),
		cmocka_unit_test(test_congestion),
		cmocka_unit_test(test_err_new_sections),
		cmocka_unit_test(test_err_file),
		cmocka_unit_test(test_tls_section),
		cmocka_unit_test(test_auth_section),
		cmocka_unit_test(test_err_tls_auth),
		cmocka_unit_test(test_err_tls_auth_file_order),
		cmocka_unit_test(test_example_conf),
		cmocka_unit_test(test_example_conf_sections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
