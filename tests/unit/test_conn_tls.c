/*
 * test_conn_tls.c - the TLS record layer under conn (core/conn_tls.c) and
 * the contexts of core/tls.c, on a real ring: a server and a client conn
 * joined by a socketpair. Handshake, byte-exact transfer of 1 MB with the
 * receiver pausing after every delivery (so unread ciphertext is stashed
 * and pumped again on resume), clear text queued before the handshake
 * leaving first, close_notify seen as a clean end, garbage instead of a
 * ClientHello failing the handshake, certificate errors, SNI selection.
 * Certificates are made with the openssl CLI into a temporary folder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "ring.h"
#include "timer.h"
#include "tls.h"

static char dir[64];
static char cert[128], key[128], other_cert[128], other_key[128];

struct peer {
	struct conn conn;
	int tls_result;			/* 1 = not yet, 0 ok, <0 failed */
	char *got;
	size_t got_len, got_cap;
	int pause_each;			/* pause after every delivery */
	int eof, eof_err, closed;
};

static struct ring ring;
static struct peer srv, cli;

static void
on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct peer *p = c->owner;

	(void)bid;
	if (p->got_len + len > p->got_cap) {
		p->got_cap = (p->got_len + len) * 2;
		p->got = realloc(p->got, p->got_cap);
		assert_non_null(p->got);
	}
	memcpy(p->got + p->got_len, data, len);
	p->got_len += len;
	if (p->pause_each)
		conn_recv_pause(c);
}

static void
on_eof(struct conn *c, int err)
{
	struct peer *p = c->owner;

	p->eof = 1;
	p->eof_err = err;
	conn_close(c);
}

static void
on_closed(struct conn *c)
{
	struct peer *p = c->owner;

	p->closed = 1;
}

static void
on_tls(struct conn *c, int err)
{
	struct peer *p = c->owner;

	p->tls_result = err;
}

static const struct conn_ops ops = {
	.on_recv = on_recv, .on_eof = on_eof, .on_closed = on_closed, .on_tls = on_tls,
};

/* Runs the ring until cond() or 5 s; the paused receiver is resumed each turn. */
static int (*run_cond)(void);
static uint64_t run_deadline;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
turn(struct ring *r, void *arg)
{
	(void)arg;
	if (srv.pause_each && !srv.conn.closing)
		conn_recv_resume(&srv.conn);
	if (run_cond() || now_ms() > run_deadline)
		r->stop = 1;
}

static int
run_until(int (*cond)(void))
{
	run_cond = cond;
	run_deadline = now_ms() + 5000;
	ring.stop = 0;
	ring_run(&ring, turn, NULL);
	return cond();
}

static int both_ready(void) { return srv.tls_result != 1 && cli.tls_result != 1; }
static int srv_failed(void) { return srv.tls_result != 1 && srv.tls_result != 0; }
static int both_closed(void) { return srv.closed && cli.closed; }

static size_t want_len;
static int srv_got_all(void) { return srv.got_len >= want_len; }
static int cli_got_all(void) { return cli.got_len >= want_len; }
static int srv_eof(void) { return srv.eof; }

static void
pair(void)
{
	int sv[2];

	memset(&srv, 0, sizeof(srv));
	memset(&cli, 0, sizeof(cli));
	srv.tls_result = cli.tls_result = 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn_init(&srv.conn, &ring, sv[0], &ops, &srv);
	conn_init(&cli.conn, &ring, sv[1], &ops, &cli);
	conn_recv_start(&srv.conn);
	conn_recv_start(&cli.conn);
}

static void
unpair(void)
{
	conn_close(&srv.conn);
	conn_close(&cli.conn);
	assert_true(run_until(both_closed));
	free(srv.got);
	free(cli.got);
}

static struct tls_ctx *
server_ctx(const char *c, const char *k, unsigned protocols)
{
	struct tls_server_opts o = { .certificate = c, .key = k, .protocols = protocols,
				     .session_tickets = 1 };
	char err[256];
	struct tls_ctx *t = tls_server_ctx_new(&o, err, sizeof(err));

	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

static struct tls_ctx *
client_ctx(void)
{
	char err[256];
	struct tls_ctx *t = tls_client_ctx_new(0, NULL, err, sizeof(err));

	assert_non_null(t);
	return t;
}

static void
test_handshake_and_bulk(void **state)
{
	struct tls_ctx *sc = server_ctx(cert, key, TLS_V12 | TLS_V13), *cc = client_ctx();
	char *data;
	size_t n = 1 << 20;

	(void)state;
	pair();
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), 0);
	assert_int_equal(conn_tls_start(&cli.conn, cc, 0, "localhost"), 0);
	assert_true(run_until(both_ready));
	assert_int_equal(srv.tls_result, 0);
	assert_int_equal(cli.tls_result, 0);
	assert_string_equal(conn_tls_version(&srv.conn), "TLSv1.3");
	assert_non_null(conn_tls_cipher(&cli.conn));
	assert_string_equal(conn_tls_sni(&srv.conn), "localhost");

	/* 1 MB in uneven writes; the server pauses after every record it gets. */
	data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7 + (i >> 11));
	srv.pause_each = 1;
	for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 % 70001 + 1) {
		size_t k = off + step > n ? n - off : step;
		assert_int_equal(conn_write(&cli.conn, data + off, k), 0);
		if (step % 5 == 0)
			conn_flush(&cli.conn);
	}
	conn_flush(&cli.conn);
	want_len = n;
	assert_true(run_until(srv_got_all));
	assert_int_equal(srv.got_len, n);
	assert_memory_equal(srv.got, data, n);

	/* And back, with conn_write_ref (no copy by the caller's promise). */
	srv.pause_each = 0;
	assert_int_equal(conn_write_ref(&srv.conn, data, 100000), 0);
	conn_flush(&srv.conn);
	want_len = 100000;
	assert_true(run_until(cli_got_all));
	assert_memory_equal(cli.got, data, 100000);

	/* A graceful close sends close_notify: the peer sees a clean end (0). */
	conn_close_after_send(&cli.conn);
	assert_true(run_until(srv_eof));
	assert_int_equal(srv.eof_err, 0);
	unpair();
	free(data);
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static int cli_got_greeting(void) { return cli.got_len >= 11; }

static void
test_clear_text_first(void **state)
{
	struct tls_ctx *sc = server_ctx(cert, key, TLS_V12 | TLS_V13), *cc = client_ctx();

	(void)state;
	pair();
	/* As STARTTLS: the 220 is queued in clear, then TLS starts at once. */
	assert_int_equal(conn_write(&srv.conn, "220 ready\r\n", 11), 0);
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), 0);
	conn_flush(&srv.conn);
	want_len = 11;
	assert_true(run_until(cli_got_greeting));
	assert_memory_equal(cli.got, "220 ready\r\n", 11);
	assert_int_equal(conn_tls_start(&cli.conn, cc, 0, NULL), 0);
	assert_true(run_until(both_ready));
	assert_int_equal(srv.tls_result, 0);
	assert_int_equal(cli.tls_result, 0);
	/* A second start is refused, and says why. */
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), -EALREADY);
	assert_string_equal(conn_tls_start_error(-EALREADY), "connection already under TLS or closing");
	assert_string_equal(conn_tls_start_error(-ENOMEM), "out of memory");
	assert_non_null(strstr(conn_tls_start_error(-EPROTO), "wolfSSL_new"));
	unpair();
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void
test_garbage_fails_handshake(void **state)
{
	struct tls_ctx *sc = server_ctx(cert, key, TLS_V12 | TLS_V13);
	static const char junk[] = "EHLO not-a-client-hello\r\nMAIL FROM:<a@b>\r\n";

	(void)state;
	pair();
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), 0);
	assert_int_equal(conn_write(&cli.conn, junk, sizeof(junk) - 1), 0);
	conn_flush(&cli.conn);
	assert_true(run_until(srv_failed));
	assert_true(srv.tls_result < 0);
	assert_non_null(conn_tls_error(&srv.conn));
	assert_int_equal(srv.got_len, 0);	/* nothing reached on_recv */
	unpair();
	tls_ctx_free(sc);
}

static void
test_tls12_only(void **state)
{
	struct tls_ctx *sc = server_ctx(cert, key, TLS_V12), *cc = client_ctx();

	(void)state;
	pair();
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), 0);
	assert_int_equal(conn_tls_start(&cli.conn, cc, 0, NULL), 0);
	assert_true(run_until(both_ready));
	assert_int_equal(srv.tls_result, 0);
	assert_string_equal(conn_tls_version(&cli.conn), "TLSv1.2");
	unpair();
	tls_ctx_free(sc);
	tls_ctx_free(cc);
}

static void
test_sni_selects_site(void **state)
{
	struct tls_ctx *sc = server_ctx(cert, key, TLS_V12 | TLS_V13), *cc = client_ctx();

	(void)state;
	assert_int_equal(tls_server_ctx_add_sni(sc, "*.example.test", server_ctx(other_cert, other_key,
		TLS_V12 | TLS_V13)), 0);
	pair();
	assert_int_equal(conn_tls_start(&srv.conn, sc, 1, NULL), 0);
	assert_int_equal(conn_tls_start(&cli.conn, cc, 0, "mx.example.test"), 0);
	assert_true(run_until(both_ready));
	assert_int_equal(srv.tls_result, 0);
	assert_string_equal(conn_tls_sni(&srv.conn), "mx.example.test");
	unpair();
	tls_ctx_free(sc);	/* frees the site too */
	tls_ctx_free(cc);
}

static void
test_bad_files(void **state)
{
	struct tls_server_opts o = { .certificate = "/nonexistent.crt", .key = key,
				     .protocols = TLS_V12 | TLS_V13 };
	char err[256];

	(void)state;
	assert_null(tls_server_ctx_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent.crt"));
	assert_non_null(strstr(err, "No such file"));
	/* A key that does not belong to the certificate. */
	o.certificate = cert;
	o.key = other_key;
	assert_null(tls_server_ctx_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match"));
	/* A certificate file that is not PEM. */
	o.certificate = "/etc/hostname";
	o.key = key;
	assert_null(tls_server_ctx_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot load certificate"));
}

static int
setup(void **state)
{
	char cmd[1024];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mxgate-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert, sizeof(cert), "%s/s.crt", dir);
	snprintf(key, sizeof(key), "%s/s.key", dir);
	snprintf(other_cert, sizeof(other_cert), "%s/o.crt", dir);
	snprintf(other_key, sizeof(other_key), "%s/o.key", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
		 "-subj /CN=localhost -keyout %s -out %s >/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
		 "-subj /CN=mx.example.test -keyout %s -out %s >/dev/null 2>&1",
		 key, cert, other_key, other_cert);
	if (system(cmd) != 0)
		return -1;
	if (tls_global_init() < 0)
		return -1;
	return ring_init(&ring, 256, 64, 16384) < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	ring_destroy(&ring);
	tls_global_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_bulk),
		cmocka_unit_test(test_clear_text_first),
		cmocka_unit_test(test_garbage_fails_handshake),
		cmocka_unit_test(test_tls12_only),
		cmocka_unit_test(test_sni_selects_site),
		cmocka_unit_test(test_bad_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
