// Package redistest runs throwaway redis-server processes for tests.
//
// Start launches a private server on a free loopback port with persistence disabled and its
// working directory in the test's temporary directory, and stops it when the test ends. It never
// uses a Redis that is already running (in particular not one on port 6379), so tests cannot
// touch data they do not own. The redis-server binary must be on PATH; `make test` installs it.
//
// StartCluster runs a Redis Cluster of several masters on loopback ports, and StartSentinel a
// master, a replica and three Sentinels, with methods to kill the master and wait for the
// failover. StartProxy puts a TCP proxy in front of any address, to add latency, stall, cut or
// refuse connections.
package redistest
