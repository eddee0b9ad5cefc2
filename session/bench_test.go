package session

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// benchTurn is a turn of a realistic size: a short question, a paragraph of answer,
// two citations.
func benchTurn(i int) Turn {
	t := testTurn(i, "c"+strconv.Itoa(i))
	t.Answer = strings.Repeat("您的订单已发货，预计三天内送达。", 12)
	t.Citations = append(t.Citations, Citation{ID: "kb-shipping", Question: "How long does shipping take?"})
	return t
}

func benchAppend(b *testing.B, s Store) {
	ctx := context.Background()
	ref := testRef("acme", "u1")
	turns := make([]Turn, 1024)
	for i := range turns {
		turns[i] = benchTurn(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		t := turns[i%len(turns)]
		t.ClientMsgID = strconv.Itoa(i) // a new id each time, as from real clients
		if _, err := s.Append(ctx, ref, t, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchLoad loads a session holding a full history of DefaultMaxTurns turns.
func benchLoad(b *testing.B, s Store) {
	ctx := context.Background()
	ref := testRef("acme", "u1")
	for i := range DefaultMaxTurns {
		if _, err := s.Append(ctx, ref, benchTurn(i), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		turns, err := s.Load(ctx, ref)
		if err != nil || len(turns) != DefaultMaxTurns {
			b.Fatalf("Load: %d turns, %v", len(turns), err)
		}
	}
}

func newBenchMemoryStore(b testing.TB) *MemoryStore {
	s, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkMemoryStoreAppend(b *testing.B) { benchAppend(b, newBenchMemoryStore(b)) }
func BenchmarkMemoryStoreLoad(b *testing.B)   { benchLoad(b, newBenchMemoryStore(b)) }

func BenchmarkRedisStoreAppend(b *testing.B) {
	s, _ := testRedisStore(b, RedisConfig{})
	benchAppend(b, s)
}

func BenchmarkRedisStoreLoad(b *testing.B) {
	s, _ := testRedisStore(b, RedisConfig{})
	benchLoad(b, s)
}

// codecBenchTurn is a typical stored turn: a question in Chinese, an answer of about
// 200 characters, one citation.
func codecBenchTurn() Turn {
	t := testTurn(1, "c1")
	t.User = "我上周五下的订单显示已经发货了，但是到现在还没有收到，请问怎么查询物流信息？"
	t.Answer = strings.Repeat("您的订单已发货，预计三天内送达。", 12) + "如有疑问请联系客服。"
	t.Suggestions = nil
	return t
}

// BenchmarkTurnCodec compares the codec with encoding/json on one typical turn.
func BenchmarkTurnCodec(b *testing.B) {
	turn := codecBenchTurn()
	data, err := json.Marshal(turn)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&turn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeTurn(&turn); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A stored turn arrives as a Redis reply, a string: as the store read it before
	// (json.Unmarshal of a copy) and as it reads it now.
	reply := string(data)
	b.Run("decode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t Turn
			if err := json.Unmarshal([]byte(reply), &t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/codec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t Turn
			if err := decodeTurnString(reply, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRedisLoad compares loading a whole session of 10 turns with loading the
// few newest that answering needs, as LoadRecent does, with the client msg id of a
// new message (not found, as for most turns).
func BenchmarkRedisLoad(b *testing.B) {
	s, _ := testRedisStore(b, RedisConfig{})
	ctx := context.Background()
	ref := testRef("acme", "u1")
	const turns = 10
	for i := range turns {
		if _, err := s.Append(ctx, ref, benchTurn(i), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, err := s.Load(ctx, ref); err != nil || len(got) != turns {
				b.Fatalf("Load: %d turns, %v", len(got), err)
			}
		}
	})
	for _, n := range []int{1, 6} {
		b.Run("LoadRecent/n="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := s.LoadRecent(ctx, ref, n, "", "new"); err != nil || len(got.Turns) != n {
					b.Fatalf("LoadRecent: %d turns, %v", len(got.Turns), err)
				}
			}
		})
	}
}
