package knowledge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fengda-ai/fengda/tenant"
)

// JetStreamStore keeps each tenant's bases on a JetStream server, apart from every
// other tenant's: an object store holds each version's whole base as one object (they
// are chunked, so a base of several MB is fine), and a key-value bucket of the same name
// holds the key head: the newest version, with the log of the versions kept and the
// object of each. A write puts the new object under a name of its own, then moves head
// with a compare-and-set on its revision; the write that loses deletes its object.
// Safe for concurrent use, by any number of replicas.
type JetStreamStore struct {
	js       jetstream.JetStream
	prefix   string
	replicas int
	keep     int

	mu      sync.Mutex
	buckets map[tenant.ID]*jsBucket
}

type jsBucket struct {
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore
}

var _ Store = (*JetStreamStore)(nil)

// headKey is the key of a tenant's newest version in its bucket.
const headKey = "head"

// jsHead is the record under head.
type jsHead struct {
	Version
	Object string  `json:"object"`
	Log    []jsLog `json:"log"` // newest first; Log[0] is this version
}

type jsLog struct {
	Version
	Object string `json:"object"`
}

// bucketName is what a prefix may be: the queue's stream names are of this shape.
var bucketName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)

// NewJetStreamStore returns a store on js whose buckets are named
// <prefix>_KB_<tenant>, made with replicas replicas, keeping the last keep versions
// of each base. It makes no bucket yet.
func NewJetStreamStore(js jetstream.JetStream, prefix string, replicas, keep int) (*JetStreamStore, error) {
	switch {
	case js == nil:
		return nil, errors.New("knowledge: nil JetStream")
	case !bucketName.MatchString(prefix):
		return nil, fmt.Errorf("knowledge: bucket prefix %q: letters, digits, '-' and '_' only", prefix)
	case keep < 1:
		return nil, fmt.Errorf("knowledge: keep %d versions: must be positive", keep)
	}
	return &JetStreamStore{js: js, prefix: prefix, replicas: max(replicas, 1), keep: keep, buckets: make(map[tenant.ID]*jsBucket)}, nil
}

// Bucket returns the name of t's key-value bucket and object store.
func (s *JetStreamStore) Bucket(t tenant.ID) string { return s.prefix + "_KB_" + string(t) }

// bucket returns t's bucket and object store, made on first use.
func (s *JetStreamStore) bucket(ctx context.Context, t tenant.ID) (*jsBucket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.buckets[t]; b != nil {
		return b, nil
	}
	name := s.Bucket(t)
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "Fengda: tenant " + string(t) + "'s knowledge base: its newest version and version log",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.replicas,
	})
	if err != nil {
		return nil, unavailable("bucket "+name, err)
	}
	obj, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      name,
		Description: "Fengda: tenant " + string(t) + "'s knowledge base, one object a version",
		Storage:     jetstream.FileStorage,
		Replicas:    s.replicas,
	})
	if err != nil {
		return nil, unavailable("object store "+name, err)
	}
	b := &jsBucket{kv: kv, obj: obj}
	s.buckets[t] = b
	return b, nil
}

// unavailable wraps an error of the server as ErrUnavailable.
func unavailable(what string, err error) error {
	return fmt.Errorf("knowledge: %s: %w: %w", what, ErrUnavailable, err)
}

// Head returns t's newest version, or ErrNotFound.
func (s *JetStreamStore) Head(ctx context.Context, t tenant.ID) (Head, error) {
	b, err := s.bucket(ctx, t)
	if err != nil {
		return Head{}, err
	}
	e, err := b.kv.Get(ctx, headKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Head{}, fmt.Errorf("knowledge: tenant %s has no base: %w", t, ErrNotFound)
	}
	if err != nil {
		return Head{}, unavailable("read head of "+string(t), err)
	}
	return decodeHead(e.Value(), e.Revision())
}

func decodeHead(data []byte, rev uint64) (Head, error) {
	var rec jsHead
	if err := json.Unmarshal(data, &rec); err != nil {
		return Head{}, fmt.Errorf("knowledge: decode head: %w", err)
	}
	h := Head{Latest: rec.Version, Rev: rev, raw: &rec, Log: make([]Version, len(rec.Log))}
	for i, l := range rec.Log {
		h.Log[i] = l.Version
	}
	return h, nil
}

// Load returns version n of t's base, or ErrNotFound.
func (s *JetStreamStore) Load(ctx context.Context, t tenant.ID, n int) (*Base, error) {
	h, err := s.Head(ctx, t)
	if err != nil {
		return nil, err
	}
	object := ""
	for _, l := range h.raw.(*jsHead).Log {
		if l.Version.Version == n {
			object = l.Object
		}
	}
	if object == "" {
		return nil, fmt.Errorf("knowledge: tenant %s version %d: %w", t, n, ErrNotFound)
	}
	b, err := s.bucket(ctx, t)
	if err != nil {
		return nil, err
	}
	data, err := b.obj.GetBytes(ctx, object)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		// Pruned between reading the head and the object.
		return nil, fmt.Errorf("knowledge: tenant %s version %d: %w", t, n, ErrNotFound)
	}
	if err != nil {
		return nil, unavailable(fmt.Sprintf("read version %d of %s", n, t), err)
	}
	var base Base
	if err := json.Unmarshal(data, &base); err != nil {
		return nil, fmt.Errorf("knowledge: tenant %s version %d: decode: %w", t, n, err)
	}
	return &base, nil
}

// Commit puts b's object, then moves head from prev with a compare-and-set.
func (s *JetStreamStore) Commit(ctx context.Context, t tenant.ID, prev Head, v Version, b *Base) (Head, error) {
	bk, err := s.bucket(ctx, t)
	if err != nil {
		return Head{}, err
	}
	var prevRec jsHead
	if prev.Rev != 0 {
		if r, ok := prev.raw.(*jsHead); ok {
			prevRec = *r
		} else {
			return Head{}, errors.New("knowledge: commit: the head was not read from this store")
		}
	}
	if v.Version != prevRec.Version.Version+1 {
		return Head{}, fmt.Errorf("knowledge: commit version %d after %d: %w", v.Version, prevRec.Version.Version, ErrConflict)
	}
	data, err := json.Marshal(b)
	if err != nil {
		return Head{}, fmt.Errorf("knowledge: encode base: %w", err)
	}
	// A name of its own: two replicas writing version N at once must not overwrite
	// each other's object, as the loser deletes its own.
	object := "v" + strconv.Itoa(v.Version) + "-" + randomSuffix()
	if _, err := bk.obj.PutBytes(ctx, object, data); err != nil {
		s.deleteObject(bk, object)
		return Head{}, unavailable(fmt.Sprintf("put version %d of %s", v.Version, t), err)
	}
	v.At = v.At.Round(0)
	log, dropped := nextLog(jsLog{Version: v, Object: object}, prevRec.Log, s.keep)
	rec := jsHead{Version: v, Object: object, Log: log}
	value, err := json.Marshal(&rec)
	if err != nil {
		s.deleteObject(bk, object)
		return Head{}, fmt.Errorf("knowledge: encode head: %w", err)
	}
	var rev uint64
	if prev.Rev == 0 {
		rev, err = bk.kv.Create(ctx, headKey, value)
	} else {
		rev, err = bk.kv.Update(ctx, headKey, value, prev.Rev)
	}
	if err != nil {
		s.deleteObject(bk, object)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Head{}, fmt.Errorf("knowledge: tenant %s: head moved past version %d: %w", t, prevRec.Version.Version, ErrConflict)
		}
		return Head{}, unavailable("move head of "+string(t), err)
	}
	s.prune(ctx, bk, &rec, dropped)
	return decodeHead(value, rev)
}

// prune deletes the objects of the versions that left the log, and any object of a
// failed write left behind (a crash between its put and its head). An unlisted object
// newer than rec's version may be another replica's write in flight: it stays.
func (s *JetStreamStore) prune(ctx context.Context, bk *jsBucket, rec *jsHead, dropped []jsLog) {
	for _, d := range dropped {
		s.deleteObject(bk, d.Object)
	}
	if len(dropped) == 0 {
		return
	}
	kept := make(map[string]bool, len(rec.Log))
	for _, l := range rec.Log {
		kept[l.Object] = true
	}
	infos, err := bk.obj.List(ctx)
	if err != nil {
		return // the next write's prune tries again
	}
	for _, info := range infos {
		if kept[info.Name] {
			continue
		}
		if n, ok := objectVersion(info.Name); ok && n <= rec.Version.Version {
			s.deleteObject(bk, info.Name)
		}
	}
}

// objectVersion returns the version of an object named v<N>-<suffix>.
func objectVersion(name string) (int, bool) {
	num, _, ok := strings.Cut(strings.TrimPrefix(name, "v"), "-")
	if !ok || !strings.HasPrefix(name, "v") {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil
}

// deleteObject deletes an object, best effort: an object left over is pruned later.
func (s *JetStreamStore) deleteObject(bk *jsBucket, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	_ = bk.obj.Delete(ctx, name)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Watch calls fn with t's head and every later one, until ctx ends or the connection
// closes.
func (s *JetStreamStore) Watch(ctx context.Context, t tenant.ID, fn func(Head)) error {
	b, err := s.bucket(ctx, t)
	if err != nil {
		return err
	}
	w, err := b.kv.Watch(ctx, headKey, jetstream.IgnoreDeletes())
	if err != nil {
		return unavailable("watch head of "+string(t), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil { // the end of the values already there
				continue
			}
			h, err := decodeHead(e.Value(), e.Revision())
			if err != nil {
				continue
			}
			fn(h)
		}
	}
}

// deleteTimeout bounds the deletion of one object, which runs even when the write's
// own context has ended.
const deleteTimeout = 5 * time.Second
