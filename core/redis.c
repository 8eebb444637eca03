/*
 * redis.c - the hiredis 0.14 async adapter on a worker's ring (see
 * redis.h): hiredis' addRead/addWrite/cleanup hooks mapped onto ring
 * polls, requests with deadlines on the timer wheel, reconnect with
 * backoff.
 *
 * A "link" is one hiredis context and the two poll ops armed on its
 * socket. When hiredis frees the context (error, drop, free) the link
 * becomes a zombie: its polls are cancelled, and it is freed only once
 * the kernel has returned both ops, because their CQEs point into it.
 * A request object belongs to hiredis' callback queue until hiredis
 * calls it back (reply, or NULL on free); a deadline that fires first
 * completes the request to its owner and leaves the object behind as a
 * tombstone, so the late reply finds it "done" and is dropped.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <arpa/inet.h>
#include <hiredis/async.h>
#include "redis.h"
#include "ring.h"
#include "log.h"

#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
#define REDIS_CONNECT_MIN_MS 1000
/* Reads per readiness event: 64 x hiredis' 16 KiB, then the rest next turn. */
#define REDIS_READS_PER_EVENT 64
/* redis_conn_free waits this long at most for the kernel to return cancelled polls. */
#define REDIS_DRAIN_MS 500

struct redis_link {
	struct redis_link *next, **pprev;	/* in conn->zombies once dead */
	struct redis_conn *conn;		/* NULL if the conn went first (drain timed out) */
	redisAsyncContext *ac;			/* NULL once hiredis cleaned up */
	struct ring_op rd_op, wr_op;
	uint64_t progress_ms;			/* last reply, or when outstanding went 0 -> 1 */
	unsigned outstanding;			/* requests in hiredis' queue, tombstones included */
	unsigned rd_armed:1, wr_armed:1, want_write:1, in_write:1, write_again:1;
	unsigned read_again:1, busy:1, healthy:1;
};

struct redis_conn {
	struct ring *ring;
	struct net_addr addr;
	char *password;
	uint64_t timeout_ms;
	redis_link_fn *on_link;
	void *arg;
	struct redis_link *link;		/* live connection, NULL while backing off */
	struct redis_link *zombies;
	struct timer retry_timer, connect_timer;
	uint64_t backoff_ms;
	int closing;
	int outage_logged;			/* one warning per outage, not one per retry */
	struct redis_conn_stats stats;
};

struct redis_req {
	struct timer timer;
	struct redis_conn *conn;
	redis_reply_fn *fn;
	void *arg;
	int done;
};

static void redis_conn_start(struct redis_conn *c);

static void
redis_link_arm_read(struct redis_link *l)
{
	struct io_uring_sqe *sqe = ring_sqe(l->conn->ring);

	io_uring_prep_poll_multishot(sqe, l->ac->c.fd, POLLIN);
	ring_sqe_op(sqe, &l->rd_op);
	l->rd_armed = 1;
}

static void
redis_link_arm_write(struct redis_link *l)
{
	struct io_uring_sqe *sqe = ring_sqe(l->conn->ring);

	io_uring_prep_poll_add(sqe, l->ac->c.fd, POLLOUT);
	ring_sqe_op(sqe, &l->wr_op);
	l->wr_armed = 1;
}

static void
redis_link_cancel(struct redis_link *l, struct ring_op *op)
{
	struct io_uring_sqe *sqe = ring_sqe(l->conn->ring);

	io_uring_prep_cancel(sqe, op, 0);
	/* The cancel's own CQE carries no op: ring_run skips it. */
	io_uring_sqe_set_data(sqe, NULL);
}

/* Frees a zombie once the kernel holds none of its ops and no caller is inside it. */
static void
redis_link_reap(struct redis_link *l)
{
	if (l->ac || l->rd_armed || l->wr_armed || l->busy)
		return;
	if (l->pprev) {
		*l->pprev = l->next;
		if (l->next)
			l->next->pprev = l->pprev;
	}
	free(l);
}

/* --- hiredis event hooks (privdata = the link) --- */

static void
redis_ev_add_read(void *p)
{
	struct redis_link *l = p;

	if (l->ac && !l->rd_armed)
		redis_link_arm_read(l);
}

static void
redis_ev_del_read(void *p)
{
	/* The multishot poll stays armed: a spurious readiness costs one EAGAIN read. */
	(void)p;
}

static void
redis_ev_add_write(void *p)
{
	struct redis_link *l = p;

	l->want_write = 1;
	/* Asked again from inside a write: the socket buffer is full. */
	if (l->in_write)
		l->write_again = 1;
}

static void
redis_ev_del_write(void *p)
{
	struct redis_link *l = p;

	l->want_write = 0;
}

/* hiredis is freeing the context: the link becomes a zombie, the conn retries. */
static void
redis_ev_cleanup(void *p)
{
	struct redis_link *l = p;
	struct redis_conn *c = l->conn;

	if (l->rd_armed)
		redis_link_cancel(l, &l->rd_op);
	if (l->wr_armed)
		redis_link_cancel(l, &l->wr_op);
	l->ac = NULL;
	if (c->link == l)
		c->link = NULL;
	l->next = c->zombies;
	if (l->next)
		l->next->pprev = &l->next;
	l->pprev = &c->zombies;
	c->zombies = l;
	timer_cancel(&c->ring->timers, &c->connect_timer);
	if (c->closing)
		return;
	timer_arm(&c->ring->timers, &c->retry_timer, c->backoff_ms);
	c->backoff_ms = MIN(c->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
}

static void
redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->ev.data;
	struct redis_conn *c = l->conn;
	char buf[NET_ADDR_STRLEN];

	if (status != REDIS_OK) {
		if (!c->outage_logged)
			log_warn("redis %s: connect failed: %s (retrying with backoff)",
				 net_addr_format(&c->addr, buf, sizeof(buf)), ac->errstr ? ac->errstr : "?");
		c->outage_logged = 1;
		return;
	}
	timer_cancel(&c->ring->timers, &c->connect_timer);
	if (c->stats.connects++)
		c->stats.reconnects++;
	l->progress_ms = timer_now_ms();
	if (c->password == NULL) {
		l->healthy = 1;
		c->backoff_ms = REDIS_BACKOFF_MIN_MS;
	}
	log_info("redis %s: connected", net_addr_format(&c->addr, buf, sizeof(buf)));
	c->outage_logged = 0;
}

static void
redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->ev.data;
	struct redis_conn *c = l->conn;
	char buf[NET_ADDR_STRLEN];

	if (status != REDIS_OK && !c->closing) {
		log_warn("redis %s: connection lost: %s", net_addr_format(&c->addr, buf, sizeof(buf)),
			 ac->errstr ? ac->errstr : "?");
		c->outage_logged = 1;
	}
}

/* --- ring completions --- */

static void
redis_link_read(struct redis_link *l)
{
	l->busy = 1;
	/* hiredis reads 16 KiB per call and a multishot poll reports new data,
	 * not remaining data: read on while the socket holds more. */
	for (int i = 0; i < REDIS_READS_PER_EVENT && l->ac; i++) {
		int n = 0;

		redisAsyncHandleRead(l->ac);
		if (l->ac == NULL || ioctl(l->ac->c.fd, FIONREAD, &n) < 0 || n <= 0)
			break;
		if (i == REDIS_READS_PER_EVENT - 1)
			l->read_again = 1;
	}
	l->busy = 0;
}

static void
redis_link_write(struct redis_link *l)
{
	l->busy = 1;
	l->in_write = 1;
	l->write_again = 0;
	redisAsyncHandleWrite(l->ac);
	l->in_write = 0;
	l->busy = 0;
	if (l->ac && l->write_again && !l->wr_armed)
		redis_link_arm_write(l);
}

static void
redis_rd_done(struct ring_op *op, int res, uint32_t flags)
{
	struct redis_link *l = container_of(op, struct redis_link, rd_op);

	if (!(flags & IORING_CQE_F_MORE))
		l->rd_armed = 0;
	if (l->ac && res >= 0)
		redis_link_read(l);
	else if (l->ac && res != -ECANCELED) {
		log_warn("redis: poll: %s", strerror(-res));
		redis_conn_drop(l->conn);
	}
	/* A multishot poll that ended (overflow, error) is re-armed. */
	if (l->ac && !l->rd_armed)
		redis_link_arm_read(l);
	redis_link_reap(l);
}

static void
redis_wr_done(struct ring_op *op, int res, uint32_t flags)
{
	struct redis_link *l = container_of(op, struct redis_link, wr_op);

	(void)flags;
	l->wr_armed = 0;
	/* Writable: completes a connect, or resumes a write the socket refused. */
	if (l->ac && res >= 0)
		redis_link_write(l);
	else if (l->ac && res != -ECANCELED) {
		log_warn("redis: poll: %s", strerror(-res));
		redis_conn_drop(l->conn);
	}
	redis_link_reap(l);
}

/* --- requests --- */

static void
redis_req_complete(struct redis_req *q, redisReply *reply)
{
	struct redis_conn *c = q->conn;

	q->done = 1;
	timer_cancel(&c->ring->timers, &q->timer);
	if (reply == NULL)
		c->stats.failures++;
	q->fn(c, reply, q->arg);
}

/* hiredis' callback: a reply, or NULL when the context is freed. */
static void
redis_req_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_req *q = privdata;
	struct redis_link *l = ac->ev.data;

	l->outstanding--;
	if (r)
		l->progress_ms = timer_now_ms();
	if (!q->done)
		redis_req_complete(q, r);
	free(q);
}

/*
 * A deadline passed: answer the owner now. If nothing at all came back
 * for a long while with requests pending, the connection is stuck (a
 * stopped server, a black hole): drop it rather than let tombstones and
 * the output buffer grow.
 */
static void
redis_req_timeout(struct timer *t)
{
	struct redis_req *q = container_of(t, struct redis_req, timer);
	struct redis_conn *c = q->conn;
	struct redis_link *l;
	uint64_t stall_ms = MAX(REDIS_CONNECT_MIN_MS, 4 * c->timeout_ms);

	c->stats.timeouts++;
	redis_req_complete(q, NULL);
	l = c->link;
	if (l && l->ac && l->outstanding && timer_now_ms() - l->progress_ms >= stall_ms) {
		log_warn("redis: no reply for %llu ms, reconnecting", (unsigned long long)stall_ms);
		redis_conn_drop(c);
	}
}

int
redis_conn_call(struct redis_conn *c, uint64_t timeout_ms, redis_reply_fn *fn, void *arg,
		int argc, const char **argv, const size_t *argvlen)
{
	struct redis_link *l = c->link;
	struct redis_req *q;

	if (l == NULL || l->ac == NULL || c->closing)
		return -1;
	q = malloc(sizeof(*q));
	if (q == NULL)
		return -1;
	q->conn = c;
	q->fn = fn;
	q->arg = arg;
	q->done = 0;
	timer_init(&q->timer, redis_req_timeout);
	/* Refused while hiredis tears the context down (DISCONNECTING/FREEING). */
	if (redisAsyncCommandArgv(l->ac, redis_req_reply, q, argc, argv, argvlen) != REDIS_OK) {
		free(q);
		return -1;
	}
	if (l->outstanding++ == 0)
		l->progress_ms = timer_now_ms();
	c->stats.commands++;
	timer_arm(&c->ring->timers, &q->timer, timeout_ms ? timeout_ms : c->timeout_ms);
	return 0;
}

/* --- connection --- */

static void
redis_auth_done(struct redis_conn *c, redisReply *reply, void *arg)
{
	struct redis_link *l = c->link;
	char buf[NET_ADDR_STRLEN];

	(void)arg;
	if (reply && reply->type != REDIS_REPLY_ERROR) {
		if (l) {
			l->healthy = 1;
			c->backoff_ms = REDIS_BACKOFF_MIN_MS;
		}
		return;
	}
	if (reply)
		log_error("redis %s: AUTH refused: %s", net_addr_format(&c->addr, buf, sizeof(buf)), reply->str);
	/* Wrong password: drop and retry with a growing backoff, not a hot loop. */
	if (reply)
		redis_conn_drop(c);
}

static void
redis_connect_timeout(struct timer *t)
{
	struct redis_conn *c = container_of(t, struct redis_conn, connect_timer);
	char buf[NET_ADDR_STRLEN];

	if (c->link && c->link->ac && !(c->link->ac->c.flags & REDIS_CONNECTED)) {
		log_warn("redis %s: connect timed out", net_addr_format(&c->addr, buf, sizeof(buf)));
		c->outage_logged = 1;
		redis_conn_drop(c);
	}
}

static void
redis_retry(struct timer *t)
{
	redis_conn_start(container_of(t, struct redis_conn, retry_timer));
}

static redisAsyncContext *
redis_connect_addr(const struct net_addr *a)
{
	char ip[INET6_ADDRSTRLEN];

	if (a->u.sa.sa_family == AF_UNIX)
		return redisAsyncConnectUnix(a->u.sun.sun_path);
	/* Numeric address: hiredis' getaddrinfo resolves it without DNS. */
	net_addr_ip(a, ip, sizeof(ip));
	return redisAsyncConnect(ip, ntohs(a->u.sa.sa_family == AF_INET6 ? a->u.sin6.sin6_port
									 : a->u.sin.sin_port));
}

static void
redis_conn_start(struct redis_conn *c)
{
	redisAsyncContext *ac;
	struct redis_link *l;
	char buf[NET_ADDR_STRLEN];

	ac = redis_connect_addr(&c->addr);
	l = ac && !ac->err ? calloc(1, sizeof(*l)) : NULL;
	if (l == NULL) {
		if (!c->outage_logged)
			log_warn("redis %s: connect failed: %s (retrying with backoff)",
				 net_addr_format(&c->addr, buf, sizeof(buf)),
				 ac && ac->errstr ? ac->errstr : "out of memory");
		c->outage_logged = 1;
		if (ac)
			redisAsyncFree(ac);
		timer_arm(&c->ring->timers, &c->retry_timer, c->backoff_ms);
		c->backoff_ms = MIN(c->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
		return;
	}
	l->conn = c;
	l->ac = ac;
	l->rd_op.cb = redis_rd_done;
	l->wr_op.cb = redis_wr_done;
	ac->ev.data = l;
	ac->ev.addRead = redis_ev_add_read;
	ac->ev.delRead = redis_ev_del_read;
	ac->ev.addWrite = redis_ev_add_write;
	ac->ev.delWrite = redis_ev_del_write;
	ac->ev.cleanup = redis_ev_cleanup;
	redisAsyncSetConnectCallback(ac, redis_on_connect);
	redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
	c->link = l;
	/* The first writable event completes the non-blocking connect. */
	redis_link_arm_write(l);
	timer_arm(&c->ring->timers, &c->connect_timer, MAX(REDIS_CONNECT_MIN_MS, c->timeout_ms));
	if (c->password && c->password[0]) {
		const char *argv[2] = { "AUTH", c->password };
		size_t argvlen[2] = { 4, strlen(c->password) };

		redis_conn_call(c, MAX(REDIS_CONNECT_MIN_MS, c->timeout_ms), redis_auth_done, NULL,
				2, argv, argvlen);
	}
	if (c->on_link)
		c->on_link(c, c->arg);
}

struct redis_conn *
redis_conn_new(struct ring *r, const struct net_addr *addr, const char *password,
	       uint64_t timeout_ms, redis_link_fn *on_link, void *arg)
{
	struct redis_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ring = r;
	c->addr = *addr;
	if (password && password[0]) {
		c->password = strdup(password);
		if (c->password == NULL) {
			free(c);
			return NULL;
		}
	}
	c->timeout_ms = timeout_ms ? timeout_ms : 100;
	c->on_link = on_link;
	c->arg = arg;
	c->backoff_ms = REDIS_BACKOFF_MIN_MS;
	timer_init(&c->retry_timer, redis_retry);
	timer_init(&c->connect_timer, redis_connect_timeout);
	redis_conn_start(c);
	return c;
}

void
redis_conn_drop(struct redis_conn *c)
{
	/* Deferred by hiredis when called from one of its callbacks. */
	if (c->link && c->link->ac)
		redisAsyncFree(c->link->ac);
}

void
redis_conn_turn(struct redis_conn *c)
{
	struct redis_link *l = c->link;

	if (l && l->ac && l->read_again) {
		l->read_again = 0;
		redis_link_read(l);
	}
	/* One write per turn carries every command queued during the batch. */
	if (l && l->ac && l->want_write && !l->wr_armed) {
		if (l->ac->c.flags & REDIS_CONNECTED)
			redis_link_write(l);
		else
			redis_link_arm_write(l);
	}
	for (struct redis_link *z = c->zombies, *next; z; z = next) {
		next = z->next;
		redis_link_reap(z);
	}
}

/* Dispatches completions like ring_run, so the kernel returns our cancelled polls. */
static void
redis_conn_drain(struct redis_conn *c)
{
	struct ring *r = c->ring;
	uint64_t deadline = timer_now_ms() + REDIS_DRAIN_MS;

	while (c->zombies && timer_now_ms() < deadline)
		ring_poll(r, 10);
}

void
redis_conn_free(struct redis_conn *c)
{
	if (c == NULL)
		return;
	c->closing = 1;
	timer_cancel(&c->ring->timers, &c->retry_timer);
	timer_cancel(&c->ring->timers, &c->connect_timer);
	if (c->link && c->link->ac) {
		struct redis_link *l = c->link;

		l->busy = 1;
		redisAsyncFree(l->ac);
		l->busy = 0;
		redis_link_reap(l);
	}
	redis_conn_drain(c);
	while (c->zombies) {
		struct redis_link *z = c->zombies;

		/* The kernel still holds an op: leave the link to it, detached. */
		log_warn("redis: poll not returned by the kernel at close");
		c->zombies = z->next;
		z->next = NULL;
		z->pprev = NULL;
		z->conn = NULL;
	}
	free(c->password);
	free(c);
}

int
redis_conn_up(const struct redis_conn *c)
{
	return c->link && c->link->ac && (c->link->ac->c.flags & REDIS_CONNECTED);
}

void
redis_conn_get_stats(const struct redis_conn *c, struct redis_conn_stats *out)
{
	*out = c->stats;
}
