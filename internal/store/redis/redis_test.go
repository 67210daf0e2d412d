package redis

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// recorder is a go-redis hook that records what a client sends: each round trip's command names
// and, for scripts, whether all their keys share one hash slot.
type recorder struct {
	mu         sync.Mutex
	roundTrips [][]string
	scripts    int      // script calls with keys
	crossSlot  []string // the keys of script calls that span several slots
}

func (r *recorder) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *recorder) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.record([]goredis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *recorder) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.record(cmds)
		return next(ctx, cmds)
	}
}

func (r *recorder) record(cmds []goredis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name())
		if name := c.Name(); name == "evalsha" || name == "eval" {
			args := c.Args()
			n, _ := args[2].(int)
			if n > 0 {
				r.scripts++
			}
			tags := make(map[string]bool)
			for _, k := range args[3 : 3+n] {
				tags[hashTag(k.(string))] = true
			}
			if len(tags) > 1 {
				r.crossSlot = append(r.crossSlot, fmt.Sprint(args[3:3+n]))
			}
		}
	}
	r.roundTrips = append(r.roundTrips, names)
}

// take returns the round trips recorded since the last call.
func (r *recorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.roundTrips
	r.roundTrips = nil
	return rt
}

// hashTag returns the part of key that Redis Cluster hashes.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func newSession(tenantID, subject string, now time.Time) *store.Session {
	id := store.NewSessionID(tenantID, subject)
	return &store.Session{
		ID: id, Tenant: tenantID, Subject: subject,
		Audience: []string{"api"}, Scopes: []string{"read"},
		CreatedAt: now, ExpiresAt: now.Add(time.Hour), AccessTTL: 5 * time.Minute,
		RefreshHash: hashOf(id, 0), RotatedAt: now,
	}
}

func hashOf(id string, generation uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", id, generation))
	return h[:]
}

func jtiOf(sessionID string, n int) string {
	return fmt.Sprintf("%s.%016d", sessionID, n)
}

// TestEveryKeyExpires runs a realistic workload and checks that every key it leaves has a TTL,
// except records, and that every script's keys share one hash slot.
func TestEveryKeyExpires(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	rec := &recorder{}
	client.AddHook(rec)
	s := New(client)
	now := time.Now()

	var sessions []*store.Session
	for _, tenantID := range []string{"acme", "globex"} {
		for _, subject := range []string{"alice", "bob", "carol"} {
			for range 3 {
				sess := newSession(tenantID, subject, now)
				if err := s.CreateSession(ctx, sess); err != nil {
					t.Fatalf("CreateSession: %v", err)
				}
				sessions = append(sessions, sess)
			}
		}
	}
	for i, sess := range sessions {
		if _, err := s.CheckAccess(ctx, sess.Tenant, sess.ID, jtiOf(sess.ID, i)); err != nil {
			t.Fatalf("CheckAccess: %v", err)
		}
		if _, err := s.RevokeToken(ctx, sess.Tenant, sess.ID, jtiOf(sess.ID, i), now.Add(5*time.Minute)); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		if i%2 == 0 {
			if err := s.Announced(ctx, sess.Tenant, sess.ID, jtiOf(sess.ID, i)); err != nil {
				t.Fatalf("Announced: %v", err)
			}
		}
		req := store.RotateRequest{
			Tenant: sess.Tenant, SessionID: sess.ID, Generation: 0, Hash: hashOf(sess.ID, 0),
			NewHash: hashOf(sess.ID, 1), Now: now, Grace: time.Second,
		}
		for _, at := range []time.Duration{0, 0, 2 * time.Second} { // Rotated, retry, reuse.
			if i%3 == 0 && at > 0 {
				break
			}
			req.Now = now.Add(at)
			if _, err := s.RotateRefresh(ctx, req); err != nil {
				t.Fatalf("RotateRefresh: %v", err)
			}
		}
	}
	if _, err := s.DeleteSession(ctx, sessions[1].Tenant, sessions[1].ID); err != nil {
		t.Fatalf("DeleteSession: %v", err)
	}
	for _, sess := range []*store.Session{sessions[3], sessions[6]} { // Live: tombstones, one announced.
		if _, err := s.EndSession(ctx, sess.Tenant, sess.ID, now.Add(15*time.Minute)); err != nil {
			t.Fatalf("EndSession: %v", err)
		}
	}
	if err := s.Announced(ctx, sessions[3].Tenant, sessions[3].ID, ""); err != nil {
		t.Fatalf("Announced: %v", err)
	}
	if err := s.SetSubjectCutoff(ctx, "acme", "alice", now, time.Hour); err != nil {
		t.Fatalf("SetSubjectCutoff: %v", err)
	}
	if err := s.SetTenantCutoff(ctx, "globex", now, time.Hour); err != nil {
		t.Fatalf("SetTenantCutoff: %v", err)
	}
	for _, subject := range []string{"alice", "bob", "carol"} {
		if _, _, err := s.ListSessions(ctx, "acme", subject, now, store.Page{Limit: 2}); err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
	}
	for i := range 3 {
		id := fmt.Sprintf("record-%d", i)
		if err := s.CreateRecord(ctx, store.KindTenant, id, []byte("v")); err != nil {
			t.Fatalf("CreateRecord: %v", err)
		}
		if err := s.PutRecord(ctx, store.KindAPIKey, id, []byte("v")); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
	}
	if _, err := s.DeleteRecord(ctx, store.KindAPIKey, "record-0"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}

	if rec.scripts == 0 {
		t.Error("recorded no script calls")
	}
	if len(rec.crossSlot) > 0 {
		t.Errorf("scripts called with keys of several slots: %v", rec.crossSlot)
	}
	kinds := make(map[string]int)
	iter := client.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		ttl, err := client.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatalf("PTTL: %v", err)
		}
		switch {
		case !strings.HasPrefix(key, "ta:{"):
			t.Errorf("key %q is outside the schema", key)
		case strings.HasPrefix(key, recordKeyPrefix):
			kinds["record"]++
			if ttl != -1 {
				t.Errorf("record key %q has TTL %v, want none", key, ttl)
			}
		default:
			kinds[key[strings.IndexByte(key, '}')+1:][:2]]++
			if ttl <= 0 {
				t.Errorf("key %q has no TTL (PTTL %v)", key, ttl)
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	t.Logf("keys by kind: %v", kinds)
	for _, kind := range []string{":s", ":i", ":j", ":x", ":c", "record"} {
		if kinds[kind] == 0 {
			t.Errorf("the workload left no key of kind %q; the test does not cover it", kind)
		}
	}
}

// TestIndexExpiresWithLatestSession checks that a subject index lives as long as its
// longest-lived session, however the sessions were created.
func TestIndexExpiresWithLatestSession(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := New(client)
	now := time.Now()
	tag := store.SubjectTag("acme", "alice")
	for _, d := range []time.Duration{time.Hour, 3 * time.Hour, 2 * time.Hour} {
		sess := newSession("acme", "alice", now)
		sess.ExpiresAt = now.Add(d)
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
	}
	ttl, err := client.PTTL(ctx, indexKey(tag)).Result()
	if err != nil {
		t.Fatalf("PTTL: %v", err)
	}
	if ttl > 3*time.Hour || ttl < 3*time.Hour-10*time.Second {
		t.Errorf("index TTL = %v, want about 3h", ttl)
	}
}

// TestRoundTrips checks the commands that the hot-path calls send, as the client sees them (one
// round trip each) and as Redis counts them (scripts by digest, no fallback).
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	rec := &recorder{}
	client.AddHook(rec)
	s := New(client)
	now := time.Now()

	// Warm up: load every script and open the connection.
	warm := newSession("acme", "alice", now)
	if err := s.CreateSession(ctx, warm); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	if _, err := s.CheckAccess(ctx, "acme", warm.ID, jtiOf(warm.ID, 0)); err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	if _, err := s.RotateRefresh(ctx, store.RotateRequest{Tenant: "acme", SessionID: warm.ID, Hash: hashOf(warm.ID, 0), NewHash: hashOf(warm.ID, 1), Now: now}); err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	sess := newSession("acme", "alice", now)

	tests := []struct {
		name       string
		call       func() error
		wantClient []string
		wantServer map[string]int64
	}{
		{
			"CreateSession",
			func() error { return s.CreateSession(ctx, sess) },
			[]string{"evalsha"},
			// The index already lives as long as the new session: PEXPIREAT of the session only.
			map[string]int64{"evalsha": 1, "exists": 1, "hset": 1, "pexpireat": 1, "zadd": 1, "pexpiretime": 1},
		},
		{
			"CheckAccess",
			func() error { _, err := s.CheckAccess(ctx, "acme", sess.ID, jtiOf(sess.ID, 1)); return err },
			// Four plain reads in one pipeline: no script is needed to read.
			[]string{"hmget", "mget", "get"},
			map[string]int64{"hmget": 1, "mget": 1, "get": 1},
		},
		{
			"RotateRefresh",
			func() error {
				res, err := s.RotateRefresh(ctx, store.RotateRequest{
					Tenant: "acme", SessionID: sess.ID, Hash: hashOf(sess.ID, 0), NewHash: hashOf(sess.ID, 1), Now: now,
				})
				if err == nil && res.Outcome != store.Rotated {
					err = fmt.Errorf("outcome %v, want Rotated", res.Outcome)
				}
				return err
			},
			[]string{"get", "evalsha"},
			map[string]int64{"evalsha": 1, "hmget": 1, "get": 2, "hset": 1, "hgetall": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.take()
			srv.ResetStats(t)
			if err := tt.call(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got := rec.take()
			if len(got) != 1 || !slices.Equal(got[0], tt.wantClient) {
				t.Errorf("%s sent %q, want one round trip of %q", tt.name, got, tt.wantClient)
			}
			stats := srv.CommandStats(t)
			delete(stats, "config|resetstat") // The harness's own command.
			if !maps.Equal(stats, tt.wantServer) {
				t.Errorf("Redis counted %v, want %v", stats, tt.wantServer)
			}
		})
	}
}

// TestScriptCacheFlushed checks that every script call survives a server that lost its scripts,
// in a pipeline or not.
func TestScriptCacheFlushed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := New(client)
	now := time.Now()
	sess := newSession("acme", "alice", now)
	steps := []struct {
		name string
		call func() error
	}{
		{"CreateSession", func() error { return s.CreateSession(ctx, sess) }},
		{"CheckAccess", func() error {
			st, err := s.CheckAccess(ctx, "acme", sess.ID, jtiOf(sess.ID, 0))
			if err == nil && !st.SessionFound {
				err = errors.New("session not found")
			}
			return err
		}},
		{"RotateRefresh", func() error {
			res, err := s.RotateRefresh(ctx, store.RotateRequest{
				Tenant: "acme", SessionID: sess.ID, Hash: hashOf(sess.ID, 0), NewHash: hashOf(sess.ID, 1), Now: now,
			})
			if err == nil && res.Outcome != store.Rotated {
				err = fmt.Errorf("outcome %v, want Rotated", res.Outcome)
			}
			return err
		}},
		{"RevokeToken", func() error {
			out, err := s.RevokeToken(ctx, "acme", sess.ID, jtiOf(sess.ID, 0), now.Add(time.Minute))
			if err == nil && !out.Revoked {
				err = errors.New("not revoked")
			}
			return err
		}},
		{"Announced", func() error { return s.Announced(ctx, "acme", sess.ID, jtiOf(sess.ID, 0)) }},
		{"SetSubjectCutoff", func() error { return s.SetSubjectCutoff(ctx, "acme", "alice", now.Add(-time.Hour), time.Hour) }},
		{"EndSession", func() error {
			out, err := s.EndSession(ctx, "acme", sess.ID, now.Add(time.Minute))
			if err == nil && !out.Revoked {
				err = errors.New("not ended")
			}
			return err
		}},
	}
	for _, step := range steps {
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		if err := step.call(); err != nil {
			t.Errorf("%s after SCRIPT FLUSH: %v", step.name, err)
		}
	}
}

// TestUnavailable checks that a stopped server is reported as store.ErrUnavailable promptly, and
// that the same client recovers when the server is back.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := goredis.NewClient(&goredis.Options{
		Addr:          srv.Addr(),
		DialTimeout:   200 * time.Millisecond,
		ReadTimeout:   200 * time.Millisecond,
		WriteTimeout:  200 * time.Millisecond,
		MaxRetries:    -1, // No retries (0 means the default of 3).
		DialerRetries: 1,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := New(client)
	now := time.Now()
	sess := newSession("acme", "alice", now)
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	jti := jtiOf(sess.ID, 0)

	srv.Stop(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"CheckAccess", func() error { _, err := s.CheckAccess(ctx, "acme", sess.ID, jti); return err }},
		{"RotateRefresh", func() error {
			_, err := s.RotateRefresh(ctx, store.RotateRequest{Tenant: "acme", SessionID: sess.ID, Now: now})
			return err
		}},
		{"CreateSession", func() error { return s.CreateSession(ctx, newSession("acme", "alice", now)) }},
		{"GetSession", func() error { _, err := s.GetSession(ctx, "acme", sess.ID); return err }},
		{"ListSessions", func() error { _, _, err := s.ListSessions(ctx, "acme", "alice", now, store.Page{}); return err }},
		{"GetRecord", func() error { _, err := s.GetRecord(ctx, store.KindTenant, "x"); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call()
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("%s took %v with the server down, want at most 2s", c.name, elapsed)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server down: err = %v, want store.ErrUnavailable", c.name, err)
		}
	}

	srv.Restart(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.CheckAccess(ctx, "acme", sess.ID, jti)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CheckAccess after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The restarted server has neither data nor scripts.
	fresh := newSession("acme", "alice", now)
	if err := s.CreateSession(ctx, fresh); err != nil {
		t.Fatalf("CreateSession after restart: %v", err)
	}
	res, err := s.RotateRefresh(ctx, store.RotateRequest{
		Tenant: "acme", SessionID: fresh.ID, Hash: hashOf(fresh.ID, 0), NewHash: hashOf(fresh.ID, 1), Now: now,
	})
	if err != nil || res.Outcome != store.Rotated {
		t.Errorf("RotateRefresh after restart = %v, %v; want Rotated", res.Outcome, err)
	}
}

// TestErrorsDoNotLeakKeys checks that failures name the operation but no key, id or hash.
func TestErrorsDoNotLeakKeys(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := srv.Client(t)
	s := New(client)
	sess := newSession("acme", "alice", time.Now())
	tag, _ := store.SessionTag(sess.ID)
	// A key of the wrong type makes the script fail inside Redis.
	if err := client.Set(ctx, sessionKey(tag, sess.ID), "not a hash", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	_, err := s.CheckAccess(ctx, "acme", sess.ID, jtiOf(sess.ID, 0))
	if err == nil {
		t.Fatal("CheckAccess of a corrupt session succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, sess.ID) || strings.Contains(msg, tag) {
		t.Errorf("error %q names the session", msg)
	}
}
