package main

import (
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// TestAlgorithmNamesCoverTheList: tokenctl names exactly accesstoken's algorithms.
func TestAlgorithmNamesCoverTheList(t *testing.T) {
	if len(algorithmNames) != len(accesstoken.Algorithms()) {
		t.Fatalf("tokenctl names %d algorithms, accesstoken lists %d", len(algorithmNames), len(accesstoken.Algorithms()))
	}
	for _, a := range accesstoken.Algorithms() {
		p, err := parseAlgorithm(string(a))
		if err != nil || algorithmName(p) != string(a) {
			t.Errorf("parseAlgorithm(%q) = %v, %v; its name %q", a, p, err, algorithmName(p))
		}
	}
}
