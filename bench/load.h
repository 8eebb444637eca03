/*
 * load.h - mxload's engine: the run configuration shared read-only by
 * every worker, per-worker statistics, the worker (one thread, one
 * ring, a share of the connections, a token bucket for --rate) and the
 * session (one SMTP client connection and its state machine).
 *
 * Workers share only two words: the count of messages claimed (so --messages
 * is exact however the work spreads) and the stop flag (SIGINT, --duration);
 * and, read-only, the TLS client context (wolfSSL contexts are shared safely).
 */
#ifndef BENCH_LOAD_H
#define BENCH_LOAD_H

#include <pthread.h>
#include <stdint.h>
#include "conn.h"
#include "hist.h"
#include "load_msg.h"

#define LOAD_CODES 600			/* reply codes 000..599 */
#define LOAD_MAX_FAILS 5		/* consecutive failures before a slot gives up */
#define LOAD_TLS_NAME_MAX 64		/* a TLS version or cipher name as reported */

enum load_tls_mode { LOAD_TLS_NONE, LOAD_TLS_STARTTLS, LOAD_TLS_IMPLICIT };

struct tls_ctx;

struct load_cfg {
	struct net_addr target;
	char target_str[NET_ADDR_STRLEN];
	unsigned connections, threads, recipients, per_conn;
	uint64_t messages;		/* 0 with --duration */
	uint64_t duration_ms;		/* 0 with --messages */
	uint64_t size;
	uint64_t timeout_ms;
	double rate;			/* msgs/s over all threads; 0 = unpaced */
	int pipelining, json;
	const char *from, *rcpt_domain, *helo, *id_log;
	int id_fd;			/* -1 without --id-log */
	enum load_tls_mode tls;
	int tls_resume;			/* --tls-resume: offer the worker's last session */
	const char *tls_ca;		/* --tls-verify CA; NULL: the server is not verified */
	const char *tls_sni;		/* host name of --target, NULL when numeric */
	char sni_buf[256];
	struct tls_ctx *tls_ctx;	/* owned; load_tls_setup / load_tls_teardown */
	const char *auth_user, *auth_pass;	/* --auth: point into argv */
	struct load_msg msg;
	uint64_t start_ns, deadline_ms;	/* monotonic; deadline 0 = none */
	/* Shared and written while running: touch with __atomic only. */
	uint64_t claimed;
	int stop;
};

struct load_stats {
	uint64_t sent;			/* transactions started (MAIL sent) */
	uint64_t accepted;		/* final reply 2xx */
	uint64_t refused[LOAD_CODES];	/* transactions refused, by the refusing code */
	uint64_t rcpt_refused;		/* single RCPTs refused in transactions that went on */
	uint64_t connect_errors;	/* connect failed, or greeting/EHLO not accepted */
	uint64_t disconnects;		/* server closed unexpectedly, or protocol error */
	uint64_t timeouts;		/* no reply within --timeout */
	uint64_t connections;		/* connections established */
	uint64_t bytes_accepted;	/* message bytes (un-stuffed) of accepted messages */
	uint64_t tls_handshakes;	/* finished, resumed ones included */
	uint64_t tls_resumed;		/* of which the server resumed a session */
	uint64_t tls_failures;		/* handshakes failed (also connect errors) */
	uint64_t auth_failures;		/* AUTH not answered 235 (also connect errors) */
	struct hist lat;		/* ns, MAIL sent -> reply to the final dot */
	/* The last handshake's, written by the worker, read after it ended. */
	char tls_version[LOAD_TLS_NAME_MAX];
	char tls_cipher[LOAD_TLS_NAME_MAX];
};

enum load_state {
	LS_IDLE, LS_BACKOFF, LS_CONNECT, LS_BANNER, LS_EHLO, LS_HELO,
	LS_STARTTLS, LS_TLS, LS_AUTH,	/* STARTTLS sent; handshaking; AUTH sent */
	LS_READY,		/* waiting for a rate token */
	LS_MAIL, LS_RCPT, LS_DATA, LS_PIPE, LS_FINAL, LS_RSET, LS_QUIT, LS_DONE,
};

struct load_worker;

struct load_sess {
	struct conn conn;
	struct load_worker *w;
	struct timer timer;		/* reply timeout, or reconnect back-off */
	enum load_state state;
	unsigned open:1, can_pipe:1, in_tx:1, quitting:1, closing_ok:1;
	unsigned tls_up:1;		/* this connection's handshake finished */
	/* A message claimed before connecting: with --per-connection 1 no connection is opened in vain. */
	unsigned prepaid:1;
	unsigned fails;			/* consecutive failures, reset by a finished transaction */
	unsigned on_conn;		/* transactions on this connection */
	unsigned reply_idx;		/* replies seen in this MAIL/RCPT/DATA group */
	unsigned rcpt_ok, rcpt_bad;
	int mail_code;			/* reply to MAIL in a pipelined group */
	int rcpt_code;			/* last refusing reply to a RCPT */
	uint64_t t0_ns;
	size_t id_off, id_len, hdr_len;
	struct load_sess *wait_next, *wait_prev;
	uint32_t llen;
	char line[512];			/* a reply line split across receives */
	char hdr[LOAD_HDR_MAX];		/* this message's header block; constant until its reply */
};

struct load_worker {
	unsigned idx;
	pthread_t tid;
	struct load_cfg *cfg;
	struct ring ring;
	struct load_sess *sess;
	unsigned nsess, active;
	struct load_stats st;
	uint64_t seq;			/* messages of this worker, for Message-IDs */
	/* --rate: token bucket refilled from the clock, paced by a ring timeout. */
	double rate, tokens, burst;
	uint64_t refill_ns;
	struct load_sess *wait_head, *wait_tail;
	struct ring_op pace_op;
	struct __kernel_timespec pace_ts;
	int pace_armed;
	/* Date header, rebuilt once a second. */
	time_t date_sec;
	char date[LOAD_DATE_MAX];
	/* --id-log lines, written in blocks. */
	char *ids;
	size_t ids_len;
	void *tls_session;		/* --tls-resume: the newest WOLFSSL_SESSION, owned */
	int tls_err_said;		/* the first handshake failure went to stderr */
	int err;			/* start-up failure (-errno), reported by main */
	uint64_t end_ns;		/* when the loop ended: elapsed stops at the last worker's */
	int finished;			/* __atomic: the worker's loop ended */
};

/* Monotonic nanoseconds. */
uint64_t load_now_ns(void);

/* The thread body: runs nsess sessions on a ring of its own until all are done. */
void *load_worker_main(void *arg);

/* Worker services used by the sessions (load_worker.c). */
int load_worker_more(struct load_worker *w);
int load_worker_claim(struct load_worker *w);
int load_worker_live(struct load_worker *w);
int load_worker_token(struct load_worker *w, struct load_sess *s);
void load_worker_unwait(struct load_worker *w, struct load_sess *s);
void load_worker_log_id(struct load_worker *w, const char *id, size_t len);
const char *load_worker_date(struct load_worker *w);
void load_worker_sess_done(struct load_worker *w);

/* Counter bump another thread may read for the progress line. */
static inline void
load_inc(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, *p + n, __ATOMIC_RELAXED);
}
static inline uint64_t
load_read(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Sessions (load_sess.c). */
void load_sess_init(struct load_sess *s, struct load_worker *w);
void load_sess_start(struct load_sess *s);
/* A rate token became available for a session in LS_READY. */
void load_sess_go(struct load_sess *s);

/* Report (load_report.c): sums workers into total, prints text or JSON on stdout. */
void load_stats_merge(struct load_stats *dst, const struct load_stats *src);
void load_report(const struct load_cfg *cfg, const struct load_stats *st, double elapsed_s);
/* One progress line to stderr ("\r", no newline). */
void load_progress(const struct load_cfg *cfg, struct load_worker *w, unsigned n,
		   double elapsed_s, uint64_t *last_accepted, double *last_s);

#endif
