package session

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const testRedisURL = "redis://127.0.0.1:6379/0"

// testRedisClient returns a client of the Redis on this machine, closed after the test.
// Without Redis the test skips, or fails when CI=true.
func testRedisClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c, err := NewRedisClient(RedisClientConfig{URL: testRedisURL})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		msg := fmt.Sprintf("Redis at %s does not answer (%v); start it with: "+
			`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`, testRedisURL, err)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// testRedisStore returns a RedisStore under a key prefix of its own, whose keys are
// deleted after the test, and the client it uses.
func testRedisStore(tb testing.TB, cfg RedisConfig) (*RedisStore, redis.UniversalClient) {
	tb.Helper()
	c := testRedisClient(tb)
	cfg.KeyPrefix = "fdtest:" + rand.Text() + ":"
	s, err := NewRedisStore(c, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, err := scanKeys(ctx, c, cfg.KeyPrefix)
		if err == nil && len(keys) > 0 {
			err = c.Del(ctx, keys...).Err()
		}
		if err != nil {
			tb.Errorf("clean up %s*: %v", cfg.KeyPrefix, err)
		}
	})
	return s, c
}

// scanKeys returns every key starting with prefix (which holds no glob characters).
func scanKeys(ctx context.Context, c redis.UniversalClient, prefix string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

func TestRedisStore(t *testing.T) {
	runStoreContract(t, func(t *testing.T) Store {
		s, _ := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
		return s
	})
}

func TestRedisStoreKeys(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	ref := testRef("acme", "u1")
	mustAppend(t, s, ref, testTurn(1, "m1"))
	keys, err := scanKeys(ctx, c, s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	base := s.prefix + "{acme:" + ref.Session + "}:"
	want := []string{base + "idem", base + "owner", base + "seq", base + "turns"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys: got %q, want %q", keys, want)
	}
	if owner := c.Get(ctx, base+"owner").Val(); owner != "u1" {
		t.Errorf("owner key holds %q, want u1", owner)
	}
}

// TestRedisStoreTurnText checks that a turn is stored as json.Marshal writes it, so
// turns stored before and after the codec read the same, and that LoadRecent's match
// on the start of the text finds turn ids that need escaping.
func TestRedisStoreTurnText(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	ref := testRef("acme", "u1")
	odd := testTurn(1, "m1")
	odd.ID = `id "quoted" <b> & \ 我`
	odd.User = "html <&> and \u2028 and \xff"
	mustAppend(t, s, ref, odd)
	mustAppend(t, s, ref, testTurn(2, "m2"))
	stored, err := c.LIndex(ctx, s.keys(ref)[1], 0).Result()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(odd)
	if err != nil {
		t.Fatal(err)
	}
	if stored != string(want) {
		t.Errorf("stored turn:\ngot  %s\nwant %s", stored, want)
	}
	for _, id := range []string{odd.ID, odd.ID[:5], `id "quoted"`} {
		rec, err := s.LoadRecent(ctx, ref, 1, id, "")
		if err != nil {
			t.Fatal(err)
		}
		if found := rec.Found != nil; found != (id == odd.ID) {
			t.Errorf("LoadRecent by turn id %q: found %v", id, found)
		}
	}
}

func TestRedisStoreQueuedKey(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns, TTL: time.Hour})
	q := testQueued("acme", "u1", "m1")
	if err := s.SaveQueued(ctx, q, 0); err != nil {
		t.Fatal(err)
	}
	keys, err := scanKeys(ctx, c, s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	key := s.prefix + "queued:{acme:" + q.TurnID + "}"
	if want := []string{key}; !slices.Equal(keys, want) {
		t.Errorf("keys: got %q, want %q", keys, want)
	}
	check := func(what, want string, lo, hi time.Duration) {
		t.Helper()
		if got := c.Get(ctx, key).Val(); got != want {
			t.Errorf("%s: key holds %s, want %s", what, got, want)
		}
		if got := c.PTTL(ctx, key).Val(); got < lo || got > hi {
			t.Errorf("%s: PTTL %v, want within [%v, %v]", what, got, lo, hi)
		}
	}
	check("store TTL", `{"session":"`+q.Ref.Session+`","user":"u1","client_msg_id":"m1"}`, 59*time.Minute, time.Hour)
	q.ClientMsgID = ""
	if err := s.SaveQueued(ctx, q, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	check("ttl argument", `{"session":"`+q.Ref.Session+`","user":"u1"}`, 9*time.Minute, 10*time.Minute)
}

func TestRedisStoreTTL(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns, TTL: time.Hour})
	ref := testRef("acme", "u1")
	keys := s.keys(ref)
	checkTTL := func(what string, lo, hi time.Duration) {
		t.Helper()
		for _, k := range keys {
			got, err := c.PTTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got < lo || got > hi {
				t.Errorf("%s: PTTL %s = %v, want within [%v, %v]", what, k, got, lo, hi)
			}
		}
	}
	mustAppend(t, s, ref, testTurn(1, "m1"))
	// A handoff record and an event, made between Appends, take the session's TTL;
	// every Append slides all seven keys together.
	if _, _, err := s.OpenHandoff(ctx, ref, CauseAsked, "a person please", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	checkTTL("store TTL", 59*time.Minute, time.Hour)
	if _, err := s.Append(ctx, ref, testTurn(2, "m2"), 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	checkTTL("ttl argument", 9*time.Minute, 10*time.Minute)
	mustAppend(t, s, ref, testTurn(3, "m3"))
	checkTTL("slid back to the store TTL", 59*time.Minute, time.Hour)

	// A short TTL really expires, every key of the session with it.
	short := testRef("acme", "u1")
	if _, err := s.Append(ctx, short, testTurn(1, "m1"), time.Second); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, s, short)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Load(ctx, short)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("Load of a session with a 1s TTL: %v, still there after 5s", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := c.Exists(ctx, s.keys(short)...).Val(); n != 0 {
		t.Errorf("%d keys of the expired session remain", n)
	}
}

func TestRedisStoreIdempotencyIsBounded(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	ref := testRef("acme", "u1")
	k := s.keys(ref)
	const n = 40
	for i := range n {
		mustAppend(t, s, ref, testTurn(i, fmt.Sprintf("m%d", i)))
		if got := c.HLen(ctx, k[3]).Val(); got > 2*contractMaxTurns {
			t.Fatalf("after %d appends the idem hash has %d entries, want at most %d", i+1, got, 2*contractMaxTurns)
		}
	}
	if got := c.LLen(ctx, k[1]).Val(); got != contractMaxTurns {
		t.Errorf("turns list has %d entries, want %d", got, contractMaxTurns)
	}
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		_, err := lookup(ctx, s, ref, id)
		if retained := i >= n-contractMaxTurns; retained != (err == nil) {
			t.Errorf("lookup(%s): %v; retained %v", id, err, retained)
		}
	}
}

// TestRedisStoreReplyErrors checks that an error reply from a working Redis is not
// reported as ErrUnavailable: it is a fault to log, not a reason to retry.
func TestRedisStoreReplyErrors(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	ref := testRef("acme", "u1")
	if err := c.RPush(ctx, s.keys(ref)[0], "not a string").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(ctx, ref)
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("Load of a session whose owner key is a list: got %v, want a plain error", err)
	}
	_, err = s.LoadRecent(ctx, ref, 1, "", "")
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("LoadRecent of a session whose owner key is a list: got %v, want a plain error", err)
	}
	q := testQueued("acme", "u1", "")
	if err := c.RPush(ctx, s.queuedKey(q.Ref.Tenant, q.TurnID), "not a string").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("LoadQueued of a record whose key is a list: got %v, want a plain error", err)
	}
}

// TestRedisStoreUnavailable checks that a Redis that refuses connections, or accepts
// and never answers, gives ErrUnavailable within the context's deadline.
func TestRedisStoreUnavailable(t *testing.T) {
	silent := newFakeRedis(t, func(cmd []string) string { return "" })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	for _, addr := range []string{"127.0.0.1:1", closedAddr, silent.addr} {
		t.Run(addr, func(t *testing.T) {
			c, err := NewRedisClient(RedisClientConfig{URL: "redis://" + addr, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := NewRedisStore(c, RedisConfig{})
			if err != nil {
				t.Fatal(err)
			}
			ref := testRef("acme", "u1")
			q := QueuedTurn{Ref: ref, TurnID: NewTurnID()}
			ops := map[string]func(context.Context) error{
				"SaveQueued": func(ctx context.Context) error { return s.SaveQueued(ctx, q, 0) },
				"LoadQueued": func(ctx context.Context) error {
					_, err := s.LoadQueued(ctx, ref.Tenant, ref.User, q.TurnID)
					return err
				},
				"Load": func(ctx context.Context) error { _, err := s.Load(ctx, ref); return err },
				"LoadRecent": func(ctx context.Context) error {
					_, err := s.LoadRecent(ctx, ref, 6, q.TurnID, "m1")
					return err
				},
				"Append": func(ctx context.Context) error { _, err := s.Append(ctx, ref, testTurn(1, "m1"), 0); return err },
				"Delete": func(ctx context.Context) error { return s.Delete(ctx, ref) },
				"Ping":   func(ctx context.Context) error { return s.Ping(ctx) },
			}
			for name, op := range ops {
				const deadline = 300 * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				err := op(ctx)
				took := time.Since(start)
				cancel()
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s: got %v, want ErrUnavailable", name, err)
				}
				if addr == silent.addr && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: got %v, want it to wrap context.DeadlineExceeded too", name, err)
				}
				if took > deadline+200*time.Millisecond {
					t.Errorf("%s took %v, past the %v deadline", name, took, deadline)
				}
			}
		})
	}
}

// TestRedisStoreAppendIsNotRetried checks that an append whose connection drops after
// the command was sent is reported, not sent again: go-redis would by default resend
// it and store the turn twice.
func TestRedisStoreAppendIsNotRetried(t *testing.T) {
	var evals atomic.Int32
	fake := newFakeRedis(t, func(cmd []string) string {
		switch strings.ToUpper(cmd[0]) {
		case "EVALSHA", "EVAL":
			evals.Add(1)
			return "" // drop the connection
		case "CLIENT":
			return "+OK\r\n"
		}
		return "-ERR unknown command\r\n"
	})
	c, err := NewRedisClient(RedisClientConfig{URL: "redis://" + fake.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := NewRedisStore(c, RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = s.Append(ctx, testRef("acme", "u1"), testTurn(1, "m1"), 0)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append: got %v, want ErrUnavailable", err)
	}
	if got := evals.Load(); got != 1 {
		t.Errorf("the append script was sent %d times, want 1", got)
	}
}

// fakeRedis is a RESP server on a local port for failure tests. reply gets each
// command and returns the raw reply to write, or "" to close the connection for
// "EVAL"/"EVALSHA" and to stay silent otherwise.
type fakeRedis struct {
	addr string
}

func newFakeRedis(t *testing.T, reply func(cmd []string) string) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					cmd, err := readCommand(r)
					if err != nil {
						return
					}
					out := reply(cmd)
					if out == "" {
						if name := strings.ToUpper(cmd[0]); name == "EVAL" || name == "EVALSHA" {
							return
						}
						continue // silent: never answer
					}
					if _, err := io.WriteString(conn, out); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return &fakeRedis{addr: ln.Addr().String()}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[0] != '*' {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array length %q", line)
	}
	cmd := make([]string, n)
	for i := range cmd {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk length %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		cmd[i] = string(buf[:size])
	}
	return cmd, nil
}

func TestNewRedisStoreConfig(t *testing.T) {
	c, err := NewRedisClient(RedisClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := NewRedisStore(nil, RedisConfig{}); err == nil {
		t.Error("nil client: no error")
	}
	for _, cfg := range []RedisConfig{{MaxTurns: -1}, {TTL: -time.Second}, {KeyPrefix: "fd:{x}:"}} {
		if _, err := NewRedisStore(c, cfg); err == nil {
			t.Errorf("NewRedisStore(%+v): no error", cfg)
		}
	}
	s, err := NewRedisStore(c, RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if s.prefix != "fd:" || s.maxTurns != DefaultMaxTurns || s.ttl != DefaultTTL {
		t.Errorf("defaults: %q, %d, %v", s.prefix, s.maxTurns, s.ttl)
	}
}

func TestNewRedisClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     RedisClientConfig
		wantErr bool
		check   func(t *testing.T, c redis.UniversalClient)
	}{
		{name: "default single node", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6379" || o.DB != 0 || o.TLSConfig != nil {
				t.Errorf("addr %q db %d tls %v", o.Addr, o.DB, o.TLSConfig != nil)
			}
			if o.MaxRetries != 0 || !o.ContextTimeoutEnabled || o.ReadTimeout != DefaultRedisReadTimeout {
				t.Errorf("MaxRetries %d (want 0 from -1), ContextTimeoutEnabled %v, ReadTimeout %v",
					o.MaxRetries, o.ContextTimeoutEnabled, o.ReadTimeout)
			}
		}},
		{name: "rediss with credentials and db", cfg: RedisClientConfig{URL: "rediss://app:secret@cache.internal:6380/2"},
			check: func(t *testing.T, c redis.UniversalClient) {
				o := c.(*redis.Client).Options()
				if o.Addr != "cache.internal:6380" || o.DB != 2 || o.Username != "app" || o.Password != "secret" || o.TLSConfig == nil {
					t.Errorf("addr %q db %d user %q tls %v", o.Addr, o.DB, o.Username, o.TLSConfig != nil)
				}
			}},
		{name: "cluster", cfg: RedisClientConfig{URL: "10.0.0.1:7000, 10.0.0.2:7000,redis://10.0.0.3:7000"},
			check: func(t *testing.T, c redis.UniversalClient) {
				o := c.(*redis.ClusterClient).Options()
				if len(o.Addrs) != 3 || o.ReadOnly || o.RouteByLatency || o.RouteRandomly || o.MaxRedirects != 0 || o.MaxRetries > 0 {
					t.Errorf("cluster options: %+v", o)
				}
			}},
		{name: "sentinel", cfg: RedisClientConfig{URL: "redis://:pw@10.0.0.1:26379,10.0.0.2:26379", MasterName: "mymaster"},
			check: func(t *testing.T, c redis.UniversalClient) {
				if _, ok := c.(*redis.Client); !ok {
					t.Errorf("got %T, want a failover *redis.Client", c)
				}
			}},
		{name: "unknown scheme", cfg: RedisClientConfig{URL: "http://127.0.0.1:6379"}, wantErr: true},
		{name: "unix socket", cfg: RedisClientConfig{URL: "unix:///run/redis.sock"}, wantErr: true},
		{name: "no port", cfg: RedisClientConfig{URL: "cache.internal"}, wantErr: true},
		{name: "empty address", cfg: RedisClientConfig{URL: "10.0.0.1:7000,"}, wantErr: true},
		{name: "cluster db", cfg: RedisClientConfig{URL: "redis://10.0.0.1:7000/3,10.0.0.2:7000"}, wantErr: true},
		{name: "negative timeout", cfg: RedisClientConfig{ReadTimeout: -time.Second}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewRedisClient(tc.cfg)
			if tc.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("no error")
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.check(t, c)
		})
	}
}
