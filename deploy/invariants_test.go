package deploy

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names the manifests and the tests agree on.
const (
	appName          = "tokenauthority" // Deployment, Service, PodDisruptionBudget, container
	redisName        = "tokenauthority-redis"
	grpcPort         = 50051
	httpPort         = 8081
	varPrefix        = "TOKENAUTHORITY_"
	varRedisURL      = "TOKENAUTHORITY_REDIS_URL"
	varEnv           = "TOKENAUTHORITY_ENV"
	varGRPCAddr      = "TOKENAUTHORITY_GRPC_ADDR"
	varHTTPAddr      = "TOKENAUTHORITY_HTTP_ADDR"
	varMasterKey     = "TOKENAUTHORITY_MASTER_KEY"
	varKEK           = "TOKENAUTHORITY_KEY_ENCRYPTION_KEY"
	fileSuffix       = "_FILE"
	redisDataMount   = "/data"
	redisPortDefault = 6379
)

// problems collects what a check finds wrong.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// manifests is a set of decoded objects, such as the output of one kustomize build.
type manifests []object

// of returns the objects of kind k.
func (m manifests) of(k typeKey) []object {
	var out []object
	for _, o := range m {
		if o.key == k {
			out = append(out, o)
		}
	}
	return out
}

// get returns the object of kind k named name.
func (m manifests) get(k typeKey, name string) (object, bool) {
	for _, o := range m {
		if o.key == k && o.name == name {
			return o, true
		}
	}
	return object{}, false
}

// podTemplate is the pod template of a workload.
type podTemplate struct {
	owner    object
	labels   map[string]string
	spec     *corev1.PodSpec
	replicas int32
	claims   []string // names of the StatefulSet's volume claim templates
}

// templates returns the pod templates of every workload in m.
func (m manifests) templates() []podTemplate {
	var out []podTemplate
	for _, o := range m {
		switch w := o.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, podTemplate{owner: o, labels: w.Spec.Template.Labels, spec: &w.Spec.Template.Spec, replicas: replicas(w.Spec.Replicas)})
		case *appsv1.StatefulSet:
			t := podTemplate{owner: o, labels: w.Spec.Template.Labels, spec: &w.Spec.Template.Spec, replicas: replicas(w.Spec.Replicas)}
			for _, c := range w.Spec.VolumeClaimTemplates {
				t.claims = append(t.claims, c.Name)
			}
			out = append(out, t)
		}
	}
	return out
}

// replicas returns the replicas of a workload, 1 when unset as Kubernetes defaults it.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// selected returns the pod templates whose labels match selector.
func (m manifests) selected(selector labels.Selector) []podTemplate {
	var out []podTemplate
	for _, t := range m.templates() {
		if !selector.Empty() && selector.Matches(labels.Set(t.labels)) {
			out = append(out, t)
		}
	}
	return out
}

// secretValue returns the value of key in Secret name.
func (m manifests) secretValue(name, key string) (string, bool) {
	o, ok := m.get(kindSecret, name)
	if !ok {
		// cert-manager writes the Secret of a Certificate; its values are unknown here.
		return "", m.issued(name) && slices.Contains(certificateSecretKeys, key)
	}
	s := o.obj.(*corev1.Secret)
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// configMapValue returns the value of key in ConfigMap name.
func (m manifests) configMapValue(name, key string) (string, bool) {
	o, ok := m.get(kindConfigMap, name)
	if !ok {
		return "", false
	}
	cm := o.obj.(*corev1.ConfigMap)
	if v, ok := cm.Data[key]; ok {
		return v, true
	}
	v, ok := cm.BinaryData[key]
	return string(v), ok
}

// checkAll checks the invariants every rendered set of manifests must hold, whatever its Redis.
func checkAll(m manifests, known map[string]bool) problems {
	var p problems
	seen := map[string]bool{}
	for _, o := range m {
		id := o.key.String() + " " + o.name
		if seen[id] {
			p.addf("%s: defined twice", o)
		}
		seen[id] = true
	}
	for _, t := range m.templates() {
		checkPod(&p, m, t, known)
	}
	for _, o := range m.of(kindService) {
		checkService(&p, m, o)
	}
	for _, o := range m.of(kindPDB) {
		checkPDB(&p, m, o)
	}
	for _, o := range m.of(kindNetworkPolicy) {
		checkNetworkPolicy(&p, m, o)
	}
	for _, o := range m.of(kindStatefulSet) {
		checkStatefulSet(&p, m, o)
	}
	for _, o := range m.of(kindCertificate) {
		checkCertificate(&p, m, o)
	}
	for _, o := range m.of(kindIssuer) {
		checkIssuer(&p, m, o)
	}
	return p
}

// checkPod checks a workload's pod template: security, resources, probes, and that every Secret,
// ConfigMap, volume and ServiceAccount it names exists.
func checkPod(p *problems, m manifests, t podTemplate, known map[string]bool) {
	spec, owner := t.spec, t.owner
	if len(t.labels) == 0 {
		p.addf("%s: pod template without labels", owner)
	}
	if spec.ServiceAccountName != "" {
		if _, ok := m.get(kindServiceAccount, spec.ServiceAccountName); !ok {
			p.addf("%s: ServiceAccount %q is not defined", owner, spec.ServiceAccountName)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		p.addf("%s: automountServiceAccountToken must be false: the pods call no Kubernetes API", owner)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p.addf("%s: uses a host namespace", owner)
	}
	volumes := map[string]bool{}
	for _, c := range t.claims {
		volumes[c] = true
	}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		switch {
		case v.Secret != nil:
			checkKeysExist(p, m, owner, kindSecret, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional)
		case v.ConfigMap != nil:
			checkKeysExist(p, m, owner, kindConfigMap, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					checkKeysExist(p, m, owner, kindSecret, s.Secret.Name, s.Secret.Items, s.Secret.Optional)
				}
				if s.ConfigMap != nil {
					checkKeysExist(p, m, owner, kindConfigMap, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional)
				}
			}
		}
	}
	if len(spec.Containers) == 0 {
		p.addf("%s: no containers", owner)
	}
	for i := range spec.InitContainers {
		checkContainer(p, m, t, &spec.InitContainers[i], volumes, known, false)
	}
	for i := range spec.Containers {
		checkContainer(p, m, t, &spec.Containers[i], volumes, known, true)
	}
}

// checkKeysExist checks that the Secret or ConfigMap name exists with the keys of items.
func checkKeysExist(p *problems, m manifests, owner object, kind typeKey, name string, items []corev1.KeyToPath, optional *bool) {
	if optional != nil && *optional {
		return
	}
	if _, ok := m.get(kind, name); !ok && (kind != kindSecret || !m.issued(name)) {
		p.addf("%s: %s %q is not defined", owner, kind.kind, name)
		return
	}
	for _, it := range items {
		if !m.hasKey(kind, name, it.Key) {
			p.addf("%s: %s %q has no key %q", owner, kind.kind, name, it.Key)
		}
	}
}

// hasKey reports whether the Secret or ConfigMap name has key.
func (m manifests) hasKey(kind typeKey, name, key string) bool {
	if kind == kindSecret {
		_, ok := m.secretValue(name, key)
		return ok
	}
	_, ok := m.configMapValue(name, key)
	return ok
}

// checkContainer checks one container of t; main containers need probes.
func checkContainer(p *problems, m manifests, t podTemplate, c *corev1.Container, volumes, known map[string]bool, main bool) {
	where := fmt.Sprintf("%s container %s", t.owner, c.Name)
	if err := checkImage(c.Image); err != nil {
		p.addf("%s: %v", where, err)
	}

	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		q, ok := req[r]
		if !ok || q.IsZero() {
			p.addf("%s: no %s request", where, r)
		}
		if l, ok := lim[r]; ok && q.Cmp(l) > 0 {
			p.addf("%s: %s request above its limit", where, r)
		}
	}
	if q, ok := lim[corev1.ResourceMemory]; !ok || q.IsZero() {
		p.addf("%s: no memory limit", where)
	}

	if main {
		if c.ReadinessProbe == nil {
			p.addf("%s: no readiness probe", where)
		}
		if c.LivenessProbe == nil {
			p.addf("%s: no liveness probe", where)
		}
	}
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if probe == nil {
			continue
		}
		var port *intstr.IntOrString
		switch {
		case probe.GRPC != nil:
			port = ptr(intstr.FromInt32(probe.GRPC.Port))
		case probe.HTTPGet != nil:
			port = &probe.HTTPGet.Port
		case probe.TCPSocket != nil:
			port = &probe.TCPSocket.Port
		case probe.Exec != nil:
			if len(probe.Exec.Command) == 0 {
				p.addf("%s: %s probe runs no command", where, name)
			}
		default:
			p.addf("%s: %s probe has no handler", where, name)
		}
		if port != nil {
			if _, ok := containerPort(c, *port); !ok {
				p.addf("%s: %s probe port %s is not a port of the container", where, name, port.String())
			}
		}
	}

	sc, psc := c.SecurityContext, t.spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if !pick(sc.RunAsNonRoot, psc.RunAsNonRoot) {
		p.addf("%s: runAsNonRoot is not true", where)
	}
	if uid := pickPtr(sc.RunAsUser, psc.RunAsUser); uid != nil && *uid == 0 {
		p.addf("%s: runs as user 0", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		p.addf("%s: readOnlyRootFilesystem is not true", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		p.addf("%s: allowPrivilegeEscalation is not false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		p.addf("%s: privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		p.addf("%s: capabilities do not drop ALL", where)
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		p.addf("%s: adds capabilities %v", where, sc.Capabilities.Add)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost {
		p.addf("%s: seccomp profile is not RuntimeDefault", where)
	}

	for _, vm := range c.VolumeMounts {
		if !volumes[vm.Name] {
			p.addf("%s: mounts volume %q, which the pod does not define", where, vm.Name)
		}
	}
	names := map[string]bool{}
	for _, port := range c.Ports {
		if port.Name != "" && names[port.Name] {
			p.addf("%s: port name %q used twice", where, port.Name)
		}
		names[port.Name] = true
	}
	_ = containerEnv(p, m, where, c, known)
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// pick returns the container's setting if set, else the pod's, else false.
func pick(container, pod *bool) bool {
	if b := pickPtr(container, pod); b != nil {
		return *b
	}
	return false
}

// pickPtr returns container if it is set, pod otherwise.
func pickPtr[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

// checkImage refuses an image without a tag or digest, or tagged latest.
func checkImage(image string) error {
	if image == "" {
		return fmt.Errorf("no image")
	}
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	name := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return fmt.Errorf("image %q has no tag (it would mean latest)", image)
	}
	if tag := name[i+1:]; tag == "" || tag == "latest" {
		return fmt.Errorf("image %q is not pinned to a version", image)
	}
	return nil
}

// containerPort returns the number of the container's port given by number or name.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if port.Type == intstr.String && cp.Name == port.StrVal || port.Type == intstr.Int && cp.ContainerPort == port.IntVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// varRef is a Kubernetes dependent variable reference, $(NAME), in an env value.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// containerEnv returns the environment of c as the kubelet gives it: values from Secrets and
// ConfigMaps filled in and $(NAME) references to earlier variables expanded. It records a
// reference to a missing Secret, ConfigMap or key, a $(NAME) that is not defined before it (which
// Kubernetes would leave as is), a variable set twice, and a TOKENAUTHORITY_ variable that the
// service does not know (known, if not nil, holds the names it knows).
func containerEnv(p *problems, m manifests, where string, c *corev1.Container, known map[string]bool) map[string]string {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			if _, ok := m.get(kindSecret, ef.SecretRef.Name); !ok {
				p.addf("%s: envFrom Secret %q is not defined", where, ef.SecretRef.Name)
			}
		case ef.ConfigMapRef != nil:
			o, ok := m.get(kindConfigMap, ef.ConfigMapRef.Name)
			if !ok {
				p.addf("%s: envFrom ConfigMap %q is not defined", where, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range o.obj.(*corev1.ConfigMap).Data {
				env[ef.Prefix+k] = v
			}
		}
	}
	seen := map[string]bool{}
	for _, e := range c.Env {
		if seen[e.Name] {
			p.addf("%s: variable %s set twice", where, e.Name)
		}
		seen[e.Name] = true
		if known != nil && strings.HasPrefix(e.Name, varPrefix) && !known[e.Name] {
			p.addf("%s: %s is not a variable of the service (misspelt?)", where, e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = varRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				name := varRef.FindStringSubmatch(ref)[1]
				v, ok := env[name]
				if !ok {
					p.addf("%s: %s refers to $(%s), which is not defined before it", where, e.Name, name)
					return ref
				}
				return v
			})
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := m.secretValue(ref.Name, ref.Key)
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				p.addf("%s: %s: Secret %q with key %q is not defined", where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := m.configMapValue(ref.Name, ref.Key)
			if !ok && (ref.Optional == nil || !*ref.Optional) {
				p.addf("%s: %s: ConfigMap %q with key %q is not defined", where, e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		default:
			env[e.Name] = "[from the pod]"
		}
	}
	return env
}

// checkService checks that a Service selects pods and that each port reaches a port of each.
func checkService(p *problems, m manifests, o object) {
	svc := o.obj.(*corev1.Service)
	if len(svc.Spec.Selector) == 0 {
		p.addf("%s: no selector", o)
		return
	}
	pods := m.selected(labels.SelectorFromSet(svc.Spec.Selector))
	if len(pods) == 0 {
		p.addf("%s: selects no pod template", o)
	}
	names := map[string]bool{}
	for _, sp := range svc.Spec.Ports {
		if names[sp.Name] {
			p.addf("%s: port name %q used twice", o, sp.Name)
		}
		names[sp.Name] = true
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		for _, t := range pods {
			found := false
			for i := range t.spec.Containers {
				if n, ok := containerPort(&t.spec.Containers[i], target); ok {
					found = true
					if n != sp.Port && target.Type == intstr.String {
						// Allowed, but the manifests keep Service and container ports equal.
						p.addf("%s: port %s is %d but reaches container port %d", o, sp.Name, sp.Port, n)
					}
				}
			}
			if !found {
				p.addf("%s: port %s (target %s) is not a container port of %s", o, sp.Name, target.String(), t.owner)
			}
		}
	}
}

// checkPDB checks that a PodDisruptionBudget selects a workload and leaves room to evict a pod.
func checkPDB(p *problems, m manifests, o object) {
	pdb := o.obj.(*policyv1.PodDisruptionBudget)
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || pdb.Spec.Selector == nil {
		p.addf("%s: invalid selector: %v", o, err)
		return
	}
	pods := m.selected(sel)
	if len(pods) == 0 {
		p.addf("%s: selects no pod template", o)
	}
	if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		p.addf("%s: neither minAvailable nor maxUnavailable", o)
	}
	if ma := pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int {
		for _, t := range pods {
			if t.replicas <= ma.IntVal {
				p.addf("%s: minAvailable %d with %d replicas of %s blocks every eviction", o, ma.IntVal, t.replicas, t.owner)
			}
		}
	}
}

// checkNetworkPolicy checks that a NetworkPolicy applies to pods and admits pods that exist.
func checkNetworkPolicy(p *problems, m manifests, o object) {
	np := o.obj.(*networkingv1.NetworkPolicy)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || len(m.selected(sel)) == 0 {
		p.addf("%s: podSelector selects no pod template", o)
	}
	for _, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.PodSelector == nil || peer.NamespaceSelector != nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil || len(m.selected(sel)) == 0 {
				p.addf("%s: an ingress podSelector selects no pod template", o)
			}
		}
	}
}

// checkStatefulSet checks that a StatefulSet's governing Service exists and is headless.
func checkStatefulSet(p *problems, m manifests, o object) {
	sts := o.obj.(*appsv1.StatefulSet)
	svcObj, ok := m.get(kindService, sts.Spec.ServiceName)
	if !ok {
		p.addf("%s: its Service %q is not defined", o, sts.Spec.ServiceName)
		return
	}
	svc := svcObj.obj.(*corev1.Service)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		p.addf("%s: its Service %q is not headless", o, svc.Name)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)) {
		p.addf("%s: its Service %q does not select its pods", o, svc.Name)
	}
}

// checkTokenAuthority checks the token authority's own objects and returns the Redis URL its
// container gets, expanded.
func checkTokenAuthority(m manifests, known map[string]bool) (problems, string) {
	var p problems
	o, ok := m.get(kindDeployment, appName)
	if !ok {
		p.addf("no Deployment %s", appName)
		return p, ""
	}
	d := o.obj.(*appsv1.Deployment)
	if replicas(d.Spec.Replicas) < 2 {
		p.addf("%s: fewer than 2 replicas", o)
	}
	spec := &d.Spec.Template.Spec
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		p.addf("%s: enableServiceLinks must be false: Services named tokenauthority* would inject TOKENAUTHORITY_* variables", o)
	}
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == appName })
	if i < 0 {
		p.addf("%s: no container %s", o, appName)
		return p, ""
	}
	c := &spec.Containers[i]
	where := fmt.Sprintf("%s container %s", o, c.Name)
	for name, want := range map[string]int32{"grpc": grpcPort, "http": httpPort} {
		if n, ok := containerPort(c, intstr.FromString(name)); !ok || n != want {
			p.addf("%s: port %s is not %d", where, name, want)
		}
	}
	if l := c.LivenessProbe; l == nil || l.HTTPGet == nil || l.HTTPGet.Path != "/healthz" {
		p.addf("%s: the liveness probe must be GET /healthz", where)
	} else if n, _ := containerPort(c, l.HTTPGet.Port); n != httpPort {
		p.addf("%s: the liveness probe must reach port %d", where, httpPort)
	}

	env := containerEnv(new(problems), m, where, c, known) // checkAll reports its problems
	for _, s := range checkTLS(m, spec, c, env) {
		p.addf("%s: %s", where, s)
	}
	if env[varEnv] != "production" {
		p.addf("%s: %s is %q, want production", where, varEnv, env[varEnv])
	}
	for v, want := range map[string]int{varGRPCAddr: grpcPort, varHTTPAddr: httpPort} {
		if _, port, err := net.SplitHostPort(env[v]); err != nil || port != strconv.Itoa(want) {
			p.addf("%s: %s is %q, want port %d", where, v, env[v], want)
		}
	}
	for _, secret := range []string{varMasterKey, varKEK} {
		if _, ok := env[secret]; ok {
			p.addf("%s: %s is given as a value: give it as a file with %s", where, secret, secret+fileSuffix)
		}
		file, ok := env[secret+fileSuffix]
		if !ok {
			p.addf("%s: %s is not set", where, secret+fileSuffix)
			continue
		}
		if err := checkSecretFile(m, spec, c, file); err != nil {
			p.addf("%s: %s: %v", where, secret+fileSuffix, err)
		}
	}

	svcObj, ok := m.get(kindService, appName)
	if !ok {
		p.addf("no Service %s", appName)
	} else {
		svc := svcObj.obj.(*corev1.Service)
		want := map[string]struct {
			port     int32
			protocol string
		}{"grpc": {grpcPort, "grpc"}, "http": {httpPort, "http"}}
		for _, sp := range svc.Spec.Ports {
			w, ok := want[sp.Name]
			if !ok {
				continue
			}
			delete(want, sp.Name)
			if sp.Port != w.port || sp.AppProtocol == nil || *sp.AppProtocol != w.protocol {
				p.addf("%s: port %s must be %d with appProtocol %s", svcObj, sp.Name, w.port, w.protocol)
			}
		}
		for name := range want {
			p.addf("%s: no port %s", svcObj, name)
		}
	}

	covered := false
	for _, po := range m.of(kindPDB) {
		pdb := po.obj.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels)) && pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= 1 {
			covered = true
		}
	}
	if !covered {
		p.addf("%s: no PodDisruptionBudget keeps at least one pod", o)
	}

	u, ok := env[varRedisURL]
	if !ok || u == "" {
		p.addf("%s: %s is not set", where, varRedisURL)
	}
	return p, u
}

// checkSecretFile checks that file is a key of a Secret mounted into c.
func checkSecretFile(m manifests, spec *corev1.PodSpec, c *corev1.Container, file string) error {
	dir, base := path.Split(file)
	dir = path.Clean(dir)
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) != dir || vm.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			key := base
			if len(v.Secret.Items) > 0 {
				key = ""
				for _, it := range v.Secret.Items {
					if it.Path == base {
						key = it.Key
					}
				}
			}
			if _, ok := m.secretValue(v.Secret.SecretName, key); !ok || key == "" {
				return fmt.Errorf("%s: Secret %q mounted at %s has no key %q", file, v.Secret.SecretName, dir, base)
			}
			return nil
		}
	}
	return fmt.Errorf("%s is not in a Secret volume mounted into the container", file)
}

// redisMode returns how the service reads a Redis URL, as internal/app/redis.go does:
// master_name makes the addresses Sentinels, addr parameters make a Cluster.
func redisMode(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("not a URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return "", fmt.Errorf("scheme %q is not redis or rediss", u.Scheme)
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return "", fmt.Errorf("go-redis refuses the Sentinel URL: %w", err)
		}
		if o.MasterName == "" || len(o.SentinelAddrs) < 3 {
			return "", fmt.Errorf("a Sentinel URL needs master_name and at least 3 Sentinels, has %d", len(o.SentinelAddrs))
		}
		return "sentinel", nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return "", fmt.Errorf("go-redis refuses the Cluster URL: %w", err)
		}
		if len(o.Addrs) < 3 {
			return "", fmt.Errorf("a Cluster URL should name at least 3 seed nodes, has %d", len(o.Addrs))
		}
		return "cluster", nil
	}
	if _, err := redis.ParseURL(rawURL); err != nil {
		return "", fmt.Errorf("go-redis refuses the URL: %w", err)
	}
	return "single", nil
}

// checkBundledRedis checks the base's Redis: a StatefulSet with AOF persistence on a volume claim,
// and the URL of the service pointing at its Service.
func checkBundledRedis(m manifests, redisURL string) problems {
	var p problems
	o, ok := m.get(kindStatefulSet, redisName)
	if !ok {
		p.addf("no StatefulSet %s", redisName)
		return p
	}
	sts := o.obj.(*appsv1.StatefulSet)
	if replicas(sts.Spec.Replicas) != 1 {
		p.addf("%s: a single-node Redis has 1 replica", o)
	}
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		p.addf("%s: want one container", o)
		return p
	}
	c := &sts.Spec.Template.Spec.Containers[0]
	cmd := strings.Join(slices.Concat(c.Command, c.Args), " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction", "--requirepass"} {
		if !strings.Contains(cmd, want) {
			p.addf("%s: Redis does not run with %s", o, want)
		}
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == redisDataMount && slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(pvc corev1.PersistentVolumeClaim) bool { return pvc.Name == vm.Name }) {
			mounted = true
		}
	}
	if !mounted {
		p.addf("%s: %s is not on a volume claim template", o, redisDataMount)
	}

	mode, err := redisMode(redisURL)
	if err != nil || mode != "single" {
		p.addf("%s: want a single-server URL: %s %v", varRedisURL, mode, err)
		return p
	}
	u, _ := url.Parse(redisURL)
	if u.Hostname() != sts.Spec.ServiceName || u.Port() != strconv.Itoa(redisPortDefault) {
		p.addf("%s points at %s, not at the Service %s:%d of the bundled Redis", varRedisURL, u.Host, sts.Spec.ServiceName, redisPortDefault)
	}
	if pw, _ := u.User.Password(); pw == "" {
		p.addf("%s carries no password", varRedisURL)
	}
	return p
}

// checkExternalRedis checks an overlay: no bundled Redis left, and a URL of the given mode.
func checkExternalRedis(m manifests, redisURL, wantMode string) problems {
	var p problems
	for _, o := range m.of(kindStatefulSet) {
		p.addf("%s: the bundled Redis is still there", o)
	}
	for _, k := range []typeKey{kindService, kindNetworkPolicy} {
		if o, ok := m.get(k, redisName); ok {
			p.addf("%s: the bundled Redis is still there", o)
		}
	}
	mode, err := redisMode(redisURL)
	if err != nil {
		p.addf("%s: %v", varRedisURL, err)
	} else if mode != wantMode {
		p.addf("%s: a %s URL, want %s", varRedisURL, mode, wantMode)
	}
	return p
}
