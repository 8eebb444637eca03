/*
 * mxsink.c - owns the mxsink process: a fast SMTP/LMTP sink backend for
 * tests and benchmarks (like Postfix smtp-sink, much cheaper per byte).
 * This file parses the options, opens the listeners, runs N worker
 * threads (each with its own ring, SO_REUSEPORT listeners and sessions),
 * turns SIGTERM/SIGINT and --max-messages into a stop, and prints the
 * totals; it also owns the TLS server context of --tls-cert/--tls-key.
 * The dialog is in sink_session.c, --store in sink_store.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "log.h"
#include "mem.h"
#include "sink.h"
#include "tls.h"
#include "version.h"

/*
 * Receive buffers: few large ones, shared by every session of a worker
 * (a session holds one only during its on_recv). Measured with 1 MB
 * messages: 16 x 256 KiB costs ~25 % less CPU per GB than 256 x 64 KiB,
 * because the recv copy and the scan stay in cache and there are fewer
 * completions. Many sessions receiving at once may find none free: conn
 * re-arms them when buffers come back, within the same loop turn.
 */
#define SINK_RING_ENTRIES 1024
#define SINK_PBUF_COUNT 16
#define SINK_PBUF_SIZE (256 * 1024)
#define SINK_MAX_LISTEN 16

struct sink_opts sink_opts = { .workers = 1 };
volatile sig_atomic_t sink_signals;
atomic_int sink_quit;
atomic_uint_fast64_t sink_accepted;
uint32_t sink_id_prefix;
uint32_t sink_id_pid;
atomic_uint_fast64_t sink_id_next;

static struct net_addr sink_listen[SINK_MAX_LISTEN];
static int sink_nlisten;
static struct sink_worker *sink_workers;

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: mxsink --listen ADDR [--listen ADDR2...] [--lmtp] [--store DIR]\n"
		"              [--reply-data CODE] [--reply-rcpt CODE] [--reply-mail CODE]\n"
		"              [--delay DURATION] [--fail-rate P] [--max-messages N]\n"
		"              [--quiet] [--workers N] [--no-chunking]\n"
		"              [--tls-cert FILE --tls-key FILE [--tls-implicit]]\n"
		"       mxsink -V | -h\n"
		"  ADDR: 127.0.0.1:PORT, [::1]:PORT or unix:/path\n"
		"  DURATION: 250ms, 2s, 1m, 1h (a bare number is seconds)\n"
		"  --tls-cert, --tls-key: PEM certificate chain and key; STARTTLS is offered\n"
		"  --tls-implicit: TLS from the first byte instead (RFC 8314), no STARTTLS\n"
		"  --no-chunking: do not offer CHUNKING (BDAT, RFC 3030); DATA only\n"
		"  --store DIR: each message as DIR/ID.eml, its envelope as DIR/ID.eml.env\n"
		"    (MAIL FROM, RCPT TO, XFORWARD, XCLIENT lines; \"TLS <version> <cipher>\"\n"
		"    when it came over TLS)\n");
}

static void __attribute__((noreturn))
bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "mxsink: bad %s: %s\n", what, arg ? arg : "(none)");
	usage(stderr);
	exit(2);
}

/* ------------------------------------------------------------- options */

static int
parse_code(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 200 || v > 599)
		bad_usage("reply code (200..599)", s);
	return (int)v;
}

static uint64_t
parse_duration_ms(const char *s)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || v < 0)
		bad_usage("duration", s);
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(end, units[i].unit) == 0)
			return (uint64_t)(v * units[i].ms + 0.5);
	bad_usage("duration", s);
}

static double
parse_rate(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || errno || !(v >= 0 && v <= 1))
		bad_usage("fail rate (0..1)", s);
	return v;
}

static uint64_t
parse_count(const char *s, const char *what, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end || errno || v < min || v > max)
		bad_usage(what, s);
	return v;
}

static void
add_listen(const char *s)
{
	char err[256];

	if (sink_nlisten == SINK_MAX_LISTEN)
		bad_usage("--listen (too many)", s);
	if (net_addr_parse(s, &sink_listen[sink_nlisten], err, sizeof(err)) < 0) {
		fprintf(stderr, "mxsink: %s\n", err);
		usage(stderr);
		exit(2);
	}
	sink_nlisten++;
}

enum { O_LISTEN = 256, O_LMTP, O_STORE, O_RDATA, O_RRCPT, O_RMAIL, O_DELAY, O_FAIL,
       O_MAX, O_QUIET, O_WORKERS, O_TLS_CERT, O_TLS_KEY, O_TLS_IMPLICIT, O_NO_CHUNKING, O_HELP };

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "lmtp", no_argument, NULL, O_LMTP },
		{ "store", required_argument, NULL, O_STORE },
		{ "reply-data", required_argument, NULL, O_RDATA },
		{ "reply-rcpt", required_argument, NULL, O_RRCPT },
		{ "reply-mail", required_argument, NULL, O_RMAIL },
		{ "delay", required_argument, NULL, O_DELAY },
		{ "fail-rate", required_argument, NULL, O_FAIL },
		{ "max-messages", required_argument, NULL, O_MAX },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "tls-cert", required_argument, NULL, O_TLS_CERT },
		{ "tls-key", required_argument, NULL, O_TLS_KEY },
		{ "tls-implicit", no_argument, NULL, O_TLS_IMPLICIT },
		{ "no-chunking", no_argument, NULL, O_NO_CHUNKING },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (ch) {
		case O_LISTEN: add_listen(optarg); break;
		case O_LMTP: sink_opts.lmtp = 1; break;
		case O_STORE: sink_opts.store_dir = optarg; break;
		case O_RDATA: sink_opts.reply_data = parse_code(optarg); break;
		case O_RRCPT: sink_opts.reply_rcpt = parse_code(optarg); break;
		case O_RMAIL: sink_opts.reply_mail = parse_code(optarg); break;
		case O_DELAY: sink_opts.delay_ms = parse_duration_ms(optarg); break;
		case O_FAIL: sink_opts.fail_rate = parse_rate(optarg); break;
		case O_MAX: sink_opts.max_messages = parse_count(optarg, "--max-messages", 1, UINT64_MAX); break;
		case O_QUIET: sink_opts.quiet = 1; break;
		case O_WORKERS: sink_opts.workers = (int)parse_count(optarg, "--workers", 1, 256); break;
		case O_TLS_CERT: sink_opts.tls_cert = optarg; break;
		case O_TLS_KEY: sink_opts.tls_key = optarg; break;
		case O_TLS_IMPLICIT: sink_opts.tls_implicit = 1; break;
		case O_NO_CHUNKING: sink_opts.no_chunking = 1; break;
		case 'h':
		case O_HELP: usage(stdout); exit(0);
		case 'V': printf("mxsink %s\n", MXGATE_VERSION); exit(0);
		default: bad_usage("option", optind > 1 ? argv[optind - 1] : NULL);
		}
	}
	if (optind < argc)
		bad_usage("argument", argv[optind]);
	if (sink_nlisten == 0)
		bad_usage("options", "--listen is required");
	if (!sink_opts.tls_cert != !sink_opts.tls_key)
		bad_usage("options", "--tls-cert and --tls-key go together");
	if (sink_opts.tls_implicit && !sink_opts.tls_cert)
		bad_usage("options", "--tls-implicit needs --tls-cert and --tls-key");
}

/* The server context: read once, shared read-only by the workers. */
static void
setup_tls(void)
{
	struct tls_server_opts o = {
		.certificate = sink_opts.tls_cert,
		.key = sink_opts.tls_key,
		.protocols = TLS_V12 | TLS_V13,
		.session_tickets = 1,	/* so clients can measure resumption */
	};
	char err[512];

	if (sink_opts.tls_cert == NULL)
		return;
	if (tls_global_init() < 0)
		fatal("mxsink: wolfSSL initialisation failed");
	sink_opts.tls_ctx = tls_server_ctx_new(&o, err, sizeof(err));
	if (sink_opts.tls_ctx == NULL)
		fatal("mxsink: %s", err);
}

static void
teardown_tls(void)
{
	if (sink_opts.tls_ctx == NULL)
		return;
	/* wolfSSL counts users: a session left open by a hard stop keeps its context alive. */
	tls_ctx_free(sink_opts.tls_ctx);
	sink_opts.tls_ctx = NULL;
	tls_global_cleanup();
}

static void
check_store_dir(void)
{
	struct stat st;

	if (sink_opts.store_dir == NULL)
		return;
	if (mkdir(sink_opts.store_dir, 0755) < 0 && errno != EEXIST)
		fatal("mxsink: cannot create %s: %s", sink_opts.store_dir, strerror(errno));
	if (stat(sink_opts.store_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    access(sink_opts.store_dir, W_OK | X_OK) < 0)
		fatal("mxsink: %s is not a writable directory", sink_opts.store_dir);
}

/* ------------------------------------------------------------- workers */

/*
 * TCP listeners: one socket per worker with SO_REUSEPORT, so the kernel
 * spreads connections. A unix socket cannot be bound twice: the workers
 * share one socket (each with its own multishot accept on a dup).
 */
static void
open_listeners(void)
{
	char err[256];

	for (int i = 0; i < sink_nlisten; i++) {
		int shared = -1;

		for (int k = 0; k < sink_opts.workers; k++) {
			struct sink_worker *w = &sink_workers[k];
			int fd;

			if (sink_listen[i].u.sa.sa_family == AF_UNIX && shared >= 0)
				fd = dup(shared);
			else
				fd = net_listen(&sink_listen[i], 1024, 1, err, sizeof(err));
			if (fd < 0)
				fatal("mxsink: %s", err);
			if (sink_listen[i].u.sa.sa_family == AF_UNIX && shared < 0)
				shared = fd;
			w->listen_fds[i] = fd;
		}
	}
}

static void
acceptor_gone(struct acceptor *a)
{
	struct sink_worker *w = a->owner;

	w->acceptors_live--;
}

static void
worker_drain(struct sink_worker *w)
{
	struct sink_session *s, *next;

	w->draining = 1;
	w->drain_deadline = timer_now_ms() + SINK_DRAIN_MS;
	for (int i = 0; i < w->nlisten; i++)
		acceptor_stop(&w->acceptors[i]);
	for (s = w->sessions; s; s = next) {
		next = s->next;
		sink_session_drain(s);
	}
}

/* Once per loop turn: the only place where the stop requests are read. */
static void
worker_turn(struct ring *r, void *arg)
{
	struct sink_worker *w = arg;

	if (atomic_load(&sink_quit) || sink_signals >= 2) {
		r->stop = 1;
		return;
	}
	if (sink_signals && !w->draining)
		worker_drain(w);
	if (!w->draining)
		return;
	if (w->nsessions == 0 && w->acceptors_live == 0) {
		r->stop = 1;
		return;
	}
	if (timer_now_ms() > w->drain_deadline) {
		for (struct sink_session *s = w->sessions; s; s = s->next)
			conn_close(&s->conn);
	}
}

static void *
worker_main(void *arg)
{
	struct sink_worker *w = arg;
	int ret;

	/* The ring belongs to this thread (SINGLE_ISSUER): create it here. */
	ret = ring_init(&w->ring, SINK_RING_ENTRIES, SINK_PBUF_COUNT, SINK_PBUF_SIZE);
	if (ret < 0)
		fatal("mxsink: io_uring set-up failed: %s", strerror(-ret));
	w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)w->index + 1) * 0xBF58476D1CE4E5B9ull;
	for (int i = 0; i < w->nlisten; i++) {
		w->acceptors[i].on_stopped = acceptor_gone;
		acceptor_start(&w->acceptors[i], &w->ring, w->listen_fds[i], sink_session_accept, w);
		w->acceptors_live++;
	}
	ring_run(&w->ring, worker_turn, w);
	/* A hard stop leaves sessions open: their unfinished messages must not stay in DIR. */
	for (struct sink_session *s = w->sessions; s; s = s->next)
		sink_session_discard(s);
	if (w->nsessions == 0)
		ring_destroy(&w->ring);
	return NULL;
}

/* ------------------------------------------------------------- process */

static void
on_signal(int sig)
{
	(void)sig;
	sink_signals++;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static void
print_totals(void)
{
	struct sink_stats t;

	memset(&t, 0, sizeof(t));
	for (int k = 0; k < sink_opts.workers; k++) {
		const struct sink_stats *s = &sink_workers[k].stats;
		t.connections += s->connections;
		t.messages += s->messages;
		t.recipients += s->recipients;
		t.bytes += s->bytes;
		t.bare_lf += s->bare_lf;
		t.bare_cr += s->bare_cr;
		t.nul += s->nul;
		t.long_lines += s->long_lines;
		t.aborted += s->aborted;
		t.failed += s->failed;
		t.tls += s->tls;
		t.tls_failed += s->tls_failed;
	}
	printf("mxsink: connections=%llu messages=%llu recipients=%llu bytes=%llu "
	       "bare_lf=%llu bare_cr=%llu nul=%llu long_lines=%llu aborted=%llu failed=%llu "
	       "tls=%llu tls_failed=%llu\n",
	       (unsigned long long)t.connections, (unsigned long long)t.messages,
	       (unsigned long long)t.recipients, (unsigned long long)t.bytes,
	       (unsigned long long)t.bare_lf, (unsigned long long)t.bare_cr,
	       (unsigned long long)t.nul, (unsigned long long)t.long_lines,
	       (unsigned long long)t.aborted, (unsigned long long)t.failed,
	       (unsigned long long)t.tls, (unsigned long long)t.tls_failed);
	fflush(stdout);
}

static void
start_workers(void)
{
	sigset_t block, old;

	/* Signals go to the main thread only; workers poll the flag each turn. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (int k = 0; k < sink_opts.workers; k++) {
		int ret = pthread_create(&sink_workers[k].thread, NULL, worker_main, &sink_workers[k]);
		if (ret != 0)
			fatal("mxsink: pthread_create: %s", strerror(ret));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int
main(int argc, char **argv)
{
	char name[NET_ADDR_STRLEN];

	parse_args(argc, argv);
	if (sink_opts.quiet)
		log_set_level(LOG_LVL_WARN);
	check_store_dir();
	setup_signals();
	setup_tls();
	sink_id_prefix = (uint32_t)time(NULL);
	sink_id_pid = (uint32_t)getpid();
	atomic_store(&sink_id_next, 1);
	sink_workers = xcalloc((size_t)sink_opts.workers, sizeof(*sink_workers));
	for (int k = 0; k < sink_opts.workers; k++) {
		sink_workers[k].index = k;
		sink_workers[k].nlisten = sink_nlisten;
		sink_workers[k].listen_fds = xcalloc((size_t)sink_nlisten, sizeof(int));
		sink_workers[k].acceptors = xcalloc((size_t)sink_nlisten, sizeof(struct acceptor));
	}
	open_listeners();
	for (int i = 0; i < sink_nlisten; i++)
		log_info("mxsink: listening on %s (%s%s, %d worker%s)",
			 net_addr_format(&sink_listen[i], name, sizeof(name)),
			 sink_opts.lmtp ? "LMTP" : "SMTP",
			 !sink_opts.tls_ctx ? "" : sink_opts.tls_implicit ? ", implicit TLS" : ", STARTTLS",
			 sink_opts.workers, sink_opts.workers > 1 ? "s" : "");
	start_workers();
	for (int k = 0; k < sink_opts.workers; k++)
		pthread_join(sink_workers[k].thread, NULL);
	print_totals();
	for (int i = 0; i < sink_nlisten; i++)
		if (sink_listen[i].u.sa.sa_family == AF_UNIX)
			unlink(sink_listen[i].u.sun.sun_path);
	teardown_tls();
	/* The workers stay allocated: a hard stop may leave sessions referring to them. */
	return 0;
}
