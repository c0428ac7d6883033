#include "pkg/kube/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "pkg/base/status_macros.h"

namespace sluice::kube {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool FileExists(const std::string& path) {
  std::ifstream in(path);
  return static_cast<bool>(in);
}

// Returns "host:port" for a URL, bracketing IPv6 literals (JoinHostPort).
std::string JoinHostPort(absl::string_view host, absl::string_view port) {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::string Dir(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(base_dir, "/", path);
}

// Returns the `key` entry of the list `list` (clusters, users, contexts) whose name is `name`.
absl::StatusOr<YAML::Node> Named(const YAML::Node& root, const char* list, const char* key,
                                 const std::string& name, const std::string& path) {
  const YAML::Node entries = root[list];
  if (entries && entries.IsSequence()) {
    for (const YAML::Node& entry : entries) {
      if (entry["name"] && entry["name"].as<std::string>() == name) {
        YAML::Node value = entry[key];
        if (!value) value = YAML::Node(YAML::NodeType::Map);
        return value;
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("kubeconfig ", path, ": no ", key, " named \"", name, "\" in ", list));
}

std::string Str(const YAML::Node& node, const char* key) {
  const YAML::Node value = node[key];
  if (!value || !value.IsScalar()) return "";
  return value.as<std::string>();
}

absl::StatusOr<std::string> Base64Field(const YAML::Node& node, const char* key,
                                        const std::string& path) {
  std::string encoded = Str(node, key);
  std::string decoded;
  // YAML folding may leave whitespace in long base64 values.
  encoded.erase(std::remove_if(encoded.begin(), encoded.end(),
                               [](unsigned char c) { return absl::ascii_isspace(c); }),
                encoded.end());
  if (!absl::Base64Unescape(encoded, &decoded)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, ": ", key, " is not valid base64"));
  }
  return decoded;
}

absl::StatusOr<ClusterConfig> ParseKubeconfig(const std::string& path, const std::string& text,
                                              absl::string_view context_name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", path, " is not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, " is not a YAML mapping"));
  }
  try {
    std::string context = std::string(context_name);
    if (context.empty()) context = Str(root, "current-context");
    if (context.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kubeconfig ", path, " has no current-context"));
    }
    SLUICE_ASSIGN_OR_RETURN(YAML::Node ctx, Named(root, "contexts", "context", context, path));
    const std::string cluster_name = Str(ctx, "cluster");
    const std::string user_name = Str(ctx, "user");
    SLUICE_ASSIGN_OR_RETURN(YAML::Node cluster,
                            Named(root, "clusters", "cluster", cluster_name, path));
    YAML::Node user(YAML::NodeType::Map);
    if (!user_name.empty()) {
      SLUICE_ASSIGN_OR_RETURN(user, Named(root, "users", "user", user_name, path));
    }
    const std::string dir = Dir(path);

    ClusterConfig config;
    config.source = path;
    config.server = std::string(absl::StripSuffix(Str(cluster, "server"), "/"));
    if (config.server.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kubeconfig ", path, ": cluster \"", cluster_name, "\" has no server"));
    }
    if (!absl::StartsWith(config.server, "https://") &&
        !absl::StartsWith(config.server, "http://")) {
      return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": server \"",
                                                     config.server, "\" is not an http(s) URL"));
    }
    config.namespace_ = Str(ctx, "namespace");
    if (config.namespace_.empty()) config.namespace_ = "default";
    config.tls_server_name = Str(cluster, "tls-server-name");
    config.insecure_skip_tls_verify = Str(cluster, "insecure-skip-tls-verify") == "true";

    // certificate-authority-data overrides certificate-authority (client-go).
    if (!Str(cluster, "certificate-authority-data").empty()) {
      SLUICE_ASSIGN_OR_RETURN(config.ca_pem,
                              Base64Field(cluster, "certificate-authority-data", path));
    } else if (!Str(cluster, "certificate-authority").empty()) {
      SLUICE_ASSIGN_OR_RETURN(
          config.ca_pem,
          ReadFile(Resolve(dir, Str(cluster, "certificate-authority")), "certificate authority"));
    }

    config.token = Str(user, "token");
    if (config.token.empty() && !Str(user, "tokenFile").empty()) {
      config.token_file = Resolve(dir, Str(user, "tokenFile"));
    }
    if (!Str(user, "client-certificate-data").empty()) {
      SLUICE_ASSIGN_OR_RETURN(config.client_cert_pem,
                              Base64Field(user, "client-certificate-data", path));
    } else if (!Str(user, "client-certificate").empty()) {
      SLUICE_ASSIGN_OR_RETURN(
          config.client_cert_pem,
          ReadFile(Resolve(dir, Str(user, "client-certificate")), "client certificate"));
    }
    if (!Str(user, "client-key-data").empty()) {
      SLUICE_ASSIGN_OR_RETURN(config.client_key_pem, Base64Field(user, "client-key-data", path));
    } else if (!Str(user, "client-key").empty()) {
      SLUICE_ASSIGN_OR_RETURN(config.client_key_pem,
                              ReadFile(Resolve(dir, Str(user, "client-key")), "client key"));
    }
    if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kubeconfig ", path, ": user \"", user_name,
                       "\" needs both a client certificate and a client key"));
    }
    const bool has_credentials =
        !config.token.empty() || !config.token_file.empty() || !config.client_cert_pem.empty();
    if (!has_credentials && (user["exec"] || user["auth-provider"])) {
      return absl::UnimplementedError(
          absl::StrCat("kubeconfig ", path, ": user \"", user_name,
                       "\" uses an exec or auth-provider plugin, which sluice does not run; "
                       "give it a token, tokenFile or client certificate"));
    }
    return config;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig ", path, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<ClusterConfig> InClusterConfig(const InClusterPaths& paths) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return absl::FailedPreconditionError(
        "not running in a Kubernetes cluster: KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be set");
  }
  ClusterConfig config;
  config.source = "in-cluster";
  config.server = absl::StrCat("https://", JoinHostPort(host, port));
  SLUICE_ASSIGN_OR_RETURN(config.ca_pem, ReadFile(paths.ca_file, "service account CA"));
  // The token is read (and re-read) by TokenSource; fail now if it is missing altogether.
  if (!FileExists(paths.token_file)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read service account token ", paths.token_file));
  }
  config.token_file = paths.token_file;
  absl::StatusOr<std::string> ns = ReadFile(paths.namespace_file, "service account namespace");
  config.namespace_ = ns.ok() ? std::string(absl::StripAsciiWhitespace(*ns)) : "default";
  return config;
}

absl::StatusOr<ClusterConfig> KubeconfigConfig(const std::string& path, absl::string_view context) {
  SLUICE_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "kubeconfig"));
  return ParseKubeconfig(path, text, context);
}

absl::StatusOr<ClusterConfig> LoadConfig(const std::string& kubeconfig_flag,
                                         const InClusterPaths& paths) {
  if (!kubeconfig_flag.empty()) return KubeconfigConfig(kubeconfig_flag);
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    for (absl::string_view entry : absl::StrSplit(env, ':', absl::SkipEmpty())) {
      const std::string path(entry);
      if (FileExists(path)) return KubeconfigConfig(path);
    }
    return absl::FailedPreconditionError(absl::StrCat("no file of KUBECONFIG=", env, " exists"));
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0') {
    return InClusterConfig(paths);
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    const std::string path = absl::StrCat(home, "/.kube/config");
    if (FileExists(path)) return KubeconfigConfig(path);
  }
  return absl::FailedPreconditionError(
      "no Kubernetes configuration: not in a cluster, and neither --kubeconfig, KUBECONFIG nor "
      "~/.kube/config is set");
}

}  // namespace sluice::kube
