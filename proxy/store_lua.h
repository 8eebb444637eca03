/*
 * store_lua.h - the one Lua script the Redis store runs server-side: a
 * loop turn's checks, in order, in one atomic EVALSHA (see
 * store_redis.c). Time comes from the server (TIME, once per call), so
 * every mxgate instance puts an event in the same window whatever its
 * clock. Every write leaves a TTL. redis.replicate_commands() is needed
 * before writing after TIME on Redis < 5 (it is implicit, and a no-op,
 * since); it comes first, before any write.
 *
 * ARGV is a list of operations, each an opcode and its fixed arguments;
 * the reply has one integer per operation, in order:
 *
 *  rate KEY W MARGIN   fixed window: INCR of KEY ":" window index (now / W
 *                      ms), its TTL (W + MARGIN) set by the INCR that
 *                      creates it, so it outlives its window and no more.
 *                      -> the count with this event (allowed iff <= limit;
 *                      a refused event stays counted).
 *  peek KEY W          the same counter, read only -> its count (0: none).
 *  acq SET LIMIT TTL ID
 *                      lease acquire. SET is a sorted set of lease ids
 *                      scored by expiry; expired ones are dropped first,
 *                      so a crashed instance's leases stop counting after
 *                      TTL. A lease already held is refreshed, not doubled
 *                      (looked up only when the set is full). The set's own
 *                      TTL covers its latest lease. -> 1 (got it) or 0.
 *  ref SET TTL ID      lease refresh; XX: a lease that already expired
 *                      (and was dropped) is not revived, or a refresh could
 *                      push the set past its limit. -> ZADD's count.
 *  rel SET ID          lease release (ZREM) -> 0.
 *  conn KEY SET RL W MARGIN CL TTL ID
 *                      connect: "rate KEY W MARGIN" when RL > 0, then, only
 *                      if that allowed, "acq SET CL TTL ID" when CL > 0.
 *                      -> 1 (allowed, lease taken if asked), 0 (rate
 *                      refused: no lease touched) or 2 (lease refused: the
 *                      attempt stays counted).
 *  mail MKEY RKEY ML MW RL RW MARGIN
 *                      MAIL: the message (window MW) and, paid in advance,
 *                      the transaction's first recipient (window RW), the
 *                      same counters as rate's. A full window is charged
 *                      nothing: the INCR that went past the limit is taken
 *                      back (the key already had its TTL: it existed with a
 *                      count >= 1). -> 0 (message window full: nothing
 *                      charged), 1 (message charged, one recipient charged
 *                      when RL > 0) or 2 (message charged, recipient
 *                      window full: no recipient charged).
 *
 * Key names travel in ARGV, not KEYS: fine on a single Redis or Sentinel;
 * a Cluster would need a {hash tag} shared by every key of a call.
 */
#ifndef PROXY_STORE_LUA_H
#define PROXY_STORE_LUA_H

static const char store_lua_batch[] =
	"if redis.replicate_commands then redis.replicate_commands() end\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local N = tonumber\n"
	"local function wkey(base, w) return base .. ':' .. string.format('%.0f', math.floor(now / w)) end\n"
	"local function count(base, w, margin)\n"
	"  local k = wkey(base, w)\n"
	"  local n = redis.call('INCR', k)\n"
	"  if n == 1 then redis.call('PEXPIRE', k, w + margin) end\n"
	"  return n, k\n"
	"end\n"
	"local function charge(base, limit, w, margin)\n"
	"  local n, k = count(base, w, margin)\n"
	"  if n > limit then redis.call('DECR', k) return false end\n"
	"  return true\n"
	"end\n"
	"local function acquire(set, limit, ttl, id)\n"
	"  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)\n"
	"  if redis.call('ZCARD', set) >= limit and not redis.call('ZSCORE', set, id) then return 0 end\n"
	"  redis.call('ZADD', set, string.format('%.0f', now + ttl), id)\n"
	"  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end\n"
	"  return 1\n"
	"end\n"
	"local A, out, i = ARGV, {}, 1\n"
	"while i <= #A do\n"
	"  local op, r = A[i], 0\n"
	"  if op == 'rate' then\n"
	"    r = count(A[i + 1], N(A[i + 2]), N(A[i + 3])); i = i + 4\n"
	"  elseif op == 'peek' then\n"
	"    r = N(redis.call('GET', wkey(A[i + 1], N(A[i + 2]))) or '0'); i = i + 3\n"
	"  elseif op == 'acq' then\n"
	"    r = acquire(A[i + 1], N(A[i + 2]), N(A[i + 3]), A[i + 4]); i = i + 5\n"
	"  elseif op == 'ref' then\n"
	"    local ttl = N(A[i + 2])\n"
	"    r = redis.call('ZADD', A[i + 1], 'XX', 'CH', string.format('%.0f', now + ttl), A[i + 3])\n"
	"    if redis.call('PTTL', A[i + 1]) < ttl then redis.call('PEXPIRE', A[i + 1], ttl) end\n"
	"    i = i + 4\n"
	"  elseif op == 'rel' then\n"
	"    redis.call('ZREM', A[i + 1], A[i + 2]); i = i + 3\n"
	"  elseif op == 'conn' then\n"
	"    local rl, cl = N(A[i + 3]), N(A[i + 6])\n"
	"    r = 1\n"
	"    if rl > 0 and count(A[i + 1], N(A[i + 4]), N(A[i + 5])) > rl then r = 0\n"
	"    elseif cl > 0 and acquire(A[i + 2], cl, N(A[i + 7]), A[i + 8]) == 0 then r = 2 end\n"
	"    i = i + 9\n"
	"  elseif op == 'mail' then\n"
	"    local ml, rl, margin = N(A[i + 3]), N(A[i + 5]), N(A[i + 7])\n"
	"    r = 1\n"
	"    if ml > 0 and not charge(A[i + 1], ml, N(A[i + 4]), margin) then r = 0\n"
	"    elseif rl > 0 and not charge(A[i + 2], rl, N(A[i + 6]), margin) then r = 2 end\n"
	"    i = i + 8\n"
	"  else\n"
	"    return redis.error_reply('mxgate: unknown store operation ' .. tostring(op))\n"
	"  end\n"
	"  out[#out + 1] = r\n"
	"end\n"
	"return out\n";

#endif
