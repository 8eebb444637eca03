/*
 * sink.h - the shared types of mxsink, the SMTP/LMTP sink backend:
 * options (set once by main before the workers start, read-only after),
 * per-worker state and counters, one session per accepted connection,
 * the growable byte buffer and the --store writer. mxsink.c owns the
 * process (options, workers, signals, totals); sink_session.c owns the
 * SMTP dialog, STARTTLS and implicit TLS included (the record layer
 * is core's conn_tls_start); sink_store.c owns the files written by
 * --store; sink_buf.c owns the growable buffer.
 */
#ifndef BENCH_SINK_H
#define BENCH_SINK_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "acceptor.h"
#include "conn.h"
#include "data_scan.h"
#include "net.h"
#include "ring.h"
#include "timer.h"

#define SINK_HOSTNAME "mxsink"
#define SINK_IDLE_MS (5 * 60 * 1000)	/* session idle timeout */
#define SINK_DRAIN_MS (10 * 1000)	/* SIGTERM: how long open sessions may finish */
#define SINK_LINE_MAX 8192		/* lenient command line limit */
#define SINK_ID_LEN 32
#define SINK_TLS_DESC_MAX 128		/* "TLSv1.3 TLS13-AES128-GCM-SHA256" */

struct tls_ctx;

/* Growable byte buffer (sink_buf.c). */
struct sink_buf {
	char *p;
	size_t len, cap;
};
/* Returns 0, or -1 when memory ran out (the buffer is unchanged). */
int sink_buf_append(struct sink_buf *b, const void *p, size_t n);
int sink_buf_printf(struct sink_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sink_buf_reset(struct sink_buf *b) { b->len = 0; }
void sink_buf_free(struct sink_buf *b);

/* Command-line options, fixed before the workers start. */
struct sink_opts {
	int lmtp;
	int quiet;
	const char *store_dir;		/* NULL: do not store */
	int reply_data;			/* 0: accept */
	int reply_rcpt;
	int reply_mail;
	uint64_t delay_ms;		/* delay of end-of-data replies */
	double fail_rate;		/* fraction of transactions failed with 451 */
	uint64_t max_messages;		/* 0: no limit */
	int workers;
	const char *tls_cert, *tls_key;	/* --tls-cert/--tls-key: STARTTLS offered */
	int tls_implicit;		/* --tls-implicit: the handshake comes first */
	int no_chunking;		/* --no-chunking: BDAT not offered */
	struct tls_ctx *tls_ctx;	/* the server context, owned by main; NULL: no TLS */
};
extern struct sink_opts sink_opts;

/* Process-wide control, shared by the workers. */
extern volatile sig_atomic_t sink_signals;	/* SIGTERM/SIGINT received so far */
extern atomic_int sink_quit;			/* stop now (--max-messages reached) */
extern atomic_uint_fast64_t sink_accepted;	/* messages accepted, all workers */
extern uint32_t sink_id_prefix;			/* start time: ids unique across runs */
extern uint32_t sink_id_pid;			/* and across processes sharing a --store */
extern atomic_uint_fast64_t sink_id_next;

struct sink_stats {
	uint64_t connections, messages, recipients, bytes;
	uint64_t bare_lf, bare_cr, nul, long_lines;
	uint64_t aborted, failed;
	uint64_t tls, tls_failed;	/* handshakes finished / failed */
};

struct sink_session;

struct sink_worker {
	struct ring ring;
	pthread_t thread;
	int index;
	int *listen_fds;		/* one per --listen, owned until acceptor_start */
	int nlisten;
	struct acceptor *acceptors;
	int acceptors_live;		/* acceptors not yet stopped */
	struct sink_session *sessions;	/* every open session */
	unsigned nsessions;
	struct sink_stats stats;
	uint64_t rng;			/* xorshift state for --fail-rate */
	int draining;
	uint64_t drain_deadline;	/* timer_now_ms() */
};

/* Store writer (sink_store.c): one message being received into DIR/.tmp.<id>.eml. */
struct sink_store {
	int fd;				/* -1: nothing open */
	int bol;			/* next octet starts a line (after CRLF) */
	int prev_cr;			/* last octet fed was CR */
	int failed;			/* a write failed: the message cannot be stored */
	char *stage;			/* un-stuffed octets not yet written */
	size_t len;
	char tmp[4096];			/* temp file path */
};

struct sink_session {
	struct conn conn;
	struct sink_worker *w;
	struct sink_session *next, **pprev;
	struct timer idle_timer, delay_timer;
	unsigned data_mode:1, waiting:1, quitting:1, stop_after_send:1,
		 line_overflow:1, has_mail:1, last_message:1;
	unsigned tls_wait:1;		/* handshaking: input is not commands */
	unsigned tls:1;			/* under TLS; tls_desc says which */
	/* BDAT (RFC 3030): a chunk's octets are being read; bdat: this transaction uses BDAT */
	unsigned chunk_mode:1, chunk_last:1, bdat:1;
	uint64_t chunk_left;
	const char *chunk_refusal;	/* the reply once the chunk is read, when refused */
	struct sink_buf line;		/* a command line split across receives */
	struct sink_buf held;		/* input received while a delayed reply waits */
	struct sink_buf reply;		/* the delayed reply */
	unsigned nrcpt;			/* accepted recipients */
	unsigned rcpt_refused;		/* refused recipients */
	struct sink_buf env;		/* "MAIL FROM:<>\n" and "RCPT TO:<>\n" lines */
	struct sink_buf xforward;	/* attributes of this transaction */
	struct sink_buf xclient;	/* attributes of this session */
	struct data_scan scan;
	struct sink_store store;
	char id[SINK_ID_LEN];
	char peer[NET_ADDR_STRLEN];
	char tls_desc[SINK_TLS_DESC_MAX];	/* "<version> <cipher>", for .env and logs */
};

/* sink_session.c */
void sink_session_accept(struct acceptor *a, int fd, const struct net_addr *peer);
/* SIGTERM: an idle session is told 421 and closed, a busy one finishes first. */
void sink_session_drain(struct sink_session *s);
/* Hard stop: the temp file of an unfinished message is removed. */
void sink_session_discard(struct sink_session *s);

/* sink_store.c */
void sink_store_init(struct sink_store *st);
/* Creates dir/.tmp.<id>.eml, never an existing one; returns 0 or -1 (errno set, EEXIST). */
int sink_store_open(struct sink_store *st, const char *dir, const char *id);
/* Dot-stuffed DATA octets, terminator included, in any split. */
void sink_store_feed(struct sink_store *st, const char *p, size_t n);
/* Feeds message octets as they are (BDAT chunks: nothing is stuffed). */
void sink_store_raw(struct sink_store *st, const char *p, size_t n);
/*
 * Writes dir/<id>.eml.env (env) and dir/<id>.eml, each by rename of a
 * temp file, .env first. Returns 0, or -1 with nothing left in dir.
 */
int sink_store_commit(struct sink_store *st, const char *dir, const char *id,
		      const char *env, size_t envlen);
/* Removes the temp file; idempotent. */
void sink_store_abort(struct sink_store *st);

#endif
