package grpcserver

import (
	"testing"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// TestAlgorithmsCoverTheList: every algorithm of accesstoken's list has its enum value and back,
// and the API names no algorithm outside it.
func TestAlgorithmsCoverTheList(t *testing.T) {
	for _, a := range accesstoken.Algorithms() {
		p := algorithmToProto(a)
		if p == tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED || algorithms[p] != a {
			t.Errorf("%s maps to %v, which maps back to %q", a, p, algorithms[p])
		}
	}
	for p, a := range algorithms {
		if _, ok := accesstoken.ParseAlgorithm(string(a)); !ok {
			t.Errorf("%v maps to %q, not an algorithm of accesstoken", p, a)
		}
	}
	if n := len(tokenauthorityv1.SigningAlgorithm_name); n != len(algorithms) {
		t.Errorf("the API has %d algorithm values, the map %d", n, len(algorithms))
	}
}
