package authn

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestForwardedThumbprint(t *testing.T) {
	sumA, sumB := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	hexA, hexB := hex.EncodeToString(sumA[:]), hex.EncodeToString(sumB[:])
	x5tA := base64.RawURLEncoding.EncodeToString(sumA[:])
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"one element", []string{"By=spiffe://x/y;Hash=" + hexA + ";Subject=\"CN=a\""}, x5tA},
		{"upper-case hex, quoted", []string{`Hash="` + strings.ToUpper(hexA) + `"`}, x5tA},
		{"last element wins", []string{"Hash=" + hexB + ",Hash=" + hexA}, x5tA},
		{"last header wins", []string{"Hash=" + hexB, "Hash=" + hexA}, x5tA},
		{"quoted comma and semicolon in a subject", []string{`Hash=` + hexB + `,Subject="CN=a,O=b;c";Hash=` + hexA}, x5tA},
		{"escaped quote", []string{`Subject="CN=\"x,y\"";Hash=` + hexA}, x5tA},
		{"no hash in the last element", []string{"Hash=" + hexA + ",By=spiffe://x/y"}, ""},
		{"not hex", []string{"Hash=zz"}, ""},
		{"not a SHA-256", []string{"Hash=" + hexA[:40]}, ""},
	}
	for _, tt := range tests {
		if got := forwardedThumbprint(tt.values); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
