package accesstoken

import "unicode/utf8"

// MaxActorChain bounds a delegation chain (the nesting of the `act` claim): an exchange that would
// make a longer one is refused, and a token whose `act` nests deeper is malformed.
const MaxActorChain = 4

// maxActorLen bounds an actor's name, as API key names are bounded.
const maxActorLen = 256

// Actor is one link of a delegation chain: the service that exchanged a token on the subject's
// behalf (one level of the `act` claim, RFC 8693 section 4.1).
type Actor struct {
	// Subject names the service: the name of the API key it exchanged with.
	Subject string
}

// ActClaim is the JSON form of the `act` claim: the current actor, and the chain before it nested
// in Act.
type ActClaim struct {
	Subject string    `json:"sub"`
	Act     *ActClaim `json:"act,omitempty"`
}

// ActorClaim returns the `act` claim of chain (outermost first), or nil for an empty chain.
func ActorClaim(chain []Actor) *ActClaim {
	var out *ActClaim
	for i := len(chain) - 1; i >= 0; i-- {
		out = &ActClaim{Subject: chain[i].Subject, Act: out}
	}
	return out
}

// ParseActor decodes a present `act` claim, as a JSON decoder gives it (nested map[string]any),
// into its chain, outermost first. The authority writes only `sub` and a nested `act` in each
// level, so anything else (null, another member, a `sub` that is not 1-256 bytes of UTF-8, a chain
// deeper than MaxActorChain) makes it malformed: ok is false. Every verifier reads `act` with this
// one function, so that none accepts a chain another refuses.
func ParseActor(v any) (chain []Actor, ok bool) {
	for {
		m, isObject := v.(map[string]any)
		if !isObject || len(chain) == MaxActorChain {
			return nil, false
		}
		sub, _ := m["sub"].(string)
		if !ValidActor(sub) {
			return nil, false
		}
		chain = append(chain, Actor{Subject: sub})
		next, nested := m["act"]
		switch {
		case len(m) == 1:
			return chain, true
		case len(m) != 2 || !nested:
			return nil, false
		}
		v = next
	}
}

// ValidActor reports whether name may name an actor: 1-256 bytes of UTF-8.
func ValidActor(name string) bool {
	return name != "" && len(name) <= maxActorLen && utf8.ValidString(name)
}
