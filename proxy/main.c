/*
 * main.c - mxgate's entry point: options, the config, the worker
 * threads, and the signals. Workers never see signals (blocked before
 * they start); this thread takes them with sigwaitinfo and hands a new
 * config snapshot or a stop request to each worker through its eventfd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "assets.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "offload.h"
#include "store.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: mxgate [-c FILE]       run in the foreground (default conf/mxgate.conf)\n"
		"       mxgate -t [-c FILE]    check the configuration and exit\n"
		"       mxgate -V              print the version\n"
		"       mxgate -h              this help\n"
		"signals: HUP reloads the configuration; TERM and INT drain and exit\n");
}

static void
apply_logging(const struct config *cfg)
{
	if (log_open(cfg->log, "mxgate") < 0)
		log_error("cannot open log %s: %s; lines go where they went before (at start: stderr)",
			  cfg->log, strerror(errno));
	log_set_level((enum log_level)cfg->log_level);
	log_set_json(cfg->log_json);
}

/* Every client and backend connection is a descriptor: use all the hard limit allows. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The snapshot and what its files hold (certificates, users): both or neither. */
static int
load_config(const char *path, struct config **cfg, char *err, size_t errlen)
{
	if (config_load(path, cfg, err, errlen) < 0)
		return -1;
	if (assets_build(*cfg, err, errlen) < 0) {
		config_unref(*cfg);
		*cfg = NULL;
		return -1;
	}
	return 0;
}

static void
reload(const char *path, struct worker *workers, unsigned n)
{
	char err[1024];
	struct config *cfg;

	/* A certificate or users file that cannot be used keeps the running snapshot too. */
	if (load_config(path, &cfg, err, sizeof(err)) < 0) {
		log_error("reload failed, the running configuration stays: %s", err);
		return;
	}
	apply_logging(cfg);
	for (unsigned i = 0; i < n; i++) {
		struct config *old;

		config_ref(cfg);
		old = __atomic_exchange_n(&workers[i].pending_cfg, cfg, __ATOMIC_ACQ_REL);
		if (old)
			config_unref(old);
		worker_wake(&workers[i]);
	}
	log_info("reloaded %s", path);
	config_unref(cfg);
}

static void
stop_all(struct worker *workers, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		__atomic_store_n(&workers[i].stop_requested, 1, __ATOMIC_RELEASE);
		worker_wake(&workers[i]);
	}
}

int
main(int argc, char **argv)
{
	const char *path = "conf/mxgate.conf";
	struct worker *workers;
	struct store_shared *shared;
	struct config *cfg;
	char err[1024];
	sigset_t set;
	sem_t started;
	unsigned n;
	int opt, test_only = 0, failed = 0;

	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = 1;
			break;
		case 'V':
			printf("mxgate %s (%s)\n", MXGATE_VERSION, tls_library_info());
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	if (tls_global_init() < 0) {
		fprintf(stderr, "mxgate: cannot initialise wolfSSL\n");
		return 1;
	}
	if (load_config(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		tls_global_cleanup();
		return 1;
	}
	if (test_only) {
		printf("%s: configuration OK\n", path);
		config_unref(cfg);
		tls_global_cleanup();
		return 0;
	}
	apply_logging(cfg);
	raise_fd_limit();

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	n = cfg->workers ? cfg->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (n == 0)
		n = 1;
	/*
	 * The store (embedded table, or Redis settings) lives as long as the
	 * process: a reload changes the limits, not where they are kept.
	 */
	shared = store_shared_new(cfg, err, sizeof(err));
	if (shared == NULL) {
		log_error("state store: %s", err);
		config_unref(cfg);
		return 1;
	}
	workers = xcalloc(n, sizeof(*workers));
	sem_init(&started, 0, 0);
	for (unsigned i = 0; i < n; i++) {
		workers[i].id = i;
		workers[i].started = &started;
		config_ref(cfg);
		workers[i].cfg = cfg;
		workers[i].evfd = -1;
		workers[i].store_shared = shared;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
			fatal("cannot start worker thread %u", i);
	}
	for (unsigned i = 0; i < n; i++)
		sem_wait(&started);
	for (unsigned i = 0; i < n; i++) {
		if (workers[i].init_status < 0) {
			log_error("%s", workers[i].init_err);
			failed = 1;
			break;
		}
	}
	if (failed) {
		stop_all(workers, n);
	} else {
		log_info("mxgate %s started: %u worker(s), %u listener(s), %u backend(s), config %s, %s",
			 MXGATE_VERSION, n, cfg->nlisteners, cfg->nbackends, path, tls_library_info());
		for (;;) {
			int sig = sigwaitinfo(&set, NULL);

			if (sig == SIGHUP) {
				reload(path, workers, n);
			} else if (sig == SIGTERM || sig == SIGINT) {
				log_info("%s: closing listeners, draining sessions", sig == SIGTERM ? "SIGTERM" : "SIGINT");
				stop_all(workers, n);
				break;
			}
		}
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(workers[i].thread, NULL);
		if (workers[i].cfg)
			config_unref(workers[i].cfg);
		if (workers[i].pending_cfg)
			config_unref(workers[i].pending_cfg);
	}
	free(workers);
	store_shared_free(shared);
	offload_pool_stop();
	config_unref(cfg);
	tls_global_cleanup();
	log_info("mxgate stopped");
	return failed ? 1 : 0;
}
