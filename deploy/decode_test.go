package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// typeKey names a kind of object as manifests do.
type typeKey struct {
	apiVersion, kind string
}

func (k typeKey) String() string { return k.apiVersion + " " + k.kind }

// The kinds a manifest may hold, each decoded into its Go type of the Kubernetes API. Any other
// kind is an error: a new kind is added here, with the invariants it needs.
var (
	kindDeployment     = typeKey{"apps/v1", "Deployment"}
	kindStatefulSet    = typeKey{"apps/v1", "StatefulSet"}
	kindService        = typeKey{"v1", "Service"}
	kindServiceAccount = typeKey{"v1", "ServiceAccount"}
	kindSecret         = typeKey{"v1", "Secret"}
	kindConfigMap      = typeKey{"v1", "ConfigMap"}
	kindPDB            = typeKey{"policy/v1", "PodDisruptionBudget"}
	kindNetworkPolicy  = typeKey{"networking.k8s.io/v1", "NetworkPolicy"}
	// cert-manager's, decoded into its own Go types.
	kindCertificate = typeKey{cmv1.SchemeGroupVersion.String(), cmv1.CertificateKind}
	kindIssuer      = typeKey{cmv1.SchemeGroupVersion.String(), cmv1.IssuerKind}
	// kindKustomization and kindComponent are allowed only in files named kustomization.yaml.
	kindKustomization = typeKey{kustomizetypes.KustomizationVersion, kustomizetypes.KustomizationKind}
	kindComponent     = typeKey{kustomizetypes.ComponentVersion, kustomizetypes.ComponentKind}
)

var newObject = map[typeKey]func() any{
	kindDeployment:     func() any { return new(appsv1.Deployment) },
	kindStatefulSet:    func() any { return new(appsv1.StatefulSet) },
	kindService:        func() any { return new(corev1.Service) },
	kindServiceAccount: func() any { return new(corev1.ServiceAccount) },
	kindSecret:         func() any { return new(corev1.Secret) },
	kindConfigMap:      func() any { return new(corev1.ConfigMap) },
	kindPDB:            func() any { return new(policyv1.PodDisruptionBudget) },
	kindNetworkPolicy:  func() any { return new(networkingv1.NetworkPolicy) },
	kindCertificate:    func() any { return new(cmv1.Certificate) },
	kindIssuer:         func() any { return new(cmv1.Issuer) },
}

// object is one decoded manifest document.
type object struct {
	source string // file and document number, or what rendered it
	key    typeKey
	name   string
	obj    any // a pointer to the Go type of key
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.key.kind, o.name, o.source) }

// splitDocuments returns the non-empty YAML documents of b.
func splitDocuments(b []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, err
		}
		if len(m) > 0 { // a document of comments only is empty
			docs = append(docs, doc)
		}
	}
}

// decodeStrict decodes one manifest document into the Go type of its apiVersion and kind. An
// unknown or misspelt field, a duplicate key, a value of the wrong type or an unknown kind is an
// error. allowKustomization permits a Kustomization or a Component.
func decodeStrict(doc []byte, allowKustomization bool) (typeKey, string, any, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return typeKey{}, "", nil, err
	}
	key := typeKey{meta.APIVersion, meta.Kind}
	var obj any
	if newObj, ok := newObject[key]; ok {
		obj = newObj()
	} else if (key == kindKustomization || key == kindComponent) && allowKustomization {
		obj = new(kustomizetypes.Kustomization)
	} else {
		return key, "", nil, fmt.Errorf("unknown kind %q of apiVersion %q", key.kind, key.apiVersion)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return key, meta.Metadata.Name, nil, fmt.Errorf("%s %s: %w", key.kind, meta.Metadata.Name, err)
	}
	if key != kindKustomization && key != kindComponent && meta.Metadata.Name == "" {
		return key, "", nil, fmt.Errorf("%s without metadata.name", key.kind)
	}
	return key, meta.Metadata.Name, obj, nil
}

// decodeAll strictly decodes every document of b; source names b in errors.
func decodeAll(b []byte, source string, allowKustomization bool) ([]object, error) {
	docs, err := splitDocuments(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var objs []object
	var errs []error
	for i, doc := range docs {
		src := fmt.Sprintf("%s, document %d", source, i+1)
		key, name, obj, err := decodeStrict(doc, allowKustomization)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
			continue
		}
		objs = append(objs, object{source: src, key: key, name: name, obj: obj})
	}
	return objs, errors.Join(errs...)
}

// manifestFiles returns every YAML file under dir.
func manifestFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// render builds the kustomization in dir of fSys as kustomize build does.
func render(fSys filesys.FileSystem, dir string) ([]byte, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fSys, dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}

// renderObjects renders the kustomization in dir of fSys and strictly decodes the result.
func renderObjects(fSys filesys.FileSystem, dir string) ([]object, error) {
	out, err := render(fSys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return decodeAll(out, "kustomize build "+dir, false)
}

// errorsContain reports whether err's message contains every one of parts.
func errorsContain(err error, parts ...string) bool {
	if err == nil {
		return false
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			return false
		}
	}
	return true
}
