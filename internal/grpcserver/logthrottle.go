package grpcserver

import (
	"sync"
	"time"
)

// The throttle of "authentication failed" log lines: bursts of authFailureLogBurst lines, then
// authFailureLogRate a second on average, whatever unauthenticated callers send. The RPC metrics
// still count every failure (code Unauthenticated).
const (
	authFailureLogRate  = 1.0
	authFailureLogBurst = 20
)

// logThrottle is a token bucket for log lines that counts the lines it holds back.
type logThrottle struct {
	now       func() time.Time
	perSecond float64
	burst     float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
	held   int
}

func newLogThrottle(now func() time.Time, perSecond float64, burst int) *logThrottle {
	if now == nil {
		now = time.Now
	}
	return &logThrottle{now: now, perSecond: perSecond, burst: float64(burst), tokens: float64(burst), last: now()}
}

// allow reports whether a line may be written now and, when it may, how many lines were held
// back since the last one written.
func (t *logThrottle) allow() (ok bool, held int) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if elapsed := now.Sub(t.last).Seconds(); elapsed > 0 {
		t.tokens = min(t.burst, t.tokens+elapsed*t.perSecond)
		t.last = now
	}
	if t.tokens < 1 {
		t.held++
		return false, 0
	}
	t.tokens--
	held, t.held = t.held, 0
	return true, held
}
