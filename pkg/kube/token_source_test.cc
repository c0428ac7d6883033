#include "pkg/kube/token_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "tests/support/status_matchers.h"

namespace sluice::kube {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class TokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = "/tmp/sluice-token-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    path_ = dir_ + "/token";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& text) {
    // Swapped atomically, as the kubelet does.
    std::ofstream(dir_ + "/staged", std::ios::trunc) << text;
    std::filesystem::rename(dir_ + "/staged", path_);
  }

  std::string dir_;
  std::string path_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

TEST_F(TokenSourceTest, FixedTokenNeverChanges) {
  auto source = TokenSource::Fixed("abc");
  EXPECT_EQ(*source->Token(), "abc");
  source->Invalidate();
  EXPECT_EQ(*source->Token(), "abc");
}

TEST_F(TokenSourceTest, RereadsTheFileAfterAMinute) {
  Write("first\n");
  auto source = TokenSource::FromFile(path_, absl::Minutes(1), [this] { return now_; });
  EXPECT_EQ(*source->Token(), "first");
  Write("second");
  now_ += absl::Seconds(59);
  EXPECT_EQ(*source->Token(), "first");
  now_ += absl::Seconds(2);
  EXPECT_EQ(*source->Token(), "second");
}

TEST_F(TokenSourceTest, InvalidateForcesARereadAfterA401) {
  Write("first");
  auto source = TokenSource::FromFile(path_, absl::Minutes(1), [this] { return now_; });
  EXPECT_EQ(*source->Token(), "first");
  Write("second");
  source->Invalidate();
  EXPECT_EQ(*source->Token(), "second");
}

TEST_F(TokenSourceTest, KeepsTheLastTokenWhileTheFileIsMissing) {
  Write("first");
  auto source = TokenSource::FromFile(path_, absl::Minutes(1), [this] { return now_; });
  EXPECT_EQ(*source->Token(), "first");
  std::filesystem::remove(path_);
  source->Invalidate();
  EXPECT_EQ(*source->Token(), "first");
}

TEST_F(TokenSourceTest, MissingFileIsAnErrorNamingThePath) {
  auto source = TokenSource::FromFile(path_);
  EXPECT_THAT(source->Token().status(), StatusIs(absl::StatusCode::kUnauthenticated, path_));
}

}  // namespace
}  // namespace sluice::kube
