// Package accesstoken is the access-token format that the authority, the authn interceptors and
// authntest share, so that they cannot disagree on it: the claims and their encoder (Claims,
// Encode), the decoder with the shape rules every verifier applies (DecodeMap), the time window
// (CheckTimes), the algorithms (Algorithm), the `typ` and `kid` rules, what a scope token is and
// how the `scope` claim is split, the `act` and `cnf` claims, and which claim names callers can
// never set. The verifiers keep their own checks around it: the store at the authority, pushed
// revocations in authn.
//
// The rules have one definition because copies drifted: issue rejected only ASCII white space
// while verification split on Unicode white space, so one issued scope
// "orders.read<NBSP>orders.write" satisfied a method that requires "orders.write"; and the two
// decoders differed on `sid`, on the length of `kid` and on fractional timestamps.
package accesstoken
