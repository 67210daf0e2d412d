package grpcserver

import (
	"testing"
)

// TestEveryMethodHasAPolicy walks the registered services: a new RPC without an entry in the
// policy table fails here (and is refused at run time).
func TestEveryMethodHasAPolicy(t *testing.T) {
	srv, err := New(Config{Logger: discardLogger(), ExtAuthz: testExtAuthzPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for svc, info := range srv.GRPC.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			registered[full] = true
			if _, ok := policies[full]; !ok {
				t.Errorf("%s has no entry in the policy table", full)
			}
		}
	}
	for full := range policies {
		if !registered[full] {
			t.Errorf("policy for %s, which is not registered", full)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d methods registered; the walk found too little to mean anything", len(registered))
	}
}
