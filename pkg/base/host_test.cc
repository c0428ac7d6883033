#include "pkg/base/host.h"

#include <map>

#include "gtest/gtest.h"

namespace sluice::base {
namespace {

EnvLookup Env(std::map<std::string, std::string> values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(RunnerNameTest, PrefersPodNameThenHostnameVariable) {
  EXPECT_EQ(RunnerName(Env({{"POD_NAME", "api-7d9f"}, {"HOSTNAME", "node-1"}})), "api-7d9f");
  EXPECT_EQ(RunnerName(Env({{"POD_NAME", ""}, {"HOSTNAME", "node-1"}})), "node-1");
}

TEST(RunnerNameTest, FallsBackToTheHostName) {
  const std::string name = RunnerName(Env({}));
  EXPECT_FALSE(name.empty());
}

}  // namespace
}  // namespace sluice::base
