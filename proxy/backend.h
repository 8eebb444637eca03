/*
 * backend.h - connections to the backend MTAs and the per-worker pools
 * that keep them warm. A link is connected, greeted and EHLO'd before a
 * transaction takes it; it then carries MAIL/RCPT/DATA of one client
 * transaction at a time, each reply handed to its owner, and goes back
 * to the pool when the transaction ends. A link whose transaction was
 * abandoned mid-DATA is closed without the final dot, so the backend
 * discards the partial message.
 */
#ifndef PROXY_BACKEND_H
#define PROXY_BACKEND_H

#include <sys/queue.h>
#include "conn.h"
#include "config.h"

/* Capabilities learned from the backend's EHLO reply. */
enum {
	BCAP_PIPELINING = 1u << 0,
	BCAP_SIZE = 1u << 1,
	BCAP_8BITMIME = 1u << 2,
	BCAP_SMTPUTF8 = 1u << 3,
	BCAP_DSN = 1u << 4,
	BCAP_ENHANCED = 1u << 5,
	BCAP_XFORWARD = 1u << 6,
	BCAP_XCLIENT = 1u << 7,
	BCAP_STARTTLS = 1u << 8,
	BCAP_CHUNKING = 1u << 9,
};

#define BREPLY_MAX 4096
/* blink_expect timeout meaning "no deadline" (while DATA streams). */
#define BLINK_NO_TIMEOUT UINT64_MAX

struct bpool;
struct blink;
struct bacquire;
struct worker;

/*
 * A complete reply from the backend: code and the raw reply text (every
 * line, CRLF-terminated). code < 0: the link failed (-errno, or
 * -ETIMEDOUT) before a reply came; text then empty.
 */
typedef void blink_reply_fn(struct blink *l, void *owner, int code, const char *text, size_t len);
/* A link for a transaction, or NULL when no backend could be reached. */
typedef void blink_ready_fn(void *owner, struct blink *l);

enum blink_state {
	/* setting up, in this order up to BL_HANDSHAKE (bpool_close_all relies on it) */
	BL_CONNECTING, BL_GREETING, BL_EHLO, BL_STARTTLS, BL_HANDSHAKE,
	BL_IDLE, BL_BUSY, BL_RSET, BL_CLOSED,
};

struct blink {
	struct conn conn;
	struct bpool *pool;
	enum blink_state state;
	unsigned caps;
	uint64_t max_size;		/* backend's SIZE, 0 = none */
	struct blink *next_idle;
	LIST_ENTRY(blink) all_entry;	/* every link of the pool */
	struct timer timer;
	struct bacquire *acq;		/* acquisition this link is being set up for */
	/* the transaction that holds the link */
	void *owner;
	blink_reply_fn *on_reply;
	void (*on_drain)(void *owner);	/* send queue emptied (DATA back-pressure) */
	/* reply assembly */
	char reply[BREPLY_MAX];
	size_t reply_len;
	char head[4];			/* the current line's first octets, kept */
	unsigned head_len;		/* even when the line no longer fits in reply */
	unsigned transactions;
	unsigned xforward_attrs;	/* FWD_* the backend lists after XFORWARD */
	unsigned xclient_attrs;		/* ... and after XCLIENT */
	int no_reuse;			/* XCLIENT changed its identity: close after use */
	/*
	 * PIPELINING (RFC 2920): commands sent ahead of the owner's turn.
	 * Replies come in the order the commands went, so counts suffice.
	 */
	unsigned owed;			/* sent ahead, reply not yet claimed by the owner */
	unsigned skip;			/* replies to drop before the next one goes anywhere */
	int rset_due;			/* released while replies were due: RSET once they are in */
	int tls;			/* STARTTLS done: EHLO again was under TLS */
};

struct bpool {
	char *name;
	struct net_addr addr;
	char addr_str[NET_ADDR_STRLEN];
	char ehlo[256];			/* our name in EHLO (config hostname) */
	unsigned weight, max_conns;
	enum cfg_forward forward;	/* pass the real client: none | xclient | xforward */
	char cc[16];			/* TCP congestion control of new links; "" = the system's */
	int cc_warned;			/* cc could not be set: said once */
	struct tls_ctx *tls;		/* tls = starttls: the newest config's client context */
	uint64_t reply_timeout_ms;	/* MAIL/RCPT/DATA replies */
	uint64_t data_timeout_ms;	/* reply after the final dot */
	int current_weight;		/* smooth weighted round robin */
	unsigned nlinks;		/* every link, idle or not */
	LIST_HEAD(, blink) all;		/* ... listed, so a stop can close those still setting up */
	struct blink *idle;
	unsigned nidle;
	unsigned caps;			/* from the last successful EHLO */
	int caps_known;
	uint64_t down_until_ms;		/* skip after a failure, until then */
	struct worker *worker;
	struct bpool *next;
	/* acquisitions waiting for a link of this pool */
	struct bacquire *waiters;
};

/*
 * Pools of one worker, found by (name, address); created on first use
 * with the settings of cfg. A lookup changes nothing: the worker applies
 * the newest config's settings with bpool_configure when it takes a config.
 */
struct bpool *bpool_get(struct worker *w, const struct cfg_backend *b, const struct config *cfg);
void bpool_configure(struct bpool *p, const struct cfg_backend *b, const struct config *cfg);
/*
 * Opens a link on a pool that has none, so its EHLO capabilities are
 * known before a transaction needs them; not while the pool is marked
 * down or the worker stops.
 */
void bpool_prewarm(struct bpool *p);
void bpool_close_all(struct worker *w);
/* At worker exit, once every link has closed: frees the pools. */
void bpool_destroy_all(struct worker *w);

/*
 * Finds a link for a transaction among the listener's backends of cfg,
 * by weight, round robin, skipping backends that refuse or greet with
 * 4xx/5xx; ready() is called once, perhaps before this returns, with a
 * link in BL_BUSY owned by owner, or NULL when none is reachable.
 * Returns a handle to cancel the wait (NULL when already answered).
 */
struct bacquire *backend_acquire(struct worker *w, const struct config *cfg,
				 const struct cfg_listener *lst, void *owner,
				 blink_ready_fn *ready);
void backend_acquire_cancel(struct bacquire *a);

/* Sends a command line (CRLF added) and routes the reply to fn. */
void blink_command(struct blink *l, const char *line, size_t len, blink_reply_fn *fn,
		   void *owner, uint64_t timeout_ms);
/* Queues a command line (CRLF added) without sending it yet. */
void blink_write_line(struct blink *l, const char *line, size_t len);
/*
 * Queues a command whose reply its owner will claim later, in order
 * (RFC 2920): blink_claim when it reaches that command, blink_disown
 * when it answers the client itself. Only for a backend that offers
 * PIPELINING; never a command after DATA.
 */
void blink_presend(struct blink *l, const char *line, size_t len);
void blink_claim(struct blink *l, blink_reply_fn *fn, void *owner, uint64_t timeout_ms);
void blink_disown(struct blink *l);
/* Sets where the next reply goes (after sending data by other means). */
void blink_expect(struct blink *l, blink_reply_fn *fn, void *owner, uint64_t timeout_ms);
/*
 * The transaction ended cleanly: back to the pool (RSET first if dirty,
 * and after the replies still due to commands sent ahead, if any).
 */
void blink_release(struct blink *l, int dirty);
/* Abandon: close without the final dot; the backend discards the message. */
void blink_abort(struct blink *l);

#endif
