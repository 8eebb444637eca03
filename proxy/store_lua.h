/*
 * store_lua.h - the Lua scripts the Redis store runs server-side, one
 * atomic call per check. Time comes from the server (TIME), so every
 * mxgate instance puts an event in the same window whatever its clock.
 * Every write leaves a TTL. redis.replicate_commands() is needed before
 * writing after TIME on Redis < 5 (it is implicit, and a no-op, since);
 * it comes first, before any write.
 *
 * Lease releases ride along: after a script's own N arguments, ARGV may
 * go on with a count P, then (key, lease id) pairs. The first P pairs are
 * removed (ZREM) before the script's own work, the others after it, so a
 * release keeps its place among the checks of its loop turn (see
 * store_redis.c) without a command of its own. Without releases ARGV ends
 * after the script's own arguments.
 *
 * Key names are derived from KEYS[1], not declared one by one, and the
 * carried releases name their keys in ARGV: fine on a single Redis or
 * Sentinel; a Cluster would need a {hash tag} in KEYS[1] (and the same
 * one in every other key of the call).
 */
#ifndef PROXY_STORE_LUA_H
#define PROXY_STORE_LUA_H

/*
 * The prologue of every script taking n arguments of its own: the
 * releases to run first, and rel() to run the rest at the end with
 * STORE_LUA_TAIL. Its own work goes in check(), which returns the reply.
 */
#define STORE_LUA_HEAD(n) \
	"if redis.replicate_commands then redis.replicate_commands() end\n" \
	"local function rel(i, j) for x = i, j, 2 do redis.call('ZREM', ARGV[x], ARGV[x + 1]) end end\n" \
	"local post = " #n " + 2 + 2 * tonumber(ARGV[" #n " + 1] or '0')\n" \
	"rel(" #n " + 2, post - 1)\n"

#define STORE_LUA_TAIL \
	"local r = check()\n" \
	"rel(post, #ARGV)\n" \
	"return r\n"

#define STORE_LUA_NOW \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/*
 * Fixed window. KEYS[1] = prefix kind ":" client; ARGV[1] = window ms,
 * ARGV[2] = TTL margin ms. The counter key gets ":" window index; its
 * TTL is set by the INCR that creates it, so it outlives its window and
 * no more. Returns the count including this event: allowed iff <= limit
 * (a refused event stays counted).
 */
static const char store_lua_rate[] =
	STORE_LUA_HEAD(2)
	"local function check()\n"
	STORE_LUA_NOW
	"local w = tonumber(ARGV[1])\n"
	"local k = KEYS[1] .. ':' .. string.format('%.0f', math.floor(now / w))\n"
	"local n = redis.call('INCR', k)\n"
	"if n == 1 then redis.call('PEXPIRE', k, w + tonumber(ARGV[2])) end\n"
	"return n\n"
	"end\n"
	STORE_LUA_TAIL;

/*
 * Peek: the count of the current fixed window, read-only (GET, no
 * write). KEYS[1] and ARGV[1] as for the rate script (the same counter
 * key); returns the count, 0 when the key does not exist.
 */
static const char store_lua_peek[] =
	STORE_LUA_HEAD(1)
	"local function check()\n"
	STORE_LUA_NOW
	"local w = tonumber(ARGV[1])\n"
	"local k = KEYS[1] .. ':' .. string.format('%.0f', math.floor(now / w))\n"
	"return tonumber(redis.call('GET', k) or '0')\n"
	"end\n"
	STORE_LUA_TAIL;

/*
 * Lease acquire. KEYS[1] = prefix "conc:" client, a sorted set of lease
 * ids scored by expiry; ARGV[1] = limit, ARGV[2] = ttl ms, ARGV[3] = id.
 * Expired leases are dropped first, so a crashed instance's leases stop
 * counting after ttl. A lease already held is refreshed, not doubled
 * (looked up only when the set is full). The set's own TTL covers its
 * latest lease. Returns 1 (got it) or 0.
 */
static const char store_lua_acquire[] =
	STORE_LUA_HEAD(3)
	"local function check()\n"
	STORE_LUA_NOW
	"local ttl = tonumber(ARGV[2])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) and\n"
	"   not redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 0 end\n"
	"redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])\n"
	"if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
	"return 1\n"
	"end\n"
	STORE_LUA_TAIL;

/*
 * Connect: the "conn" rate and the lease acquire in one call, each as
 * the scripts above do it. KEYS[1] = prefix "conn:" client (the rate
 * counter's base), KEYS[2] = prefix "conc:" client (the lease set);
 * ARGV[1] = rate limit (0: no rate check), ARGV[2] = window ms,
 * ARGV[3] = TTL margin ms, ARGV[4] = concurrency limit (0: no lease),
 * ARGV[5] = lease ttl ms, ARGV[6] = lease id. The attempt is counted
 * whatever follows; the lease is only taken if the rate allowed.
 * Returns 1 (allowed, lease taken if asked), 0 (rate refused: no lease
 * touched) or 2 (lease refused: the attempt stays counted).
 */
static const char store_lua_connect[] =
	STORE_LUA_HEAD(6)
	"local function check()\n"
	STORE_LUA_NOW
	"local rl = tonumber(ARGV[1])\n"
	"if rl > 0 then\n"
	"  local w = tonumber(ARGV[2])\n"
	"  local k = KEYS[1] .. ':' .. string.format('%.0f', math.floor(now / w))\n"
	"  local n = redis.call('INCR', k)\n"
	"  if n == 1 then redis.call('PEXPIRE', k, w + tonumber(ARGV[3])) end\n"
	"  if n > rl then return 0 end\n"
	"end\n"
	"if tonumber(ARGV[4]) > 0 then\n"
	"  local ttl = tonumber(ARGV[5])\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
	"  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) and\n"
	"     not redis.call('ZSCORE', KEYS[2], ARGV[6]) then return 2 end\n"
	"  redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), ARGV[6])\n"
	"  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
	"end\n"
	"return 1\n"
	"end\n"
	STORE_LUA_TAIL;

/*
 * MAIL: the message and, paid in advance, the transaction's first
 * recipient. KEYS[1] = prefix "msg:" client, KEYS[2] = prefix "rcpt:"
 * client (the same counters as the rate script's); ARGV[1] = message
 * limit (0: none), ARGV[2] = its window ms, ARGV[3] = recipient limit
 * (0: none), ARGV[4] = its window ms, ARGV[5] = TTL margin ms.
 * A full window is charged nothing: the INCR that went past the limit is
 * taken back (the key already had its TTL: it existed with a count >= 1).
 * Returns 0 (message window full: nothing charged), 1 (message charged,
 * one recipient charged when a recipient limit is set) or 2 (message
 * charged, recipient window full: no recipient charged).
 */
static const char store_lua_mail[] =
	STORE_LUA_HEAD(5)
	STORE_LUA_NOW
	"local function charge(base, limit, w)\n"
	"  local k = base .. ':' .. string.format('%.0f', math.floor(now / w))\n"
	"  local n = redis.call('INCR', k)\n"
	"  if n == 1 then redis.call('PEXPIRE', k, w + tonumber(ARGV[5])) end\n"
	"  if n > limit then redis.call('DECR', k) return false end\n"
	"  return true\n"
	"end\n"
	"local function check()\n"
	"local ml, rl = tonumber(ARGV[1]), tonumber(ARGV[3])\n"
	"if ml > 0 and not charge(KEYS[1], ml, tonumber(ARGV[2])) then return 0 end\n"
	"if rl > 0 and not charge(KEYS[2], rl, tonumber(ARGV[4])) then return 2 end\n"
	"return 1\n"
	"end\n"
	STORE_LUA_TAIL;

/*
 * Lease refresh. KEYS[1] as above; ARGV[1] = ttl ms, ARGV[2] = id.
 * XX: a lease that already expired (and was dropped) is not revived, or
 * a refresh could push the set past its limit.
 */
static const char store_lua_refresh[] =
	STORE_LUA_HEAD(2)
	"local function check()\n"
	STORE_LUA_NOW
	"local ttl = tonumber(ARGV[1])\n"
	"local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.0f', now + ttl), ARGV[2])\n"
	"if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
	"return n\n"
	"end\n"
	STORE_LUA_TAIL;

/* Releases alone (no check to ride on in their turn): ARGV as above, with no arguments of its own. */
static const char store_lua_release[] =
	STORE_LUA_HEAD(0)
	"local function check() return 0 end\n"
	STORE_LUA_TAIL;

#endif
