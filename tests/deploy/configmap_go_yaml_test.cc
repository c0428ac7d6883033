// `sluice configmap`'s output read by Go's YAML (sigs.k8s.io/yaml, what kubectl and the API
// server's clients parse it with), through the real helm's `fromYaml`: every key reads back as the
// file's bytes, for manifests whose text is hard on YAML writers (pkg/cli's own test reads it back
// with yaml-cpp).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_support.h"
#include "tests/integration/migrate_test_support.h"
#include "tests/support/process.h"

namespace sluice::testing {
namespace {

namespace fs = std::filesystem;

TEST(ConfigMapGoYamlTest, KubectlsYamlReadsEveryFileBackByteForByte) {
  const fs::path dir = fs::temp_directory_path() / absl::StrCat("sluice-cm-go-", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "migrations");
  fs::create_directories(dir / "chart/files");
  fs::create_directories(dir / "chart/templates");
  // Each a valid manifest, each hard on a YAML writer in its own way.
  const std::map<std::string, std::string> files = {
      {"01_crlf.yaml", "revision: r01\r\ndown_revision: null\r\nupgrade: SELECT 1;\r\n"},
      {"02_no_final_break.yaml", "revision: r02\ndown_revision: r01\nupgrade: SELECT 2;"},
      {"03_kept_breaks.yaml",
       "revision: r03\ndown_revision: r02\nupgrade: |+\n  SELECT 3;\n\n\n\n"},
      {"04_trailing_spaces.yml",
       "revision: r04   \ndown_revision: r03\t\n# a\ttab and a trailing space \nupgrade: |\n"
       "  SELECT '  4  ';   \n   \n  SELECT 5;\n"},
      {"05_leading_blank_lines.yaml",
       "\n\n# comment\nrevision: r05\ndown_revision: r04\n"
       "upgrade: SELECT 5;\n"},
      {"06_indented.yaml", "  revision: r06\n  down_revision: r05\n  upgrade: SELECT 6;\n"},
      {"07_line_separator.yaml",
       "# NEL \xc2\x85 and LS \xe2\x80\xa8 in a comment\nrevision: r07\ndown_revision: r06\n"
       "description: caf\xc3\xa9 \xe2\x80\x94 \"quoted\" \\ back\nupgrade: SELECT 7;\n"},
      {"08_bom.yaml", "\xef\xbb\xbfrevision: r08\ndown_revision: r07\nupgrade: SELECT 8;\n"},
  };
  for (const auto& [name, text] : files) {
    std::ofstream(dir / "migrations" / name, std::ios::binary) << text;
  }
  const ProcessResult made = RunProcess({SluiceBinary(), "configmap", "app-migrations",
                                         "--migrations=" + (dir / "migrations").string()});
  ASSERT_EQ(made.exit_code, 0) << Describe(made);
  std::ofstream(dir / "chart/files/cm.yaml", std::ios::binary) << made.out;
  std::ofstream(dir / "chart/Chart.yaml") << "apiVersion: v2\nname: probe\nversion: 0.1.0\n";
  std::ofstream(dir / "chart/templates/data.yaml")
      << "{{- $cm := .Files.Get \"files/cm.yaml\" | fromYaml }}\n"
         "{{- range $key, $value := $cm.data }}\n"
         "{{ $key }}: {{ $value | b64enc }}\n"
         "{{- end }}\n";
  const ProcessResult read =
      RunProcess({SLUICE_HELM, "template", "probe", (dir / "chart").string()},
                 {{"HELM_CACHE_HOME", (dir / "helm/cache").string()},
                  {"HELM_CONFIG_HOME", (dir / "helm/config").string()},
                  {"HELM_DATA_HOME", (dir / "helm/data").string()}},
                 absl::Seconds(60));
  ASSERT_EQ(read.exit_code, 0) << Describe(read);
  std::map<std::string, std::string> decoded;
  for (YAML::Node document : Documents(read.out, "helm template")) {
    for (const auto& entry : document) {
      std::string bytes;
      ASSERT_TRUE(absl::Base64Unescape(entry.second.as<std::string>(), &bytes));
      decoded[entry.first.as<std::string>()] = bytes;
    }
  }
  EXPECT_EQ(decoded, files) << made.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sluice::testing
