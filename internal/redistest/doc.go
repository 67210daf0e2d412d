// Package redistest runs throwaway redis-server processes for tests.
//
// Start launches a private server on a free loopback port with persistence disabled and its
// working directory in the test's temporary directory, and stops it when the test ends. It never
// uses a Redis that is already running (in particular not one on port 6379), so tests cannot
// touch data they do not own. The redis-server binary must be on PATH; `make test` installs it.
package redistest
