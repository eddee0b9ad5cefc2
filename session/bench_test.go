package session

import (
	"context"
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

func newBenchMemoryStore(b *testing.B) *MemoryStore {
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
