// Package deploy holds no code. Its tests check the deployment recipes beside it: the Kubernetes
// manifests (strictly decoded into the Kubernetes API types, raw and as kustomize renders them),
// the compose file and the Dockerfile.
//
// It is a module of its own so that the Kubernetes and kustomize dependencies of these tests never
// enter the go.mod of the service, which the users of the public authn package see.
package deploy
