/*
 * store_lua.h - the Lua scripts the Redis store runs server-side, one
 * atomic call per check. Time comes from the server (TIME), so every
 * mxgate instance puts an event in the same window whatever its clock.
 * Every write leaves a TTL. redis.replicate_commands() is needed before
 * writing after TIME on Redis < 5 (it is implicit, and a no-op, since).
 *
 * Key names are derived from KEYS[1], not declared one by one: fine on a
 * single Redis or Sentinel; a Cluster would need a {hash tag} in KEYS[1]
 * (and, for the connect script, the same one in KEYS[2]).
 */
#ifndef PROXY_STORE_LUA_H
#define PROXY_STORE_LUA_H

#define STORE_LUA_NOW \
	"if redis.replicate_commands then redis.replicate_commands() end\n" \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/*
 * Fixed window. KEYS[1] = prefix kind ":" client; ARGV[1] = window ms,
 * ARGV[2] = TTL margin ms. The counter key gets ":" window index; its
 * TTL is set by the INCR that creates it, so it outlives its window and
 * no more. Returns the count including this event: allowed iff <= limit.
 */
static const char store_lua_rate[] =
	STORE_LUA_NOW
	"local w = tonumber(ARGV[1])\n"
	"local k = KEYS[1] .. ':' .. string.format('%.0f', math.floor(now / w))\n"
	"local n = redis.call('INCR', k)\n"
	"if n == 1 then redis.call('PEXPIRE', k, w + tonumber(ARGV[2])) end\n"
	"return n\n";

/*
 * Lease acquire. KEYS[1] = prefix "conc:" client, a sorted set of lease
 * ids scored by expiry; ARGV[1] = limit, ARGV[2] = ttl ms, ARGV[3] = id.
 * Expired leases are dropped first, so a crashed instance's leases stop
 * counting after ttl. A lease already held is refreshed, not doubled.
 * The set's own TTL covers its latest lease. Returns 1 (got it) or 0.
 */
static const char store_lua_acquire[] =
	STORE_LUA_NOW
	"local ttl = tonumber(ARGV[2])\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"if not redis.call('ZSCORE', KEYS[1], ARGV[3]) and\n"
	"   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end\n"
	"redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])\n"
	"if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
	"return 1\n";

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
	"  if not redis.call('ZSCORE', KEYS[2], ARGV[6]) and\n"
	"     redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 2 end\n"
	"  redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), ARGV[6])\n"
	"  if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end\n"
	"end\n"
	"return 1\n";

/*
 * Lease refresh. KEYS[1] as above; ARGV[1] = ttl ms, ARGV[2] = id.
 * XX: a lease that already expired (and was dropped) is not revived, or
 * a refresh could push the set past its limit.
 */
static const char store_lua_refresh[] =
	STORE_LUA_NOW
	"local ttl = tonumber(ARGV[1])\n"
	"local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', string.format('%.0f', now + ttl), ARGV[2])\n"
	"if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
	"return n\n";

#endif
