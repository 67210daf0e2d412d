package authn_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

// FuzzLocalVerify feeds arbitrary tokens to a local verifier: it never panics, every failure is
// one of the three error classes, and only the one genuine token of the seeds passes.
func FuzzLocalVerify(f *testing.F) {
	iss := authntest.NewIssuer()
	v := iss.Verifier()
	good := iss.Token(authntest.Subject("alice"), authntest.Scopes("read"))
	for _, seed := range []string{
		good,
		iss.Token(authntest.Expired()),
		iss.Token(authntest.NotYetValid()),
		iss.Token(authntest.Type("refresh+jwt")),
		good[:len(good)-2],
		good + ".",
		"eyJhbGciOiJub25lIn0.e30.",
		"a.b.c", "", "..", "e30.e30.e30",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(ctx, tok)
		if err == nil {
			if tok != good || c.Subject != "alice" {
				t.Fatalf("a fuzzed token passed: %q", tok)
			}
			return
		}
		if !errors.Is(err, authn.ErrInvalidToken) && !errors.Is(err, authn.ErrPermissionDenied) && !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("error of no class: %v", err)
		}
	})
}

// FuzzBearerToken feeds arbitrary authorization metadata to BearerToken: it never panics and
// returns a token only for the "Bearer <token>" form.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer abc", "Bearer", "Bearer ", "Basic abc", "", "Bearer  a b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", header))
		tok, err := authn.BearerToken(ctx)
		if err == nil && (tok == "" || len(tok) >= len(header)) {
			t.Fatalf("BearerToken(%q) = %q", header, tok)
		}
	})
}
