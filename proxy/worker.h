/*
 * worker.h - one worker thread: its ring, its SO_REUSEPORT listening
 * sockets, its sessions and its backend pools. Nothing here is shared
 * with other workers except the config snapshots handed over by main.
 */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <pthread.h>
#include <semaphore.h>
#include <sys/queue.h>
#include "acceptor.h"
#include "config.h"
#include "ring.h"

struct session;
struct bpool;
struct store;
struct store_shared;

struct wlistener {
	struct acceptor acc;
	struct net_addr addr;
	struct worker *worker;
	struct wlistener *next;
	int stopped;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct ring ring;
	int evfd;
	struct ring_op ev_op;
	uint64_t ev_val;
	struct config *cfg;		/* for new sessions; one reference */
	struct config *pending_cfg;	/* set by main (atomic exchange) */
	int stop_requested;		/* set by main (atomic) */
	int stopping;
	int exiting;			/* the ring has stopped: completions must not send */
	uint64_t drain_deadline_ms;
	struct timer drain_timer;
	struct timer settle_timer;	/* bounds the wait for the backends at start */
	struct wlistener *listeners;
	unsigned nlisteners_open;
	struct bpool *pools;
	struct store *store;		/* limits counters (embedded or Redis) */
	struct offload_q *offload;	/* password checks off this thread */
	struct store_shared *store_shared;	/* set by main */
	LIST_HEAD(, session) sessions;
	unsigned nsessions;
	size_t held_bytes;		/* messages kept for BDAT by the sessions (session_data.c) */
	uint64_t txn_counter;
	uint32_t id_prefix;
	sem_t *started;
	int init_status;
	char init_err[256];
};

/* Started by main: sets up the ring and listeners, posts started, runs. */
void *worker_main(void *arg);
/* From main: wake the worker to look at pending_cfg / stop_requested. */
void worker_wake(struct worker *w);
/* Session bookkeeping (session.c calls these). */
void worker_session_add(struct worker *w, struct session *s);
void worker_session_del(struct worker *w, struct session *s);
/*
 * A new transaction id, unique across workers and restarts: 16 upper-case
 * hex digits (start time, worker, counter) and a NUL.
 */
#define WORKER_TXN_ID_SIZE 17
void worker_txn_id(struct worker *w, char buf[static WORKER_TXN_ID_SIZE]);

#endif
