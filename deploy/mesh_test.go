package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	// The typed_config of each filter and cluster option resolves through the global registry.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// The authority's defaults the recipes are sized against (internal/config, internal/keys): a
// rotated key is published 30 minutes before it signs, and the JWKS says max-age 5 minutes.
const (
	keyPrePublish = 30 * time.Minute
	jwksMaxAge    = 5 * time.Minute
)

// strict decodes protobuf JSON: an unknown field is an error (DiscardUnknown false).
var strict = protojson.UnmarshalOptions{DiscardUnknown: false}

// decodeProtoYAML decodes a YAML document into m strictly, then runs its validation rules when
// it has them (go-control-plane's protoc-gen-validate).
func decodeProtoYAML(b []byte, m proto.Message) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return err
	}
	if err := strict.Unmarshal(j, m); err != nil {
		return err
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		return v.ValidateAll()
	}
	return nil
}

// decodeIstio decodes a Kubernetes object of an Istio kind: its envelope decoded strictly into
// Kubernetes' types, its spec into the Istio API's message.
func decodeIstio(b []byte, kind string, spec proto.Message) (*metav1.ObjectMeta, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, err
	}
	var env struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, err
	}
	if env.APIVersion != "security.istio.io/v1" || env.Kind != kind {
		return nil, fmt.Errorf("%s %s, want security.istio.io/v1 %s", env.APIVersion, env.Kind, kind)
	}
	if env.Metadata.Name == "" || env.Metadata.Namespace == "" {
		return nil, fmt.Errorf("metadata needs a name and a namespace")
	}
	return &env.Metadata, strict.Unmarshal(env.Spec, spec)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEnvoyRecipe decodes envoy/envoy.yaml into go-control-plane's Bootstrap and checks what the
// recipe is for: fail closed, JWKS cached no longer than its max-age, well below pre-publication.
func TestEnvoyRecipe(t *testing.T) {
	var bs bootstrapv3.Bootstrap
	if err := decodeProtoYAML(readFile(t, "envoy/envoy.yaml"), &bs); err != nil {
		t.Fatalf("envoy/envoy.yaml: %v", err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := bs.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
		t.Error("normalize_path and merge_slashes must be on: the sidecar refuses paths that are not normalised")
	}
	var sawJWT, sawAuthz bool
	for _, f := range hcm.GetHttpFilters() {
		switch f.GetName() {
		case "envoy.filters.http.jwt_authn":
			var ja jwtauthnv3.JwtAuthentication
			if err := f.GetTypedConfig().UnmarshalTo(&ja); err != nil {
				t.Fatal(err)
			}
			for name, p := range ja.GetProviders() {
				d := p.GetRemoteJwks().GetCacheDuration().AsDuration()
				if d <= 0 || d > jwksMaxAge || d >= keyPrePublish {
					t.Errorf("provider %s caches the JWKS %v: want at most the max-age %v, below the pre-publication %v", name, d, jwksMaxAge, keyPrePublish)
				}
				if !strings.Contains(p.GetRemoteJwks().GetHttpUri().GetUri(), "/.well-known/jwks.json?tenant=") {
					t.Errorf("provider %s: remote_jwks %q is not the authority's JWKS", name, p.GetRemoteJwks().GetHttpUri().GetUri())
				}
				checkJWKSCluster(t, &bs, p.GetRemoteJwks().GetHttpUri().GetUri(), p.GetRemoteJwks().GetHttpUri().GetCluster())
			}
			sawJWT = true
		case "envoy.filters.http.ext_authz":
			if !sawJWT {
				t.Error("ext_authz runs before jwt_authn: forged tokens would reach the sidecar")
			}
			var ea extauthzv3.ExtAuthz
			if err := f.GetTypedConfig().UnmarshalTo(&ea); err != nil {
				t.Fatal(err)
			}
			if ea.GetFailureModeAllow() {
				t.Error("ext_authz failure_mode_allow: an unreachable sidecar would let every request through")
			}
			if ea.GetGrpcService().GetEnvoyGrpc().GetClusterName() == "" {
				t.Error("ext_authz does not call the sidecar over gRPC")
			}
			sawAuthz = true
		}
	}
	if !sawJWT || !sawAuthz {
		t.Errorf("jwt_authn %v, ext_authz %v: both are the recipe", sawJWT, sawAuthz)
	}
}

// checkJWKSCluster: the authority serves TLS, so the JWKS is fetched over https from a cluster
// whose upstream TLS checks the authority's certificate against a CA and its name.
func checkJWKSCluster(t *testing.T, bs *bootstrapv3.Bootstrap, uri, cluster string) {
	t.Helper()
	if !strings.HasPrefix(uri, "https://") {
		t.Errorf("remote_jwks %q: the authority serves TLS, want https", uri)
	}
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() != cluster {
			continue
		}
		var tc tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&tc); err != nil {
			t.Fatalf("cluster %s: no upstream TLS (%v)", cluster, err)
		}
		vc := tc.GetCommonTlsContext().GetValidationContext()
		if vc.GetTrustedCa().GetFilename() == "" || len(vc.GetMatchTypedSubjectAltNames()) == 0 {
			t.Errorf("cluster %s: upstream TLS must check the certificate against a trusted CA and a name: %v", cluster, vc)
		}
		return
	}
	t.Errorf("remote_jwks names cluster %q, which is not defined", cluster)
}

// TestIstioRecipes decodes the Istio files into istio.io/api's messages (envelopes into
// Kubernetes' ObjectMeta), each strictly.
func TestIstioRecipes(t *testing.T) {
	var ra securityv1beta1.RequestAuthentication
	if _, err := decodeIstio(readFile(t, "istio/request-authentication.yaml"), "RequestAuthentication", &ra); err != nil {
		t.Fatalf("istio/request-authentication.yaml: %v", err)
	}
	if len(ra.GetJwtRules()) == 0 || !strings.Contains(ra.GetJwtRules()[0].GetJwksUri(), "/.well-known/jwks.json?tenant=") {
		t.Errorf("RequestAuthentication: jwksUri must be the authority's JWKS: %v", ra.GetJwtRules())
	}
	for _, r := range ra.GetJwtRules() {
		if !strings.HasPrefix(r.GetJwksUri(), "https://") {
			t.Errorf("RequestAuthentication: jwksUri %q: the authority serves TLS, want https", r.GetJwksUri())
		}
	}
	var ap securityv1beta1.AuthorizationPolicy
	if _, err := decodeIstio(readFile(t, "istio/authorization-policy.yaml"), "AuthorizationPolicy", &ap); err != nil {
		t.Fatalf("istio/authorization-policy.yaml: %v", err)
	}
	if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
		t.Errorf("AuthorizationPolicy action %v, want CUSTOM", ap.GetAction())
	}
	var mc meshv1alpha1.MeshConfig
	if err := decodeProtoYAML(readFile(t, "istio/mesh-config.yaml"), &mc); err != nil {
		t.Fatalf("istio/mesh-config.yaml: %v", err)
	}
	var found bool
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() != ap.GetProvider().GetName() {
			continue
		}
		g := p.GetEnvoyExtAuthzGrpc()
		if g == nil || g.GetFailOpen() || g.GetPort() == 0 {
			t.Errorf("provider %s: want envoyExtAuthzGrpc with a port, failOpen false: %v", p.GetName(), p)
		}
		found = true
	}
	if !found {
		t.Errorf("the AuthorizationPolicy's provider %q is not in mesh-config.yaml", ap.GetProvider().GetName())
	}
}

// TestMeshRecipesRejectTypos: the strict decoding is what makes a misspelt field fail the build.
func TestMeshRecipesRejectTypos(t *testing.T) {
	for _, tc := range []struct {
		file, from, to string
		decode         func([]byte) error
	}{
		{"envoy/envoy.yaml", "cache_duration:", "cache_duraton:", func(b []byte) error { return decodeProtoYAML(b, &bootstrapv3.Bootstrap{}) }},
		{"envoy/envoy.yaml", "failure_mode_allow:", "failure_mode_alow:", func(b []byte) error { return decodeProtoYAML(b, &bootstrapv3.Bootstrap{}) }},
		{"istio/request-authentication.yaml", "jwksUri:", "jwks_url:", func(b []byte) error {
			_, err := decodeIstio(b, "RequestAuthentication", &securityv1beta1.RequestAuthentication{})
			return err
		}},
		{"istio/authorization-policy.yaml", "namespace:", "namespce:", func(b []byte) error {
			_, err := decodeIstio(b, "AuthorizationPolicy", &securityv1beta1.AuthorizationPolicy{})
			return err
		}},
		{"istio/mesh-config.yaml", "failOpen:", "failopen:", func(b []byte) error { return decodeProtoYAML(b, &meshv1alpha1.MeshConfig{}) }},
	} {
		b := readFile(t, tc.file)
		if !bytes.Contains(b, []byte(tc.from)) {
			t.Fatalf("%s has no %q", tc.file, tc.from)
		}
		if err := tc.decode(bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1)); err == nil {
			t.Errorf("%s with %q misspelt %q: accepted", tc.file, tc.from, tc.to)
		}
	}
}
