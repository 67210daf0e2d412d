package main

import (
	"bytes"
	"strings"
	"testing"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// TestWriteSessionListEmptyPage checks that an empty page that is not the last does not read as
// "no sessions": the server may stop a page early and give a token to go on.
func TestWriteSessionListEmptyPage(t *testing.T) {
	tests := []struct {
		name  string
		resp  *tokenauthorityv1.ListSessionsResponse
		first string
		more  bool
	}{
		{"Last", &tokenauthorityv1.ListSessionsResponse{}, "no sessions\n", false},
		{"NotLast", &tokenauthorityv1.ListSessionsResponse{NextPageToken: "tok"}, "no sessions on this page\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeSessionList(&b, tt.resp)
			out := b.String()
			if !strings.HasPrefix(out, tt.first) {
				t.Errorf("output %q, want it to start with %q", out, tt.first)
			}
			if got := strings.Contains(out, "-page-token"); got != tt.more {
				t.Errorf("output %q: mentions the next page: %v, want %v", out, got, tt.more)
			}
		})
	}
}
