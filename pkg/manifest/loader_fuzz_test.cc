// Feeds ParseManifest thousands of random and mutated manifests with a fixed seed: every input must
// give OK or an error with a location, without crashing or hanging (run it under the sanitizer
// build too). A failing input is printed, JSON-quoted, so it can become a regular test.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "pkg/base/sha256.h"
#include "pkg/base/text.h"
#include "pkg/manifest/error_line_test_util.h"
#include "pkg/manifest/loader.h"

namespace sluice::manifest {
namespace {

constexpr int kIterations = 5000;
constexpr uint32_t kSeed = 20261124;

// SLUICE_FUZZ_ITERATIONS and SLUICE_FUZZ_SEED run a longer or different campaign by hand; the
// suite always runs the fixed one.
int EnvOr(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

const std::vector<std::string>& Seeds() {
  static const auto* seeds = new std::vector<std::string>{
      R"yaml(revision: fc0e7b400c13            # required
down_revision: null
description: Initial schema with executions and api_keys
branch_labels: []
depends_on: []
transactional: true
upgrade: |
  CREATE TABLE executions (id bigserial PRIMARY KEY);
  CREATE TABLE api_keys (id bigserial, key_hash text NOT NULL);
downgrade: |
  DROP TABLE api_keys;
  DROP TABLE executions;
)yaml",
      R"yaml(---
revision: 0012
down_revision: [fc0e7b400c13, "1e3"]
depends_on: abc
branch_labels: reporting
transactional: no
x-owner: {team: data, oncall: [a, b]}
upgrade: >-
  CREATE INDEX CONCURRENTLY i ON t (c);
---
revision: 'quoted.id-1'
down_revision: 0012
upgrade: "SELECT 'a''b', E'\\n';"
downgrade: SELECT 1;
...
)yaml",
      "{revision: m1, down_revision: [a, b], description: \"merge\"}\n---\n"
      "revision: x\nupgrade: !!str &s |2\n    SELECT 1;\ndowngrade: *s\n",
      "\xEF\xBB\xBFrevision: r\r\nupgrade: |\r\n  SELECT 'é';\r\n",
  };
  return *seeds;
}

// Fragments that steer mutations towards the parser's corner cases.
const std::vector<std::string>& Tokens() {
  static const auto* tokens = new std::vector<std::string>{"---\n",
                                                           "...\n",
                                                           "\n",
                                                           "- ",
                                                           ": ",
                                                           "? ",
                                                           "[",
                                                           "]",
                                                           "{",
                                                           "}",
                                                           ",",
                                                           "|",
                                                           ">",
                                                           "|-",
                                                           ">+",
                                                           "&a ",
                                                           "*a",
                                                           "!!str ",
                                                           "!",
                                                           "#",
                                                           "'",
                                                           "\"",
                                                           "\\",
                                                           "\t",
                                                           "%YAML 1.2\n",
                                                           "\r\n",
                                                           "\xEF\xBB\xBF",
                                                           std::string(1, '\0'),
                                                           "\xFF",
                                                           "\xC3",
                                                           "revision: ",
                                                           "upgrade: ",
                                                           "down_revision: ",
                                                           "x-a: ",
                                                           "null",
                                                           "~",
                                                           "true",
                                                           "0012",
                                                           std::string(40, 'a'),
                                                           "<<: *a\n",
                                                           "  ",
                                                           "@",
                                                           "`"};
  return *tokens;
}

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}

  std::string Next() {
    switch (Below(10)) {
      case 0:
        return RandomBytes();
      case 1:
        return RandomPrintable();
      case 2:
        return DeepNesting();
      case 3:
        return Splice();
      default:
        return Mutate(Pick(Seeds()), 1 + Below(8));
    }
  }

 private:
  size_t Below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  const std::string& Pick(const std::vector<std::string>& v) { return v[Below(v.size())]; }

  std::string RandomBytes() {
    std::string s(Below(300), '\0');
    for (char& c : s) c = static_cast<char>(Below(256));
    return s;
  }

  std::string RandomPrintable() {
    static constexpr char kAlphabet[] = " \n\t-:[]{},#&*!|>'\"?%@`abcrevisonupgradx0123";
    std::string s(Below(400), ' ');
    for (char& c : s) c = kAlphabet[Below(sizeof(kAlphabet) - 1)];
    return s;
  }

  std::string DeepNesting() {
    static const char* kOpeners[] = {"[", "{", "- ", "{a: ", "[[", "? "};
    const char* opener = kOpeners[Below(6)];
    std::string s = Below(2) ? "revision: a\nupgrade: " : "";
    const size_t depth = 100 + Below(3000);
    for (size_t i = 0; i < depth; ++i) s += opener;
    if (Below(2)) s += std::string(depth, opener[0] == '[' ? ']' : '}');
    return s;
  }

  // Takes documents (or any line runs) from two seeds and joins them.
  std::string Splice() {
    const std::string& a = Pick(Seeds());
    const std::string& b = Pick(Seeds());
    std::string s = a.substr(0, Below(a.size() + 1));
    if (Below(2)) s += "\n---\n";
    s += b.substr(Below(b.size() + 1));
    return Mutate(s, Below(3));
  }

  std::string Mutate(std::string s, size_t rounds) {
    for (size_t r = 0; r < rounds; ++r) {
      const size_t at = Below(s.size() + 1);
      switch (Below(7)) {
        case 0:  // flip a bit
          if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1u << Below(8));
          break;
        case 1:  // insert a random byte
          s.insert(at, 1, static_cast<char>(Below(256)));
          break;
        case 2:  // delete a run
          s.erase(at, Below(20));
          break;
        case 3:  // truncate
          s.resize(at);
          break;
        case 4:  // insert a token
          s.insert(at, Pick(Tokens()));
          break;
        case 5:  // duplicate a run
          if (at < s.size()) s.insert(at, s.substr(at, Below(80)));
          break;
        default:  // replace a byte with a structural character
          if (!s.empty()) s[Below(s.size())] = "-:[]{}|>'\"\n #&*!\t"[Below(18)];
          break;
      }
    }
    return s;
  }

  std::mt19937 rng_;
};

void CheckResult(const std::string& input, const absl::StatusOr<std::vector<Migration>>& result) {
  SCOPED_TRACE(absl::StrCat("input: ", base::JsonQuote(input)));
  if (!result.ok()) {
    ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    for (absl::string_view line : absl::StrSplit(result.status().message(), '\n')) {
      const bool summary = absl::StartsWith(line, "(") && absl::EndsWith(line, ")") &&
                           absl::StrContains(line, " more problems not shown; ");
      ASSERT_TRUE((absl::StartsWith(line, "fuzz.yaml:") && IsLocatedErrorLine(line)) || summary)
          << "unlocated error line: " << line;
    }
    return;
  }
  const int lines = static_cast<int>(std::count(input.begin(), input.end(), '\n')) + 1;
  for (const Migration& m : *result) {
    ASSERT_TRUE(IsValidRevisionId(m.revision)) << m.revision;
    ASSERT_EQ(m.checksum, "sha256:" + base::Sha256Hex(m.upgrade_sql));
    ASSERT_GE(m.location.line, 1);
    ASSERT_LE(m.location.line, lines);
    ASSERT_GE(m.location.column, 1);
    // A first SQL line is known (not 0) exactly when there is SQL; a block's may be the line
    // after the last.
    if (!m.upgrade_sql.empty()) {
      ASSERT_GE(m.upgrade_first_line, 1);
    }
    ASSERT_LE(m.upgrade_first_line, lines + 1);
    ASSERT_EQ(m.downgrade_first_line > 0, m.downgrade_sql.has_value());
    ASSERT_LE(m.downgrade_first_line, lines + 1);
    ASSERT_TRUE(m.is_merge() || !m.upgrade_sql.empty());
  }
}

TEST(LoaderRobustnessTest, RandomAndMutatedManifestsNeverCrashOrHang) {
  const int iterations = EnvOr("SLUICE_FUZZ_ITERATIONS", kIterations);
  Mutator mutator(static_cast<uint32_t>(EnvOr("SLUICE_FUZZ_SEED", kSeed)));
  const auto start = std::chrono::steady_clock::now();
  int ok = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string input = mutator.Next();
    const absl::StatusOr<std::vector<Migration>> result = ParseManifest(input, "fuzz.yaml");
    ok += result.ok() ? 1 : 0;
    CheckResult(input, result);
    if (::testing::Test::HasFatalFailure()) return;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Both outcomes must be exercised, or the mutations are too weak (or too strong) to test much.
  EXPECT_GT(ok, iterations / 50);
  EXPECT_LT(ok, iterations / 2);
  std::cout << ok << " of " << iterations << " inputs valid, "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms\n";
}

TEST(LoaderRobustnessTest, TheSeedsAreValid) {
  for (const std::string& seed : Seeds()) {
    EXPECT_TRUE(ParseManifest(seed, "fuzz.yaml").ok()) << ParseManifest(seed, "fuzz.yaml").status();
  }
}

}  // namespace
}  // namespace sluice::manifest
