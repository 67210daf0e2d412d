package authn

import (
	"sync"
	"sync/atomic"
	"time"
)

// cutoff denies the tokens issued at or before ms (Unix milliseconds). A token's issue time is its
// iat_ms claim; a token without one counts as issued at the start of its iat second, so that every
// token that may predate the cut-off is denied.
type cutoff struct {
	ms     int64
	expire time.Time
}

// merge keeps the later cut-off for the longer time: both deny at least what either did, as long.
func (c cutoff) merge(o cutoff) cutoff {
	c.ms = max(c.ms, o.ms)
	if c.expire.IsZero() || o.expire.IsZero() {
		c.expire = time.Time{}
	} else if o.expire.After(c.expire) {
		c.expire = o.expire
	}
	return c
}

// denySet is the state derived from revocation events. Each entry keeps the time after which it
// no longer matters (the expire_time of its event; zero for never); pruning drops it once that
// time plus the leeway has passed, since verifiers accept a token until its exp plus the leeway.
//
// Every Verify reads it, from every goroutine of the service, while only the revocation stream
// writes it: reads take no lock (sync.Map and an atomic pointer), writes are serialised by mu.
type denySet struct {
	mu       sync.Mutex // orders writers; readers never take it
	jtis     sync.Map   // jti -> time.Time
	sids     sync.Map   // session id -> time.Time
	kids     sync.Map   // kid -> time.Time
	subjects sync.Map   // subject -> cutoff
	tenant   atomic.Pointer[cutoff]
}

func newDenySet() *denySet { return &denySet{} }

// clear drops every entry.
func (d *denySet) clear() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.jtis.Clear()
	d.sids.Clear()
	d.kids.Clear()
	d.subjects.Clear()
	d.tenant.Store(nil)
}

// laterOf keeps the later expiry of a repeated entry (zero, never, wins).
func laterOf(old time.Time, had bool, exp time.Time) time.Time {
	if !had {
		return exp
	}
	if old.IsZero() || exp.IsZero() {
		return time.Time{}
	}
	if exp.After(old) {
		return exp
	}
	return old
}

func (d *denySet) add(m *sync.Map, key string, exp time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, had := m.Load(key)
	prev, _ := old.(time.Time)
	m.Store(key, laterOf(prev, had, exp))
}

func (d *denySet) addJTI(jti string, exp time.Time)     { d.add(&d.jtis, jti, exp) }
func (d *denySet) addSession(sid string, exp time.Time) { d.add(&d.sids, sid, exp) }
func (d *denySet) addKid(kid string, exp time.Time)     { d.add(&d.kids, kid, exp) }

func (d *denySet) addSubjectCutoff(subject string, c cutoff) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.subjects.Load(subject); ok {
		c = old.(cutoff).merge(c)
	}
	d.subjects.Store(subject, c)
}

func (d *denySet) addTenantCutoff(c cutoff) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.tenant.Load(); old != nil {
		c = old.merge(c)
	}
	d.tenant.Store(&c)
}

// kidWithdrawn reports whether kid was withdrawn.
func (d *denySet) kidWithdrawn(kid string) bool {
	_, ok := d.kids.Load(kid)
	return ok
}

// denied returns why a token with these claims, issued at iatMS (Unix milliseconds), is refused:
// ErrRevoked (its jti, session or key), ErrCutOff, or nil.
func (d *denySet) denied(kid, jti, sid, subject string, iatMS int64) error {
	if _, ok := d.jtis.Load(jti); ok {
		return ErrRevoked
	}
	if _, ok := d.sids.Load(sid); ok {
		return ErrRevoked
	}
	if _, ok := d.kids.Load(kid); ok {
		return ErrRevoked
	}
	if c, ok := d.subjects.Load(subject); ok && iatMS <= c.(cutoff).ms {
		return ErrCutOff
	}
	if c := d.tenant.Load(); c != nil && iatMS <= c.ms {
		return ErrCutOff
	}
	return nil
}

// prune drops the entries that stopped mattering before now minus leeway.
func (d *denySet) prune(now time.Time, leeway time.Duration) {
	limit := now.Add(-leeway)
	gone := func(exp time.Time) bool { return !exp.IsZero() && exp.Before(limit) }
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range []*sync.Map{&d.jtis, &d.sids, &d.kids} {
		m.Range(func(k, v any) bool {
			if gone(v.(time.Time)) {
				m.Delete(k)
			}
			return true
		})
	}
	d.subjects.Range(func(k, v any) bool {
		if gone(v.(cutoff).expire) {
			d.subjects.Delete(k)
		}
		return true
	})
	if c := d.tenant.Load(); c != nil && gone(c.expire) {
		d.tenant.Store(nil)
	}
}

// size returns the number of entries, for tests.
func (d *denySet) size() int {
	n := 0
	count := func(any, any) bool { n++; return true }
	d.jtis.Range(count)
	d.sids.Range(count)
	d.kids.Range(count)
	d.subjects.Range(count)
	if d.tenant.Load() != nil {
		n++
	}
	return n
}
