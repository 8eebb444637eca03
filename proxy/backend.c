/*
 * backend.c - backend links and pools (see backend.h).
 *
 * A link's life: CONNECTING -> GREETING (220) -> EHLO -> IDLE in the
 * pool -> BUSY for one transaction -> IDLE again (after RSET when the
 * transaction was abandoned before its end) -> ... A link that fails,
 * times out or says something unasked is closed; the owner waiting for
 * a reply hears a negative code. Commands sent ahead under PIPELINING
 * are counted (owed until claimed, skip when no longer wanted), so every
 * reply still reaches its command's owner, in order, or nobody; a link
 * released with replies due takes them before its RSET.
 * Choosing a backend is smooth weighted round robin (as nginx) over the
 * listener's backends, skipping any that refused or failed its greeting
 * in the last seconds.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "assets.h"
#include "backend.h"
#include "envelope.h"
#include "log.h"
#include "mem.h"
#include "worker.h"

#define BPOOL_DOWN_MS 2000
#define BLINK_SETUP_TIMEOUT_MS 10000
#define BLINK_IDLE_TIMEOUT_MS 60000
#define BLINK_RECV_BUF 8192

struct bacquire {
	struct worker *w;
	const struct config *cfg;
	const struct cfg_listener *lst;
	void *owner;
	blink_ready_fn *ready;
	uint64_t tried;			/* bit i: lst->backends[i] tried */
	struct bpool *pool;		/* where we wait, if anywhere */
	struct bacquire *next;		/* in pool->waiters */
	struct blink *link;		/* being set up for us */
	int in_call;			/* inside backend_acquire: answer without freeing */
	int done;
};

static void blink_on_recv(struct conn *c, char *data, size_t len, int bid);
static void blink_on_eof(struct conn *c, int err);
static void blink_on_connect(struct conn *c, int res);
static void blink_on_closed(struct conn *c);
static void blink_on_drain(struct conn *c);
static void blink_on_tls(struct conn *c, int err);
static void blink_timeout(struct timer *t);
static void acquire_next(struct bacquire *a);
static void pool_link_available(struct bpool *p, struct blink *l);

/* Hands the verdict to the owner once; frees a unless backend_acquire is still on the stack. */
static void
acquire_answer(struct bacquire *a, struct blink *l)
{
	a->done = 1;
	a->link = NULL;
	if (l) {
		l->acq = NULL;
		l->state = BL_BUSY;
		timer_cancel(&a->w->ring.timers, &l->timer);
	}
	a->ready(a->owner, l);
	if (!a->in_call)
		free(a);
}

static const struct conn_ops blink_ops = {
	.on_recv = blink_on_recv,
	.on_eof = blink_on_eof,
	.on_connect = blink_on_connect,
	.on_closed = blink_on_closed,
	.on_drain = blink_on_drain,
	.on_tls = blink_on_tls,
};

static void
blink_on_drain(struct conn *c)
{
	struct blink *l = c->owner;

	if (l->state == BL_BUSY && l->on_drain)
		l->on_drain(l->owner);
}

void
bpool_configure(struct bpool *p, const struct cfg_backend *b, const struct config *cfg)
{
	snprintf(p->ehlo, sizeof(p->ehlo), "%s", cfg->hostname);
	p->weight = b->weight ? b->weight : 1;
	p->forward = b->forward_client;
	if (strcmp(p->cc, b->congestion) != 0) {
		snprintf(p->cc, sizeof(p->cc), "%s", b->congestion);
		p->cc_warned = 0;
	}
	p->max_conns = b->max_connections ? b->max_connections : 100;
	p->reply_timeout_ms = cfg->timeout_command_ms;
	p->data_timeout_ms = cfg->timeout_data_ms;
	/* The context belongs to cfg's assets; the worker holds cfg while p uses it. */
	p->tls = NULL;
	if (b->tls && cfg->assets) {
		const struct assets *as = assets_of(cfg);
		size_t i = (size_t)(b - cfg->backends);
		if (i < as->nbackends)
			p->tls = as->backend_tls[i];
	}
}

struct bpool *
bpool_get(struct worker *w, const struct cfg_backend *b, const struct config *cfg)
{
	struct bpool *p;

	for (p = w->pools; p; p = p->next) {
		if (strcmp(p->name, b->name) == 0 && net_addr_equal(&p->addr, &b->addr))
			return p;
	}
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(b->name);
	p->addr = b->addr;
	net_addr_format(&p->addr, p->addr_str, sizeof(p->addr_str));
	p->worker = w;
	p->next = w->pools;
	w->pools = p;
	bpool_configure(p, b, cfg);
	return p;
}

static void
blink_set_timer(struct blink *l, uint64_t ms)
{
	if (ms)
		timer_arm(&l->pool->worker->ring.timers, &l->timer, ms);
	else
		timer_cancel(&l->pool->worker->ring.timers, &l->timer);
}

static struct blink *
blink_new(struct bpool *p)
{
	struct blink *l = calloc(1, sizeof(*l));
	int ret, cc_err = 0;

	if (l == NULL)
		return NULL;
	l->pool = p;
	timer_init(&l->timer, blink_timeout);
	conn_init(&l->conn, &p->worker->ring, -1, &blink_ops, l);
	if (conn_use_private_buffer(&l->conn, BLINK_RECV_BUF) < 0) {
		free(l);
		return NULL;
	}
	p->nlinks++;
	LIST_INSERT_HEAD(&p->all, l, all_entry);
	l->state = BL_CONNECTING;
	ret = conn_connect(&l->conn, &p->addr, p->cc, &cc_err);
	if (ret < 0) {
		log_warn("backend=%s addr=%s socket: %s", p->name, p->addr_str, strerror(-ret));
		l->state = BL_CLOSED;
		conn_close(&l->conn);
		return l;
	}
	if (cc_err && !p->cc_warned) {
		p->cc_warned = 1;
		log_warn("backend=%s congestion_control=%s cannot be set (%s): links use the "
			 "system's; congestion_control = system says so without this warning",
			 p->name, p->cc, strerror(-cc_err));
	}
	blink_set_timer(l, BLINK_SETUP_TIMEOUT_MS);
	return l;
}

void
bpool_prewarm(struct bpool *p)
{
	/* A pool that failed just now is left alone until it may be tried again. */
	if (p->nlinks == 0 && !p->worker->stopping && p->down_until_ms <= timer_now_ms())
		blink_new(p);
}

/* Setup failed: the pool is skipped for a while; a waiting acquisition moves on. */
static void
blink_setup_failed(struct blink *l, const char *why)
{
	struct bacquire *a = l->acq;

	log_warn("backend=%s addr=%s unavailable: %s", l->pool->name, l->pool->addr_str, why);
	l->pool->down_until_ms = timer_now_ms() + BPOOL_DOWN_MS;
	l->state = BL_CLOSED;
	l->acq = NULL;
	blink_set_timer(l, 0);
	conn_close(&l->conn);
	if (a) {
		a->link = NULL;
		acquire_next(a);
	}
}

static void
blink_fail_owner(struct blink *l, int err)
{
	blink_reply_fn *fn = l->on_reply;
	void *owner = l->owner;

	l->on_reply = NULL;
	l->on_drain = NULL;
	l->owner = NULL;
	l->state = BL_CLOSED;
	blink_set_timer(l, 0);
	conn_close(&l->conn);
	if (fn)
		fn(l, owner, err, "", 0);
}

static void
blink_on_connect(struct conn *c, int res)
{
	struct blink *l = c->owner;

	if (res < 0) {
		blink_setup_failed(l, strerror(-res));
		return;
	}
	l->state = BL_GREETING;
	conn_recv_start(c);
}

static void
idle_remove(struct blink *l)
{
	struct blink **pp;

	for (pp = &l->pool->idle; *pp; pp = &(*pp)->next_idle) {
		if (*pp == l) {
			*pp = l->next_idle;
			l->pool->nidle--;
			break;
		}
	}
	l->next_idle = NULL;
}

static void
blink_on_eof(struct conn *c, int err)
{
	struct blink *l = c->owner;

	switch (l->state) {
	case BL_CONNECTING:
	case BL_GREETING:
	case BL_EHLO:
	case BL_STARTTLS:
	case BL_HANDSHAKE:
		blink_setup_failed(l, err ? strerror(-err) : "connection closed");
		break;
	case BL_IDLE:
		idle_remove(l);
		/* fall through */
	case BL_RSET:
		l->state = BL_CLOSED;
		blink_set_timer(l, 0);
		conn_close(c);
		break;
	case BL_BUSY:
		blink_fail_owner(l, err ? err : -ECONNRESET);
		break;
	case BL_CLOSED:
		conn_close(c);
		break;
	}
}

static void
blink_on_closed(struct conn *c)
{
	struct blink *l = c->owner;
	struct bpool *p = l->pool;

	timer_cancel(&p->worker->ring.timers, &l->timer);
	p->nlinks--;
	LIST_REMOVE(l, all_entry);
	free(l);
	/* A slot freed up: a waiting acquisition can have a new link. */
	if (p->waiters && p->nlinks < p->max_conns && !p->worker->stopping)
		pool_link_available(p, NULL);
}

static void
blink_timeout(struct timer *t)
{
	struct blink *l = container_of(t, struct blink, timer);

	switch (l->state) {
	case BL_CONNECTING:
	case BL_GREETING:
	case BL_EHLO:
	case BL_STARTTLS:
	case BL_HANDSHAKE:
		blink_setup_failed(l, "timeout");
		break;
	case BL_BUSY:
		log_warn("backend=%s addr=%s reply timeout", l->pool->name, l->pool->addr_str);
		blink_fail_owner(l, -ETIMEDOUT);
		break;
	case BL_IDLE:
		idle_remove(l);
		/* fall through */
	default:
		l->state = BL_CLOSED;
		conn_close(&l->conn);
	}
}

static void
blink_parse_caps(struct blink *l)
{
	const char *p = l->reply, *end = l->reply + l->reply_len;
	int first = 1;

	l->caps = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *kw = p + 4;
		size_t n;

		if (eol == NULL)
			eol = end;
		n = (size_t)(eol - kw);
		while (n && (kw[n - 1] == '\r' || kw[n - 1] == ' '))
			n--;
		if (!first && kw <= eol) {
#define KW(s) (n >= sizeof(s) - 1 && strncasecmp(kw, s, sizeof(s) - 1) == 0 && \
	       (n == sizeof(s) - 1 || kw[sizeof(s) - 1] == ' '))
			if (KW("PIPELINING")) l->caps |= BCAP_PIPELINING;
			else if (KW("8BITMIME")) l->caps |= BCAP_8BITMIME;
			else if (KW("SMTPUTF8")) l->caps |= BCAP_SMTPUTF8;
			else if (KW("DSN")) l->caps |= BCAP_DSN;
			else if (KW("ENHANCEDSTATUSCODES")) l->caps |= BCAP_ENHANCED;
			else if (KW("STARTTLS")) l->caps |= BCAP_STARTTLS;
			else if (KW("CHUNKING")) l->caps |= BCAP_CHUNKING;
			else if (KW("XFORWARD")) {
				l->caps |= BCAP_XFORWARD;
				l->xforward_attrs = envelope_forward_attrs(kw + 8, n - 8);
			} else if (KW("XCLIENT")) {
				l->caps |= BCAP_XCLIENT;
				l->xclient_attrs = envelope_forward_attrs(kw + 7, n - 7);
			}
			else if (KW("SIZE")) {
				l->caps |= BCAP_SIZE;
				l->max_size = n > 5 ? strtoull(kw + 5, NULL, 10) : 0;
			}
#undef KW
		}
		first = 0;
		p = eol + 1;
	}
	l->pool->caps = l->caps;
	l->pool->caps_known = 1;
}

/* A complete reply is in l->reply. Returns 0 to go on parsing, -1 when the link is gone. */
static int
blink_dispatch(struct blink *l, int code)
{
	blink_reply_fn *fn;
	void *owner;
	char line[300];
	int rc;

	if (l->skip && (l->state == BL_BUSY || l->state == BL_RSET)) {
		/* The reply to a command sent ahead that nobody wants any more. */
		l->skip--;
		/* A 354 among them: the backend reads message text now, and only closing ends that. */
		if (code == 354)
			goto unasked;
		if (l->skip == 0 && l->rset_due) {
			l->rset_due = 0;
			conn_write(&l->conn, "RSET\r\n", 6);
			conn_flush(&l->conn);
			blink_set_timer(l, l->pool->reply_timeout_ms);
		}
		return 0;
	}
	switch (l->state) {
	case BL_GREETING:
		if (code != 220) {
			snprintf(line, sizeof(line), "greeting %d", code);
			blink_setup_failed(l, line);
			return -1;
		}
		l->state = BL_EHLO;
		conn_printf(&l->conn, "EHLO %s\r\n", l->pool->ehlo);
		conn_flush(&l->conn);
		return 0;
	case BL_EHLO:
		if (code != 250) {
			snprintf(line, sizeof(line), "EHLO refused with %d", code);
			blink_setup_failed(l, line);
			return -1;
		}
		blink_parse_caps(l);
		if (l->pool->tls && !l->tls) {
			/* Mail is never sent in clear to a backend configured for TLS. */
			if (!(l->caps & BCAP_STARTTLS)) {
				blink_setup_failed(l, "tls = starttls but the backend does not offer STARTTLS");
				return -1;
			}
			l->state = BL_STARTTLS;
			conn_write(&l->conn, "STARTTLS\r\n", 10);
			conn_flush(&l->conn);
			return 0;
		}
		l->pool->down_until_ms = 0;
		pool_link_available(l->pool, l);
		return 0;
	case BL_STARTTLS:
		if (code != 220) {
			snprintf(line, sizeof(line), "STARTTLS refused with %d", code);
			blink_setup_failed(l, line);
			return -1;
		}
		/* Whatever followed the 220 in clear is dropped: only the handshake may come next. */
		l->reply_len = 0;
		l->state = BL_HANDSHAKE;
		rc = conn_tls_start(&l->conn, l->pool->tls, 0, NULL);
		if (rc < 0) {
			snprintf(line, sizeof(line), "cannot start TLS (%s)", conn_tls_start_error(rc));
			blink_setup_failed(l, line);
			return -1;
		}
		return -1;
	case BL_BUSY:
		if (l->on_reply == NULL)
			break;
		fn = l->on_reply;
		owner = l->owner;
		l->on_reply = NULL;
		blink_set_timer(l, 0);
		fn(l, owner, code, l->reply, l->reply_len);
		return l->state == BL_CLOSED ? -1 : 0;
	case BL_RSET:
		if (code != 250)
			break;
		pool_link_available(l->pool, l);
		return 0;
	default:
		break;
	}
unasked:
	/* Nothing asked for this reply (e.g. 421 on an idle link): drop the link. */
	if (l->state == BL_IDLE)
		idle_remove(l);
	if (l->state == BL_BUSY) {
		blink_fail_owner(l, -EPROTO);
		return -1;
	}
	l->state = BL_CLOSED;
	blink_set_timer(l, 0);
	conn_close(&l->conn);
	return -1;
}

static void
blink_on_tls(struct conn *c, int err)
{
	struct blink *l = c->owner;
	char why[160];

	if (l->state != BL_HANDSHAKE)
		return;
	if (err) {
		snprintf(why, sizeof(why), "TLS handshake: %s", conn_tls_error(c));
		blink_setup_failed(l, why);
		return;
	}
	l->tls = 1;
	l->state = BL_EHLO;
	conn_printf(&l->conn, "EHLO %s\r\n", l->pool->ehlo);
	conn_flush(&l->conn);
}

static void
blink_on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct blink *l = c->owner;

	(void)bid;
	while (len) {
		char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) + 1 : len;
		size_t room = MIN(n, sizeof(l->reply) - l->reply_len);
		size_t hroom = MIN(n, sizeof(l->head) - l->head_len);

		memcpy(l->head + l->head_len, data, hroom);
		l->head_len += (unsigned)hroom;
		/* An over-long reply is kept truncated; the code is what matters. */
		memcpy(l->reply + l->reply_len, data, room);
		l->reply_len += room;
		data += n;
		len -= n;
		if (nl == NULL)
			break;
		/*
		 * One full line: the last of the reply when its 4th octet is not
		 * '-'. Read from head, not from reply, which may have no room
		 * left for the lines after an over-long one.
		 */
		{
			const char *ln = l->head;
			int code;

			if (l->head_len < 4 || ln[0] < '2' || ln[0] > '5' || ln[1] < '0' || ln[1] > '9' ||
			    ln[2] < '0' || ln[2] > '9' || (ln[3] != ' ' && ln[3] != '-' && ln[3] != '\r' && ln[3] != '\n')) {
				log_warn("backend=%s addr=%s sent a malformed reply line", l->pool->name, l->pool->addr_str);
				l->reply_len = 0;
				l->head_len = 0;
				if (l->state == BL_BUSY)
					blink_fail_owner(l, -EPROTO);
				else
					blink_on_eof(c, -EPROTO);
				return;
			}
			l->head_len = 0;
			if (ln[3] == '-')
				continue;
			code = (ln[0] - '0') * 100 + (ln[1] - '0') * 10 + (ln[2] - '0');
			if (blink_dispatch(l, code) < 0)
				return;
			l->reply_len = 0;
		}
	}
}

void
blink_write_line(struct blink *l, const char *line, size_t len)
{
	conn_write(&l->conn, line, len);
	conn_write(&l->conn, "\r\n", 2);
}

void
blink_command(struct blink *l, const char *line, size_t len, blink_reply_fn *fn,
	      void *owner, uint64_t timeout_ms)
{
	blink_write_line(l, line, len);
	conn_flush(&l->conn);
	blink_expect(l, fn, owner, timeout_ms);
}

void
blink_presend(struct blink *l, const char *line, size_t len)
{
	blink_write_line(l, line, len);
	l->owed++;
}

void
blink_claim(struct blink *l, blink_reply_fn *fn, void *owner, uint64_t timeout_ms)
{
	l->owed--;
	blink_expect(l, fn, owner, timeout_ms);
}

void
blink_disown(struct blink *l)
{
	l->owed--;
	l->skip++;
}

void
blink_expect(struct blink *l, blink_reply_fn *fn, void *owner, uint64_t timeout_ms)
{
	l->on_reply = fn;
	l->owner = owner;
	if (timeout_ms == BLINK_NO_TIMEOUT)
		blink_set_timer(l, 0);
	else
		blink_set_timer(l, timeout_ms ? timeout_ms : l->pool->reply_timeout_ms);
}

void
blink_release(struct blink *l, int dirty)
{
	l->on_drain = NULL;
	l->on_reply = NULL;
	l->owner = NULL;
	l->transactions++;
	if (l->state != BL_BUSY)
		return;
	if (l->no_reuse) {
		/* Its session identity is another client's now: not for the pool. */
		l->state = BL_CLOSED;
		blink_set_timer(l, 0);
		conn_write(&l->conn, "QUIT\r\n", 6);
		conn_close_after_send(&l->conn);
		return;
	}
	l->skip += l->owed;
	l->owed = 0;
	if (l->skip) {
		/*
		 * Replies to commands sent ahead are still due: RSET follows
		 * them, and a 354 among them (the backend reading message text)
		 * closes the link instead.
		 */
		l->state = BL_RSET;
		l->rset_due = 1;
		blink_set_timer(l, l->pool->reply_timeout_ms);
		return;
	}
	if (dirty) {
		/* An abandoned MAIL/RCPT state must not leak into the next client's transaction. */
		l->state = BL_RSET;
		conn_write(&l->conn, "RSET\r\n", 6);
		conn_flush(&l->conn);
		blink_set_timer(l, l->pool->reply_timeout_ms);
		return;
	}
	pool_link_available(l->pool, l);
}

void
blink_abort(struct blink *l)
{
	l->on_drain = NULL;
	l->on_reply = NULL;
	l->owner = NULL;
	l->state = BL_CLOSED;
	blink_set_timer(l, 0);
	conn_close(&l->conn);
}

/* l is ready (or NULL: a slot opened): give it to a waiter, else keep it idle. */
static void
pool_link_available(struct bpool *p, struct blink *l)
{
	struct bacquire *a;

	if (l && l->acq) {
		acquire_answer(l->acq, l);
		return;
	}
	a = p->waiters;
	if (a) {
		p->waiters = a->next;
		a->pool = NULL;
		if (l == NULL) {
			l = blink_new(p);
			if (l == NULL || l->state == BL_CLOSED) {
				acquire_next(a);
				return;
			}
			l->acq = a;
			a->link = l;
			return;
		}
		acquire_answer(a, l);
		return;
	}
	if (l == NULL)
		return;
	if (p->worker->stopping && p->worker->nsessions == 0) {
		l->state = BL_CLOSED;
		conn_close(&l->conn);
		return;
	}
	l->state = BL_IDLE;
	l->next_idle = p->idle;
	p->idle = l;
	p->nidle++;
	blink_set_timer(l, BLINK_IDLE_TIMEOUT_MS);
}

/* Smooth weighted round robin among untried backends; down ones only if nothing else. */
static int
acquire_pick(struct bacquire *a, struct bpool **out)
{
	uint64_t now = timer_now_ms();
	struct bpool *best = NULL;
	int best_i = -1, total = 0;

	for (int pass = 0; pass < 2 && best == NULL; pass++) {
		total = 0;
		for (unsigned i = 0; i < a->lst->nbackends && i < 64; i++) {
			struct bpool *p;

			if (a->tried & (1ull << i))
				continue;
			p = bpool_get(a->w, &a->cfg->backends[a->lst->backends[i]], a->cfg);
			if (pass == 0 && p->down_until_ms > now)
				continue;
			p->current_weight += (int)p->weight;
			total += (int)p->weight;
			if (best == NULL || p->current_weight > best->current_weight) {
				best = p;
				best_i = (int)i;
			}
		}
	}
	if (best == NULL)
		return -1;
	best->current_weight -= total;
	a->tried |= 1ull << best_i;
	*out = best;
	return 0;
}

static void
acquire_next(struct bacquire *a)
{
	struct bpool *p;
	struct blink *l;

	for (;;) {
		if (acquire_pick(a, &p) < 0) {
			acquire_answer(a, NULL);
			return;
		}
		if (p->idle) {
			l = p->idle;
			p->idle = l->next_idle;
			p->nidle--;
			l->next_idle = NULL;
			acquire_answer(a, l);
			return;
		}
		if (p->nlinks < p->max_conns) {
			l = blink_new(p);
			if (l == NULL || l->state == BL_CLOSED)
				continue;
			l->acq = a;
			a->link = l;
			return;
		}
		/* Full: wait for a link of this pool to come back. */
		{
			struct bacquire **pp = &p->waiters;
			while (*pp)
				pp = &(*pp)->next;
			a->next = NULL;
			a->pool = p;
			*pp = a;
		}
		return;
	}
}

struct bacquire *
backend_acquire(struct worker *w, const struct config *cfg, const struct cfg_listener *lst,
		void *owner, blink_ready_fn *ready)
{
	struct bacquire *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		ready(owner, NULL);
		return NULL;
	}
	a->w = w;
	a->cfg = cfg;
	a->lst = lst;
	a->owner = owner;
	a->ready = ready;
	a->in_call = 1;
	acquire_next(a);
	a->in_call = 0;
	if (a->done) {
		free(a);
		return NULL;
	}
	return a;
}

void
backend_acquire_cancel(struct bacquire *a)
{
	if (a == NULL)
		return;
	if (a->pool) {
		struct bacquire **pp = &a->pool->waiters;
		while (*pp && *pp != a)
			pp = &(*pp)->next;
		if (*pp)
			*pp = a->next;
	}
	/* A link being set up for us joins the pool when it is ready. */
	if (a->link)
		a->link->acq = NULL;
	free(a);
}

void
bpool_close_all(struct worker *w)
{
	for (struct bpool *p = w->pools; p; p = p->next) {
		while (p->idle) {
			struct blink *l = p->idle;
			p->idle = l->next_idle;
			p->nidle--;
			l->state = BL_CLOSED;
			blink_set_timer(l, 0);
			conn_close(&l->conn);
		}
		/* Links still connecting or greeting (a mute backend) would hold the exit up. */
		for (struct blink *l = LIST_FIRST(&p->all), *next; l; l = next) {
			next = LIST_NEXT(l, all_entry);
			if (l->state > BL_HANDSHAKE || l->acq)
				continue;
			l->state = BL_CLOSED;
			blink_set_timer(l, 0);
			conn_close(&l->conn);
		}
	}
}

void
bpool_destroy_all(struct worker *w)
{
	while (w->pools) {
		struct bpool *p = w->pools;

		w->pools = p->next;
		while (p->waiters) {
			struct bacquire *a = p->waiters;
			p->waiters = a->next;
			free(a);
		}
		free(p->name);
		free(p);
	}
}
