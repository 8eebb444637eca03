/*
 * mxload.c - the bundled SMTP load generator: command line, start-up,
 * the worker threads (load_worker.c, one io_uring each), the progress
 * line and the final report (load_report.c).
 *
 * Exit status: 2 usage error, 1 when no message at all was accepted,
 * else 0 (also when some were refused: the report says which).
 * --id-log writes the Message-ID of every accepted message, WITHOUT the
 * angle brackets, one per line, in no particular order across threads.
 * TLS (--tls, --tls-resume, --tls-verify) is set up here and in
 * load_tls.c; --auth's command is built once by load_msg.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "load.h"
#include "load_parse.h"
#include "load_tls.h"
#include "mem.h"
#include "version.h"

#define LOAD_MAX_CONNS 100000
#define LOAD_MAX_THREADS 256
#define LOAD_MAX_RCPTS 1000

static struct load_cfg *load_sig_cfg;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mxload --target ADDR [--connections N] [--messages M | --duration D]\n"
"              [--size S] [--recipients R] [--pipelining] [--tls none|starttls|implicit]\n"
"              [--tls-resume] [--tls-verify CA] [--auth USER:PASS]\n"
"              [--rate MSGS_PER_S] [--from ADDR] [--rcpt-domain DOMAIN] [--json]\n"
"              [--id-log FILE] [--per-connection K] [--threads T] [--helo NAME]\n"
"              [--timeout D]\n"
"       mxload -V | -h\n"
"  --target ADDR        host:port, [v6]:port or unix:/path\n"
"  --connections N      concurrent connections (10)\n"
"  --messages M         messages in all (1000); or --duration D (250ms, 10s, 5m)\n"
"  --size S             message size, headers included (1k; k/M/G are powers of 1024)\n"
"  --recipients R       RCPT TO per message (1): user1@DOMAIN .. userR@DOMAIN\n"
"  --pipelining         MAIL+RCPT+DATA in one write when the server offers PIPELINING\n"
"  --tls MODE           none; starttls (EHLO, STARTTLS, EHLO again); implicit (TLS\n"
"                       from the first byte, RFC 8314). The server is not verified\n"
"  --tls-resume         resume the TLS session across a thread's connections\n"
"  --tls-verify CA      verify the server's certificate against the PEM file CA\n"
"                       (and its name when --target names a host)\n"
"  --auth USER:PASS     AUTH PLAIN after the EHLO under TLS (needs --tls)\n"
"  --rate R             at most R messages per second in all (unpaced)\n"
"  --from ADDR          envelope sender (loader@example.test)\n"
"  --rcpt-domain D      recipient domain (example.test)\n"
"  --per-connection K   new connection after K messages (0: reuse for all)\n"
"  --threads T          worker threads, each with its own io_uring (1)\n"
"  --helo NAME          EHLO name (mxload.example.test)\n"
"  --timeout D          wait at most D for each reply (30s)\n"
"  --json               report as one JSON object\n"
"  --id-log FILE        append the Message-ID (no <>) of each accepted message\n");
}

static int
load_bad(const char *opt, const char *val)
{
	fprintf(stderr, "mxload: bad value for --%s: '%s'\n", opt, val);
	return -1;
}

/* "host:port" by name when the numeric parse fails (e.g. localhost:25). */
static int
load_resolve(const char *s, struct net_addr *a)
{
	char host[256], err[128];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints, *res = NULL;
	size_t hl;

	if (net_addr_parse(s, a, err, sizeof(err)) == 0)
		return 0;
	if (colon == NULL || (hl = (size_t)(colon - s)) == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
		return -1;
	memcpy(&a->u.ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int
load_uint_opt(const char *name, const char *val, uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t v;

	if (load_parse_uint(val, &v) < 0 || v < min || v > max)
		return load_bad(name, val);
	*out = (unsigned)v;
	return 0;
}

static int
load_text_opt(const char *name, const char *val, const char **out)
{
	/* Goes into commands and headers verbatim: no CR, LF, <, > or overlong values. */
	if (strlen(val) >= LOAD_ADDR_MAX || strpbrk(val, "\r\n<> ") != NULL)
		return load_bad(name, val);
	*out = val;
	return 0;
}

enum { O_TARGET = 256, O_CONNS, O_MSGS, O_DUR, O_SIZE, O_RCPTS, O_PIPE, O_TLS, O_RATE,
       O_FROM, O_DOMAIN, O_JSON, O_IDLOG, O_PERCONN, O_THREADS, O_HELO, O_TIMEOUT,
       O_TLS_RESUME, O_TLS_VERIFY, O_AUTH, O_HELP };

static const struct option load_opts[] = {
	{ "target", required_argument, 0, O_TARGET },
	{ "connections", required_argument, 0, O_CONNS },
	{ "messages", required_argument, 0, O_MSGS },
	{ "duration", required_argument, 0, O_DUR },
	{ "size", required_argument, 0, O_SIZE },
	{ "recipients", required_argument, 0, O_RCPTS },
	{ "pipelining", no_argument, 0, O_PIPE },
	{ "tls", required_argument, 0, O_TLS },
	{ "rate", required_argument, 0, O_RATE },
	{ "from", required_argument, 0, O_FROM },
	{ "rcpt-domain", required_argument, 0, O_DOMAIN },
	{ "json", no_argument, 0, O_JSON },
	{ "id-log", required_argument, 0, O_IDLOG },
	{ "per-connection", required_argument, 0, O_PERCONN },
	{ "threads", required_argument, 0, O_THREADS },
	{ "helo", required_argument, 0, O_HELO },
	{ "timeout", required_argument, 0, O_TIMEOUT },
	{ "tls-resume", no_argument, 0, O_TLS_RESUME },
	{ "tls-verify", required_argument, 0, O_TLS_VERIFY },
	{ "auth", required_argument, 0, O_AUTH },
	{ "help", no_argument, 0, O_HELP },
	{ "version", no_argument, 0, 'V' },
	{ 0, 0, 0, 0 },
};

/* "user:pass": split at the first colon (a password may hold colons, a user may not). */
static int
load_auth_opt(struct load_cfg *cfg, char *v)
{
	char *colon = strchr(v, ':');

	if (colon == NULL || colon == v)
		return load_bad("auth", "USER:PASS expected");
	*colon = '\0';
	cfg->auth_user = v;
	cfg->auth_pass = colon + 1;
	return 0;
}

/* One option; returns 0 or -1 (usage error, message printed). */
static int
load_opt(struct load_cfg *cfg, int o, char *v, int *have_msgs)
{
	uint64_t u;

	switch (o) {
	case O_TARGET:
		snprintf(cfg->target_str, sizeof(cfg->target_str), "%s", v);
		return load_resolve(v, &cfg->target) < 0 ? load_bad("target", v) : 0;
	case O_CONNS:
		return load_uint_opt("connections", v, 1, LOAD_MAX_CONNS, &cfg->connections);
	case O_MSGS:
		*have_msgs = 1;
		return load_parse_uint(v, &cfg->messages) < 0 || cfg->messages == 0 ?
		       load_bad("messages", v) : 0;
	case O_DUR:
		return load_parse_duration(v, &cfg->duration_ms) < 0 || cfg->duration_ms == 0 ?
		       load_bad("duration", v) : 0;
	case O_SIZE:
		return load_parse_size(v, &cfg->size) < 0 || cfg->size > (1ull << 30) ?
		       load_bad("size", v) : 0;
	case O_RCPTS:
		return load_uint_opt("recipients", v, 1, LOAD_MAX_RCPTS, &cfg->recipients);
	case O_PIPE:
		cfg->pipelining = 1;
		return 0;
	case O_TLS:
		if (strcmp(v, "none") == 0)
			cfg->tls = LOAD_TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			cfg->tls = LOAD_TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			cfg->tls = LOAD_TLS_IMPLICIT;
		else
			return load_bad("tls", v);
		return 0;
	case O_TLS_RESUME:
		cfg->tls_resume = 1;
		return 0;
	case O_TLS_VERIFY:
		if (*v == '\0' || access(v, R_OK) < 0)
			return load_bad("tls-verify (a readable PEM file)", v);
		cfg->tls_ca = v;
		return 0;
	case O_AUTH:
		return load_auth_opt(cfg, v);
	case O_RATE:
		return load_parse_rate(v, &cfg->rate) < 0 ? load_bad("rate", v) : 0;
	case O_FROM:
		/* An empty sender is the null reverse-path "<>" (bounces). */
		return load_text_opt("from", v, &cfg->from);
	case O_DOMAIN:
		return *v ? load_text_opt("rcpt-domain", v, &cfg->rcpt_domain) : load_bad("rcpt-domain", v);
	case O_JSON:
		cfg->json = 1;
		return 0;
	case O_IDLOG:
		cfg->id_log = v;
		return 0;
	case O_PERCONN:
		return load_uint_opt("per-connection", v, 0, UINT32_MAX, &cfg->per_conn);
	case O_THREADS:
		return load_uint_opt("threads", v, 1, LOAD_MAX_THREADS, &cfg->threads);
	case O_HELO:
		return *v ? load_text_opt("helo", v, &cfg->helo) : load_bad("helo", v);
	case O_TIMEOUT:
		if (load_parse_duration(v, &u) < 0 || u == 0)
			return load_bad("timeout", v);
		cfg->timeout_ms = u;
		return 0;
	}
	return -1;
}

static void
load_defaults(struct load_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connections = 10;
	cfg->messages = 1000;
	cfg->size = 1024;
	cfg->recipients = 1;
	cfg->threads = 1;
	cfg->timeout_ms = 30000;
	cfg->from = "loader@example.test";
	cfg->rcpt_domain = "example.test";
	cfg->helo = "mxload.example.test";
	cfg->id_fd = -1;
}

/* SNI (and, with --tls-verify, the name checked): the host of --target when it is a name. */
static void
load_sni(struct load_cfg *cfg)
{
	const char *t = cfg->target_str, *colon = strrchr(t, ':');
	struct in_addr a4;
	size_t n;

	if (strncmp(t, "unix:", 5) == 0 || t[0] == '[' || colon == NULL)
		return;
	n = (size_t)(colon - t);
	if (n == 0 || n >= sizeof(cfg->sni_buf))
		return;
	memcpy(cfg->sni_buf, t, n);
	cfg->sni_buf[n] = '\0';
	/* RFC 6066 3: no literal addresses in SNI. */
	if (inet_pton(AF_INET, cfg->sni_buf, &a4) == 1)
		return;
	cfg->tls_sni = cfg->sni_buf;
}

/* Returns 0, or the exit status (2 usage error, 0 after --help). */
static int
load_args(struct load_cfg *cfg, int argc, char **argv)
{
	int o, have_msgs = 0;

	load_defaults(cfg);
	while ((o = getopt_long(argc, argv, "hV", load_opts, NULL)) != -1) {
		if (o == 'h' || o == O_HELP) {
			usage(stdout);
			return -1;
		}
		if (o == 'V') {
			printf("mxload %s\n", MXGATE_VERSION);
			return -1;
		}
		if (o == '?')
			goto bad;
		if (load_opt(cfg, o, optarg, &have_msgs) < 0)
			goto bad;
	}
	if (optind < argc) {
		fprintf(stderr, "mxload: unexpected argument '%s'\n", argv[optind]);
		goto bad;
	}
	if (cfg->target_str[0] == '\0') {
		fprintf(stderr, "mxload: --target is required\n");
		goto bad;
	}
	if (have_msgs && cfg->duration_ms) {
		fprintf(stderr, "mxload: --messages and --duration exclude each other\n");
		goto bad;
	}
	if (cfg->tls == LOAD_TLS_NONE && (cfg->auth_user || cfg->tls_resume || cfg->tls_ca)) {
		/* A password never crosses in clear; the others mean nothing without TLS. */
		fprintf(stderr, "mxload: %s needs --tls starttls or --tls implicit\n",
			cfg->auth_user ? "--auth" : cfg->tls_resume ? "--tls-resume" : "--tls-verify");
		goto bad;
	}
	if (cfg->tls_resume && !load_tls_can_resume()) {
		fprintf(stderr, "mxload: --tls-resume: the linked wolfSSL cannot hand sessions over\n");
		return 2;
	}
	if (cfg->tls != LOAD_TLS_NONE)
		load_sni(cfg);
	if (cfg->duration_ms)
		cfg->messages = 0;
	if (cfg->threads > cfg->connections)
		cfg->threads = cfg->connections;
	return 0;
bad:
	usage(stderr);
	return 2;
}

static void
load_on_sigint(int sig)
{
	(void)sig;
	/* Finish in-flight transactions and report; a second ^C kills (SA_RESETHAND). */
	if (load_sig_cfg)
		__atomic_store_n(&load_sig_cfg->stop, 1, __ATOMIC_RELAXED);
}

static void
load_signals(struct load_cfg *cfg)
{
	struct sigaction sa;

	load_sig_cfg = cfg;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = load_on_sigint;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int
load_all_finished(struct load_worker *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!__atomic_load_n(&w[i].finished, __ATOMIC_ACQUIRE))
			return 0;
	return 1;
}

static double
load_elapsed(const struct load_cfg *cfg)
{
	return (double)(load_now_ns() - cfg->start_ns) / 1e9;
}

/* Sleeps until every worker is done, drawing the progress line once a second. */
static void
load_supervise(struct load_cfg *cfg, struct load_worker *w, unsigned n)
{
	int tty = isatty(STDERR_FILENO);
	uint64_t last_acc = 0, next_ms = cfg->start_ns / 1000000ull + 1000;
	double last_s = 0;
	struct timespec nap = { 0, 20 * 1000000L };

	/* Bounded by the workers: each ends once its sessions are done or time out. */
	while (!load_all_finished(w, n)) {
		nanosleep(&nap, NULL);
		if (tty && timer_now_ms() >= next_ms) {
			load_progress(cfg, w, n, load_elapsed(cfg), &last_acc, &last_s);
			next_ms += 1000;
		}
	}
	if (tty && last_s > 0)
		fprintf(stderr, "\n");
}

static int
load_run(struct load_cfg *cfg)
{
	struct load_worker *w = xcalloc(cfg->threads, sizeof(*w));
	struct load_stats *total = xcalloc(1, sizeof(*total));
	unsigned started = 0;
	int status, failed = 0;
	double el;

	cfg->start_ns = load_now_ns();
	if (cfg->duration_ms)
		cfg->deadline_ms = timer_now_ms() + cfg->duration_ms;
	for (unsigned i = 0; i < cfg->threads; i++) {
		w[i].idx = i;
		w[i].cfg = cfg;
		/* Spread the remainder: the first N % T workers get one more. */
		w[i].nsess = cfg->connections / cfg->threads + (i < cfg->connections % cfg->threads);
		if (pthread_create(&w[i].tid, NULL, load_worker_main, &w[i]) != 0) {
			fprintf(stderr, "mxload: pthread_create: %s\n", strerror(errno));
			__atomic_store_n(&cfg->stop, 1, __ATOMIC_RELAXED);
			break;
		}
		started++;
	}
	load_supervise(cfg, w, started);
	el = 0;
	hist_init(&total->lat);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		/* The supervisor naps: the workers' own end times are exact. */
		el = MAX(el, (double)(w[i].end_ns - cfg->start_ns) / 1e9);
		if (w[i].err) {
			fprintf(stderr, "mxload: worker %u: io_uring set-up: %s\n", i, strerror(-w[i].err));
			failed = 1;
		}
		load_stats_merge(total, &w[i].st);
	}
	load_report(cfg, total, el);
	status = (total->accepted == 0 || failed) ? 1 : 0;
	free(total);
	free(w);
	return status;
}

int
main(int argc, char **argv)
{
	struct load_cfg *cfg = xcalloc(1, sizeof(*cfg));
	int status = load_args(cfg, argc, argv);

	if (status != 0) {
		free(cfg);
		return status < 0 ? 0 : status;
	}
	if (cfg->id_log) {
		cfg->id_fd = open(cfg->id_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (cfg->id_fd < 0) {
			fprintf(stderr, "mxload: %s: %s\n", cfg->id_log, strerror(errno));
			free(cfg);
			return 2;
		}
	}
	if (cfg->tls != LOAD_TLS_NONE) {
		char err[256];

		if (load_tls_setup(cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "mxload: %s\n", err);
			if (cfg->id_fd >= 0)
				close(cfg->id_fd);
			free(cfg);
			return 2;
		}
	}
	load_msg_build(&cfg->msg, cfg->from, cfg->rcpt_domain, cfg->helo, cfg->recipients,
		       cfg->size);
	if (cfg->auth_user)
		load_msg_auth(&cfg->msg, cfg->auth_user, cfg->auth_pass);
	load_signals(cfg);
	status = load_run(cfg);
	load_msg_free(&cfg->msg);
	load_tls_teardown(cfg);
	if (cfg->id_fd >= 0)
		close(cfg->id_fd);
	free(cfg);
	return status;
}
