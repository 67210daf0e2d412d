package authn

import (
	"sync"
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
type denySet struct {
	mu        sync.RWMutex
	jtis      map[string]time.Time
	sids      map[string]time.Time
	kids      map[string]time.Time
	subjects  map[string]cutoff
	tenant    cutoff
	hasTenant bool
}

func newDenySet() *denySet {
	d := &denySet{}
	d.reset()
	return d
}

// reset drops every entry; the caller holds mu or owns d.
func (d *denySet) reset() {
	d.jtis = map[string]time.Time{}
	d.sids = map[string]time.Time{}
	d.kids = map[string]time.Time{}
	d.subjects = map[string]cutoff{}
	d.tenant, d.hasTenant = cutoff{}, false
}

func (d *denySet) clear() {
	d.mu.Lock()
	d.reset()
	d.mu.Unlock()
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

func (d *denySet) add(m map[string]time.Time, key string, exp time.Time) {
	d.mu.Lock()
	old, had := m[key]
	m[key] = laterOf(old, had, exp)
	d.mu.Unlock()
}

func (d *denySet) addJTI(jti string, exp time.Time)     { d.add(d.jtis, jti, exp) }
func (d *denySet) addSession(sid string, exp time.Time) { d.add(d.sids, sid, exp) }
func (d *denySet) addKid(kid string, exp time.Time)     { d.add(d.kids, kid, exp) }

func (d *denySet) addSubjectCutoff(subject string, c cutoff) {
	d.mu.Lock()
	if old, ok := d.subjects[subject]; ok {
		c = old.merge(c)
	}
	d.subjects[subject] = c
	d.mu.Unlock()
}

func (d *denySet) addTenantCutoff(c cutoff) {
	d.mu.Lock()
	if d.hasTenant {
		c = d.tenant.merge(c)
	}
	d.tenant, d.hasTenant = c, true
	d.mu.Unlock()
}

// kidWithdrawn reports whether kid was withdrawn.
func (d *denySet) kidWithdrawn(kid string) bool {
	d.mu.RLock()
	_, ok := d.kids[kid]
	d.mu.RUnlock()
	return ok
}

// denied returns why a token with these claims, issued at iatMS (Unix milliseconds), is refused:
// ErrRevoked (its jti, session or key), ErrCutOff, or nil.
func (d *denySet) denied(kid, jti, sid, subject string, iatMS int64) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if _, ok := d.jtis[jti]; ok {
		return ErrRevoked
	}
	if _, ok := d.sids[sid]; ok {
		return ErrRevoked
	}
	if _, ok := d.kids[kid]; ok {
		return ErrRevoked
	}
	if c, ok := d.subjects[subject]; ok && iatMS <= c.ms {
		return ErrCutOff
	}
	if d.hasTenant && iatMS <= d.tenant.ms {
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
	for _, m := range []map[string]time.Time{d.jtis, d.sids, d.kids} {
		for k, exp := range m {
			if gone(exp) {
				delete(m, k)
			}
		}
	}
	for s, c := range d.subjects {
		if gone(c.expire) {
			delete(d.subjects, s)
		}
	}
	if d.hasTenant && gone(d.tenant.expire) {
		d.tenant, d.hasTenant = cutoff{}, false
	}
}

// size returns the number of entries, for tests.
func (d *denySet) size() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := len(d.jtis) + len(d.sids) + len(d.kids) + len(d.subjects)
	if d.hasTenant {
		n++
	}
	return n
}
