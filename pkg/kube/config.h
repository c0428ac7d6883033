// Where the Kubernetes API server is and how to authenticate to it: in-cluster (the pod's service
// account) or from a kubeconfig file (kube-api.md section 8). Pure parsing; the token itself is
// read by TokenSource (token_source.h) so that rotated token files keep working. Thread-compatible.
//
// Example:
//   SLUICE_ASSIGN_OR_RETURN(kube::ClusterConfig config, kube::LoadConfig(flags.kubeconfig));
//   SLUICE_ASSIGN_OR_RETURN(auto client, kube::NewRestClient(config));
#ifndef SLUICE_PKG_KUBE_CONFIG_H_
#define SLUICE_PKG_KUBE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sluice::kube {

struct ClusterConfig {
  std::string server;  // e.g. "https://10.0.0.1:443", no trailing slash
  // Trust: the CA bundle (PEM). Empty only with insecure_skip_tls_verify, or when the kubeconfig
  // names no CA (then the system's trust store is used, as kubectl does).
  std::string ca_pem;
  bool insecure_skip_tls_verify = false;  // only when the kubeconfig says so
  std::string tls_server_name;            // overrides the host name checked in the certificate
  // Credentials: a fixed bearer token, or a file re-read by TokenSource (token wins, as client-go).
  std::string token;
  std::string token_file;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string namespace_;  // the default namespace: the pod's, or the context's ("default")
  std::string source;      // "in-cluster" or the kubeconfig path, for messages
};

// File locations of the in-cluster service account; injectable for tests.
struct InClusterPaths {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
};

// Returns the in-cluster configuration from KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and
// the service account files. kFailedPrecondition when not in a cluster.
absl::StatusOr<ClusterConfig> InClusterConfig(const InClusterPaths& paths = {});

// Returns the configuration of the kubeconfig file at `path`, for `context` (empty: the file's
// current-context). Relative file references resolve against the file's directory.
absl::StatusOr<ClusterConfig> KubeconfigConfig(const std::string& path,
                                               absl::string_view context = "");

// Returns the configuration sluice uses, in controller-runtime's order: `kubeconfig_flag` when set
// (--kubeconfig), else the first existing file in KUBECONFIG, else in-cluster when
// KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
absl::StatusOr<ClusterConfig> LoadConfig(const std::string& kubeconfig_flag,
                                         const InClusterPaths& paths = {});

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_CONFIG_H_
