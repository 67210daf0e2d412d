package accesstoken

import "time"

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat by every verifier: the authority's
// VerifyToken and authn's interceptors. One value, so that a token a few seconds off is not active at
// the authority and refused by an interceptor.
const DefaultLeeway = 30 * time.Second
