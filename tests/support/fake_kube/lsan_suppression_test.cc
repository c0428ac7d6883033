// tests/lsan.supp suppresses leaks that cpprestsdk's own thread pool leaves at exit, and must not
// hide a leak of sluice's objects made on that pool's threads (in a pplx continuation, where the
// Kubernetes client runs its code). The test runs a child that leaks such an object
// (lsan_leak_child.cc), with LSAN_OPTIONS pointing at tests/lsan.supp, and checks that
// LeakSanitizer reports it; and that the old suppression (all of libcpprest.so) hid it. Sanitizer
// builds only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/process.h"

namespace sluice::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

ProcessResult RunChild(const std::string& suppressions) {
  return RunProcess(
      {SLUICE_LSAN_LEAK_CHILD},
      {{"LSAN_OPTIONS", absl::StrCat("suppressions=", suppressions, ":print_suppressions=0")}});
}

TEST(LsanSuppressionTest, SluiceObjectLeakedOnACpprestThreadIsReported) {
  if (!kSanitized) GTEST_SKIP() << "LeakSanitizer runs only in the sanitizer build";
  ProcessResult r = RunChild(absl::StrCat(SLUICE_SOURCE_DIR, "/tests/lsan.supp"));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("ERROR: LeakSanitizer: detected memory leaks")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("AllocateOnACpprestThread")) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("Direct leak of 64 byte(s) in 1 object(s)")) << Describe(r);
}

TEST(LsanSuppressionTest, TheOldWholeLibrarySuppressionHidItAndTheChildWorks) {
  if (!kSanitized) GTEST_SKIP() << "LeakSanitizer runs only in the sanitizer build";
  const std::string old_rules = absl::StrCat(::testing::TempDir(), "lsan_whole_library.supp");
  std::ofstream(old_rules) << "leak:libcpprest.so\n";
  ProcessResult r = RunChild(old_rules);
  // The same leak, suppressed because a frame of the allocating stack (the pool thread's) is in
  // libcpprest.so: what tests/lsan.supp used to say, and why it no longer does. Exit code 0 also
  // says that the child did allocate on the pool's thread.
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, Not(HasSubstr("LeakSanitizer"))) << Describe(r);
  std::remove(old_rules.c_str());
}

}  // namespace
}  // namespace sluice::testing
