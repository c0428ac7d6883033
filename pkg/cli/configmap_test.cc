#include "pkg/cli/configmap.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pkg/base/log.h"
#include "pkg/base/text.h"
#include "pkg/cli/app.h"
#include "pkg/failure/failure.h"
#include "pkg/manifest/loader.h"
#include "tests/support/status_matchers.h"
#include "yaml-cpp/yaml.h"

namespace sluice::cli {
namespace {

namespace fs = std::filesystem;

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Returns the string a YAML parser reads back from `text` written as the value of key `k`.
std::string ReadBack(const std::string& text) {
  // As RenderConfigMap writes a value: a block ends with its line break, a quoted string needs one.
  std::string value = YamlValue(text, 2);
  if (value.back() != '\n') value += "\n";
  const std::string document = "data:\n  k: " + value + "after: 1\n";
  YAML::Node node = YAML::Load(document);
  EXPECT_EQ(node["after"].as<int>(), 1) << document;
  return node["data"]["k"].as<std::string>();
}

TEST(YamlValueTest, ReadsBackByteForByte) {
  const std::vector<std::string> texts = {
      "revision: a\nupgrade: |\n  CREATE TABLE a (id int);\n",
      "no final line break",
      "two final line breaks\n\n",
      "three\n\n\n",
      "  leading spaces\nthen none\n",
      "\nleading empty line\n",
      "\n\n  leading empty lines and spaces",
      "trailing spaces   \n   \nand a line of spaces\n",
      "\ttab first\n\ttab again\n",
      "windows\r\nline ends\r\n",
      "a \"quote\" and a \\ backslash\n",
      "bell \a and escape \x1b and delete \x7f\n",
      "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80 fine\n",
      "line separator \xe2\x80\xa8 and NEL \xc2\x85 and BOM \xef\xbb\xbf\n",
      "---\n...\n# not a comment\n- not a list\n",
      "key: value\n  indented: more\n",
      "",
      "\n",
      "\n\n",
      " ",
      "#",
      "|",
  };
  for (const std::string& text : texts) {
    EXPECT_EQ(ReadBack(text), text) << YamlValue(text, 2);
  }
}

TEST(YamlValueTest, UsesLiteralBlocksForOrdinaryText) {
  EXPECT_EQ(YamlValue("a\nb\n", 2), "|\n    a\n    b\n");
  EXPECT_EQ(YamlValue("a\nb", 2), "|-\n    a\n    b\n");
  EXPECT_EQ(YamlValue("a\n\n", 2), "|+\n    a\n\n");
  EXPECT_EQ(YamlValue(" a\n", 2), "|2\n     a\n");
  EXPECT_EQ(YamlValue("a\r\n", 2), "\"a\\r\\n\"");
}

TEST(YamlValueTest, ReadsBackRandomText) {
  // Lines of characters that are hard on YAML, in random mixes (seeded: a failure repeats).
  const std::vector<std::string> pieces = {
      " ",         "  ",       "\n",           "\n\n", "\t",   "#",  ":",
      "- ",        "|",        "\"",           "'",    "\\",   "\r", "a",
      "SELECT 1;", "\xc3\xa9", "\xe2\x80\xa8", "---",  "\x01", "{",  "}"};
  std::mt19937 random(12);
  std::uniform_int_distribution<size_t> piece(0, pieces.size() - 1);
  std::uniform_int_distribution<int> length(0, 12);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    for (int k = length(random); k > 0; --k) text += pieces[piece(random)];
    ASSERT_EQ(ReadBack(text), text) << base::JsonQuote(text) << "\n" << YamlValue(text, 2);
  }
}

ConfigMapFile File(const std::string& key, const std::string& content) {
  return ConfigMapFile{key, "dir/" + key, content};
}

TEST(RenderConfigMapTest, IsDeterministicWithKeysInOrder) {
  absl::StatusOr<std::string> one =
      RenderConfigMap("app-migrations", "apps", {File("b.yaml", "b\n"), File("a.yml", "a\n")});
  absl::StatusOr<std::string> two =
      RenderConfigMap("app-migrations", "apps", {File("a.yml", "a\n"), File("b.yaml", "b\n")});
  SLUICE_ASSERT_OK(one);
  SLUICE_ASSERT_OK(two);
  EXPECT_EQ(*one, *two);
  EXPECT_EQ(*one,
            "# Made by `sluice configmap app-migrations`: 2 migration files, 4 bytes of "
            "Kubernetes' 1,048,576-byte limit.\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-migrations\n"
            "  namespace: apps\n  labels:\n    app.kubernetes.io/managed-by: sluice\n"
            "data:\n  a.yml: |\n    a\n  b.yaml: |\n    b\n");
  YAML::Node node = YAML::Load(*one);
  EXPECT_EQ(node["kind"].as<std::string>(), "ConfigMap");
  EXPECT_EQ(node["data"]["b.yaml"].as<std::string>(), "b\n");
}

TEST(RenderConfigMapTest, RefusesBadNamesKeysAndDuplicates) {
  EXPECT_THAT(RenderConfigMap("App_Migrations", "", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "is not a valid Kubernetes name"));
  EXPECT_THAT(RenderConfigMap("app", "bad.namespace", {}),
              StatusIs(absl::StatusCode::kInvalidArgument, "is not a valid namespace"));
  EXPECT_THAT(RenderConfigMap("app", "", {File("001 init.yaml", "x\n")}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "dir/001 init.yaml: the file name \"001 init.yaml\" cannot be a ConfigMap "
                       "key: a ConfigMap key has only letters, digits, `-`, `_` and `.`; this one "
                       "has a space; rename the file"));
  EXPECT_THAT(RenderConfigMap("app", "", {File("caf\xc3\xa9.yaml", "x\n")}),
              StatusIs(absl::StatusCode::kInvalidArgument, "cannot be a ConfigMap key"));
  EXPECT_THAT(RenderConfigMap("app", "",
                              {ConfigMapFile{"a.yaml", "one/a.yaml", "a\n"},
                               ConfigMapFile{"a.yaml", "two/a.yaml", "b\n"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "two/a.yaml: the file name a.yaml is also that of one/a.yaml"));
  EXPECT_THAT(CheckConfigMapKey(std::string(254, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument, "1 to 253 characters"));
  EXPECT_THAT(CheckConfigMapKey("..data"),
              StatusIs(absl::StatusCode::kInvalidArgument, "start with `..`"));
  EXPECT_TRUE(CheckConfigMapKey("0001_init-schema.v2.yaml").ok());
}

TEST(RenderConfigMapTest, RefusesOverOneMebibyteWithTheSizeAndHowToSplit) {
  const std::string half(kConfigMapMaxDataBytes / 2, 'x');
  SLUICE_ASSERT_OK(RenderConfigMap("app", "", {File("a.yaml", half), File("b.yaml", half)}));
  absl::StatusOr<std::string> over =
      RenderConfigMap("app", "", {File("a.yaml", half), File("b.yaml", half + "y")});
  EXPECT_THAT(over, StatusIs(absl::StatusCode::kInvalidArgument,
                             "the migrations come to 1,048,577 bytes in 2 files, over "
                             "Kubernetes' limit of 1,048,576 bytes (1 MiB)"));
  EXPECT_THAT(over.status().message(), HasSubstr("`sluice configmap app-1 --migrations DIR1`"));
  EXPECT_THAT(over.status().message(), HasSubstr("--migrations once per mount"));
}

// The command, end to end: its output laid out as the kubelet mounts a ConfigMap loads back to the
// same revisions and checksums, and the same bytes.
class ConfigMapCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sluice_configmap_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "migrations");
    log::SetSinkForTest(&log_);
  }
  void TearDown() override {
    log::SetSinkForTest(nullptr);
    fs::remove_all(dir_);
  }

  void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
  }

  int RunSluice(const std::vector<std::string>& args) {
    out_.str("");
    return cli::Run(args, out_,
                    [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
  }

  fs::path dir_;
  std::ostringstream out_;
  std::ostringstream log_;
};

TEST_F(ConfigMapCommandTest, RoundTripsThroughAKubeletMount) {
  const fs::path source = dir_ / "migrations";
  Write(source / "0001_init.yaml",
        "revision: fc0e7b400c13\ndown_revision: null\ndescription: Initial schema\n"
        "upgrade: |\n  CREATE TABLE executions (id bigint);\n"
        "downgrade: |\n  DROP TABLE executions;\n");
  // CRLF line ends (written double-quoted), no final line break, and a block that keeps two.
  Write(source / "0002_keys.yml",
        "revision: b2\r\ndown_revision: fc0e7b400c13\r\ndescription: keys\r\n"
        "upgrade: CREATE TABLE api_keys (id bigint);\r\n");
  Write(source / "0003_more.yaml",
        "# a comment\nrevision: c3\ndown_revision: b2\ndescription: caf\xc3\xa9\n"
        "upgrade: |+\n  CREATE TABLE c (note text DEFAULT '  two  ');\n\n\n---\n"
        "revision: c4\ndown_revision: c3\ndescription: last\nupgrade: SELECT 1");
  Write(source / "README.md", "not a manifest");

  ASSERT_EQ(RunSluice({"configmap", "app-migrations", "--namespace=apps",
                       "--migrations=" + source.string()}),
            failure::kExitOk)
      << log_.str();
  const std::string printed = out_.str();
  ASSERT_EQ(RunSluice({"configmap", "app-migrations", "--namespace=apps",
                       "--migrations=" + source.string()}),
            failure::kExitOk);
  EXPECT_EQ(out_.str(), printed) << "the output is deterministic";

  YAML::Node config_map = YAML::Load(printed);
  EXPECT_EQ(config_map["apiVersion"].as<std::string>(), "v1");
  EXPECT_EQ(config_map["metadata"]["name"].as<std::string>(), "app-migrations");
  EXPECT_EQ(config_map["metadata"]["namespace"].as<std::string>(), "apps");
  ASSERT_EQ(config_map["data"].size(), 3u) << printed;

  // The kubelet's layout: the keys in a timestamped folder, `..data` a link to it, and each key a
  // link through `..data`.
  const fs::path mount = dir_ / "mount";
  const std::string stamp = "..2026_12_01_07_00_00.123456789";
  for (const auto& entry : config_map["data"]) {
    const std::string key = entry.first.as<std::string>();
    Write(mount / stamp / key, entry.second.as<std::string>());
    fs::create_symlink("..data/" + key, mount / key);
    std::ifstream original(source / key, std::ios::binary);
    std::stringstream bytes;
    bytes << original.rdbuf();
    EXPECT_EQ(entry.second.as<std::string>(), bytes.str()) << key;
  }
  fs::create_directory_symlink(stamp, mount / "..data");

  absl::StatusOr<std::vector<manifest::Migration>> original = manifest::LoadDirectories({source});
  absl::StatusOr<std::vector<manifest::Migration>> mounted = manifest::LoadDirectories({mount});
  SLUICE_ASSERT_OK(original);
  SLUICE_ASSERT_OK(mounted);
  ASSERT_EQ(mounted->size(), 4u);
  ASSERT_EQ(mounted->size(), original->size());
  for (size_t i = 0; i < original->size(); ++i) {
    EXPECT_EQ((*mounted)[i].revision, (*original)[i].revision);
    EXPECT_EQ((*mounted)[i].checksum, (*original)[i].checksum) << (*original)[i].revision;
  }

  // The mounted directory makes the same ConfigMap again.
  ASSERT_EQ(RunSluice({"configmap", "app-migrations", "--namespace=apps",
                       "--migrations=" + mount.string()}),
            failure::kExitOk);
  EXPECT_EQ(out_.str(), printed);
}

TEST_F(ConfigMapCommandTest, RefusesInvalidManifestsAndBadKeys) {
  const fs::path source = dir_ / "migrations";
  Write(source / "a.yaml", "revision: a\ndown_revision: missing\nupgrade: SELECT 1\n");
  EXPECT_EQ(RunSluice({"configmap", "m", "--migrations=" + source.string()}),
            failure::kExitInvalidManifests);
  EXPECT_THAT(log_.str(), HasSubstr("missing"));
  EXPECT_EQ(out_.str(), "");

  fs::remove(source / "a.yaml");
  Write(source / "first one.yaml", "revision: a\ndown_revision: null\nupgrade: SELECT 1\n");
  log_.str("");
  EXPECT_EQ(RunSluice({"configmap", "m", "--migrations=" + source.string()}), failure::kExitUsage);
  EXPECT_THAT(log_.str(),
              HasSubstr((source / "first one.yaml").string() +
                        ": the file name \"first one.yaml\" cannot be a ConfigMap key"));

  // Two directories with a file of the same name: both named.
  fs::remove(source / "first one.yaml");
  Write(source / "a.yaml", "revision: a\ndown_revision: null\nupgrade: SELECT 1\n");
  Write(dir_ / "more/a.yaml", "revision: b\ndown_revision: a\nupgrade: SELECT 2\n");
  log_.str("");
  EXPECT_EQ(RunSluice({"configmap", "m", "--migrations=" + source.string(),
                       "--migrations=" + (dir_ / "more").string()}),
            failure::kExitUsage);
  EXPECT_THAT(log_.str(), HasSubstr("is also that of " + (source / "a.yaml").string()));
}

TEST_F(ConfigMapCommandTest, RefusesOverOneMebibyte) {
  // Valid manifests whose SQL adds up to more than 1 MiB.
  const fs::path source = dir_ / "migrations";
  const std::string padding(600 * 1024, '-');
  Write(source / "a.yaml",
        "revision: a\ndown_revision: null\nupgrade: |\n  SELECT 1;\n  -- " + padding + "\n");
  Write(source / "b.yaml",
        "revision: b\ndown_revision: a\nupgrade: |\n  SELECT 2;\n  -- " + padding + "\n");
  EXPECT_EQ(RunSluice({"configmap", "app-migrations", "--migrations=" + source.string()}),
            failure::kExitUsage);
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(log_.str(), HasSubstr("bytes in 2 files, over Kubernetes' limit of 1,048,576 bytes"));

  // Under the limit but over what client-side `kubectl apply` can annotate: printed, with a
  // warning.
  fs::remove(source / "b.yaml");
  log_.str("");
  EXPECT_EQ(RunSluice({"configmap", "app-migrations", "--migrations=" + source.string()}),
            failure::kExitOk);
  EXPECT_THAT(out_.str(),
              StartsWith("# Made by `sluice configmap app-migrations`: 1 migration file"));
  EXPECT_THAT(log_.str(), HasSubstr("kubectl apply --server-side"));
}

}  // namespace
}  // namespace sluice::cli
