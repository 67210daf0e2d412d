// Command certgen makes the development TLS files of the compose recipe: a CA, a server
// certificate signed by it, and a client certificate signed by it, as PEM files in one directory.
//
// Compose runs it once before the service, with the standard library only, as
//
//	go run /certgen/main.go -out /tls -owner 65532:65532
//
// in the golang image (the service's image has no shell and no openssl). It keeps files that are
// still good (all present, the server certificate naming what -dns and -ip ask for and valid for
// more than -renew-before), so that the CA a client trusts survives a docker compose up; otherwise
// it makes all of them anew. The CA's key is never written: nothing can sign with this CA after
// the run, and a renewal is a new CA.
//
// Files: ca.crt, tls.crt and tls.key (the server's), client.crt and client.key. Certificates are
// mode 0444, keys 0400 and, with -owner, owned by that user (the service's, 65532 in the image).
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The files certgen writes in the -out directory.
const (
	caCertFile     = "ca.crt"
	serverCertFile = "tls.crt"
	serverKeyFile  = "tls.key"
	clientCertFile = "client.crt"
	clientKeyFile  = "client.key"
)

// files lists every file certgen writes: one missing makes it start over.
var files = []string{caCertFile, serverCertFile, serverKeyFile, clientCertFile, clientKeyFile}

func main() {
	if err := run(os.Args[1:], os.Stdout, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, "certgen:", err)
		os.Exit(1)
	}
}

// options are certgen's flags, parsed.
type options struct {
	out         string
	dns         []string
	ips         []net.IP
	clientName  string
	validFor    time.Duration
	renewBefore time.Duration
	uid, gid    int // -1: leave the owner as it is
	force       bool
}

func parseFlags(args []string, usage io.Writer) (options, error) {
	fs := flag.NewFlagSet("certgen", flag.ContinueOnError)
	fs.SetOutput(usage)
	out := fs.String("out", "", "directory of the files (required)")
	dns := fs.String("dns", "tokenauthority,localhost", "DNS names of the server certificate, comma-separated")
	ips := fs.String("ip", "127.0.0.1,::1", "IP addresses of the server certificate, comma-separated; the health check dials 127.0.0.1")
	clientName := fs.String("client", "tokenauthority-dev-client", "common name of the client certificate")
	validFor := fs.Duration("valid-for", 365*24*time.Hour, "lifetime of the certificates")
	renewBefore := fs.Duration("renew-before", 30*24*time.Hour, "make the files anew when the server certificate expires within this")
	owner := fs.String("owner", "", "uid:gid to own the files (needs root); empty leaves them to the user running certgen")
	force := fs.Bool("force", false, "make the files anew even if they are still good")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := options{out: *out, clientName: *clientName, validFor: *validFor, renewBefore: *renewBefore, uid: -1, gid: -1, force: *force}
	var errs []error
	if o.out == "" {
		errs = append(errs, errors.New("-out is required"))
	}
	for _, name := range strings.Split(*dns, ",") {
		if name = strings.TrimSpace(name); name != "" {
			o.dns = append(o.dns, name)
		}
	}
	for _, s := range strings.Split(*ips, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			errs = append(errs, fmt.Errorf("-ip: %q is not an IP address", s))
			continue
		}
		o.ips = append(o.ips, ip)
	}
	if len(o.dns) == 0 && len(o.ips) == 0 {
		errs = append(errs, errors.New("-dns and -ip name nothing: the server certificate needs a name"))
	}
	if o.validFor <= o.renewBefore {
		errs = append(errs, fmt.Errorf("-valid-for %v must be longer than -renew-before %v", o.validFor, o.renewBefore))
	}
	if *owner != "" {
		u, g, ok := strings.Cut(*owner, ":")
		uid, err1 := strconv.Atoi(u)
		gid, err2 := strconv.Atoi(g)
		if !ok || err1 != nil || err2 != nil || uid < 0 || gid < 0 {
			errs = append(errs, fmt.Errorf("-owner %q: want uid:gid", *owner))
		}
		o.uid, o.gid = uid, gid
	}
	return o, errors.Join(errs...)
}

// run parses args and writes the files unless those in place are still good at now.
func run(args []string, stdout io.Writer, now time.Time) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	why := "-force"
	if !o.force {
		if why = stillGood(o, now); why == "" {
			fmt.Fprintf(stdout, "certgen: %s holds good certificates: kept\n", o.out)
			return nil
		}
	}
	fmt.Fprintf(stdout, "certgen: making new certificates in %s: %s\n", o.out, why)
	if err := os.MkdirAll(o.out, 0o755); err != nil { //nolint:gosec // G301: certificates are public; the keys are 0400
		return err
	}
	return generate(o, now)
}

// stillGood returns why the files in place must be made anew, or "" when they can stay.
func stillGood(o options, now time.Time) string {
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(o.out, f)); err != nil {
			return f + " is missing"
		}
	}
	certs := map[string]*x509.Certificate{}
	for _, f := range []string{caCertFile, serverCertFile, clientCertFile} {
		c, err := readCert(filepath.Join(o.out, f))
		if err != nil {
			return err.Error()
		}
		certs[f] = c
	}
	// A run cut short leaves a new CA beside old certificates: they must chain to it.
	roots := x509.NewCertPool()
	roots.AddCert(certs[caCertFile])
	for f, usage := range map[string]x509.ExtKeyUsage{serverCertFile: x509.ExtKeyUsageServerAuth, clientCertFile: x509.ExtKeyUsageClientAuth} {
		if _, err := certs[f].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return fmt.Sprintf("%s: %v", f, err)
		}
	}
	cert := certs[serverCertFile]
	if now.Add(o.renewBefore).After(cert.NotAfter) {
		return fmt.Sprintf("%s expires at %s", serverCertFile, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !slices.Equal(cert.DNSNames, o.dns) || !slices.EqualFunc(cert.IPAddresses, o.ips, net.IP.Equal) {
		return fmt.Sprintf("%s names %v %v, want %v %v", serverCertFile, cert.DNSNames, cert.IPAddresses, o.dns, o.ips)
	}
	return ""
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the directory
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Base(path))
	}
	return x509.ParseCertificate(block.Bytes)
}

// generate makes a CA, then the server and client certificates it signs, and writes them.
func generate(o options, now time.Time) error {
	// Backdated a little, so that a clock slightly behind this one accepts them.
	notBefore, notAfter := now.Add(-5*time.Minute), now.Add(o.validFor)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "tokenauthority development CA " + now.UTC().Format(time.DateOnly)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, ca, err := sign(caTmpl, nil, caKey.Public(), caKey)
	if err != nil {
		return err
	}

	serverTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: firstName(o)},
		DNSNames:    o.dns,
		IPAddresses: o.ips,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	serverKey, serverDER, err := leaf(serverTmpl, ca, caKey)
	if err != nil {
		return err
	}
	clientTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.clientName},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientKey, clientDER, err := leaf(clientTmpl, ca, caKey)
	if err != nil {
		return err
	}

	// Keys before certificates, and the server's pair last: a server reading the directory while
	// it changes (it re-reads on a change) finds a new certificate only beside its new key.
	writes := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{caCertFile, pemBlock("CERTIFICATE", caDER), 0o444},
		{clientKeyFile, clientKey, 0o400},
		{clientCertFile, pemBlock("CERTIFICATE", clientDER), 0o444},
		{serverKeyFile, serverKey, 0o400},
		{serverCertFile, pemBlock("CERTIFICATE", serverDER), 0o444},
	}
	for _, w := range writes {
		if err := writeFile(o, w.name, w.data, w.mode); err != nil {
			return err
		}
	}
	return nil
}

func firstName(o options) string {
	if len(o.dns) > 0 {
		return o.dns[0]
	}
	return o.ips[0].String()
}

// leaf makes a key pair and a certificate of tmpl for it, signed by ca; it returns the key as PEM.
func leaf(tmpl, ca *x509.Certificate, caKey crypto.Signer) (keyPEM, certDER []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, _, err := sign(tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("PRIVATE KEY", pkcs8), der, nil
}

// sign signs tmpl for pub with signer, as parent (or itself when parent is nil).
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFile replaces name in the output directory at once (a reader sees the old file or the new
// one), with mode and, when asked, the owner.
func writeFile(o options, name string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(o.out, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename; cleans up on failure
	if _, err := io.Copy(tmp, bytes.NewReader(data)); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if o.uid >= 0 {
		if err := os.Chown(tmp.Name(), o.uid, o.gid); err != nil {
			return fmt.Errorf("-owner: %w", err)
		}
	}
	return os.Rename(tmp.Name(), filepath.Join(o.out, name))
}
