package grpcserver

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestWatchers(t *testing.T) {
	ws := &watchers{maxPerKey: 2, maxPerTenant: 3}
	opened := map[string][]*watch{}
	steps := []struct {
		op          string // "acquire" or "release"
		key, tenant string
		want        codes.Code // for acquire
	}{
		{"acquire", "a", "t1", codes.OK},
		{"acquire", "a", "t1", codes.OK},
		{"acquire", "a", "t1", codes.ResourceExhausted}, // a third stream of one key
		{"acquire", "b", "t1", codes.OK},                // another key has its own count...
		{"acquire", "c", "t1", codes.ResourceExhausted}, // ...but not beyond its tenant's
		{"acquire", "d", "t2", codes.OK},                // another tenant has its own count
		{"release", "a", "t1", codes.OK},
		{"acquire", "a", "t1", codes.OK}, // a released slot is free again
		{"acquire", "c", "t1", codes.ResourceExhausted},
	}
	for i, st := range steps {
		switch st.op {
		case "acquire":
			w, err := ws.acquire(st.key, st.tenant)
			if got := status.Code(err); got != st.want {
				t.Fatalf("step %d: acquire(%q, %q) = %v, want %v", i, st.key, st.tenant, got, st.want)
			}
			if err == nil {
				opened[st.key] = append(opened[st.key], w)
			}
		case "release":
			ws.release(opened[st.key][0])
			opened[st.key] = opened[st.key][1:]
		}
	}

	pending := func(w *watch) bool { return len(w.recheck) == 1 }
	ws.recheckKey("a")
	ws.recheckKey("a") // a second request while one is pending is one request
	for key, list := range opened {
		for _, w := range list {
			if pending(w) != (key == "a") {
				t.Errorf("after recheckKey(a): stream of key %s has a recheck pending: %v", key, pending(w))
			}
			if pending(w) {
				<-w.recheck
			}
		}
	}
	ws.recheckTenant("t2")
	for key, list := range opened {
		for _, w := range list {
			if pending(w) != (key == "d") {
				t.Errorf("after recheckTenant(t2): stream of key %s has a recheck pending: %v", key, pending(w))
			}
		}
	}

	for _, list := range opened {
		for _, w := range list {
			ws.release(w)
		}
	}
	if len(ws.perKey) != 0 || len(ws.perTenant) != 0 || len(ws.open) != 0 {
		t.Errorf("counts left after every release: %v %v %d", ws.perKey, ws.perTenant, len(ws.open))
	}
}
