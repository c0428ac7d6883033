#include "pkg/base/log.h"

#include <sstream>

#include "gtest/gtest.h"

namespace sluice::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { SetSinkForTest(&sink_); }
  void TearDown() override {
    SetSinkForTest(nullptr);
    SetFormat(Format::kText);
    SetVerbose(false);
  }
  std::ostringstream sink_;
};

TEST_F(LogTest, TextRecordHasLevelMessageAndFields) {
  Info("applied revision", {{"revision", "abc"}, {"description", "two words"}});
  const std::string line = sink_.str();
  EXPECT_NE(line.find(" info applied revision revision=abc description=\"two words\"\n"),
            std::string::npos)
      << line;
}

TEST_F(LogTest, JsonRecordIsOneObjectPerLine) {
  SetFormat(Format::kJson);
  Warning("lock held", {{"holder", "pod \"a\""}});
  const std::string line = sink_.str();
  EXPECT_EQ(line.front(), '{');
  EXPECT_EQ(line.back(), '\n');
  EXPECT_NE(line.find("\"level\":\"warning\",\"msg\":\"lock held\",\"holder\":\"pod \\\"a\\\"\"}"),
            std::string::npos)
      << line;
}

TEST_F(LogTest, DebugOnlyWhenVerbose) {
  Debug("hidden");
  EXPECT_EQ(sink_.str(), "");
  SetVerbose(true);
  Debug("shown");
  EXPECT_NE(sink_.str().find("debug shown"), std::string::npos);
}

}  // namespace
}  // namespace sluice::log
