// Package tlsfiles serves the TLS configuration of the authority's listeners from PEM files (the
// certificate chain, its key and, for mutual TLS, the client CA bundle) and re-reads them when
// they change, so that certificates rotated by cert-manager or SPIRE are used by new handshakes
// without a restart while established connections stay open.
package tlsfiles
