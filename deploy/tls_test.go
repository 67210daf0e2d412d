package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The service's TLS settings, which every recipe sets, and the escape hatch none may set.
const (
	varTLSCert           = "TOKENAUTHORITY_TLS_CERT_FILE"
	varTLSKey            = "TOKENAUTHORITY_TLS_KEY_FILE"
	varTLSClientCA       = "TOKENAUTHORITY_TLS_CLIENT_CA_FILE"
	varTLSClientAuth     = "TOKENAUTHORITY_TLS_CLIENT_AUTH"
	varInsecurePlaintext = "TOKENAUTHORITY_INSECURE_PLAINTEXT"
)

// The files of a TLS directory, named as cert-manager names the keys of its Secrets and as
// compose/certgen writes them.
const (
	tlsCertKey = "tls.crt"
	tlsKeyKey  = "tls.key"
	tlsCAKey   = "ca.crt"
)

// composeCertsService is the one-shot compose service that makes the development certificates,
// and imageUser the user the service's image runs as, who must own its key.
const (
	composeCertsService = "certs"
	imageUser           = "65532:65532"
)

// tlsFiles is where a recipe puts the service's TLS files: the variables must name them there.
var tlsFiles = map[string]string{varTLSCert: tlsCertKey, varTLSKey: tlsKeyKey, varTLSClientCA: tlsCAKey}

// checkTLSEnv checks the TLS variables of the service's environment: TLS on, with files in dir
// (where the recipe mounts them), client certificates optional, and no plaintext allowed.
func checkTLSEnv(env map[string]string, dir string) problems {
	var p problems
	if v, ok := env[varInsecurePlaintext]; ok {
		p.addf("%s is set (%q): the recipes serve TLS themselves", varInsecurePlaintext, v)
	}
	for v, file := range tlsFiles {
		if want := path.Join(dir, file); env[v] != want {
			p.addf("%s is %q, want %s (the mounted TLS files)", v, env[v], want)
		}
	}
	if env[varTLSClientAuth] != "optional" {
		// require would also refuse the kubelet's HTTPS liveness probe, which has no certificate.
		p.addf("%s is %q, want optional", varTLSClientAuth, env[varTLSClientAuth])
	}
	return p
}

// certificateSecretKeys are the keys cert-manager writes into a Certificate's Secret (ca.crt
// when the issuer knows its CA, as a CA Issuer does).
var certificateSecretKeys = []string{tlsCertKey, tlsKeyKey, tlsCAKey}

// certificate returns the Certificate that issues Secret secret.
func (m manifests) certificate(secret string) (object, *cmv1.Certificate, bool) {
	for _, o := range m.of(kindCertificate) {
		if c := o.obj.(*cmv1.Certificate); c.Spec.SecretName == secret {
			return o, c, true
		}
	}
	return object{}, nil, false
}

// issued reports whether a Certificate issues Secret secret.
func (m manifests) issued(secret string) bool {
	_, _, ok := m.certificate(secret)
	return ok
}

// checkCertificate checks that a Certificate names a Secret and an issuer that exists (a
// ClusterIssuer is the cluster's, not the manifests').
func checkCertificate(p *problems, m manifests, o object) {
	c := o.obj.(*cmv1.Certificate)
	if c.Spec.SecretName == "" {
		p.addf("%s: no secretName", o)
	}
	ref := c.Spec.IssuerRef
	if ref.Group != "" && ref.Group != cmv1.SchemeGroupVersion.Group {
		return // an external issuer (step-ca, AWS PCA, ...)
	}
	switch ref.Kind {
	case "", cmv1.IssuerKind:
		if _, ok := m.get(kindIssuer, ref.Name); !ok {
			p.addf("%s: Issuer %q is not defined", o, ref.Name)
		}
	case cmv1.ClusterIssuerKind:
	default:
		p.addf("%s: issuerRef kind %q is not Issuer or ClusterIssuer", o, ref.Kind)
	}
}

// checkIssuer checks that a CA Issuer's Secret is defined, as a Secret or by a CA's Certificate.
func checkIssuer(p *problems, m manifests, o object) {
	iss := o.obj.(*cmv1.Issuer)
	if iss.Spec.CA == nil {
		return
	}
	name := iss.Spec.CA.SecretName
	if _, ok := m.get(kindSecret, name); ok {
		return
	}
	if co, c, ok := m.certificate(name); !ok {
		p.addf("%s: its CA's Secret %q is not defined", o, name)
	} else if !c.Spec.IsCA {
		p.addf("%s: its CA's Secret %q is issued by %s, which is not a CA (isCA)", o, name, co)
	}
}

// checkTLS checks the service's TLS: the variables name the files of a mounted Secret that holds
// (or whose Certificate issues) tls.crt, tls.key and ca.crt; the readiness probe is the health
// check over TLS verified with that CA, the liveness probe HTTPS; and a Certificate names the
// Service and the address the readiness probe dials.
func checkTLS(m manifests, spec *corev1.PodSpec, c *corev1.Container, env map[string]string) problems {
	var p problems
	dir := path.Dir(env[varTLSCert])
	var secret string
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) != dir || vm.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil && len(v.Secret.Items) == 0 {
				secret = v.Secret.SecretName
			}
		}
	}
	if secret == "" {
		// A subPath mount or a projection of items would also not follow a renewal.
		p.addf("%s %q is not in the directory of a whole Secret mounted into the container", varTLSCert, env[varTLSCert])
	}
	p = append(p, checkTLSEnv(env, dir)...)
	for _, key := range certificateSecretKeys {
		if _, ok := m.secretValue(secret, key); secret != "" && !ok {
			p.addf("the TLS Secret %q has no key %s and no Certificate issues it", secret, key)
		}
	}

	if r := c.ReadinessProbe; r == nil || r.Exec == nil {
		p.addf("the readiness probe must be the gRPC health check over TLS: exec /tokenauthority healthcheck -tls -cacert %s (the kubelet's grpc probe speaks plaintext only)", path.Join(dir, tlsCAKey))
	} else if ca, err := healthcheckCACert(r.Exec.Command); err != nil {
		p.addf("the readiness probe: %v", err)
	} else if ca != path.Join(dir, tlsCAKey) {
		p.addf("the readiness probe verifies the server with %s, not the mounted %s", ca, path.Join(dir, tlsCAKey))
	}
	if l := c.LivenessProbe; l != nil && l.HTTPGet != nil && l.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		p.addf("the liveness probe must use scheme HTTPS: the HTTP port serves TLS")
	}

	co, cert, ok := m.certificate(secret)
	if !ok {
		return p
	}
	names := cert.Spec.DNSNames
	var ns string
	if svc, ok := m.get(kindService, appName); ok {
		ns = svc.obj.(*corev1.Service).Namespace
	}
	want := []string{appName}
	if ns != "" {
		want = append(want, appName+"."+ns+".svc")
	}
	for _, name := range want {
		if !slices.Contains(names, name) {
			p.addf("%s: dnsNames %v lack %s, the Service's name", co, names, name)
		}
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, appName+".")
		other, _, _ := strings.Cut(rest, ".")
		if ok && ns != "" && other != ns {
			p.addf("%s: dnsName %s names the Service in namespace %s, not in %s where it is", co, name, other, ns)
		}
	}
	// The readiness probe dials the loopback address of a wildcard listen address.
	if !slices.Contains(cert.Spec.IPAddresses, "127.0.0.1") {
		p.addf("%s: ipAddresses %v lack 127.0.0.1, which the readiness probe dials", co, cert.Spec.IPAddresses)
	}
	if u := cert.Spec.Usages; len(u) > 0 && !slices.Contains(u, cmv1.UsageServerAuth) {
		p.addf("%s: usages %v lack server auth", co, u)
	}
	if cert.Spec.IsCA {
		p.addf("%s: the server's certificate is a CA", co)
	}
	return p
}

// healthcheckCACert returns the -cacert file of a health-check command, after checking that the
// command is `/tokenauthority healthcheck -tls -cacert FILE` with at most -timeout added.
func healthcheckCACert(cmd []string) (string, error) {
	if len(cmd) < 2 || cmd[0] != "/tokenauthority" || cmd[1] != "healthcheck" {
		return "", fmt.Errorf("%q is not /tokenauthority healthcheck", cmd)
	}
	var ca string
	tlsOn := false
	for i := 2; i < len(cmd); i++ {
		switch arg := cmd[i]; {
		case arg == "-tls":
			tlsOn = true
		case arg == "-cacert" && i+1 < len(cmd):
			i++
			ca = cmd[i]
		case strings.HasPrefix(arg, "-timeout="):
		default:
			return "", fmt.Errorf("%q: unexpected argument %q", cmd, arg)
		}
	}
	if !tlsOn || ca == "" {
		return "", fmt.Errorf("%q does not speak TLS verified with -cacert", cmd)
	}
	return ca, nil
}

// TestHealthcheckCommandCheck proves healthcheckCACert refuses a check that would not use TLS or
// would not verify the server.
func TestHealthcheckCommandCheck(t *testing.T) {
	tests := []struct {
		cmd     []string
		want    string // "" for an error
		wantErr string
	}{
		{cmd: []string{"/tokenauthority", "healthcheck", "-tls", "-cacert", "/tls/ca.crt"}, want: "/tls/ca.crt"},
		{cmd: []string{"/tokenauthority", "healthcheck", "-tls", "-cacert", "/tls/ca.crt", "-timeout=2s"}, want: "/tls/ca.crt"},
		{cmd: []string{"/tokenauthority", "healthcheck"}, wantErr: "does not speak TLS"},
		{cmd: []string{"/tokenauthority", "healthcheck", "-tls"}, wantErr: "does not speak TLS"},
		{cmd: []string{"/tokenauthority", "healthcheck", "-cacert", "/tls/ca.crt"}, wantErr: "does not speak TLS"},
		{cmd: []string{"/tokenauthority", "healthcheck", "-tls", "-cacert"}, wantErr: "unexpected argument"},
		{cmd: []string{"/tokenauthority", "healthcheck", "-tls=false", "-cacert", "/tls/ca.crt"}, wantErr: "unexpected argument"},
		{cmd: []string{"/tokenctl", "healthcheck", "-tls", "-cacert", "/tls/ca.crt"}, wantErr: "is not /tokenauthority healthcheck"},
	}
	for _, tt := range tests {
		got, err := healthcheckCACert(tt.cmd)
		if got != tt.want || tt.wantErr != "" && !errorsContain(err, tt.wantErr) {
			t.Errorf("healthcheckCACert(%q) = %q, %v; want %q, error %q", tt.cmd, got, err, tt.want, tt.wantErr)
		}
	}
}

var (
	certgenOnce sync.Once
	certgenPath string
	certgenErr  error
)

// runCertgen runs compose/certgen with args, its -out replaced by a new directory and its -owner
// dropped (the tests do not run as root), and returns that directory.
func runCertgen(t *testing.T, args []string) string {
	t.Helper()
	certgenOnce.Do(func() {
		certgenPath = filepath.Join(binDir, "certgen")
		if out, err := exec.Command("go", "build", "-o", certgenPath, "./compose/certgen").CombinedOutput(); err != nil {
			certgenErr = fmt.Errorf("go build ./compose/certgen: %w\n%s", err, out)
		}
	})
	if certgenErr != nil {
		t.Fatal(certgenErr)
	}
	dir := t.TempDir()
	run := []string{"-out", dir}
	for i := 0; i < len(args); i++ {
		if args[i] == "-out" || args[i] == "-owner" {
			i++
			continue
		}
		run = append(run, args[i])
	}
	if out, err := exec.Command(certgenPath, run...).CombinedOutput(); err != nil {
		t.Fatalf("certgen %q: %v\n%s", run, err, out)
	}
	return dir
}

// checkServerCert checks that the server certificate in dir chains to the CA beside it and names
// each of names (DNS names or IP addresses).
func checkServerCert(t *testing.T, dir string, names ...string) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, tlsCertKey), filepath.Join(dir, tlsKeyKey))
	if err != nil {
		t.Fatal(err)
	}
	pool := caPool(t, dir)
	for _, name := range names {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the server certificate is not valid for %s: %v", name, err)
		}
	}
}

func caPool(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, tlsCAKey))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no certificate", tlsCAKey)
	}
	return pool
}

// TestComposeTLS checks that compose serves TLS with certificates its one-shot service makes:
// the service mounts the volume the certificates are made in, its TLS variables name the files
// there, its health check verifies the server with the CA, and the certificate that the service's
// exact command makes names the service, localhost and the address the health check dials.
func TestComposeTLS(t *testing.T) {
	c := readCompose(t)
	for name, s := range c.Services {
		if v, ok := s.Environment[varInsecurePlaintext]; ok {
			t.Errorf("%s: sets %s=%q", name, varInsecurePlaintext, v)
		}
	}
	app := c.Services[appName]
	certs, ok := c.Services[composeCertsService]
	if !ok {
		t.Fatalf("no service %s", composeCertsService)
	}

	// The certificates' volume: written by certs at -out, mounted read-only by the service.
	cmd := certs.Command
	if len(cmd) < 3 || !slices.Equal(cmd[:3], []string{"go", "run", "/certgen/main.go"}) {
		t.Fatalf("%s: command %q does not run certgen", composeCertsService, cmd)
	}
	flag := func(name string) string {
		if i := slices.Index(cmd, name); i >= 0 && i+1 < len(cmd) {
			return cmd[i+1]
		}
		return ""
	}
	if got := flag("-owner"); got != imageUser {
		t.Errorf("%s: -owner %q, want the image's user %s (who must read the key)", composeCertsService, got, imageUser)
	}
	if err := checkImage(certs.Image); err != nil {
		t.Errorf("%s: %v", composeCertsService, err)
	}
	if certs.NetworkMode != "none" {
		t.Errorf("%s: network_mode %q, want none: making certificates needs no network", composeCertsService, certs.NetworkMode)
	}
	mounts := func(s composeService) map[string]string { // volume -> container path[:ro]
		m := map[string]string{}
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			m[src] = dst
		}
		return m
	}
	if src, err := os.Stat("compose/certgen/main.go"); err != nil || mounts(certs)["./certgen"] != "/certgen:ro" {
		t.Errorf("%s: ./certgen is not mounted read-only at /certgen (%v)", composeCertsService, err)
	} else if src.IsDir() {
		t.Errorf("compose/certgen/main.go is a directory")
	}
	var volume string
	for src, dst := range mounts(certs) {
		if _, named := c.Volumes[src]; named && dst == flag("-out") {
			volume = src
		}
	}
	if volume == "" {
		t.Fatalf("%s: -out %q is not a named volume's mount", composeCertsService, flag("-out"))
	}
	dir, ro := strings.CutSuffix(mounts(app)[volume], ":ro")
	if dir == "" || !ro {
		t.Fatalf("%s: does not mount volume %s read-only", appName, volume)
	}
	for _, p := range checkTLSEnv(app.Environment, dir) {
		t.Errorf("%s: %s", appName, p)
	}
	if app.Healthcheck == nil || len(app.Healthcheck.Test) < 2 || app.Healthcheck.Test[0] != "CMD" {
		t.Fatalf("%s: health check %+v", appName, app.Healthcheck)
	}
	if ca, err := healthcheckCACert(app.Healthcheck.Test[1:]); err != nil {
		t.Errorf("%s: health check: %v", appName, err)
	} else if ca != path.Join(dir, tlsCAKey) {
		t.Errorf("%s: health check -cacert %s, want %s", appName, ca, path.Join(dir, tlsCAKey))
	}

	// The health check dials 127.0.0.1 (a wildcard listen address's loopback).
	out := runCertgen(t, cmd[3:])
	checkServerCert(t, out, appName, "localhost", "127.0.0.1")
}

// TestComposeTLSServes starts the service with compose's TLS variables on files made by compose's
// certgen command, and runs compose's health check against it: it passes, and the same check in
// plaintext fails. The HTTP port serves the same certificate.
func TestComposeTLSServes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service")
	}
	c := readCompose(t)
	app := c.Services[appName]
	if app.Healthcheck == nil || len(app.Healthcheck.Test) < 2 {
		t.Fatal("no health check")
	}
	certs := c.Services[composeCertsService]
	if len(certs.Command) < 3 {
		t.Fatalf("no service %s that runs certgen", composeCertsService)
	}
	dir := runCertgen(t, certs.Command[3:])
	mountDir := path.Dir(app.Environment[varTLSCert])
	env := map[string]string{}
	for k, v := range app.Environment {
		if strings.HasPrefix(k, varPrefix+"TLS_") {
			env[k] = remap(v, mountDir, dir)
		}
	}
	s := startService(t, env)
	probe := remapAll(app.Healthcheck.Test[1:], mountDir, dir)
	if err := s.waitHealthy(t, probe); err != nil {
		t.Fatal(err)
	}
	if err := s.healthcheck(t, []string{"/tokenauthority", "healthcheck", "-tls=false", "-timeout=2s"}); err == nil {
		t.Error("a plaintext health check passed against the TLS port")
	}
	if code, err := s.get(caPool(t, dir), "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET https://%s/healthz verified with ca.crt: %d %v", s.httpAddr, code, err)
	}
}

// remap replaces the directory from of a path in a container by the local directory to.
func remap(p, from, to string) string {
	if rest, ok := strings.CutPrefix(p, from+"/"); ok {
		return filepath.Join(to, rest)
	}
	return p
}

func remapAll(args []string, from, to string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = remap(a, from, to)
	}
	return out
}

// service is the service's binary running in development mode (in-memory store) on loopback.
type service struct {
	env                map[string]string
	grpcAddr, httpAddr string
	exited             chan struct{}
	mu                 sync.Mutex
	log                bytes.Buffer
}

func (s *service) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(b)
}

func (s *service) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// freeAddr returns a loopback address with a port free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startService starts the service with env (and nothing of the test's own environment) on free
// loopback ports, and stops it when the test ends.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := &service{env: map[string]string{
		varEnv:                  "development",
		varPrefix + "DATA_DIR":  t.TempDir(),
		varPrefix + "LOG_LEVEL": "warn",
		varGRPCAddr:             freeAddr(t),
		varHTTPAddr:             freeAddr(t),
	}, exited: make(chan struct{})}
	for k, v := range env {
		s.env[k] = v
	}
	s.grpcAddr, s.httpAddr = s.env[varGRPCAddr], s.env[varHTTPAddr]
	cmd := exec.Command(serviceBinary(t))
	cmd.Env = s.environ()
	cmd.Stdout, cmd.Stderr = s, s
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.exited
	})
	return s
}

func (s *service) environ() []string {
	var env []string
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return env
}

// healthcheck runs the command cmd of a probe (cmd[0] is the binary in the image) with the
// service's environment, as a probe inside its container does.
func (s *service) healthcheck(t *testing.T, cmd []string) error {
	t.Helper()
	if len(cmd) < 2 || cmd[0] != "/tokenauthority" {
		return fmt.Errorf("%q does not run /tokenauthority", cmd)
	}
	c := exec.Command(serviceBinary(t), cmd[1:]...)
	c.Env = s.environ()
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%q: %w\n%s", cmd, err, out)
	}
	return nil
}

// waitHealthy runs the probe until it passes, while the service starts; the bound is generous
// because a busy machine starts it slowly.
func (s *service) waitHealthy(t *testing.T, probe []string) error {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := s.healthcheck(t, probe)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the service exited: %s", s.output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w\nservice output:\n%s", err, s.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get fetches p over HTTPS from the HTTP port, verifying the server with roots (or not at all,
// as the kubelet does, when roots is nil); it returns the status code.
func (s *service) get(roots *x509.CertPool, p string) (int, error) {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, InsecureSkipVerify: roots == nil} //nolint:gosec // the kubelet's probes do not verify
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+s.httpAddr+p, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// TestKubernetesProbesServe starts the service with the base Deployment's TLS variables, on files
// made for the names of its Certificate, and runs its probes as the kubelet does: the readiness
// probe's command passes, and the liveness probe's HTTPS GET (unverified, like the kubelet's)
// answers 200.
func TestKubernetesProbesServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the service")
	}
	objs, err := renderObjects(filesys.MakeFsOnDisk(), "kubernetes/base")
	if err != nil {
		t.Fatal(err)
	}
	m := manifests(objs)
	c := appContainer(m)
	if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil {
		t.Fatal("the probes are not an exec readiness probe and an HTTP liveness probe")
	}
	cert := serverCertificate(m)
	dir := runCertgen(t, []string{"-dns", strings.Join(cert.Spec.DNSNames, ","), "-ip", strings.Join(cert.Spec.IPAddresses, ",")})
	env := map[string]string{}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, varPrefix+"TLS_") {
			env[e.Name] = e.Value
		}
	}
	mountDir := path.Dir(env[varTLSCert])
	for k, v := range env {
		env[k] = remap(v, mountDir, dir)
	}
	s := startService(t, env)
	if err := s.waitHealthy(t, remapAll(c.ReadinessProbe.Exec.Command, mountDir, dir)); err != nil {
		t.Fatal(err)
	}
	if c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Fatalf("liveness probe scheme %q", c.LivenessProbe.HTTPGet.Scheme)
	}
	if code, err := s.get(nil, c.LivenessProbe.HTTPGet.Path); err != nil || code != http.StatusOK {
		t.Errorf("liveness GET https://%s%s: %d %v", s.httpAddr, c.LivenessProbe.HTTPGet.Path, code, err)
	}
}
