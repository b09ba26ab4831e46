import CortexCore

/// The catalog's Lua scripts. Each write is one script, so that a record, its indexes, its counters and
/// its edges change together or not at all, whichever replica of catalog-api runs it.
///
/// Every script gets the key layout as its first argument (JSON of `CortexNames.Catalog`'s prefixes).
enum CatalogScripts {
    /// Shared Lua: index keys of an asset and counter updates.
    static let prelude = """
    local N = cjson.decode(ARGV[1])
    local function indexKeys(t, ns, owner, health, labels, words)
      local keys = {N.idx .. 'type:' .. t, N.idx .. 'health:' .. health}
      if ns ~= '' then keys[#keys + 1] = N.idx .. 'ns:' .. ns end
      if owner ~= '' then keys[#keys + 1] = N.idx .. 'owner:' .. owner end
      for _, l in ipairs(labels) do keys[#keys + 1] = N.idx .. 'label:' .. l end
      for _, w in ipairs(words) do keys[#keys + 1] = N.idx .. 'word:' .. w end
      return keys
    end
    local function count(dimension, value, delta)
      if value == nil or value == '' then return end
      local key = N.count .. dimension
      if redis.call('HINCRBY', key, value, delta) <= 0 then redis.call('HDEL', key, value) end
    end
    local function list(json)
      if json == nil or json == false or json == '' then return {} end
      return cjson.decode(json)
    end
    -- What a read returns per asset, `{doc, version, first_seen, last_seen, checked_at}` (CatalogStore.assemble).
    local function records(ids)
      local out = {}
      for i, id in ipairs(ids) do out[i] = redis.call('HMGET', N.asset .. id, 'doc', 'version', 'first_seen', 'last_seen', 'checked_at') end
      return out
    end

    """

    /// ARGV: names, now (ms), mode (create | update | upsert), assets JSON, relations JSON.
    /// Checks every asset and relation first and writes nothing if one fails.
    /// Returns `{0, code, message}` or `{1, relationsAdded, id, outcome, version, firstSeen, previousHealth, ...}`.
    ///
    /// Writes to keys many assets of a batch share (`idx:type:POD`, an edge hash of a node, the counters)
    /// are gathered and sent as one command per key at the end: a batch of 1,000 pods costs a few
    /// thousand commands rather than tens of thousands (docs/benchmarks.md).
    static let upsert = RedisScript(prelude + """
    local now = tonumber(ARGV[2])
    local mode = ARGV[3]
    local assets = cjson.decode(ARGV[4])
    local rels = cjson.decode(ARGV[5])
    local fields = {'version', 'fp', 'type', 'ns', 'owner', 'health', 'labels', 'words', 'first_seen'}
    local current = {}
    local inBatch = {}
    for i, a in ipairs(assets) do
      local h = redis.call('HMGET', N.asset .. a.id, unpack(fields))
      if h[1] then
        if mode == 'create' then return {0, 'CONFLICT', 'asset ' .. a.id .. ' already exists (version ' .. h[1] .. ')'} end
        if a.expectedVersion and tonumber(h[1]) ~= a.expectedVersion then
          return {0, 'CONFLICT', 'asset ' .. a.id .. ' is at version ' .. h[1] .. ', not ' .. a.expectedVersion}
        end
      elseif mode == 'update' or a.expectedVersion then
        return {0, 'NOT_FOUND', 'asset ' .. a.id .. ' does not exist'}
      end
      current[i] = h
      inBatch[a.id] = true
    end
    -- An endpoint outside the batch is looked up once, however many edges of the batch point at it.
    local exists = {}
    for _, r in ipairs(rels) do
      for _, id in ipairs({r.from, r.to}) do
        if not inBatch[id] and not exists[id] then
          if redis.call('EXISTS', N.asset .. id) == 0 then
            return {0, 'NOT_FOUND', 'relation ' .. r.from .. ' ' .. r.kind .. ' ' .. r.to .. ': asset ' .. id .. ' does not exist'}
          end
          exists[id] = true
        end
      end
    end
    -- Gathered writes: key -> flat argument list.
    local zadds, zrems, hsets, deltas = {}, {}, {}, {}
    local function push(t, key, a, b)
      local l = t[key]
      if not l then l = {}; t[key] = l end
      l[#l + 1] = a
      if b ~= nil then l[#l + 1] = b end
    end
    local function tally(dimension, value, delta)
      if value == nil or value == '' then return end
      local d = deltas[dimension]
      if not d then d = {}; deltas[dimension] = d end
      d[value] = (d[value] or 0) + delta
    end
    -- unpack() is limited to a few thousand values, so long lists go in slices (even: pairs stay whole).
    -- Returns the sum of the replies (HSET: fields that were new).
    local function send(cmd, key, args)
      local n = 0
      for i = 1, #args, 4000 do n = n + redis.call(cmd, key, unpack(args, i, math.min(i + 3999, #args))) end
      return n
    end
    local hour = tostring(math.floor(now / 3600000))
    local created = 0
    local out = {1, 0}
    for i, a in ipairs(assets) do
      local key = N.asset .. a.id
      local h = current[i]
      local checked = a.checkedAt or now
      if not h[1] then
        redis.call('HSET', key, 'doc', a.doc, 'fp', a.fp, 'type', a.type, 'ns', a.ns, 'owner', a.owner, 'health', a.health,
          'labels', cjson.encode(a.labels), 'words', cjson.encode(a.words), 'version', 1, 'first_seen', now, 'last_seen', now,
          'checked_at', checked)
        push(zadds, N.all, 0, a.id)
        for _, k in ipairs(indexKeys(a.type, a.ns, a.owner, a.health, a.labels, a.words)) do push(zadds, k, 0, a.id) end
        tally('type', a.type, 1); tally('ns', a.ns, 1); tally('health', a.health, 1)
        created = created + 1
        for _, v in ipairs({a.id, 'created', 1, now, ''}) do out[#out + 1] = v end
      elseif h[2] == a.fp then
        redis.call('HSET', key, 'last_seen', now, 'checked_at', checked)
        for _, v in ipairs({a.id, 'unchanged', tonumber(h[1]), tonumber(h[9]), h[6]}) do out[#out + 1] = v end
      else
        local old = {}
        for _, k in ipairs(indexKeys(h[3], h[4], h[5], h[6], list(h[7]), list(h[8]))) do old[k] = true end
        local new = {}
        for _, k in ipairs(indexKeys(a.type, a.ns, a.owner, a.health, a.labels, a.words)) do
          new[k] = true
          if not old[k] then push(zadds, k, 0, a.id) end
        end
        -- Each id is in the batch once, so an (index, id) pair is either added or removed, never both.
        for k, _ in pairs(old) do if not new[k] then push(zrems, k, a.id) end end
        if h[3] ~= a.type then tally('type', h[3], -1); tally('type', a.type, 1) end
        if h[4] ~= a.ns then tally('ns', h[4], -1); tally('ns', a.ns, 1) end
        if h[6] ~= a.health then tally('health', h[6], -1); tally('health', a.health, 1) end
        local version = tonumber(h[1]) + 1
        redis.call('HSET', key, 'doc', a.doc, 'fp', a.fp, 'type', a.type, 'ns', a.ns, 'owner', a.owner, 'health', a.health,
          'labels', cjson.encode(a.labels), 'words', cjson.encode(a.words), 'version', version, 'last_seen', now, 'checked_at', checked)
        for _, v in ipairs({a.id, 'updated', version, tonumber(h[9]), h[6]}) do out[#out + 1] = v end
      end
    end
    for _, r in ipairs(rels) do
      push(hsets, N.out .. r.from, r.kind .. '\\t' .. r.to, r.json)
    end
    -- HSET answers how many fields were new: the relations added (a repeated edge counts once).
    local added = 0
    for key, args in pairs(hsets) do added = added + send('HSET', key, args) end
    local incoming = {}
    for _, r in ipairs(rels) do push(incoming, N['in'] .. r.to, r.kind .. '\\t' .. r.from, r.json) end
    for key, args in pairs(incoming) do send('HSET', key, args) end
    for key, args in pairs(zrems) do send('ZREM', key, args) end
    for key, args in pairs(zadds) do send('ZADD', key, args) end
    for dimension, sums in pairs(deltas) do
      for value, delta in pairs(sums) do if delta ~= 0 then count(dimension, value, delta) end end
    end
    if created > 0 then redis.call('HINCRBY', N.disc, hour, created) end
    if added > 0 then redis.call('HINCRBY', N.count .. 'meta', 'relations', added) end
    out[2] = added
    return out
    """)

    /// ARGV: names, id. Deletes the asset, its index entries, counters and every edge touching it.
    /// Returns nil when absent, else `{doc, version, first_seen, last_seen, checked_at}`.
    static let delete = RedisScript(prelude + """
    local id = ARGV[2]
    local key = N.asset .. id
    local h = redis.call('HMGET', key, 'doc', 'type', 'ns', 'owner', 'health', 'labels', 'words', 'version', 'first_seen', 'last_seen', 'checked_at')
    if not h[1] then return false end
    for _, k in ipairs(indexKeys(h[2], h[3], h[4], h[5], list(h[6]), list(h[7]))) do redis.call('ZREM', k, id) end
    redis.call('ZREM', N.all, id)
    count('type', h[2], -1); count('ns', h[3], -1); count('health', h[5], -1)
    local removed = 0
    local outs = redis.call('HGETALL', N.out .. id)
    for i = 1, #outs, 2 do
      local tab = string.find(outs[i], '\\t', 1, true)
      redis.call('HDEL', N['in'] .. string.sub(outs[i], tab + 1), string.sub(outs[i], 1, tab - 1) .. '\\t' .. id)
      removed = removed + 1
    end
    local ins = redis.call('HGETALL', N['in'] .. id)
    for i = 1, #ins, 2 do
      local tab = string.find(ins[i], '\\t', 1, true)
      local from = string.sub(ins[i], tab + 1)
      -- A self-relation was counted with the outgoing edges already.
      if from ~= id then
        redis.call('HDEL', N.out .. from, string.sub(ins[i], 1, tab - 1) .. '\\t' .. id)
        removed = removed + 1
      end
    end
    if removed > 0 then redis.call('HINCRBY', N.count .. 'meta', 'relations', -removed) end
    redis.call('DEL', key, N.out .. id, N['in'] .. id)
    return {h[1], h[8], h[9], h[10], h[11]}
    """)

    /// ARGV: names, from, to, kind. Returns 1 when the edge existed.
    static let removeRelation = RedisScript(prelude + """
    local removed = redis.call('HDEL', N.out .. ARGV[2], ARGV[4] .. '\\t' .. ARGV[3])
    redis.call('HDEL', N['in'] .. ARGV[3], ARGV[4] .. '\\t' .. ARGV[2])
    if removed == 1 then redis.call('HINCRBY', N.count .. 'meta', 'relations', -1) end
    return removed
    """)

    /// ARGV: names, id, direction (UPSTREAM | DOWNSTREAM | BOTH), depth, node cap.
    /// Breadth-first over the edge hashes, so only the walked neighbourhood is read; the nodes' records
    /// come in the same reply, so a walk is one round trip.
    /// Returns nil when the root is absent, else `{nodes, edge JSONs, truncated, records}`.
    static let lineage = RedisScript(prelude + """
    local root = ARGV[2]
    local direction = ARGV[3]
    local depth = tonumber(ARGV[4])
    local cap = tonumber(ARGV[5])
    if redis.call('EXISTS', N.asset .. root) == 0 then return false end
    local sides = {}
    if direction ~= 'UPSTREAM' then sides[#sides + 1] = {N.out, true} end
    if direction ~= 'DOWNSTREAM' then sides[#sides + 1] = {N['in'], false} end
    local visited = {[root] = true}
    local nodes = {root}
    local edges = {}
    local seen = {}
    local truncated = 0
    local frontier = {root}
    for _ = 1, depth do
      local nextFrontier = {}
      for _, node in ipairs(frontier) do
        for _, side in ipairs(sides) do
          local flat = redis.call('HGETALL', side[1] .. node)
          for i = 1, #flat, 2 do
            local tab = string.find(flat[i], '\\t', 1, true)
            local kind = string.sub(flat[i], 1, tab - 1)
            local other = string.sub(flat[i], tab + 1)
            local edgeKey
            if side[2] then edgeKey = node .. '\\t' .. kind .. '\\t' .. other else edgeKey = other .. '\\t' .. kind .. '\\t' .. node end
            if not seen[edgeKey] then
              if not visited[other] and #nodes >= cap then
                truncated = 1
              else
                seen[edgeKey] = true
                edges[#edges + 1] = flat[i + 1]
                if not visited[other] then
                  visited[other] = true
                  nodes[#nodes + 1] = other
                  nextFrontier[#nextFrontier + 1] = other
                end
              end
            end
          end
        end
      end
      if #nextFrontier == 0 then break end
      frontier = nextFrontier
    end
    return {nodes, edges, truncated, records(nodes)}
    """)

    /// KEYS: the index sets that must all contain an id (none: every asset). ARGV: names, after, limit.
    /// Walks the smallest set in id order from the cursor and checks the others by ZSCORE, so a filtered
    /// page never reads more than the most selective index. The page's records come in the same reply.
    /// Returns `{hasMore, ids, records}`.
    static let list = RedisScript(prelude + """
    local after = ARGV[2]
    local limit = tonumber(ARGV[3])
    local keys = KEYS
    if #keys == 0 then keys = {N.all} end
    local drive = nil
    local size = -1
    for _, k in ipairs(keys) do
      local n = redis.call('ZCARD', k)
      if n == 0 then return {0, {}, {}} end
      if size < 0 or n < size then drive = k; size = n end
    end
    local start = '-'
    if after ~= '' then start = '(' .. after end
    local ids = {}
    while #ids <= limit do
      local batch = redis.call('ZRANGEBYLEX', drive, start, '+', 'LIMIT', 0, 256)
      for _, id in ipairs(batch) do
        local ok = true
        for _, k in ipairs(keys) do
          if k ~= drive and not redis.call('ZSCORE', k, id) then ok = false; break end
        end
        if ok then
          ids[#ids + 1] = id
          if #ids > limit then break end
        end
      end
      if #batch < 256 then break end
      start = '(' .. batch[#batch]
    end
    local more = 0
    if #ids > limit then more = 1; table.remove(ids) end
    return {more, ids, records(ids)}
    """)

    /// The key layout argument every script takes.
    static let names: String = {
        let n: JSONValue = [
            "asset": .string(CortexNames.Catalog.assetPrefix), "all": .string(CortexNames.Catalog.allAssets),
            "idx": .string(CortexNames.Catalog.indexPrefix), "out": .string(CortexNames.Catalog.outEdgesPrefix),
            "in": .string(CortexNames.Catalog.inEdgesPrefix), "count": .string(CortexNames.Catalog.countPrefix),
            "disc": .string(CortexNames.Catalog.discoveries),
        ]
        return n.description
    }()
}
