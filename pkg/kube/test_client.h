// Test support for pkg/kube's tests against the fake API server: a client that retries fast.
#ifndef SLUICE_PKG_KUBE_TEST_CLIENT_H_
#define SLUICE_PKG_KUBE_TEST_CLIENT_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "pkg/kube/client.h"
#include "pkg/kube/config.h"

namespace sluice::kube {

// Client options whose retries come within a test's patience.
inline ClientOptions FastClientOptions(absl::Duration request_timeout) {
  ClientOptions options;
  options.request_timeout = request_timeout;
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  return options;
}

// Returns a client of the kubeconfig at `kubeconfig_path`; null, with a test failure, when it
// cannot make one.
inline std::unique_ptr<Client> NewTestClient(const std::string& kubeconfig_path,
                                             const ClientOptions& options) {
  absl::StatusOr<ClusterConfig> config = KubeconfigConfig(kubeconfig_path);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Client>> client = NewRestClient(*config, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_TEST_CLIENT_H_
