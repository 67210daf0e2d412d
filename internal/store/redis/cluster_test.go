package redis

import (
	"context"
	"crypto/sha1" //nolint:gosec // G505: SHA-1 is how Redis names scripts (EVALSHA), not a security measure.
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

// TestClusterConformance runs the conformance suites of the store and of the revocation log on a
// Redis Cluster of three masters, with a hook that records the keys of every script call. Redis Cluster refuses a script whose keys span
// slots (CROSSSLOT), so the suite passing is a first proof; the test then checks, with the slots
// the cluster itself computes (CLUSTER KEYSLOT), that every call of every script in scripts/ had
// all its keys in one slot.
func TestClusterConformance(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.StartCluster(t, 3)
	client := cluster.Client(t)
	calls := &scriptCalls{}
	client.AddHook(calls)
	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, clock *storetest.Clock) storetest.Backend {
			flushCluster(t, client)
			return inspected{Store: New(client, WithClock(clock.Now)), client: client}
		})
	})
	t.Run("Events", func(t *testing.T) {
		storetest.RunEvents(t, func(t *testing.T, clock *storetest.Clock) revocation.Log {
			flushCluster(t, client)
			return NewEvents(client, clock.Now, storetest.EventsRetention, storetest.EventsCap)
		})
	})
	checkScriptSlots(ctx, t, client, calls)
}

// TestClusterCutoffsAcrossSlots spreads the sessions of many subjects of two tenants over the
// three masters and checks that a tenant cut-off, whose key lives in one slot, ends every session
// of the tenant wherever it lives, and that subject cut-offs on different masters end their
// subjects' sessions only.
func TestClusterCutoffsAcrossSlots(t *testing.T) {
	ctx := context.Background()
	cluster := redistest.StartCluster(t, 3)
	client := cluster.Client(t)
	s := New(client)
	now := time.Now()

	const subjects = 60
	type entry struct {
		sess   *store.Session
		jti    string
		master string
	}
	var acme, globex []entry
	masters := make(map[string]int) // acme sessions per master
	for i := range subjects {
		for _, tenantID := range []string{"acme", "globex"} {
			sess := newSession(tenantID, fmt.Sprintf("user-%d", i), now.Add(-time.Minute))
			if err := s.CreateSession(ctx, sess); err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
			tag, _ := store.SessionTag(sess.ID)
			e := entry{sess: sess, jti: jtiOf(sess.ID, i), master: masterOf(ctx, t, client, sessionKey(tag, sess.ID))}
			if tenantID == "acme" {
				acme = append(acme, e)
				masters[e.master]++
			} else {
				globex = append(globex, e)
			}
		}
	}
	tenantMaster := masterOf(ctx, t, client, tenantCutoffKey("acme"))
	if len(masters) != 3 {
		t.Fatalf("acme's sessions live on %d masters (%v), want all 3", len(masters), masters)
	}
	t.Logf("acme's sessions per master %v; its tenant cut-off key on %s", masters, tenantMaster)

	// Subject cut-offs of subjects on each master end those subjects' sessions, and only those.
	cutSubjects := make(map[string]bool)
	seen := make(map[string]bool)
	for _, e := range acme {
		if !seen[e.master] {
			seen[e.master] = true
			cutSubjects[e.sess.Subject] = true
			if err := s.SetSubjectCutoff(ctx, "acme", e.sess.Subject, now, time.Hour); err != nil {
				t.Fatalf("SetSubjectCutoff: %v", err)
			}
		}
	}
	for _, e := range append(slices.Clone(acme), globex...) {
		ended := e.sess.Tenant == "acme" && cutSubjects[e.sess.Subject]
		checkEnded(ctx, t, s, e.sess, e.jti, ended, "after the subject cut-offs")
	}

	// The tenant cut-off ends every acme session on every master; globex's stay.
	if err := s.SetTenantCutoff(ctx, "acme", now, time.Hour); err != nil {
		t.Fatalf("SetTenantCutoff: %v", err)
	}
	for _, e := range acme {
		checkEnded(ctx, t, s, e.sess, e.jti, true, "after the tenant cut-off")
	}
	for _, e := range globex {
		checkEnded(ctx, t, s, e.sess, e.jti, false, "after another tenant's cut-off")
	}
	// A session opened after the cut-off lives, on whichever master its subject is.
	fresh := newSession("acme", "user-0", now.Add(time.Second))
	if err := s.CreateSession(ctx, fresh); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	checkEnded(ctx, t, s, fresh, jtiOf(fresh.ID, 0), false, "opened after the tenant cut-off")
}

// checkEnded checks every read of a session against whether a cut-off should have ended it:
// CheckAccess (as VerifyToken judges it), GetSession, ListSessions and RotateRefresh.
func checkEnded(ctx context.Context, t *testing.T, s *Store, sess *store.Session, jti string, ended bool, when string) {
	t.Helper()
	st, err := s.CheckAccess(ctx, sess.Tenant, sess.ID, jti)
	if err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	active := st.SessionFound && !st.TokenRevoked &&
		!store.EndedBy(st.SessionCreatedAt, st.SubjectCutoff) && !store.EndedBy(st.SessionCreatedAt, st.TenantCutoff)
	if !st.SessionFound {
		t.Fatalf("%s: CheckAccess of %s/%s: session not found", when, sess.Tenant, sess.Subject)
	}
	if active == ended {
		t.Errorf("%s: %s/%s: access active = %v, want %v (state %+v)", when, sess.Tenant, sess.Subject, active, !ended, st)
	}
	_, err = s.GetSession(ctx, sess.Tenant, sess.ID)
	if ended != errors.Is(err, store.ErrNotFound) || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Errorf("%s: GetSession of %s/%s: err = %v, want ended = %v", when, sess.Tenant, sess.Subject, err, ended)
	}
	list, _, err := s.ListSessions(ctx, sess.Tenant, sess.Subject, time.Now(), store.Page{})
	if err != nil {
		t.Fatalf("ListSessions: %v", err)
	}
	listed := slices.ContainsFunc(list, func(l *store.Session) bool { return l.ID == sess.ID })
	if listed == ended {
		t.Errorf("%s: ListSessions of %s/%s lists the session: %v, want %v", when, sess.Tenant, sess.Subject, listed, !ended)
	}
	if ended {
		// A refresh of an ended session is invalid (and changes nothing): checked only for ended
		// sessions, since rotating a live one would move its generation.
		res, err := s.RotateRefresh(ctx, store.RotateRequest{
			Tenant: sess.Tenant, SessionID: sess.ID, Generation: 0, Hash: hashOf(sess.ID, 0),
			NewHash: hashOf(sess.ID, 1), Now: time.Now(), Grace: time.Second,
		})
		if err != nil || res.Outcome != store.RotateInvalid {
			t.Errorf("%s: RotateRefresh of %s/%s = %v, %v; want RotateInvalid", when, sess.Tenant, sess.Subject, res.Outcome, err)
		}
	}
}

// masterOf returns the address of the master that serves key.
func masterOf(ctx context.Context, t *testing.T, c *goredis.ClusterClient, key string) string {
	t.Helper()
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		t.Fatalf("MasterForKey: %v", err)
	}
	return m.Options().Addr
}

// flushCluster empties every master of the cluster.
func flushCluster(t *testing.T, c *goredis.ClusterClient) {
	t.Helper()
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		return m.FlushDB(ctx).Err()
	})
	if err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
}

// scriptCalls is a go-redis hook that records the digest and keys of every script call.
type scriptCalls struct {
	mu    sync.Mutex
	calls []scriptCall
}

type scriptCall struct {
	digest string
	keys   []string
}

func (r *scriptCalls) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *scriptCalls) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.record(cmd)
		return next(ctx, cmd)
	}
}

func (r *scriptCalls) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, c := range cmds {
			r.record(c)
		}
		return next(ctx, cmds)
	}
}

func (r *scriptCalls) record(cmd goredis.Cmder) {
	name := cmd.Name()
	if name != "evalsha" && name != "eval" && name != "evalsha_ro" && name != "eval_ro" {
		return
	}
	args := cmd.Args()
	body, _ := args[1].(string)
	digest := body
	if strings.HasPrefix(name, "eval_") || name == "eval" {
		digest = sha1Hex(body)
	}
	n, _ := args[2].(int)
	keys := make([]string, n)
	for i := range n {
		keys[i], _ = args[3+i].(string)
	}
	r.mu.Lock()
	r.calls = append(r.calls, scriptCall{digest: digest, keys: keys})
	r.mu.Unlock()
}

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s)) //nolint:gosec // G401: Redis names scripts by SHA-1.
	return hex.EncodeToString(h[:])
}

// checkScriptSlots checks that every script in scripts/ was called, always with at least one key
// and with all its keys in one slot as the cluster computes it.
func checkScriptSlots(ctx context.Context, t *testing.T, c *goredis.ClusterClient, calls *scriptCalls) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("scripts", "*.lua"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	names := make(map[string]string) // digest -> file name
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names[sha1Hex(string(src))] = filepath.Base(f)
	}
	slotOf := make(map[string]int64)
	slot := func(key string) int64 {
		if s, ok := slotOf[key]; ok {
			return s
		}
		s, err := c.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		slotOf[key] = s
		return s
	}
	called := make(map[string]int)
	calls.mu.Lock()
	defer calls.mu.Unlock()
	for _, call := range calls.calls {
		name, ok := names[call.digest]
		if !ok {
			t.Errorf("a script that is not in scripts/ was called (digest %s)", call.digest)
			continue
		}
		called[name]++
		if len(call.keys) == 0 {
			t.Errorf("%s called without keys: a cluster cannot route it", name)
			continue
		}
		first := slot(call.keys[0])
		for _, k := range call.keys[1:] {
			if s := slot(k); s != first {
				t.Errorf("%s called with keys in slots %d and %d: %v", name, first, s, call.keys)
				break
			}
		}
	}
	for _, name := range names {
		if called[name] == 0 {
			t.Errorf("%s was never called on the cluster: add it to the conformance suite", name)
		}
	}
	t.Logf("script calls on the cluster, all keys in one slot: %v", called)
}
