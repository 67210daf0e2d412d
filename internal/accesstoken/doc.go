// Package accesstoken holds the rules of the access-token format that the authority, the authn
// interceptors and authntest must share, so that they cannot disagree: what a scope token is and
// how the `scope` claim is split, and which claim names callers can never set.
//
// The scope rule has one definition because two drifted: issue rejected only ASCII white space
// while verification split on Unicode white space, so one issued scope
// "orders.read<NBSP>orders.write" satisfied a method that requires "orders.write".
package accesstoken
