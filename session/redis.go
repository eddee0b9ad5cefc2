package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fengda-ai/fengda/tenant"
	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a RedisStore. Zero values take the documented defaults.
type RedisConfig struct {
	// KeyPrefix starts every key (default "fd:"). It must not contain '{' or '}', which
	// would move the hash tag.
	KeyPrefix string `yaml:"key_prefix"`
	// MaxTurns is how many turns a session keeps, oldest dropped first (default 100).
	MaxTurns int `yaml:"max_turns"`
	// TTL is how long a session lives after its last Append (default 168h).
	TTL time.Duration `yaml:"ttl"`
}

// RedisStore keeps sessions in Redis (single node, Sentinel or Cluster), shared by
// every instance. A session is up to seven keys sharing the hash tag
// {<tenant>:<session>}, so they live on one Cluster slot and one Lua script can change
// them together:
//
//	<prefix>{<tenant>:<session>}:owner    string, the owning user
//	<prefix>{<tenant>:<session>}:turns    list of JSON turns, oldest first, at most MaxTurns
//	<prefix>{<tenant>:<session>}:seq      integer, how many turns were ever pushed
//	<prefix>{<tenant>:<session>}:idem     hash, client message id → seq of its turn
//	<prefix>{<tenant>:<session>}:handoff  hash, the handoff record (see handoffFields)
//	<prefix>{<tenant>:<session>}:events   list of live events' data, oldest first, at most MaxEvents
//	<prefix>{<tenant>:<session>}:evseq    integer, how many events were ever pushed
//
// A turn is stored as the JSON json.Marshal writes for it (encodeTurn writes the same
// bytes), which starts with the turn's id: LoadRecent matches a turn id on that start
// without decoding in Lua.
//
// The idem hash points into the list instead of copying the turn, so a session's
// turns are stored once. An entry whose seq is older than the oldest retained turn is
// stale and ignored; the hash is pruned to the retained turns whenever it grows past
// twice MaxTurns, which bounds it without decoding any turn in Lua.
//
// Every key of a session gets the same TTL on every Append, so the keys expire
// together; a handoff record or event made between Appends takes the owner key's
// remaining TTL.
//
// A tenant's handoffs are indexed by status, and its agents' presence kept, in keys
// tagged {<tenant>}, on another slot than its sessions' (see handoff_redis.go):
//
//	<prefix>handoffs:{<tenant>}:waiting  sorted set, session id by WaitingSince (unix ms)
//	<prefix>handoffs:{<tenant>}:agent    sorted set, session id by WaitingSince (unix ms)
//	<prefix>handoffs:{<tenant>}:closed   sorted set, session id by ClosedAt (unix ms), the newest MaxClosedHandoffs
//	<prefix>agents:{<tenant>}            sorted set, agent id by online-until (unix ms)
//
// A queued turn record is one key of its own, apart from its session's keys, set with
// its own TTL by SaveQueued:
//
//	<prefix>queued:{<tenant>:<turn>}  string, JSON {"session","user","client_msg_id"}
//
// A RedisStore is safe for concurrent use.
type RedisStore struct {
	client   redis.UniversalClient
	prefix   string
	maxTurns int
	ttl      time.Duration
}

// NewRedisStore validates cfg and returns a store using client, which the caller owns
// and closes. Use NewRedisClient to build a client with safe options.
func NewRedisStore(client redis.UniversalClient, cfg RedisConfig) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("session: redis store: nil client")
	}
	if cfg.MaxTurns < 0 || cfg.TTL < 0 {
		return nil, errors.New("session: redis store: negative max_turns or ttl")
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return nil, fmt.Errorf("session: redis store: key_prefix %q must not contain braces", cfg.KeyPrefix)
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "fd:"
	}
	if cfg.MaxTurns == 0 {
		cfg.MaxTurns = DefaultMaxTurns
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	return &RedisStore{client: client, prefix: cfg.KeyPrefix, maxTurns: cfg.MaxTurns, ttl: cfg.TTL}, nil
}

// keys returns the session's keys in the order the scripts take them: owner, turns,
// seq, idem, handoff, events, evseq.
func (r *RedisStore) keys(ref Ref) []string { return r.sessionKeys(ref.Tenant, ref.Session) }

// keySuffixes end a session's keys, in the order of sessionKeys.
var keySuffixes = [...]string{"owner", "turns", "seq", "idem", "handoff", "events", "evseq"}

// sessionKeys is keys for session sessionID of tenant t. Every turn builds them, so
// they are cut from one string: two allocations instead of nine.
func (r *RedisStore) sessionKeys(t tenant.ID, sessionID string) []string {
	base := len(r.prefix) + len(t) + len(sessionID) + len("{:}:")
	size := 0
	for _, s := range keySuffixes {
		size += base + len(s)
	}
	var b strings.Builder
	b.Grow(size)
	for _, s := range keySuffixes {
		b.WriteString(r.prefix)
		b.WriteByte('{')
		b.WriteString(string(t))
		b.WriteByte(':')
		b.WriteString(sessionID)
		b.WriteString("}:")
		b.WriteString(s)
	}
	all := b.String()
	keys := make([]string, len(keySuffixes))
	at := 0
	for i, s := range keySuffixes {
		keys[i] = all[at : at+base+len(s)]
		at += base + len(s)
	}
	return keys
}

// Places of a session's keys in what sessionKeys returns.
const (
	keyOwner = iota
	keyTurns
	keySeq
	keyIdem
	keyHandoff
	keyEvents
	keyEvSeq
)

// queuedKey returns the key of the queued turn record of turnID in tenant t.
func (r *RedisStore) queuedKey(t tenant.ID, turnID string) string {
	return r.prefix + "queued:{" + string(t) + ":" + turnID + "}"
}

// queuedRecord is a queued turn record as stored; its key holds the tenant and turn ID.
type queuedRecord struct {
	Session     string `json:"session"`
	User        string `json:"user"`
	ClientMsgID string `json:"client_msg_id,omitempty"`
}

// luaFind is shared by the scripts that look a turn up by client message id:
// findIndex returns the list index (from 0) of the retained turn whose id is cmid, or
// nil; find returns that turn, or nil.
const luaFind = `
local function findIndex(cmid)
  local s = redis.call('HGET', KEYS[4], cmid)
  if not s then return nil end
  local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
  local n = redis.call('LLEN', KEYS[2])
  local idx = tonumber(s) - (seq - n) - 1
  if idx < 0 or idx >= n then return nil end
  return idx
end
local function find(cmid)
  local idx = findIndex(cmid)
  if not idx then return nil end
  return redis.call('LINDEX', KEYS[2], idx) or nil
end
`

// appendScript: KEYS owner, turns, seq, idem, handoff, events, evseq; ARGV user, turn JSON, client msg id,
// max turns, ttl in ms. Returns {0} for another user's session, {2, turn} for a
// duplicate client msg id, {1} once stored.
var appendScript = redis.NewScript(luaFind + `
local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call('SET', KEYS[1], ARGV[1])
elseif owner ~= ARGV[1] then
  return {0}
elseif ARGV[3] ~= '' then
  local prev = find(ARGV[3])
  if prev then return {2, prev} end
end
local max = tonumber(ARGV[4])
local seq = redis.call('INCR', KEYS[3])
local n = redis.call('RPUSH', KEYS[2], ARGV[2])
if n > max then
  redis.call('LTRIM', KEYS[2], -max, -1)
  n = max
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], seq)
  if redis.call('HLEN', KEYS[4]) > 2 * max then
    local first = seq - n + 1
    local all = redis.call('HGETALL', KEYS[4])
    for i = 1, #all, 2 do
      if tonumber(all[i + 1]) < first then redis.call('HDEL', KEYS[4], all[i]) end
    end
  end
end
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return {1}
`)

// loadScript: KEYS owner, turns; ARGV user, max turns. Returns the turns, or nil if
// the session is missing or another user's.
var loadScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
return redis.call('LRANGE', KEYS[2], -tonumber(ARGV[2]), -1)
`)

// loadRecentScript: KEYS owner, turns, seq, idem, handoff; ARGV user, n, turn id
// prefix, client msg id. Returns nil if the session is missing or another user's, else
// {tail, handoff} with the newest n turns and the handoff record's fields (none when
// it has no record), then the found turn if there is one: its index in tail (from 0)
// if it is there, else the turn itself.
//
// The client msg id is looked up through the idem hash. The turn id, when given, is
// matched without decoding: a stored turn starts with its id, so a turn has the id if
// its text starts with the prefix {"id":"<id>" (the closing quote ends the id). Only
// turns newer than the client msg id's match are scanned, newest first, since the
// newer match wins.
var loadRecentScript = redis.NewScript(luaFind + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local n = tonumber(ARGV[2])
local tail = {}
if n > 0 then tail = redis.call('LRANGE', KEYS[2], -n, -1) end
local at = -1
if ARGV[4] ~= '' then at = findIndex(ARGV[4]) or -1 end
local turn = nil
local prefix = ARGV[3]
if prefix ~= '' then
  local newer = redis.call('LRANGE', KEYS[2], at + 1, -1)
  for i = #newer, 1, -1 do
    if string.sub(newer[i], 1, #prefix) == prefix then
      at, turn = at + i, newer[i]
      break
    end
  end
end
local handoff = redis.call('HGETALL', KEYS[5])
if at < 0 then return {tail, handoff} end
local first = redis.call('LLEN', KEYS[2]) - #tail
if at >= first then return {tail, handoff, at - first} end
return {tail, handoff, turn or redis.call('LINDEX', KEYS[2], at)}
`)

// deleteScript: KEYS owner, turns, seq, idem, handoff, events, evseq; ARGV user.
// Returns {0} if the session is missing or another user's, else {1, status, waiting,
// closed} with the fields of the handoff record it erased (false when it had none),
// so the caller can take it out of its tenant's index.
var deleteScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local h = redis.call('HMGET', KEYS[5], 'status', 'waiting', 'closed')
redis.call('DEL', unpack(KEYS))
return {1, h[1], h[2], h[3]}
`)

// Load returns the session's turns, oldest first. It returns ErrNotFound if the session
// does not exist, has expired or is not ref.User's, and an error wrapping ErrUnavailable
// if Redis cannot answer.
func (r *RedisStore) Load(ctx context.Context, ref Ref) ([]Turn, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	k := r.keys(ref)
	raw, err := loadScript.Run(ctx, r.client, k[:2], ref.User, r.maxTurns).StringSlice()
	if err != nil {
		return nil, r.fail(ctx, "load", err)
	}
	turns := make([]Turn, len(raw))
	for i, s := range raw {
		if err := decodeTurnString(s, &turns[i]); err != nil {
			return nil, fmt.Errorf("session: load: decode turn: %w", err)
		}
	}
	return turns, nil
}

// LoadRecent returns what answering a turn needs from the session, in one Lua script:
// its newest n turns (at most MaxTurns; none if n <= 0) and the newest retained turn
// whose ID is turnID (when turnID is not empty) or whose ClientMsgID is clientMsgID
// (when that is not empty). The turn ID is looked for only when given, as it takes a
// scan of the retained turns. Found points into Turns when the turn is among them. It
// returns ErrNotFound if the session does not exist, has expired or is not ref.User's,
// and an error wrapping ErrUnavailable if Redis cannot answer.
func (r *RedisStore) LoadRecent(ctx context.Context, ref Ref, n int, turnID, clientMsgID string) (Recent, error) {
	if err := checkRef(ref); err != nil {
		return Recent{}, err
	}
	n = min(max(n, 0), r.maxTurns)
	var prefix []byte
	if turnID != "" {
		// A stored turn's text starts with its id, encoded as json.Marshal encodes it.
		id, _ := json.Marshal(turnID) // a string always encodes
		prefix = append([]byte(`{"id":`), id...)
	}
	res, err := loadRecentScript.Run(ctx, r.client, r.keys(ref)[:keyHandoff+1], ref.User, n, prefix, clientMsgID).Slice()
	if err != nil {
		return Recent{}, r.fail(ctx, "load recent", err)
	}
	tail, _ := res[0].([]any)
	var rec Recent
	if len(tail) > 0 {
		rec.Turns = make([]Turn, len(tail))
	}
	for i, v := range tail {
		s, _ := v.(string)
		if err := decodeTurnString(s, &rec.Turns[i]); err != nil {
			return Recent{}, fmt.Errorf("session: load recent: decode turn: %w", err)
		}
	}
	if len(res) < 2 {
		return Recent{}, fmt.Errorf("session: load recent: unexpected script reply %v", res)
	}
	if fields, _ := res[1].([]any); len(fields) > 0 {
		if rec.Handoff, err = decodeHandoff(ref.Session, fields); err != nil {
			return Recent{}, fmt.Errorf("session: load recent: %w", err)
		}
	}
	if len(res) < 3 {
		return rec, nil
	}
	switch found := res[2].(type) {
	case int64:
		if found < 0 || found >= int64(len(rec.Turns)) {
			return Recent{}, fmt.Errorf("session: load recent: unexpected script reply %v", res[2])
		}
		rec.Found = &rec.Turns[found]
	case string:
		rec.Found = new(Turn)
		if err := decodeTurnString(found, rec.Found); err != nil {
			return Recent{}, fmt.Errorf("session: load recent: decode found turn: %w", err)
		}
	default:
		return Recent{}, fmt.Errorf("session: load recent: unexpected script reply %v", res[2])
	}
	return rec, nil
}

// Append stores t as the session's newest turn in one Lua script: it creates the
// session for ref.User if needed, returns the retained turn with t's non-empty
// ClientMsgID instead of storing t if there is one, pushes, trims to MaxTurns and sets
// the TTL (the store's when ttl <= 0) on every key of the session. It returns
// ErrNotFound if the session is another user's and an error wrapping ErrUnavailable if
// Redis cannot answer; the turn may then have been stored, and a retry with the same
// ClientMsgID stores it at most once.
func (r *RedisStore) Append(ctx context.Context, ref Ref, t Turn, ttl time.Duration) (Turn, error) {
	if err := checkRef(ref); err != nil {
		return Turn{}, err
	}
	if ttl <= 0 {
		ttl = r.ttl
	}
	ms := max(ttl.Milliseconds(), 1)
	data, err := encodeTurn(&t)
	if err != nil {
		return Turn{}, fmt.Errorf("session: append: encode turn: %w", err)
	}
	res, err := appendScript.Run(ctx, r.client, r.keys(ref), ref.User, data, t.ClientMsgID, r.maxTurns, ms).Slice()
	if err != nil {
		return Turn{}, r.fail(ctx, "append", err)
	}
	code, _ := res[0].(int64)
	switch code {
	case 1:
		return t, nil
	case 0:
		return Turn{}, ErrNotFound
	case 2:
		s, _ := res[1].(string)
		var prev Turn
		if err := decodeTurnString(s, &prev); err != nil {
			return Turn{}, fmt.Errorf("session: append: decode stored turn: %w", err)
		}
		return prev, nil
	}
	return Turn{}, fmt.Errorf("session: append: unexpected script reply %v", res)
}

// Delete erases every key of the session, its handoff record and events with them,
// then takes the record out of its tenant's index. It returns ErrNotFound if the
// session is missing or another user's, and an error wrapping ErrUnavailable if Redis
// cannot answer; the session may then be erased and its index entry left behind,
// which the index's readers drop (see walkIndex).
func (r *RedisStore) Delete(ctx context.Context, ref Ref) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	res, err := deleteScript.Run(ctx, r.client, r.keys(ref), ref.User).Slice()
	if err != nil {
		return r.fail(ctx, "delete", err)
	}
	if code, _ := res[0].(int64); code == 0 {
		return ErrNotFound
	}
	if len(res) < 4 {
		return nil // no record
	}
	status, _ := res[1].(string)
	waiting, _ := res[2].(string)
	closed, _ := res[3].(string)
	old, err := decodeHandoffMap(ref.Session, map[string]string{"status": status, "waiting": waiting, "closed": closed})
	if err != nil || statusIndex(status) < 0 {
		return nil // nothing the index can hold
	}
	if err := r.moveIndex(ctx, ref.Tenant, ref.Session, &old, nil); err != nil {
		return r.fail(ctx, "delete", err)
	}
	return nil
}

// SaveQueued records q for ttl (the store's TTL when ttl <= 0) with one SET, replacing
// any record of the same tenant and turn ID. It returns ErrNotFound for a malformed ref
// or turn ID and an error wrapping ErrUnavailable if Redis cannot answer.
func (r *RedisStore) SaveQueued(ctx context.Context, q QueuedTurn, ttl time.Duration) error {
	if err := checkRef(q.Ref); err != nil {
		return err
	}
	if !ValidID(q.TurnID) {
		return ErrNotFound
	}
	if ttl <= 0 {
		ttl = r.ttl
	}
	ttl = time.Duration(max(ttl.Milliseconds(), 1)) * time.Millisecond
	data, err := json.Marshal(queuedRecord{Session: q.Ref.Session, User: q.Ref.User, ClientMsgID: q.ClientMsgID})
	if err != nil {
		return fmt.Errorf("session: save queued: encode record: %w", err)
	}
	if err := r.client.Set(ctx, r.queuedKey(q.Ref.Tenant, q.TurnID), data, ttl).Err(); err != nil {
		return r.fail(ctx, "save queued", err)
	}
	return nil
}

// LoadQueued returns the record of turnID in tenant t. It returns ErrNotFound if there
// is none, it has expired or it is not user's, and for a malformed tenant or turn ID;
// an error wrapping ErrUnavailable if Redis cannot answer.
func (r *RedisStore) LoadQueued(ctx context.Context, t tenant.ID, user, turnID string) (QueuedTurn, error) {
	if err := checkTurnLookup(t, user, turnID); err != nil {
		return QueuedTurn{}, err
	}
	data, err := r.client.Get(ctx, r.queuedKey(t, turnID)).Bytes()
	if err != nil {
		return QueuedTurn{}, r.fail(ctx, "load queued", err)
	}
	var rec queuedRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return QueuedTurn{}, fmt.Errorf("session: load queued: decode record: %w", err)
	}
	if rec.User != user {
		return QueuedTurn{}, ErrNotFound
	}
	return QueuedTurn{
		Ref:         Ref{Tenant: t, Session: rec.Session, User: rec.User},
		TurnID:      turnID,
		ClientMsgID: rec.ClientMsgID,
	}, nil
}

// Ping reports whether Redis answers; its error wraps ErrUnavailable.
func (r *RedisStore) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return r.fail(ctx, "ping", err)
	}
	return nil
}

// fail maps a go-redis error: a nil reply is ErrNotFound; network errors, timeouts,
// cancellations and the replies Redis gives while it cannot serve (loading, read-only
// replica, failover, cluster down, out of memory, busy script) wrap ErrUnavailable, so
// callers answer 503 at once; other replies (a script or type error) are plain errors.
// The original error, and the context's error if it ended, stay wrapped for errors.Is.
func (r *RedisStore) fail(ctx context.Context, op string, err error) error {
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	var reply redis.Error
	if errors.As(err, &reply) && !unavailableReply(err) {
		return fmt.Errorf("session: redis %s: %w", op, err)
	}
	// go-redis reports the context's deadline, which it set on the socket, as an i/o
	// timeout, possibly an instant before the context itself says it is done.
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(dl) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	return fmt.Errorf("%w: redis %s: %w", ErrUnavailable, op, err)
}

func unavailableReply(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.HasErrorPrefix(err, "BUSY")
}
