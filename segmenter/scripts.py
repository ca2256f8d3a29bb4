"""The Lua scripts of the Redis adapter.

Each script touches one hash slot, so it runs on a cluster, except READ_SHOPPERS and APPLY,
which take many shoppers (and, for APPLY, the partition) at once: single Redis only.

Values arrive msgpack-packed (Redis 7.0 ships ``cmsgpack``); floats are formatted by Python
(``repr``) so Lua never rounds them.
"""

from __future__ import annotations

__all__ = [
    "APPLY",
    "COMMIT",
    "DLQ_ADD",
    "IMPORT_CHUNK",
    "LEASE_ACQUIRE",
    "LEASE_RELEASE",
    "LEASE_RENEW",
    "READ_SHOPPER",
    "READ_SHOPPERS",
    "WRITE_SHOPPER",
]

_BULK = """
local function bulk(cmd, key, list, step)
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# Lua functions over one shopper's six keys (``Keys.shopper_keys``) at KEYS[b + 1 .. b + 6].
_SHOPPER = """
local function read_shopper(b)
  return {redis.call('HGETALL', KEYS[b + 1]), redis.call('LRANGE', KEYS[b + 2], 0, -1),
          redis.call('HGETALL', KEYS[b + 3]), redis.call('HGETALL', KEYS[b + 4]),
          redis.call('HGETALL', KEYS[b + 5]), redis.call('HGETALL', KEYS[b + 6])}
end
local function shopper_at(b, expected)
  return (redis.call('HGET', KEYS[b + 1], 'last_id') or '') == expected
end
local function write_shopper(b, w, ttl)
  for _, h in ipairs(w[1]) do
    local key = KEYS[b + h[1] + 1]
    bulk('HSET', key, h[2], 400)
    bulk('HDEL', key, h[3], 400)
  end
  if type(w[2]) == 'table' then
    redis.call('DEL', KEYS[b + 2])
    bulk('RPUSH', KEYS[b + 2], w[2], 400)
  end
  for i = b + 1, b + 6 do redis.call('EXPIRE', KEYS[i], ttl) end
end
"""

# KEYS: the six keys of ``Keys.shopper_keys``.
READ_SHOPPER = _BULK + _SHOPPER + "return read_shopper(0)\n"

# KEYS: six keys per shopper, shopper after shopper (single Redis only: many slots). One
# reply per shopper, as READ_SHOPPER's.
READ_SHOPPERS = (
    _BULK
    + _SHOPPER
    + """
local out = {}
for b = 0, #KEYS - 1, 6 do out[#out + 1] = read_shopper(b) end
return out
"""
)

# KEYS: shopper keys. ARGV: expected last_id, msgpack [[ [key index, sets, dels] … ], recent
# list or nil], ttl s. Compare-and-set on last_id: 0 when someone else changed the shopper.
WRITE_SHOPPER = (
    _BULK
    + _SHOPPER
    + """
if not shopper_at(0, ARGV[1]) then return 0 end
write_shopper(0, cmsgpack.unpack(ARGV[2]), ARGV[3])
return 1
"""
)

# The partition's atomic apply, as two functions: ``fence`` checks the fencing token and the
# offset (no writes), ``commit`` writes aggregates, offset, watermark, counters and the XACK.
# KEYS: Keys.partition_keys (stream, meta, late, sess, sessidx, expsh), then the keys the
# payload indexes. ARGV: owner, token, expected offset, new offset, group, lease ttl ms,
# payload.
_COMMIT = """
local function fence()
  local m = redis.call('HMGET', KEYS[2], 'owner', 'token', 'offset')
  if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 'FENCED' end
  if (m[3] or '0-0') ~= ARGV[3] then return 'OFFSET' end
  return nil
end
local function commit()
  local meta = KEYS[2]
  local p = cmsgpack.unpack(ARGV[7])
  for i = 1, #p.ack, 500 do
    redis.call('XACK', KEYS[1], ARGV[5], unpack(p.ack, i, math.min(i + 499, #p.ack)))
  end
  redis.call('HSET', meta, 'offset', ARGV[4], 'max_ts', p.max_ts,
             'lease_until_ms', now_ms() + tonumber(ARGV[6]))
  for i = 1, #p.cnt, 2 do redis.call('HINCRBY', meta, p.cnt[i], p.cnt[i + 1]) end
  for i = 1, #p.late, 2 do redis.call('HINCRBY', KEYS[3], p.late[i], p.late[i + 1]) end
  for _, e in ipairs(p.eid) do
    bulk('HSET', KEYS[e[1]], e[3], 400)
    redis.call('EXPIRE', KEYS[e[1]], e[2])
  end
  for _, e in ipairs(p.pop) do
    local key, z = KEYS[e[1]], e[3]
    for i = 1, #z, 2 do redis.call('ZINCRBY', key, z[i + 1], z[i]) end
    redis.call('EXPIRE', key, e[2])
  end
  for _, e in ipairs(p.cov) do
    -- once full, only existing members gain weight; while there is room for every member
    -- of the batch, none needs looking up, else one ZMSCORE per 400 members
    local key, z = KEYS[e[1]], e[3]
    local card = redis.call('ZCARD', key)
    if card + #z / 2 <= p.cap then
      for i = 1, #z, 2 do redis.call('ZINCRBY', key, z[i + 1], z[i]) end
    else
      for j = 1, #z, 800 do
        local names = {}
        for i = j, math.min(j + 798, #z - 1), 2 do names[#names + 1] = z[i] end
        local have = redis.call('ZMSCORE', key, unpack(names))
        for n, name in ipairs(names) do
          if have[n] or card < p.cap then
            if not have[n] then card = card + 1 end
            redis.call('ZINCRBY', key, z[j + 2 * n - 1], name)
          end
        end
      end
    end
    redis.call('EXPIRE', key, e[2])
  end
  for i = 1, #p.occ[2], 2 do redis.call('HINCRBY', KEYS[p.occ[1]], p.occ[2][i], p.occ[2][i + 1]) end
  for _, e in ipairs(p.exp) do
    local z = e[2]
    for i = 1, #z, 2 do redis.call('HINCRBY', KEYS[e[1]], z[i], z[i + 1]) end
  end
  bulk('HSET', KEYS[4], p.ss, 400)
  bulk('ZADD', KEYS[5], p.si, 400)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. p.cut)
  bulk('HDEL', KEYS[4], dead, 400)
  bulk('ZREM', KEYS[5], dead, 400)
  bulk('HSET', KEYS[6], p.xs, 400)
end
"""

# The commit point (per-slot writes: on the partition's slot only). Fencing token and offset
# are checked before anything is written.
COMMIT = (
    _BULK
    + _COMMIT
    + """
local why = fence()
if why then return why end
commit()
return 'OK'
"""
)

# A whole batch in one atomic step (single Redis only: many slots). KEYS and ARGV as COMMIT,
# then the shoppers' keys (six each); ARGV[8]: msgpack [[b, expected last_id, diff] …] where
# b is the shopper's key offset (KEYS[b + 1] is its first key) and the diff is WRITE_SHOPPER's;
# ARGV[9]: shopper ttl s; ARGV[10]: msgpack list of tombstone digests to look up once
# committed, ARGV[11]: the index of the tombstones hash in KEYS. Fencing, offset and every
# shopper's last_id are checked before anything is written; shoppers in conflict come back as
# a list of their b, nothing written. Committed: {'OK', the 1-based indexes of the digests
# tombstoned now} (the racing-erasure check, without a round trip of its own).
APPLY = (
    _BULK
    + _SHOPPER
    + _COMMIT
    + """
local why = fence()
if why then return why end
local ws = cmsgpack.unpack(ARGV[8])
local stale = {}
for _, w in ipairs(ws) do
  if not shopper_at(w[1], w[2]) then stale[#stale + 1] = w[1] end
end
if #stale > 0 then return stale end
for _, w in ipairs(ws) do write_shopper(w[1], w[3], ARGV[9]) end
commit()
local out = {'OK'}
local ds = cmsgpack.unpack(ARGV[10])
for j = 1, #ds, 400 do
  local marks = redis.call('HMGET', KEYS[tonumber(ARGV[11])], unpack(ds, j, math.min(j + 399, #ds)))
  for n, mark in ipairs(marks) do
    if mark then out[#out + 1] = j + n - 1 end
  end
end
return out
"""
)

# KEYS: dlq stream, dlq source index. ARGV: source id ("p3:1700000000000-0"), maxlen,
# field/value pairs. Writes once per source id, so a redelivered entry is not dead-lettered
# twice.
DLQ_ADD = """
if redis.call('HSETNX', KEYS[2], ARGV[1], '') == 0 then return 0 end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[1], id)
return 1
"""

# KEYS: partition stream, the partition's import ledger (``Keys.imports``). ARGV: file
# digest, first and last file line of the chunk, the entries (a msgpack array of msgpack
# events: one argument, not thousands). The entries and the ledger move together, so a
# re-run after a crash skips exactly what landed.
IMPORT_CHUNK = """
local done = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if done >= tonumber(ARGV[2]) then return 0 end
local entries = cmsgpack.unpack(ARGV[4])
for i = 1, #entries do
  redis.call('XADD', KEYS[1], '*', 'e', entries[i])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return #entries
"""

# KEYS: partition meta. ARGV: owner, ttl ms. A new fencing token, or nil while another
# owner's lease runs.
LEASE_ACQUIRE = (
    _BULK
    + """
local now = now_ms()
local m = redis.call('HMGET', KEYS[1], 'owner', 'lease_until_ms')
if m[1] and m[1] ~= '' and m[1] ~= ARGV[1] and tonumber(m[2] or '0') > now then
  return false
end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'lease_until_ms', now + tonumber(ARGV[2]))
return token
"""
)

# KEYS: partition meta. ARGV: owner, token, ttl ms. 1 when still ours, else 0.
LEASE_RENEW = (
    _BULK
    + """
local m = redis.call('HMGET', KEYS[1], 'owner', 'token')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until_ms', now_ms() + tonumber(ARGV[3]))
return 1
"""
)

LEASE_RELEASE = """
local m = redis.call('HMGET', KEYS[1], 'owner', 'token')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'lease_until_ms', 0)
return 1
"""
