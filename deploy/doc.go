// Package deploy holds Fengda's deployment files: the Kubernetes manifests under k8s/
// (Deployment, Service, ConfigMap, PodDisruptionBudget, and autoscaling with KEDA or a
// plain HPA). It has no code; its test reads every manifest and checks it against the
// configuration the binary accepts, so that a renamed key, a tenant without an
// autoscaling trigger or a grace period shorter than the shutdown fails in CI rather
// than in a cluster.
package deploy
