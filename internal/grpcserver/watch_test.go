package grpcserver

import "testing"

func TestWatchLimiter(t *testing.T) {
	l := &watchLimiter{max: 2}
	steps := []struct {
		op   string // "acquire" or "release"
		key  string
		want bool // for acquire
	}{
		{"acquire", "a", true},
		{"acquire", "a", true},
		{"acquire", "a", false}, // a third stream of one key
		{"acquire", "b", true},  // another key has its own count
		{"release", "a", false},
		{"acquire", "a", true}, // a released slot is free again
		{"acquire", "a", false},
	}
	for i, st := range steps {
		switch st.op {
		case "acquire":
			if got := l.acquire(st.key); got != st.want {
				t.Fatalf("step %d: acquire(%q) = %v, want %v", i, st.key, got, st.want)
			}
		case "release":
			l.release(st.key)
		}
	}
	l.release("a")
	l.release("a")
	l.release("b")
	if len(l.open) != 0 {
		t.Errorf("counts left after every release: %v", l.open)
	}
}
