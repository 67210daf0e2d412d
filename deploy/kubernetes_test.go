package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizations are the directories that kustomize builds, and the Redis each one uses.
var kustomizations = []struct {
	dir   string
	redis string // "bundled", or the mode of the external Redis's URL
}{
	{dir: "kubernetes/base", redis: "bundled"},
	{dir: "kubernetes/overlays/sentinel", redis: "sentinel"},
	{dir: "kubernetes/overlays/cluster", redis: "cluster"},
}

// TestEveryManifestFileDecodesStrictly decodes every YAML document under kubernetes/ into the
// Kubernetes API types (kustomization.yaml into kustomize's), so that a misspelt field fails.
func TestEveryManifestFileDecodesStrictly(t *testing.T) {
	files := manifestFiles(t, "kubernetes")
	if len(files) < 10 {
		t.Fatalf("found only %d manifest files: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		isKustomization := filepath.Base(f) == "kustomization.yaml"
		objs, err := decodeAll(b, f, isKustomization)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(objs) == 0 {
			t.Errorf("%s: no document", f)
		}
		if isKustomization && (len(objs) != 1 || objs[0].key != kindKustomization && objs[0].key != kindComponent) {
			t.Errorf("%s: want one Kustomization or Component", f)
		}
	}
}

// components are the kustomize components, which the tests render in an overlay over the base.
var components = []string{"kubernetes/components/tls-secret"}

// TestEveryKustomizationIsFound keeps the lists above complete.
func TestEveryKustomizationIsFound(t *testing.T) {
	var found []string
	for _, f := range manifestFiles(t, "kubernetes") {
		if filepath.Base(f) != "kustomization.yaml" {
			continue
		}
		if strings.HasPrefix(filepath.ToSlash(f), "kubernetes/components/") {
			if !slices.Contains(components, filepath.ToSlash(filepath.Dir(f))) {
				t.Errorf("component %s is not checked: add it to components", filepath.Dir(f))
			}
			continue
		}
		found = append(found, filepath.Dir(f))
	}
	if len(found) != len(kustomizations) {
		t.Fatalf("kustomizations %v, the test knows %d", found, len(kustomizations))
	}
	for _, dir := range found {
		ok := false
		for _, k := range kustomizations {
			ok = ok || filepath.Clean(k.dir) == dir
		}
		if !ok {
			t.Errorf("%s is not checked: add it to kustomizations", dir)
		}
	}
}

// TestKustomizeOutputs renders the base and each overlay as kustomize build does, decodes the
// output strictly, and checks the invariants of a deployable token authority.
func TestKustomizeOutputs(t *testing.T) {
	known := knownVariables(t)
	for _, k := range kustomizations {
		t.Run(filepath.Base(k.dir), func(t *testing.T) {
			objs, err := renderObjects(filesys.MakeFsOnDisk(), k.dir)
			if err != nil {
				t.Fatal(err)
			}
			m := manifests(objs)
			report := func(p problems) {
				t.Helper()
				for _, s := range p {
					t.Error(s)
				}
			}
			report(checkAll(m, known))
			p, redisURL := checkTokenAuthority(m, known)
			report(p)
			if k.redis == "bundled" {
				report(checkBundledRedis(m, redisURL))
			} else {
				report(checkExternalRedis(m, redisURL, k.redis))
			}
			for _, o := range m.of(kindSecret) {
				for key, v := range o.obj.(*corev1.Secret).Data {
					// The placeholders are refused at start-up; a value with white space
					// would also break the Redis URL it is substituted into.
					if strings.TrimSpace(string(v)) != string(v) {
						t.Errorf("%s: key %s has leading or trailing white space", o, key)
					}
				}
			}
		})
	}
}

// TestBaseSecretVolumeMode pins how YAML reads the octal mode of the Secret volume: 0440, so that
// the files are readable by the pod's group and nobody else.
func TestBaseSecretVolumeMode(t *testing.T) {
	objs, err := renderObjects(filesys.MakeFsOnDisk(), "kubernetes/base")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := manifests(objs).get(kindDeployment, appName)
	if !ok {
		t.Fatal("no Deployment")
	}
	for _, v := range o.obj.(*appsv1.Deployment).Spec.Template.Spec.Volumes {
		if v.Secret != nil && (v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o440) {
			t.Errorf("volume %s: defaultMode %v, want 0440", v.Name, v.Secret.DefaultMode)
		}
	}
}

// deploymentYAML is a valid Deployment, the base of the negative tests.
const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: example
spec:
  replicas: 2
  selector:
    matchLabels: {app: example}
  template:
    metadata:
      labels: {app: example}
    spec:
      containers:
        - name: example
          image: example:1.0
`

// TestStrictDecodingRejects proves that the decoding is strict: each mistake below passes a YAML
// parser and is refused here.
func TestStrictDecodingRejects(t *testing.T) {
	if _, _, _, err := decodeStrict([]byte(deploymentYAML), false); err != nil {
		t.Fatalf("the valid Deployment is refused: %v", err)
	}
	tests := []struct {
		name, doc string
		want      []string // parts of the error
	}{
		{
			name: "misspelt field",
			doc:  strings.Replace(deploymentYAML, "replicas: 2", "replicaz: 2", 1),
			want: []string{"replicaz"},
		},
		{
			name: "misspelt nested field",
			doc:  strings.Replace(deploymentYAML, "image: example:1.0", "imagee: example:1.0", 1),
			want: []string{"imagee"},
		},
		{
			name: "wrong type",
			doc:  strings.Replace(deploymentYAML, "replicas: 2", "replicas: two", 1),
			want: []string{"replicas"},
		},
		{
			name: "duplicate key",
			doc:  strings.Replace(deploymentYAML, "replicas: 2", "replicas: 2\n  replicas: 3", 1),
			want: []string{"replicas"},
		},
		{
			name: "unknown kind",
			doc:  strings.Replace(deploymentYAML, "kind: Deployment", "kind: Deploymnt", 1),
			want: []string{"unknown kind", "Deploymnt"},
		},
		{
			name: "kind of another API version",
			doc:  strings.Replace(deploymentYAML, "apiVersion: apps/v1", "apiVersion: apps/v1beta1", 1),
			want: []string{"unknown kind", "apps/v1beta1"},
		},
		{
			name: "no name",
			doc:  strings.Replace(deploymentYAML, "metadata:\n  name: example\n", "metadata: {}\n", 1),
			want: []string{"metadata.name"},
		},
		{
			name: "Kustomization outside kustomization.yaml",
			doc:  "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
			want: []string{"unknown kind", "Kustomization"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeAll([]byte(tt.doc), "test", false)
			if !errorsContain(err, tt.want...) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}

	_, err := decodeAll([]byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresourcez: []\n"), "kustomization.yaml", true)
	if !errorsContain(err, "resourcez") {
		t.Errorf("a misspelt kustomization field: error %v", err)
	}
}

// TestRenderedMisspellingRejected proves that a misspelt field survives kustomize (which merges it
// through) and is refused when the output is decoded.
func TestRenderedMisspellingRejected(t *testing.T) {
	fSys := filesys.MakeFsInMemory()
	write := func(name, content string) {
		if err := fSys.WriteFile(name, []byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	write("/app/kustomization.yaml", "resources:\n  - deployment.yaml\n")
	write("/app/deployment.yaml", strings.Replace(deploymentYAML, "replicas: 2", "replicaz: 2", 1))
	if _, err := render(fSys, "/app"); err != nil {
		t.Fatalf("kustomize itself refused it (the test expects it to pass through): %v", err)
	}
	if _, err := renderObjects(fSys, "/app"); !errorsContain(err, "replicaz") {
		t.Fatalf("error %v, want one naming replicaz", err)
	}
}

// TestInvariantsCatchMistakes proves that the invariant checks find what they are for, on a copy
// of the base with one mistake each.
func TestInvariantsCatchMistakes(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m manifests)
		want   string
	}{
		{
			name:   "no resources",
			mutate: func(m manifests) { appContainer(m).Resources = corev1.ResourceRequirements{} },
			want:   "no cpu request",
		},
		{
			name:   "latest image",
			mutate: func(m manifests) { appContainer(m).Image = "registry.example.com/tokenauthority:latest" },
			want:   "not pinned",
		},
		{
			name:   "untagged image",
			mutate: func(m manifests) { appContainer(m).Image = "registry.example.com:5000/tokenauthority" },
			want:   "has no tag",
		},
		{
			name:   "no readiness probe",
			mutate: func(m manifests) { appContainer(m).ReadinessProbe = nil },
			want:   "no readiness probe",
		},
		{
			name: "root",
			mutate: func(m manifests) {
				appContainer(m).SecurityContext.RunAsNonRoot = nil
				appDeployment(m).Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			},
			want: "runAsNonRoot",
		},
		{
			name: "missing Secret",
			mutate: func(m manifests) {
				for i := range m {
					if m[i].key == kindSecret {
						m[i].name += "-renamed"
					}
				}
			},
			want: `Secret "tokenauthority-redis" with key "password" is not defined`,
		},
		{
			name: "Service port without container port",
			mutate: func(m manifests) {
				appContainer(m).Ports[0].Name = "grpc-renamed"
			},
			want: "is not a container port",
		},
		{
			name: "misspelt variable",
			mutate: func(m manifests) {
				env := appContainer(m).Env
				env = append(env, corev1.EnvVar{Name: "TOKENAUTHORITY_REDIS_ULR", Value: "x"})
				appContainer(m).Env = env
			},
			want: "TOKENAUTHORITY_REDIS_ULR is not a variable",
		},
		{
			name: "variable used before it is defined",
			mutate: func(m manifests) {
				env := appContainer(m).Env
				// The Redis URL, which uses REDIS_PASSWORD, moved before everything.
				url := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "TOKENAUTHORITY_REDIS_URL" })
				env[0], env[url] = env[url], env[0]
			},
			want: "not defined before it",
		},
		{
			name: "HTTP readiness probe",
			mutate: func(m manifests) {
				appContainer(m).ReadinessProbe = appContainer(m).LivenessProbe
			},
			want: "readiness probe must be the gRPC health check",
		},
		{
			name: "plaintext allowed",
			mutate: func(m manifests) {
				appContainer(m).Env = append(appContainer(m).Env, corev1.EnvVar{Name: varInsecurePlaintext, Value: "true"})
			},
			want: "TOKENAUTHORITY_INSECURE_PLAINTEXT is set",
		},
		{
			name:   "no TLS",
			mutate: func(m manifests) { setEnv(m, varTLSCert, "") },
			want:   "TOKENAUTHORITY_TLS_CERT_FILE \"\" is not in the directory of a whole Secret",
		},
		{
			name:   "TLS key outside the mounted Secret",
			mutate: func(m manifests) { setEnv(m, varTLSKey, "/etc/tokenauthority/secrets/tls.key") },
			want:   "TOKENAUTHORITY_TLS_KEY_FILE is \"/etc/tokenauthority/secrets/tls.key\", want /etc/tokenauthority/tls/tls.key",
		},
		{
			name:   "client certificates required",
			mutate: func(m manifests) { setEnv(m, varTLSClientAuth, "require") },
			want:   "TOKENAUTHORITY_TLS_CLIENT_AUTH is \"require\", want optional",
		},
		{
			name: "TLS Secret mounted by subPath",
			mutate: func(m manifests) {
				for i, vm := range appContainer(m).VolumeMounts {
					if vm.Name == "tls" {
						appContainer(m).VolumeMounts[i].SubPath = "tls.crt"
					}
				}
			},
			want: "not in the directory of a whole Secret",
		},
		{
			name: "gRPC readiness probe",
			mutate: func(m manifests) {
				appContainer(m).ReadinessProbe.Exec = nil
				appContainer(m).ReadinessProbe.GRPC = &corev1.GRPCAction{Port: grpcPort}
			},
			want: "the kubelet's grpc probe speaks plaintext only",
		},
		{
			name: "readiness probe without verification",
			mutate: func(m manifests) {
				appContainer(m).ReadinessProbe.Exec.Command = []string{"/tokenauthority", "healthcheck", "-tls"}
			},
			want: "does not speak TLS verified with -cacert",
		},
		{
			name: "readiness probe with another CA",
			mutate: func(m manifests) {
				appContainer(m).ReadinessProbe.Exec.Command = []string{"/tokenauthority", "healthcheck", "-tls", "-cacert", "/etc/ssl/certs/ca-certificates.crt"}
			},
			want: "verifies the server with /etc/ssl/certs/ca-certificates.crt",
		},
		{
			name:   "HTTP liveness probe",
			mutate: func(m manifests) { appContainer(m).LivenessProbe.HTTPGet.Scheme = corev1.URISchemeHTTP },
			want:   "must use scheme HTTPS",
		},
		{
			name: "Certificate without the Service's name",
			mutate: func(m manifests) {
				c := serverCertificate(m)
				c.Spec.DNSNames = slices.DeleteFunc(c.Spec.DNSNames, func(n string) bool { return n == appName })
			},
			want: "lack tokenauthority, the Service's name",
		},
		{
			name:   "Certificate without the probe's address",
			mutate: func(m manifests) { serverCertificate(m).Spec.IPAddresses = nil },
			want:   "lack 127.0.0.1, which the readiness probe dials",
		},
		{
			name:   "Certificate of another Secret",
			mutate: func(m manifests) { serverCertificate(m).Spec.SecretName = "tokenauthority-tls-2" },
			want:   `Secret "tokenauthority-tls" is not defined`,
		},
		{
			name:   "Certificate of a missing Issuer",
			mutate: func(m manifests) { serverCertificate(m).Spec.IssuerRef.Name = "letsencrypt" },
			want:   `Issuer "letsencrypt" is not defined`,
		},
		{
			name: "CA Issuer on a non-CA certificate",
			mutate: func(m manifests) {
				o, _ := m.get(kindCertificate, "tokenauthority-ca")
				o.obj.(*cmv1.Certificate).Spec.IsCA = false
			},
			want: "which is not a CA",
		},
		{
			name:   "liveness probe on readiness",
			mutate: func(m manifests) { appContainer(m).LivenessProbe.HTTPGet.Path = "/readyz" },
			want:   "liveness probe must be GET /healthz",
		},
		{
			name: "secret as a value",
			mutate: func(m manifests) {
				appContainer(m).Env = append(appContainer(m).Env, corev1.EnvVar{Name: "TOKENAUTHORITY_MASTER_KEY", Value: strings.Repeat("x", 32)})
			},
			want: "TOKENAUTHORITY_MASTER_KEY is given as a value",
		},
		{
			name: "secret file outside the mounted Secret",
			mutate: func(m manifests) {
				for i, e := range appContainer(m).Env {
					if e.Name == "TOKENAUTHORITY_KEY_ENCRYPTION_KEY_FILE" {
						appContainer(m).Env[i].Value = "/etc/tokenauthority/secrets/kek"
					}
				}
			},
			want: `has no key "kek"`,
		},
		{
			name: "service links",
			mutate: func(m manifests) {
				appDeployment(m).Spec.Template.Spec.EnableServiceLinks = nil
			},
			want: "enableServiceLinks must be false",
		},
		{
			name: "Redis without AOF",
			mutate: func(m manifests) {
				o, _ := m.get(kindStatefulSet, redisName)
				c := &o.obj.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0]
				c.Args[0] = strings.ReplaceAll(c.Args[0], "--appendonly yes", "--appendonly no")
			},
			want: "does not run with --appendonly yes",
		},
		{
			name: "one replica",
			mutate: func(m manifests) {
				appDeployment(m).Spec.Replicas = ptr(int32(1))
			},
			want: "blocks every eviction",
		},
		{
			name: "memory request above limit",
			mutate: func(m manifests) {
				appContainer(m).Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi")
			},
			want: "memory request above its limit",
		},
	}
	known := knownVariables(t)
	checkBase := func(m manifests) problems {
		p := checkAll(m, known)
		app, redisURL := checkTokenAuthority(m, known)
		return slices.Concat(p, app, checkBundledRedis(m, redisURL))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "misspelt variable" && known == nil {
				t.Skip("the known variables come from the service's binary, not built in -short mode")
			}
			objs, err := renderObjects(filesys.MakeFsOnDisk(), "kubernetes/base")
			if err != nil {
				t.Fatal(err)
			}
			m := manifests(objs)
			if p := checkBase(m); len(p) > 0 {
				t.Fatalf("the base has problems before the change: %v", p)
			}
			tt.mutate(m)
			p := checkBase(m)
			if !strings.Contains(strings.Join(p, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", p, tt.want)
			}
		})
	}
}

// setEnv sets (or, with "", removes) a variable of the service's container.
func setEnv(m manifests, name, value string) {
	c := appContainer(m)
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name && value == "" })
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i].Value = value
		}
	}
}

func serverCertificate(m manifests) *cmv1.Certificate {
	o, _ := m.get(kindCertificate, appName)
	return o.obj.(*cmv1.Certificate)
}

func appDeployment(m manifests) *appsv1.Deployment {
	o, _ := m.get(kindDeployment, appName)
	return o.obj.(*appsv1.Deployment)
}

func appContainer(m manifests) *corev1.Container {
	return &appDeployment(m).Spec.Template.Spec.Containers[0]
}

// TestRedisMode pins the reading of Redis URLs that the overlays rely on, after
// internal/app/redis.go.
func TestRedisMode(t *testing.T) {
	tests := []struct {
		url, want string // want "" for an error
	}{
		{url: "redis://:pw@redis:6379/0", want: "single"},
		{url: "rediss://user:pw@redis.example:6380/1", want: "single"},
		{url: "redis://s0:26379/0?master_name=m&addr=s1:26379&addr=s2:26379&password=pw", want: "sentinel"},
		{url: "redis://s0:26379?master_name=m", want: ""},                               // one Sentinel
		{url: "redis://s0:26379?master_name=m&addr=s1&addr=s2", want: ""},               // addr without port
		{url: "redis://s0:26379?master_name=m&addr=s1:1&addr=s2:1&pasword=x", want: ""}, // unknown option
		{url: "redis://:pw@c0:6379?addr=c1:6379&addr=c2:6379", want: "cluster"},
		{url: "redis://:pw@c0:6379?addr=c1:6379", want: ""}, // two seeds
		{url: "http://redis:6379", want: ""},
		{url: "redis://:pw\n@redis:6379", want: ""}, // a password file with its newline
	}
	for _, tt := range tests {
		got, err := redisMode(tt.url)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("redisMode(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
		}
	}
}

// TestStrategicMergeOfRedisURLIsCaught shows why the overlays replace the Redis URL with a JSON
// patch: a strategic merge moves the variable to the front of the list, before REDIS_PASSWORD,
// and Kubernetes would pass $(REDIS_PASSWORD) through unexpanded.
func TestStrategicMergeOfRedisURLIsCaught(t *testing.T) {
	base, err := filepath.Abs("kubernetes/base")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, base) // kustomize refuses an absolute path
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"kustomization.yaml": "resources:\n  - " + rel + "\npatches:\n  - path: redis-url.yaml\n",
		"redis-url.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: tokenauthority
spec:
  template:
    spec:
      containers:
        - name: tokenauthority
          env:
            - name: TOKENAUTHORITY_REDIS_URL
              value: redis://default:$(REDIS_PASSWORD)@c0:6379?addr=c1:6379&addr=c2:6379
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := renderObjects(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	p := checkAll(manifests(objs), nil)
	if !strings.Contains(strings.Join(p, "\n"), "refers to $(REDIS_PASSWORD), which is not defined before it") {
		t.Fatalf("problems %q, want the unexpanded reference", p)
	}
}

// TestReadmeOverlay follows deploy/README.md: an overlay of one's own, outside the repository,
// replacing the placeholder secrets and the image, over the base and over each overlay; with
// cert-manager (the base as it is), and without it (the component tls-secret and a generated TLS
// Secret, its files made by the README's certgen command).
func TestReadmeOverlay(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "cat > kustomization.yaml <<'EOF'\n")
	example, _, ok2 := strings.Cut(rest, "\nEOF\n")
	if !ok || !ok2 {
		t.Fatal("README.md has no kustomization.yaml example")
	}
	const resource = "../tokenauthority/deploy/kubernetes/base"
	if !strings.Contains(example, resource) {
		t.Fatalf("the example does not name %s", resource)
	}
	block := func(start string) string {
		_, rest, ok := strings.Cut(string(readme), "```yaml\n"+start)
		b, _, ok2 := strings.Cut(rest, "```\n")
		if !ok || !ok2 {
			t.Fatalf("README.md has no yaml block starting with %q", start)
		}
		return start + b
	}
	const component = "../tokenauthority/deploy/kubernetes/components/tls-secret"
	components := block("components:\n")
	tlsSecret := block("  - name: tokenauthority-tls\n")
	if !strings.Contains(components, component) {
		t.Fatalf("the components block does not name %s", component)
	}
	_, certgen, ok := strings.Cut(string(readme), "`go run ./deploy/compose/certgen ")
	certgen, _, ok2 = strings.Cut(certgen, "`")
	if !ok || !ok2 {
		t.Fatal("README.md does not show the certgen command for the TLS Secret")
	}
	tlsFilesDir := runCertgen(t, strings.Fields(certgen))

	known := knownVariables(t)
	secrets := map[string]string{
		"master-key":         strings.Repeat("0123456789abcdef", 4),
		"key-encryption-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"redis-password":     strings.Repeat("fedcba9876543210", 4),
	}
	for _, k := range kustomizations {
		for _, certManager := range []bool{true, false} {
			name := filepath.Base(k.dir) + "/cert-manager"
			if !certManager {
				name = filepath.Base(k.dir) + "/tls-secret"
			}
			t.Run(name, func(t *testing.T) {
				target, err := filepath.Abs(k.dir)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				rel, err := filepath.Rel(dir, target)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
					t.Fatal(err)
				}
				for name, v := range secrets {
					if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				kust := strings.Replace(example, resource, rel, 1)
				if !certManager {
					abs, err := filepath.Abs("kubernetes/components/tls-secret")
					if err != nil {
						t.Fatal(err)
					}
					relComponent, err := filepath.Rel(dir, abs)
					if err != nil {
						t.Fatal(err)
					}
					kust = strings.Replace(kust, "secretGenerator:\n", "secretGenerator:\n"+tlsSecret, 1)
					kust += "\n" + strings.Replace(components, component, relComponent, 1)
					if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
						t.Fatal(err)
					}
					for _, f := range certificateSecretKeys {
						b, err := os.ReadFile(filepath.Join(tlsFilesDir, f))
						if err != nil {
							t.Fatal(err)
						}
						if err := os.WriteFile(filepath.Join(dir, "tls", f), b, 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o600); err != nil {
					t.Fatal(err)
				}
				objs, err := renderObjects(filesys.MakeFsOnDisk(), dir)
				if err != nil {
					t.Fatalf("%v\n%s", err, kust)
				}
				m := manifests(objs)
				p := checkAll(m, known)
				app, _ := checkTokenAuthority(m, known)
				for _, s := range slices.Concat(p, app) {
					t.Error(s)
				}
				for _, want := range []struct{ secret, key, file string }{
					{"tokenauthority-secrets", "master-key", "master-key"},
					{"tokenauthority-redis", "password", "redis-password"},
					{"tokenauthority-secrets", "key-encryption-key", "key-encryption-key"},
				} {
					if v, ok := m.secretValue(want.secret, want.key); !ok || v != secrets[want.file] {
						t.Errorf("Secret %s key %s is not the generated value", want.secret, want.key)
					}
				}
				for _, o := range m.of(kindSecret) {
					if o.obj.(*corev1.Secret).Namespace != "tokenauthority" {
						t.Errorf("%s: not in the overlay's namespace", o)
					}
				}
				if img := appContainer(m).Image; img != "REGISTRY/tokenauthority:TAG" {
					t.Errorf("image %s, want the overlay's", img)
				}
				if n := len(m.of(kindCertificate)) + len(m.of(kindIssuer)); certManager != (n > 0) {
					t.Errorf("%d cert-manager objects", n)
				}
				if !certManager {
					// The Secret the pods mount holds the generated files, and the certificate
					// names the Service in the overlay's namespace.
					var secret string
					for _, v := range appDeployment(m).Spec.Template.Spec.Volumes {
						if v.Name == "tls" && v.Secret != nil {
							secret = v.Secret.SecretName
						}
					}
					o, ok := m.get(kindSecret, secret)
					if !ok || o.obj.(*corev1.Secret).Type != corev1.SecretTypeTLS {
						t.Fatalf("the pods mount Secret %q, which is not the generated kubernetes.io/tls Secret", secret)
					}
					out := t.TempDir()
					for key, v := range o.obj.(*corev1.Secret).Data {
						if err := os.WriteFile(filepath.Join(out, key), v, 0o600); err != nil {
							t.Fatal(err)
						}
					}
					checkServerCert(t, out, appName, appName+".tokenauthority.svc", "localhost", "127.0.0.1")
				}
			})
		}
	}
}
