#include "pkg/base/host.h"

#include <unistd.h>

#include <cstdlib>

namespace sluice::base {

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::string RunnerName(const EnvLookup& env) {
  for (const char* name : {"POD_NAME", "HOSTNAME"}) {
    if (std::optional<std::string> value = env(name); value.has_value() && !value->empty()) {
      return *value;
    }
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') return host;
  return "sluice";
}

}  // namespace sluice::base
