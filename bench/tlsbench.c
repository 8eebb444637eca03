/*
 * tlsbench.c - owns build/tlsbench: what wolfSSL itself costs, with no
 * sockets and no mxgate code, as the yardstick for "mxgate's CPU per
 * handshake within 1.3x of wolfSSL's". A server and a client WOLFSSL live
 * in one thread, connected by two in-memory byte pipes through wolfSSL's
 * I/O callbacks. Only the server side is timed, with the thread CPU clock
 * around each server call, since the server's cost is what mxgate pays.
 *
 * Phases (each --seconds long, after a short warm-up):
 *   full     full handshakes: a new server and client WOLFSSL each time
 *   --resume resumed handshakes with session tickets (the client keeps
 *            the newest session with wolfSSL_get1_session/set_session)
 *   --bulk   16 KB records client -> server: server-side decrypt GB/s
 * Defaults: TLS 1.3, X25519 key share, the ECDSA P-256 server certificate
 * that wolfSSL ships in certs_test.h (or --cert/--key PEM files).
 */
#include <wolfssl/options.h>	/* first: it fixes the layout of every other header */
#include <wolfssl/ssl.h>
#define USE_CERT_BUFFERS_256
#include <wolfssl/certs_test.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD 16384		/* the largest TLS plaintext record */

/* One direction of the connection: bytes written and not yet read. */
struct pipe {
	unsigned char *buf;
	size_t len, off, cap;
};

struct opts {
	const char *cert, *key, *ca, *cipher;
	double seconds;
	bool tls12, resume, bulk, json;
	int group;
};

struct phase {			/* one phase's totals */
	uint64_t count;		/* handshakes, or bytes for bulk */
	uint64_t wall_ns;
	uint64_t server_ns;	/* server CPU inside accept/read */
	uint64_t setup_ns;	/* server CPU in wolfSSL_new/free around them */
};

static struct pipe c2s, s2c;	/* client to server, server to client */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#define cpu_ns() clock_ns(CLOCK_THREAD_CPUTIME_ID)
#define wall_ns() clock_ns(CLOCK_MONOTONIC)

static void die(const char *what, WOLFSSL *ssl, int ret)
{
	char msg[WOLFSSL_MAX_ERROR_SZ] = "";

	if (ssl) {
		int err = wolfSSL_get_error(ssl, ret);
		wolfSSL_ERR_error_string_n((unsigned long)err, msg, sizeof(msg));
		fprintf(stderr, "tlsbench: %s: error %d (%s)\n", what, err, msg);
	} else {
		fprintf(stderr, "tlsbench: %s\n", what);
	}
	exit(1);
}

static int pipe_send(WOLFSSL *ssl, char *data, int sz, void *ctx)
{
	struct pipe *p = ctx;
	size_t need = p->len + (size_t)sz;

	(void)ssl;
	if (need > p->cap) {
		size_t cap = p->cap ? p->cap : 4 * RECORD;
		while (cap < need)
			cap *= 2;
		p->buf = realloc(p->buf, cap);
		if (!p->buf)
			die("out of memory", NULL, 0);
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, (size_t)sz);
	p->len = need;
	return sz;
}

static int pipe_recv(WOLFSSL *ssl, char *data, int sz, void *ctx)
{
	struct pipe *p = ctx;
	size_t n = p->len - p->off;

	(void)ssl;
	if (n == 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if (n > (size_t)sz)
		n = (size_t)sz;
	memcpy(data, p->buf + p->off, n);
	p->off += n;
	if (p->off == p->len)	/* drained: start over at the front */
		p->off = p->len = 0;
	return (int)n;
}

static void pipes_reset(void)
{
	c2s.len = c2s.off = s2c.len = s2c.off = 0;
}

static WOLFSSL_CTX *server_ctx(const struct opts *o)
{
	/* Like a server that accepts 1.2 and 1.3: the client picks. */
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
	int ret;

	if (!ctx)
		die("wolfSSL_CTX_new (server) failed", NULL, 0);
	wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2);
	if (o->cert) {
		ret = wolfSSL_CTX_use_certificate_chain_file(ctx, o->cert);
		if (ret != WOLFSSL_SUCCESS) {
			fprintf(stderr, "tlsbench: cannot load certificate %s (%d)\n", o->cert, ret);
			exit(1);
		}
		ret = wolfSSL_CTX_use_PrivateKey_file(ctx, o->key, WOLFSSL_FILETYPE_PEM);
		if (ret != WOLFSSL_SUCCESS) {
			fprintf(stderr, "tlsbench: cannot load key %s (%d)\n", o->key, ret);
			exit(1);
		}
	} else {
		ret = wolfSSL_CTX_use_certificate_buffer(ctx, serv_ecc_der_256,
			sizeof(serv_ecc_der_256), WOLFSSL_FILETYPE_ASN1);
		if (ret == WOLFSSL_SUCCESS)
			ret = wolfSSL_CTX_use_PrivateKey_buffer(ctx, ecc_key_der_256,
				sizeof(ecc_key_der_256), WOLFSSL_FILETYPE_ASN1);
		if (ret != WOLFSSL_SUCCESS)
			die("cannot load the built-in ECDSA P-256 certificate", NULL, 0);
	}
#ifdef OPENSSL_EXTRA
	if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS)
		die("the key does not match the certificate", NULL, 0);
#endif
	return ctx;
}

static WOLFSSL_CTX *client_ctx(const struct opts *o)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(o->tls12 ? wolfTLSv1_2_client_method()
						    : wolfTLSv1_3_client_method());

	if (!ctx)
		die("wolfSSL_CTX_new (client) failed", NULL, 0);
	/* The client's checks are not what we measure, but --ca shows that
	 * wolfSSL accepts the server's chain. */
	if (o->ca) {
		if (wolfSSL_CTX_load_verify_locations(ctx, o->ca, NULL) != WOLFSSL_SUCCESS) {
			fprintf(stderr, "tlsbench: cannot load CA %s\n", o->ca);
			exit(1);
		}
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	/* TLS 1.2 sends the ticket extension only when asked to. */
	if (wolfSSL_CTX_UseSessionTicket(ctx) != WOLFSSL_SUCCESS)
		die("wolfSSL_CTX_UseSessionTicket failed", NULL, 0);
	return ctx;
}

static void ctx_common(WOLFSSL_CTX *ctx, const struct opts *o, bool tls12_only)
{
	int groups[1] = { o->group };
	int ret;

	wolfSSL_CTX_SetIORecv(ctx, pipe_recv);
	wolfSSL_CTX_SetIOSend(ctx, pipe_send);
	/* set_groups refuses a context that cannot do TLS 1.3; the supported
	 * groups extension is what a TLS 1.2 client offers instead. */
	if (tls12_only)
		ret = wolfSSL_CTX_UseSupportedCurve(ctx, (word16)o->group);
	else
		ret = wolfSSL_CTX_set_groups(ctx, groups, 1);
	if (ret != WOLFSSL_SUCCESS)
		die("cannot set the key exchange group", NULL, 0);
	if (o->cipher && wolfSSL_CTX_set_cipher_list(ctx, o->cipher) != WOLFSSL_SUCCESS) {
		fprintf(stderr, "tlsbench: unknown cipher list %s\n", o->cipher);
		exit(1);
	}
}

static WOLFSSL *new_ssl(WOLFSSL_CTX *ctx, struct pipe *in, struct pipe *out, int group)
{
	WOLFSSL *ssl = wolfSSL_new(ctx);

	if (!ssl)
		die("wolfSSL_new failed", NULL, 0);
	wolfSSL_SetIOReadCtx(ssl, in);
	wolfSSL_SetIOWriteCtx(ssl, out);
	/* The client's TLS 1.3 key share (TLS 1.2 uses the groups list). */
	if (group && wolfSSL_UseKeyShare(ssl, (word16)group) != WOLFSSL_SUCCESS)
		die("wolfSSL_UseKeyShare failed", ssl, 0);
	return ssl;
}

/* Drives both ends until both are done; adds the server's CPU to *server. */
static void handshake(WOLFSSL *cli, WOLFSSL *srv, uint64_t *server)
{
	bool cdone = false, sdone = false;
	int ret;

	for (int round = 0; !(cdone && sdone); round++) {
		if (round > 20)
			die("handshake makes no progress", NULL, 0);
		if (!cdone) {
			ret = wolfSSL_connect(cli);
			if (ret == WOLFSSL_SUCCESS)
				cdone = true;
			else if (wolfSSL_get_error(cli, ret) != WOLFSSL_ERROR_WANT_READ)
				die("client handshake", cli, ret);
		}
		if (!sdone) {
			uint64_t t0 = cpu_ns();
			ret = wolfSSL_accept(srv);
			*server += cpu_ns() - t0;
			if (ret == WOLFSSL_SUCCESS)
				sdone = true;
			else if (wolfSSL_get_error(srv, ret) != WOLFSSL_ERROR_WANT_READ)
				die("server handshake", srv, ret);
		}
	}
}

/* TLS 1.3 tickets come after the handshake: a read processes them. */
static WOLFSSL_SESSION *client_session(WOLFSSL *cli)
{
	char one;
	int ret = wolfSSL_read(cli, &one, 1);
	WOLFSSL_SESSION *sess;

	if (ret > 0 || wolfSSL_get_error(cli, ret) != WOLFSSL_ERROR_WANT_READ)
		die("client read of the session ticket", cli, ret);
	sess = wolfSSL_get1_session(cli);
	if (!sess)
		die("wolfSSL_get1_session returned no session", NULL, 0);
	return sess;
}

/*
 * One phase of handshakes for o->seconds (or `warm` seconds): full ones,
 * or resumed ones from *sess, which is replaced by the newest session.
 */
static void run_handshakes(WOLFSSL_CTX *sctx, WOLFSSL_CTX *cctx, const struct opts *o,
			   WOLFSSL_SESSION **sess, double seconds, struct phase *ph)
{
	uint64_t start = wall_ns(), end = start + (uint64_t)(seconds * 1e9);

	memset(ph, 0, sizeof(*ph));
	do {
		uint64_t t0;
		WOLFSSL *cli, *srv;

		pipes_reset();
		cli = new_ssl(cctx, &s2c, &c2s, o->tls12 ? 0 : o->group);
		if (sess && wolfSSL_set_session(cli, *sess) != WOLFSSL_SUCCESS)
			die("wolfSSL_set_session failed", NULL, 0);
		t0 = cpu_ns();
		srv = new_ssl(sctx, &c2s, &s2c, 0);
		ph->setup_ns += cpu_ns() - t0;

		handshake(cli, srv, &ph->server_ns);
		if (sess) {
			if (!wolfSSL_session_reused(cli))
				die("the session was not resumed", NULL, 0);
			wolfSSL_SESSION_free(*sess);
			*sess = client_session(cli);
		}
		t0 = cpu_ns();
		wolfSSL_free(srv);
		ph->setup_ns += cpu_ns() - t0;
		wolfSSL_free(cli);
		ph->count++;
	} while (wall_ns() < end);
	ph->wall_ns = wall_ns() - start;
}

/*
 * Full records client -> server for `seconds`; ph->count is bytes. The
 * client writes a burst of records first and the server reads them all
 * under one pair of clock reads: a thread CPU clock read is a system call
 * (~270 ns measured here), ~6 % of one 16 KB record's ~4.5 us.
 */
#define BURST 16
static void run_bulk(WOLFSSL *cli, WOLFSSL *srv, double seconds, struct phase *ph)
{
	static unsigned char out[RECORD], in[RECORD];
	uint64_t start = wall_ns(), end = start + (uint64_t)(seconds * 1e9);
	int ret;

	memset(ph, 0, sizeof(*ph));
	memset(out, 'x', sizeof(out));
	do {
		for (int i = 0; i < BURST; i++) {
			ret = wolfSSL_write(cli, out, RECORD);
			if (ret != RECORD)
				die("client write", cli, ret);
		}
		uint64_t t0 = cpu_ns();
		for (int got = 0; got < BURST * RECORD; got += ret) {
			ret = wolfSSL_read(srv, in, RECORD);
			if (ret <= 0)
				die("server read", srv, ret);
		}
		ph->server_ns += cpu_ns() - t0;
		ph->count += BURST * RECORD;
	} while (wall_ns() < end);
	ph->wall_ns = wall_ns() - start;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tlsbench [--cert FILE --key FILE] [--ca FILE] [--seconds N] [--tls12] [--resume]\n"
		"                [--bulk] [--cipher LIST] [--group x25519|p256] [--json]\n"
		"In-memory wolfSSL server + client in one thread; times the server side.\n"
		"--ca makes the client verify the server's chain against FILE.\n");
}

static double per_s(const struct phase *p)
{
	return p->wall_ns ? (double)p->count * 1e9 / (double)p->wall_ns : 0;
}

static double us_per(uint64_t ns, const struct phase *p)
{
	return p->count ? (double)ns / 1e3 / (double)p->count : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 's' },
		{ "cipher", required_argument, NULL, 'C' },
		{ "group", required_argument, NULL, 'g' },
		{ "tls12", no_argument, NULL, '2' },
		{ "resume", no_argument, NULL, 'r' },
		{ "bulk", no_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .seconds = 2, .group = WOLFSSL_ECC_X25519 };
	struct phase full, res = { 0 }, bulk = { 0 }, warm;
	WOLFSSL_CTX *sctx, *cctx;
	WOLFSSL *cli, *srv;
	WOLFSSL_SESSION *sess = NULL;
	char cipher[64], version[16], group[32];
	bool aesni = false, sp_asm = false;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'a': o.ca = optarg; break;
		case 's': o.seconds = strtod(optarg, NULL); break;
		case 'C': o.cipher = optarg; break;
		case 'g':
			if (!strcmp(optarg, "x25519"))
				o.group = WOLFSSL_ECC_X25519;
			else if (!strcmp(optarg, "p256"))
				o.group = WOLFSSL_ECC_SECP256R1;
			else {
				usage(stderr);
				return 2;
			}
			break;
		case '2': o.tls12 = true; break;
		case 'r': o.resume = true; break;
		case 'b': o.bulk = true; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || !o.cert != !o.key || !(o.seconds > 0)) {
		usage(stderr);
		return 2;
	}
#ifdef WOLFSSL_AESNI
	aesni = true;
#endif
#ifdef WOLFSSL_SP_X86_64_ASM
	sp_asm = true;
#endif

	if (wolfSSL_Init() != WOLFSSL_SUCCESS)
		die("wolfSSL_Init failed", NULL, 0);
	sctx = server_ctx(&o);
	cctx = client_ctx(&o);
	ctx_common(sctx, &o, false);
	ctx_common(cctx, &o, o.tls12);

	/* Warm-up: caches, lazily built tables, the allocator. */
	run_handshakes(sctx, cctx, &o, NULL, 0.2, &warm);
	run_handshakes(sctx, cctx, &o, NULL, o.seconds, &full);

	/* One connection kept for its session (and for bulk), named as used. */
	pipes_reset();
	cli = new_ssl(cctx, &s2c, &c2s, o.tls12 ? 0 : o.group);
	srv = new_ssl(sctx, &c2s, &s2c, 0);
	handshake(cli, srv, &warm.server_ns);
	if (o.resume)
		sess = client_session(cli);
	snprintf(cipher, sizeof(cipher), "%s", wolfSSL_get_cipher_name(srv));
	snprintf(version, sizeof(version), "%s", wolfSSL_get_version(srv));
	snprintf(group, sizeof(group), "%s",
		 wolfSSL_get_curve_name(srv) ? wolfSSL_get_curve_name(srv) : "?");

	if (o.resume) {
		run_handshakes(sctx, cctx, &o, &sess, 0.2, &warm);
		run_handshakes(sctx, cctx, &o, &sess, o.seconds, &res);
		wolfSSL_SESSION_free(sess);
	}
	if (o.bulk) {
		run_bulk(cli, srv, 0.2, &warm);
		run_bulk(cli, srv, o.seconds, &bulk);
	}
	wolfSSL_free(srv);
	wolfSSL_free(cli);
	wolfSSL_CTX_free(sctx);
	wolfSSL_CTX_free(cctx);
	wolfSSL_Cleanup();
	free(c2s.buf);
	free(s2c.buf);

	/* GB/s of one core: bytes per server CPU nanosecond. */
	double gbps = bulk.server_ns ? (double)bulk.count / (double)bulk.server_ns : 0;
	if (o.json) {
		printf("{\"wolfssl\":\"%s\",\"aesni\":%s,\"sp_asm\":%s,\"version\":\"%s\","
		       "\"group\":\"%s\",\"cipher\":\"%s\",\"seconds\":%g,"
		       "\"full_hs\":%llu,\"full_hs_per_s\":%.1f,\"server_cpu_us_per_full_hs\":%.2f,"
		       "\"server_setup_us_per_hs\":%.2f",
		       wolfSSL_lib_version(), aesni ? "true" : "false", sp_asm ? "true" : "false",
		       version, group, cipher, o.seconds,
		       (unsigned long long)full.count, per_s(&full), us_per(full.server_ns, &full),
		       us_per(full.setup_ns, &full));
		if (o.resume)
			printf(",\"resumed_hs\":%llu,\"resumed_hs_per_s\":%.1f,"
			       "\"server_cpu_us_per_resumed_hs\":%.2f",
			       (unsigned long long)res.count, per_s(&res), us_per(res.server_ns, &res));
		else
			printf(",\"resumed_hs_per_s\":null,\"server_cpu_us_per_resumed_hs\":null");
		if (o.bulk)
			printf(",\"bulk_bytes\":%llu,\"bulk_decrypt_gbps\":%.3f}\n",
			       (unsigned long long)bulk.count, gbps);
		else
			printf(",\"bulk_decrypt_gbps\":null}\n");
	} else {
		printf("wolfSSL %s, AES-NI %s, SP asm %s; %s, %s, %s\n", wolfSSL_lib_version(),
		       aesni ? "yes" : "no", sp_asm ? "yes" : "no", version, group, cipher);
		printf("full handshakes:    %8.1f/s (client+server, one thread)  server %7.2f us CPU each"
		       " (+%.2f us wolfSSL_new/free)\n",
		       per_s(&full), us_per(full.server_ns, &full), us_per(full.setup_ns, &full));
		if (o.resume)
			printf("resumed handshakes: %8.1f/s (client+server, one thread)  server %7.2f us CPU each\n",
			       per_s(&res), us_per(res.server_ns, &res));
		if (o.bulk)
			printf("bulk decrypt:       %8.3f GB/s per server core (16 KB records)\n", gbps);
	}
	return 0;
}
