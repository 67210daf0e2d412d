// Package grpcserver is the RPC boundary: it authenticates callers by `x-api-key`, authorises every
// method through one policy table (a method missing from it is refused), validates and converts
// requests, calls the domain, and converts results and errors back. Domain errors become status
// codes in one function, toStatus; Internal never carries the underlying message.
package grpcserver
