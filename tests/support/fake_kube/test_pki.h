// Certificates for tests: a throwaway CA and leaf certificates it signs, made with OpenSSL's C API
// at test time (no `openssl` binary, no files checked in). Keys are P-256; everything is PEM text.
// Thread-compatible: build once per fixture.
#ifndef SLUICE_TESTS_SUPPORT_FAKE_KUBE_TEST_PKI_H_
#define SLUICE_TESTS_SUPPORT_FAKE_KUBE_TEST_PKI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice::fake_kube {

struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

struct LeafOptions {
  std::string common_name = "kube-apiserver";
  std::vector<std::string> dns_names;                     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses = {"127.0.0.1"};  // subjectAltName IP entries
  bool client = false;  // extendedKeyUsage clientAuth instead of serverAuth
  absl::Duration valid_for = absl::Hours(24);
};

class TestCa {
 public:
  // Creates a self-signed CA named `common_name`.
  static absl::StatusOr<TestCa> Create(const std::string& common_name);

  // Returns a leaf certificate and key signed by this CA.
  absl::StatusOr<PemPair> Issue(const LeafOptions& options) const;

  const std::string& cert_pem() const { return ca_.cert_pem; }

 private:
  explicit TestCa(PemPair ca) : ca_(std::move(ca)) {}
  PemPair ca_;
};

}  // namespace sluice::fake_kube

#endif  // SLUICE_TESTS_SUPPORT_FAKE_KUBE_TEST_PKI_H_
