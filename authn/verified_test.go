package authn_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// TestVerifiedTokensAreCheckedForWhatChanges: a token verified once is remembered, and on every
// later presentation what can change is checked again: expiry, revocation of its jti, session,
// subject or tenant, and its key's withdrawal, which also drops it from memory at once.
func TestVerifiedTokensAreCheckedForWhatChanges(t *testing.T) {
	cases := []struct {
		name  string
		event func(f *fakeAuthority, tok string, c *authn.Claims)
		// advance moves the clock instead of publishing an event.
		advance time.Duration
		want    error
	}{
		{name: "expired", advance: time.Hour, want: authn.ErrExpired},
		{name: "jti revoked", want: authn.ErrRevoked, event: func(f *fakeAuthority, _ string, c *authn.Claims) { f.publish(revokeJTI(c.JTI)) }},
		{name: "session revoked", want: authn.ErrRevoked, event: func(f *fakeAuthority, _ string, c *authn.Claims) {
			f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: c.SessionID})
		}},
		{name: "subject cut off", want: authn.ErrCutOff, event: func(f *fakeAuthority, _ string, c *authn.Claims) {
			f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF,
				Subject: c.Subject, CutoffTime: timestampOf(c.IssuedAt)})
		}},
		{name: "key withdrawn", want: authn.ErrRevoked, event: func(f *fakeAuthority, _ string, _ *authn.Claims) {
			f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, Kid: f.issuer.KeyID()})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeAuthority(t, clock)
			l := startLocal(t, f)
			tok := f.issuer.Token(authntest.TTL(time.Minute))
			c, err := l.Verify(t.Context(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Verify(t.Context(), tok); err != nil || l.VerifiedLen() != 1 {
				t.Fatalf("second presentation: %v, %d remembered, want accepted from memory", err, l.VerifiedLen())
			}
			if tc.advance > 0 {
				clock.Advance(tc.advance)
				eventually(t, "a heartbeat after the clock moved", l.Live)
			} else {
				tc.event(f, tok, c)
			}
			eventually(t, "the change to apply", func() bool {
				_, err := l.Verify(t.Context(), tok)
				return errors.Is(err, tc.want)
			})
			if tc.name == "key withdrawn" && l.VerifiedLen() != 0 {
				t.Errorf("%d tokens of the withdrawn key still remembered", l.VerifiedLen())
			}
		})
	}
}

// TestVerifiedCacheHoldsOnlyGoodSignatures: a token whose signature fails is never remembered as
// verified, however often it is presented, and a token signed under a kid whose key was replaced
// is checked against the new key.
func TestVerifiedCacheHoldsOnlyGoodSignatures(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	good := f.issuer.Token()
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + strings.Split(f.issuer.Token(authntest.Subject("mallory")), ".")[1] + "." + parts[2]
	for range 3 {
		if _, err := l.Verify(t.Context(), forged); !errors.Is(err, authn.ErrBadSignature) {
			t.Fatalf("forged token: %v, want ErrBadSignature", err)
		}
	}
	if n := l.VerifiedLen(); n != 0 {
		t.Fatalf("%d forged tokens remembered", n)
	}
	if _, err := l.Verify(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	// The authority now publishes another key under the same kid (a test of identity, not of a real
	// rotation): the remembered token no longer matches the key set and is verified again, and fails.
	_, priv, _ := ed25519.GenerateKey(nil)
	other := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithEd25519Key(priv))
	f.setKeys(other.JWK())
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED, Kid: other.KeyID()})
	eventually(t, "the replaced key to apply", func() bool {
		_, err := l.Verify(t.Context(), good)
		return errors.Is(err, authn.ErrBadSignature)
	})
}

// TestVerifiedCacheIsBounded: however many distinct genuine tokens are presented, the verifier
// remembers at most its cache size, and every token is still verified correctly.
func TestVerifiedCacheIsBounded(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f, authn.WithCacheSize(128))
	for i := range 1000 {
		tok := f.issuer.Token(authntest.JTI("jti-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()))
		if _, err := l.Verify(t.Context(), tok); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if n := l.VerifiedLen(); n > 128 {
			t.Fatalf("after %d tokens: %d remembered, want at most 128", i+1, n)
		}
	}
	off := startLocal(t, f, authn.WithCacheSize(0))
	if _, err := off.Verify(t.Context(), f.issuer.Token()); err != nil || off.VerifiedLen() != 0 {
		t.Fatalf("cache disabled: %v, %d remembered", err, off.VerifiedLen())
	}
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
