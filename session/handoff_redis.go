package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/fengda-ai/fengda/tenant"
	"github.com/redis/go-redis/v9"
)

// A RedisStore keeps a session's handoff record and events beside its turns, under the
// session's hash tag, so one Lua script reads and changes a record atomically: a
// claim checks that the record waits and gives it to the agent in one step, and of
// concurrent claimers, in any process, exactly one wins.
//
// The tenant's indexes (one sorted set per status, see RedisStore) hang off another
// hash tag, {<tenant>}, and so on a Cluster another slot: no script can change a
// record and its index entry together. A change therefore takes two steps, the record
// first and the index second (moveIndex), and the index is only a hint: a member
// counts only while its record exists, has the index's status and the member's score
// (an entry left by a crash between the steps, by an expired or deleted session, or by
// a record that moved on). ListHandoffs, CountWaiting and the queue positions read the
// records of the members they walk and drop the ones that do not count (walkIndex);
// a drop removes a member only while its score is still the one that was judged, so
// an entry written meanwhile for a newer record stays. Scores are milliseconds, ties
// ordered by session id, as the memory store orders by time then id.
//
// The record hash's fields (handoffFields) are the Handoff's, times as unix
// nanoseconds, zero times and empty strings left out.

// handoffFields are the fields of a handoff record hash.
const (
	fieldUser       = "user"
	fieldStatus     = "status"
	fieldCause      = "cause"
	fieldWaiting    = "waiting"
	fieldAgentID    = "agent_id"
	fieldAgentName  = "agent_name"
	fieldClaimed    = "claimed"
	fieldClosed     = "closed"
	fieldResolution = "resolution"
	fieldLast       = "last"
	fieldLastAt     = "last_at"
)

// indexPage is how many members of a tenant's index walkIndex reads at once.
const indexPage = 128

// indexKeys returns tenant t's handoff indexes, in the order of handoffStatuses.
func (r *RedisStore) indexKeys(t tenant.ID) []string {
	base := r.prefix + "handoffs:{" + string(t) + "}:"
	return []string{base + HandoffWaiting, base + HandoffAgent, base + HandoffClosed}
}

// agentsKey returns the key of tenant t's agents' presence.
func (r *RedisStore) agentsKey(t tenant.ID) string {
	return r.prefix + "agents:{" + string(t) + "}"
}

// encodeTime writes t as unix nanoseconds, "" for the zero time.
func encodeTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func decodeTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}

// handoffArgs returns h's record as HSET's field-value pairs, without empty values.
func handoffArgs(h *Handoff) []any {
	args := make([]any, 0, 22)
	for _, f := range [...][2]string{
		{fieldUser, h.User},
		{fieldStatus, h.Status},
		{fieldCause, h.Cause},
		{fieldWaiting, encodeTime(h.WaitingSince)},
		{fieldAgentID, h.AgentID},
		{fieldAgentName, h.AgentName},
		{fieldClaimed, encodeTime(h.ClaimedAt)},
		{fieldClosed, encodeTime(h.ClosedAt)},
		{fieldResolution, h.Resolution},
		{fieldLast, h.LastMessage},
		{fieldLastAt, encodeTime(h.LastAt)},
	} {
		if f[1] != "" {
			args = append(args, f[0], f[1])
		}
	}
	return args
}

// decodeHandoff reads the record of session sessionID from HGETALL's reply as a
// script returns it: field, value, field, value….
func decodeHandoff(sessionID string, flat []any) (Handoff, error) {
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	return decodeHandoffMap(sessionID, m)
}

// decodeHandoffMap reads the record of session sessionID from its fields.
func decodeHandoffMap(sessionID string, m map[string]string) (Handoff, error) {
	h := Handoff{
		Session:     sessionID,
		User:        m[fieldUser],
		Status:      m[fieldStatus],
		Cause:       m[fieldCause],
		AgentID:     m[fieldAgentID],
		AgentName:   m[fieldAgentName],
		Resolution:  m[fieldResolution],
		LastMessage: m[fieldLast],
	}
	for _, f := range [...]struct {
		name string
		to   *time.Time
	}{
		{fieldWaiting, &h.WaitingSince},
		{fieldClaimed, &h.ClaimedAt},
		{fieldClosed, &h.ClosedAt},
		{fieldLastAt, &h.LastAt},
	} {
		t, err := decodeTime(m[f.name])
		if err != nil {
			return Handoff{}, fmt.Errorf("decode handoff record of %s: %s: %w", sessionID, f.name, err)
		}
		*f.to = t
	}
	return h, nil
}

// indexScore is h's score in the index of its status: when it was closed for a
// closed record, else when it began to wait.
func indexScore(h *Handoff) float64 {
	if h.Status == HandoffClosed {
		return float64(h.ClosedAt.UnixMilli())
	}
	return float64(h.WaitingSince.UnixMilli())
}

// openScript: KEYS the session's (see sessionKeys); ARGV user, ttl in ms, then the new
// record's field-value pairs. Returns {0} if the session is another user's, {2,
// record} if its record waits or is with an agent, else {1, previous record} once the
// new record is written (the session created, empty, with the ttl, if missing).
var openScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if not owner then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif owner ~= ARGV[1] then
  return {0}
else
  local status = redis.call('HGET', KEYS[5], 'status')
  if status == 'waiting' or status == 'agent' then
    return {2, redis.call('HGETALL', KEYS[5])}
  end
end
local old = redis.call('HGETALL', KEYS[5])
redis.call('DEL', KEYS[5])
redis.call('HSET', KEYS[5], unpack(ARGV, 3))
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[5], ttl) end
return {1, old}
`)

// getScript: KEYS owner, handoff. Returns the record's fields, none without a record,
// nil without a session.
var getScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HGETALL', KEYS[2])
`)

// claimScript: KEYS owner, handoff; ARGV agent id, agent name, claimed at. Returns {0}
// without a session or record, {1} if it is not waiting (and not the agent's), {2,
// record} if the agent holds it already, {3, record} once claimed.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local f = redis.call('HMGET', KEYS[2], 'status', 'agent_id')
if not f[1] then return {0} end
if f[1] == 'agent' and f[2] == ARGV[1] then return {2, redis.call('HGETALL', KEYS[2])} end
if f[1] ~= 'waiting' then return {1} end
redis.call('HSET', KEYS[2], 'status', 'agent', 'agent_id', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 'agent_name', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'claimed', ARGV[3]) end
return {3, redis.call('HGETALL', KEYS[2])}
`)

// closeScript: KEYS owner, handoff; ARGV agent id, closed at, resolution. Returns {0}
// without a session or record, {1} unless the agent holds it, {3, record} once closed.
var closeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local f = redis.call('HMGET', KEYS[2], 'status', 'agent_id')
if not f[1] then return {0} end
if f[1] ~= 'agent' or f[2] ~= ARGV[1] then return {1} end
redis.call('HSET', KEYS[2], 'status', 'closed')
for i, name in ipairs({'closed', 'resolution'}) do
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[2], name, ARGV[i + 1]) else redis.call('HDEL', KEYS[2], name) end
end
return {3, redis.call('HGETALL', KEYS[2])}
`)

// noteScript: KEYS owner, handoff; ARGV message, at. Returns 0 without a session or
// record, 1 once noted.
var noteScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for i, name in ipairs({'last', 'last_at'}) do
  if ARGV[i] ~= '' then redis.call('HSET', KEYS[2], name, ARGV[i]) else redis.call('HDEL', KEYS[2], name) end
end
return 1
`)

// moveScript: KEYS a tenant's indexes (see indexKeys); ARGV session id, old index
// (-1: none), old score, new index (-1: none), new score, max closed. Takes the member
// out of the old index if its score there is the old score, adds it to the new one
// with the new score and trims the closed index to its newest max closed members.
var moveScript = redis.NewScript(`
local old, new = tonumber(ARGV[2]), tonumber(ARGV[4])
if old >= 0 then
  local s = redis.call('ZSCORE', KEYS[old + 1], ARGV[1])
  if s and tonumber(s) == tonumber(ARGV[3]) then redis.call('ZREM', KEYS[old + 1], ARGV[1]) end
end
if new >= 0 then
  redis.call('ZADD', KEYS[new + 1], ARGV[5], ARGV[1])
  if new == 2 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[6]) + 1)) end
end
return 1
`)

// dropScript: KEYS one index; ARGV member, score, member, score…. Removes each member
// whose score is still the one given; returns how many it removed.
var dropScript = redis.NewScript(`
local n = 0
for i = 1, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i + 1]) then n = n + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return n
`)

// appendEventScript: KEYS owner, events, evseq; ARGV data, max events. Returns the
// event's seq, 0 without a session.
var appendEventScript = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return seq
`)

// eventsAfterScript: KEYS owner, events, evseq; ARGV after. Returns nil without a
// session, else {seq of the first event returned, events…}.
var eventsAfterScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local n = redis.call('LLEN', KEYS[2])
local first = seq - n + 1
local skip = math.min(math.max(tonumber(ARGV[1]) - first + 1, 0), n)
if skip >= n then return {first + skip} end
local out = redis.call('LRANGE', KEYS[2], skip, -1)
table.insert(out, 1, first + skip)
return out
`)

// seeAgentScript: KEYS a tenant's agents; ARGV agent id, until (unix ms), prune size.
// Records the agent; from prune size members on, drops the ones gone by Redis's
// clock; the key expires with its last agent's presence.
var seeAgentScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 2 and tonumber(top[2]) > now then
  redis.call('PEXPIREAT', KEYS[1], tonumber(top[2]) + 1)
end
return 1
`)

// moveIndex takes session sessionID of tenant t out of the index of record old (if
// not nil) and into that of record now (if not nil): the second step of a change,
// after its record's. It is idempotent.
func (r *RedisStore) moveIndex(ctx context.Context, t tenant.ID, sessionID string, old, now *Handoff) error {
	oldIdx, newIdx := -1, -1
	var oldScore, newScore float64
	if old != nil {
		oldIdx, oldScore = statusIndex(old.Status), indexScore(old)
	}
	if now != nil {
		newIdx, newScore = statusIndex(now.Status), indexScore(now)
	}
	if oldIdx < 0 && newIdx < 0 {
		return nil
	}
	return moveScript.Run(ctx, r.client, r.indexKeys(t), sessionID, oldIdx, oldScore, newIdx, newScore, MaxClosedHandoffs).Err()
}

// walkIndex calls fn with the records of tenant t's index of status that count (see
// the top of this file), in the index's order (reverse: newest first), with their
// scores, until fn returns false; it drops the members that do not count on the way.
// Under concurrent changes a walk is a close, not exact, snapshot.
func (r *RedisStore) walkIndex(ctx context.Context, t tenant.ID, status string, reverse bool, fn func(h Handoff, score float64) bool) error {
	key := r.indexKeys(t)[statusIndex(status)]
	var start int64
	for {
		var zs []redis.Z
		var err error
		if reverse {
			zs, err = r.client.ZRevRangeWithScores(ctx, key, start, start+indexPage-1).Result()
		} else {
			zs, err = r.client.ZRangeWithScores(ctx, key, start, start+indexPage-1).Result()
		}
		if err != nil {
			return err
		}
		if len(zs) == 0 {
			return nil
		}
		cmds := make([]*redis.MapStringStringCmd, len(zs))
		if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, z := range zs {
				id, _ := z.Member.(string)
				if ValidID(id) {
					cmds[i] = p.HGetAll(ctx, r.sessionKeys(t, id)[keyHandoff])
				}
			}
			return nil
		}); err != nil {
			return err
		}
		var stale []any
		more := true
		for i, z := range zs {
			id, _ := z.Member.(string)
			var h Handoff
			if cmds[i] != nil && len(cmds[i].Val()) > 0 {
				if h, err = decodeHandoffMap(id, cmds[i].Val()); err != nil {
					return err
				}
			}
			if h.Status != status || indexScore(&h) != z.Score {
				stale = append(stale, z.Member, z.Score)
				continue
			}
			if more = fn(h, z.Score); !more {
				break
			}
		}
		var dropped int64
		if len(stale) > 0 {
			if dropped, err = dropScript.Run(ctx, r.client, []string{key}, stale...).Int64(); err != nil {
				return err
			}
		}
		if !more || len(zs) < indexPage {
			return nil
		}
		start += int64(len(zs)) - dropped
	}
}

// position returns waiting record h's 1-based place in its tenant's queue: one more
// than the waiting records ordered before it.
func (r *RedisStore) position(ctx context.Context, t tenant.ID, h Handoff) (int, error) {
	own := indexScore(&h)
	n := 0
	err := r.walkIndex(ctx, t, HandoffWaiting, false, func(o Handoff, score float64) bool {
		if score > own || score == own && o.Session >= h.Session {
			return false
		}
		n++
		return true
	})
	return n + 1, err
}

// withPosition sets h's queue position when it waits.
func (r *RedisStore) withPosition(ctx context.Context, t tenant.ID, h Handoff) (Handoff, error) {
	h.Position = 0
	if h.Status != HandoffWaiting {
		return h, nil
	}
	var err error
	h.Position, err = r.position(ctx, t, h)
	return h, err
}

// OpenHandoff hands ref's session to a person for cause at now: the session (created
// for ref.User, empty, with the store's TTL, if it does not exist) gets a new waiting
// record holding lastMessage (cut to MaxLastMessage bytes), which joins the end of
// its tenant's queue; it returns the record with its position and true. A session
// already waiting or with an agent keeps its record, which it returns with false. It
// returns ErrNotFound if the session is another user's, and an error wrapping
// ErrUnavailable if Redis cannot answer.
func (r *RedisStore) OpenHandoff(ctx context.Context, ref Ref, cause, lastMessage string, now time.Time) (Handoff, bool, error) {
	if err := checkRef(ref); err != nil {
		return Handoff{}, false, err
	}
	h := Handoff{
		Session:      ref.Session,
		User:         ref.User,
		Status:       HandoffWaiting,
		Cause:        cause,
		WaitingSince: now,
		LastMessage:  cutLastMessage(lastMessage),
	}
	if h.LastMessage != "" {
		h.LastAt = now
	}
	args := append([]any{ref.User, max(r.ttl.Milliseconds(), 1)}, handoffArgs(&h)...)
	res, err := openScript.Run(ctx, r.client, r.keys(ref), args...).Slice()
	if err != nil {
		return Handoff{}, false, r.fail(ctx, "open handoff", err)
	}
	code, _ := res[0].(int64)
	if code == 0 {
		return Handoff{}, false, ErrNotFound
	}
	if len(res) < 2 || code != 1 && code != 2 {
		return Handoff{}, false, fmt.Errorf("session: open handoff: unexpected script reply %v", res)
	}
	fields, _ := res[1].([]any)
	prev, err := decodeHandoff(ref.Session, fields)
	if err != nil {
		return Handoff{}, false, fmt.Errorf("session: open handoff: %w", err)
	}
	opened := code == 1
	var old *Handoff
	if opened {
		old = &prev
	} else {
		// Already active: its index entry is put right, should an earlier call have
		// stopped between the steps.
		h = prev
	}
	if err := r.moveIndex(ctx, ref.Tenant, ref.Session, old, &h); err != nil {
		return Handoff{}, false, r.fail(ctx, "open handoff", err)
	}
	if h, err = r.withPosition(ctx, ref.Tenant, h); err != nil {
		return Handoff{}, false, r.fail(ctx, "open handoff", err)
	}
	return h, opened, nil
}

// GetHandoff returns the handoff record of session sessionID of tenant t, with its
// queue position when it waits, whoever owns the session. It returns ErrNotFound if
// the session does not exist or has no record, and an error wrapping ErrUnavailable
// if Redis cannot answer.
func (r *RedisStore) GetHandoff(ctx context.Context, t tenant.ID, sessionID string) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	k := r.sessionKeys(t, sessionID)
	fields, err := getScript.Run(ctx, r.client, []string{k[keyOwner], k[keyHandoff]}).Slice()
	if err != nil {
		return Handoff{}, r.fail(ctx, "get handoff", err)
	}
	if len(fields) == 0 {
		return Handoff{}, ErrNotFound
	}
	h, err := decodeHandoff(sessionID, fields)
	if err != nil {
		return Handoff{}, fmt.Errorf("session: get handoff: %w", err)
	}
	if h, err = r.withPosition(ctx, t, h); err != nil {
		return Handoff{}, r.fail(ctx, "get handoff", err)
	}
	return h, nil
}

// changeHandoff runs script, one of claimScript and closeScript, on session
// sessionID's record, then moves the record in its tenant's index from its status
// before (was) to its new one.
func (r *RedisStore) changeHandoff(ctx context.Context, op string, script *redis.Script, t tenant.ID, sessionID, was string, args ...any) (Handoff, error) {
	k := r.sessionKeys(t, sessionID)
	res, err := script.Run(ctx, r.client, []string{k[keyOwner], k[keyHandoff]}, args...).Slice()
	if err != nil {
		return Handoff{}, r.fail(ctx, op, err)
	}
	switch code, _ := res[0].(int64); {
	case code == 0:
		return Handoff{}, ErrNotFound
	case code == 1:
		return Handoff{}, ErrConflict
	case len(res) < 2 || code != 2 && code != 3:
		return Handoff{}, fmt.Errorf("session: %s: unexpected script reply %v", op, res)
	}
	fields, _ := res[1].([]any)
	h, err := decodeHandoff(sessionID, fields)
	if err != nil {
		return Handoff{}, fmt.Errorf("session: %s: %w", op, err)
	}
	// The record left was keeping its WaitingSince, the score of both the waiting
	// and the agent index; a claim repeated by its holder finds it moved already.
	old := h
	old.Status = was
	if err := r.moveIndex(ctx, t, sessionID, &old, &h); err != nil {
		return Handoff{}, r.fail(ctx, op, err)
	}
	return h, nil
}

// ClaimHandoff gives the waiting handoff of session sessionID of tenant t to agent
// agentID (shown as agentName) at now and returns the record; one Lua script checks
// and changes the record, so of concurrent claims, from any process, exactly one
// succeeds. A claim by the agent that holds it already returns the record unchanged.
// It returns ErrNotFound if there is no record, ErrConflict if it is with another
// agent or closed, and an error wrapping ErrUnavailable if Redis cannot answer (the
// claim may then have been made; the agent's retry returns it).
func (r *RedisStore) ClaimHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, agentName string, now time.Time) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	if agentID == "" {
		return Handoff{}, errors.New("session: claim handoff: no agent id")
	}
	return r.changeHandoff(ctx, "claim handoff", claimScript, t, sessionID, HandoffWaiting, agentID, agentName, encodeTime(now))
}

// CloseHandoff closes the handoff of session sessionID of tenant t, held by agent
// agentID, at now with the agent's resolution note, and returns the record. It
// returns ErrNotFound if there is no record, ErrConflict unless agentID holds it, and
// an error wrapping ErrUnavailable if Redis cannot answer.
func (r *RedisStore) CloseHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, resolution string, now time.Time) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	return r.changeHandoff(ctx, "close handoff", closeScript, t, sessionID, HandoffAgent, agentID, encodeTime(now), resolution)
}

// NoteHandoffMessage records message (cut to MaxLastMessage bytes), which came at
// at, as the last customer message of the handoff of session sessionID of tenant t.
// It returns ErrNotFound if there is no record, and an error wrapping ErrUnavailable
// if Redis cannot answer.
func (r *RedisStore) NoteHandoffMessage(ctx context.Context, t tenant.ID, sessionID, message string, at time.Time) error {
	if err := checkSession(t, sessionID); err != nil {
		return err
	}
	k := r.sessionKeys(t, sessionID)
	n, err := noteScript.Run(ctx, r.client, []string{k[keyOwner], k[keyHandoff]}, cutLastMessage(message), encodeTime(at)).Int()
	if err != nil {
		return r.fail(ctx, "note handoff message", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ListHandoffs returns at most limit (100 when limit <= 0) of tenant t's handoff
// records with status, oldest WaitingSince first, waiting ones with their queue
// position. For waiting and agent these are the oldest waits; for closed, the most
// recently closed. Index entries whose record is gone or has moved on are dropped on
// the way. An unknown status is an error; Redis not answering, one wrapping
// ErrUnavailable.
func (r *RedisStore) ListHandoffs(ctx context.Context, t tenant.ID, status string, limit int) ([]Handoff, error) {
	if statusIndex(status) < 0 {
		return nil, fmt.Errorf("session: list handoffs: unknown status %q", status)
	}
	if err := checkTenant(t); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultListLimit
	}
	var out []Handoff
	err := r.walkIndex(ctx, t, status, status == HandoffClosed, func(h Handoff, _ float64) bool {
		if status == HandoffWaiting {
			h.Position = len(out) + 1
		}
		out = append(out, h)
		return len(out) < limit
	})
	if err != nil {
		return nil, r.fail(ctx, "list handoffs", err)
	}
	if status == HandoffClosed {
		slices.SortFunc(out, compareWaits)
	}
	return out, nil
}

// CountWaiting returns how many of tenant t's sessions wait for an agent. It reads
// the record of every member of the tenant's queue, so it costs one round trip per
// indexPage waiting sessions. Redis not answering is an error wrapping ErrUnavailable.
func (r *RedisStore) CountWaiting(ctx context.Context, t tenant.ID) (int, error) {
	if err := checkTenant(t); err != nil {
		return 0, err
	}
	n := 0
	err := r.walkIndex(ctx, t, HandoffWaiting, false, func(Handoff, float64) bool {
		n++
		return true
	})
	if err != nil {
		return 0, r.fail(ctx, "count waiting", err)
	}
	return n, nil
}

// AppendEvent adds data to the event log of session sessionID of tenant t and returns
// its seq: 1 for a session's first event, then one more each time. The log keeps the
// newest MaxEvents events and lives as long as the session. It returns ErrNotFound if
// the session does not exist, and an error wrapping ErrUnavailable if Redis cannot
// answer; the event may then have been stored.
func (r *RedisStore) AppendEvent(ctx context.Context, t tenant.ID, sessionID string, data []byte) (int64, error) {
	if err := checkSession(t, sessionID); err != nil {
		return 0, err
	}
	k := r.sessionKeys(t, sessionID)
	seq, err := appendEventScript.Run(ctx, r.client, []string{k[keyOwner], k[keyEvents], k[keyEvSeq]}, data, MaxEvents).Int64()
	if err != nil {
		return 0, r.fail(ctx, "append event", err)
	}
	if seq == 0 {
		return 0, ErrNotFound
	}
	return seq, nil
}

// EventsAfter returns the kept events of session sessionID of tenant t whose seq is
// above after, oldest first, none if there are none. It returns ErrNotFound if the
// session does not exist, and an error wrapping ErrUnavailable if Redis cannot answer.
func (r *RedisStore) EventsAfter(ctx context.Context, t tenant.ID, sessionID string, after int64) ([]Event, error) {
	if err := checkSession(t, sessionID); err != nil {
		return nil, err
	}
	k := r.sessionKeys(t, sessionID)
	res, err := eventsAfterScript.Run(ctx, r.client, []string{k[keyOwner], k[keyEvents], k[keyEvSeq]}, after).Slice()
	if err != nil {
		return nil, r.fail(ctx, "events after", err)
	}
	if len(res) < 2 {
		return nil, nil
	}
	first, ok := res[0].(int64)
	if !ok {
		return nil, fmt.Errorf("session: events after: unexpected script reply %v", res[0])
	}
	out := make([]Event, len(res)-1)
	for i, v := range res[1:] {
		s, _ := v.(string)
		out[i] = Event{Seq: first + int64(i), Data: []byte(s)}
	}
	return out, nil
}

// SeeAgent records that agent agentID of tenant t is online until until (to the
// millisecond). Redis not answering is an error wrapping ErrUnavailable.
func (r *RedisStore) SeeAgent(ctx context.Context, t tenant.ID, agentID string, until time.Time) error {
	if err := checkTenant(t); err != nil {
		return err
	}
	if err := seeAgentScript.Run(ctx, r.client, []string{r.agentsKey(t)}, agentID, until.UnixMilli(), minAgentPrune).Err(); err != nil {
		return r.fail(ctx, "see agent", err)
	}
	return nil
}

// AgentsOnline returns how many agents of tenant t are online at now (to the
// millisecond), dropping the ones gone. Redis not answering is an error wrapping
// ErrUnavailable.
func (r *RedisStore) AgentsOnline(ctx context.Context, t tenant.ID, now time.Time) (int, error) {
	if err := checkTenant(t); err != nil {
		return 0, err
	}
	key := r.agentsKey(t)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	var count *redis.IntCmd
	if _, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "-inf", ms)
		count = p.ZCount(ctx, key, "("+ms, "+inf")
		return nil
	}); err != nil {
		return 0, r.fail(ctx, "agents online", err)
	}
	return int(count.Val()), nil
}
