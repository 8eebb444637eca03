/*
 * redis.h - one hiredis (0.14) async connection driven by a worker's
 * ring: reads by a multishot POLL_ADD(POLLIN), writes flushed once per
 * loop turn (redis_conn_turn) so every command queued while one batch of
 * completions is handled leaves in one write(2); a one-shot POLLOUT only
 * when the socket buffer is full, and to see connect(2) complete.
 *
 * The connection owns its lifecycle: AUTH first when a password is set,
 * reconnect with exponential backoff (100 ms .. 5 s) on the timer wheel,
 * a deadline per request on the timer wheel (hiredis 0.14 has no timer
 * hook). Every request completes exactly once: with its reply, or with
 * NULL on timeout, on disconnect, or when the connection is freed. A
 * reply that arrives after its request timed out is dropped here.
 * Nothing here blocks: no synchronous hiredis call is ever made.
 */
#ifndef CORE_REDIS_H
#define CORE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "net.h"

struct ring;
struct redis_conn;

/*
 * A request's completion: reply is hiredis' (freed by hiredis after the
 * call returns), or NULL when the request failed (timeout, disconnect,
 * connection freed). Runs at most once per request.
 */
typedef void redis_reply_fn(struct redis_conn *c, redisReply *reply, void *arg);

/*
 * Called each time a new connection is started (the first and every
 * reconnect), right after AUTH was queued: commands issued from here
 * (SCRIPT LOAD, ...) go out pipelined behind AUTH, ahead of the rest.
 */
typedef void redis_link_fn(struct redis_conn *c, void *arg);

struct redis_conn_stats {
	uint64_t commands;	/* requests queued to hiredis */
	uint64_t timeouts;	/* requests answered NULL by their deadline */
	uint64_t failures;	/* requests answered NULL for any reason (timeouts included) */
	uint64_t connects;	/* connections established */
	uint64_t reconnects;	/* of those, established after a lost or failed one */
};

/*
 * Starts connecting to addr (host:port numeric, or unix:/path) on ring r.
 * password may be NULL or "" (no AUTH). timeout_ms is the default
 * request deadline. Never fails on an unreachable server: it retries
 * with backoff. Returns NULL only when out of memory.
 */
struct redis_conn *redis_conn_new(struct ring *r, const struct net_addr *addr, const char *password,
				  uint64_t timeout_ms, redis_link_fn *on_link, void *arg);

/*
 * Fails every pending request (their callbacks run, with NULL), cancels
 * the polls and frees. Must not be called from a reply callback, nor
 * while the ring dispatches a batch of completions: it reaps its own
 * cancelled polls by running the ring's completions briefly (bounded).
 */
void redis_conn_free(struct redis_conn *c);

/*
 * Queues one command (argv form, binary safe) with a deadline of
 * timeout_ms (0 = the connection's default). Returns 0 when queued (fn
 * will run exactly once), or -1 when there is no connection right now
 * (backing off) or hiredis refused it: fn is then NOT called.
 */
int redis_conn_call(struct redis_conn *c, uint64_t timeout_ms, redis_reply_fn *fn, void *arg,
		    int argc, const char **argv, const size_t *argvlen);

/* Flushes queued commands in one write; the worker calls it once per loop turn, last. */
void redis_conn_turn(struct redis_conn *c);

/* 1 when a connection is established (connect completed, not necessarily AUTHed). */
int redis_conn_up(const struct redis_conn *c);

/* Drops the current connection (pending requests fail) and reconnects after the backoff. */
void redis_conn_drop(struct redis_conn *c);

void redis_conn_get_stats(const struct redis_conn *c, struct redis_conn_stats *out);

#endif
