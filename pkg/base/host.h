// The name this process goes by: in a pod, the pod's name.
#ifndef SLUICE_PKG_BASE_HOST_H_
#define SLUICE_PKG_BASE_HOST_H_

#include <functional>
#include <optional>
#include <string>

namespace sluice::base {

// Looks up an environment variable; std::nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Returns the process environment as an EnvLookup.
EnvLookup ProcessEnvironment();

// Returns the name of this runner, for the lock holder's application_name, history rows and the
// Events it reports: POD_NAME, else HOSTNAME (a pod's name in Kubernetes), else the host name,
// else "sluice".
std::string RunnerName(const EnvLookup& env);

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_HOST_H_
