#include "tests/support/fake_kube/test_pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sluice::fake_kube {
namespace {

struct Deleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Deleter>;

absl::Status OpenSslError(const char* what) {
  return absl::InternalError(absl::StrCat("openssl: ", what, " failed"));
}

Ptr<EVP_PKEY> NewKey() { return Ptr<EVP_PKEY>(EVP_EC_gen("P-256")); }

std::string ToPem(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string ToPem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError("X509_add_ext");
  }
  return absl::OkStatus();
}

// Returns a certificate for `key` named `common_name`, valid from an hour ago (clock slack) for
// `valid_for`, with a random serial; the caller adds extensions and signs.
Ptr<X509> NewCert(EVP_PKEY* key, const std::string& common_name, absl::Duration valid_for) {
  Ptr<X509> cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), absl::ToInt64Seconds(valid_for));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

absl::StatusOr<Ptr<X509>> ParseCert(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return OpenSslError("PEM_read_bio_X509");
  return cert;
}

absl::StatusOr<Ptr<EVP_PKEY>> ParseKey(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) return OpenSslError("PEM_read_bio_PrivateKey");
  return key;
}

}  // namespace

absl::StatusOr<TestCa> TestCa::Create(const std::string& common_name) {
  Ptr<EVP_PKEY> key = NewKey();
  if (key == nullptr) return OpenSslError("EVP_EC_gen");
  Ptr<X509> cert = NewCert(key.get(), common_name, absl::Hours(48));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  for (const auto& [nid, value] :
       {std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
        {NID_subject_key_identifier, "hash"}}) {
    absl::Status s = AddExtension(cert.get(), cert.get(), nid, value);
    if (!s.ok()) return s;
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return OpenSslError("X509_sign");
  return TestCa(PemPair{ToPem(cert.get()), ToPem(key.get())});
}

absl::StatusOr<PemPair> TestCa::Issue(const LeafOptions& options) const {
  absl::StatusOr<Ptr<X509>> ca_cert = ParseCert(ca_.cert_pem);
  if (!ca_cert.ok()) return ca_cert.status();
  absl::StatusOr<Ptr<EVP_PKEY>> ca_key = ParseKey(ca_.key_pem);
  if (!ca_key.ok()) return ca_key.status();

  Ptr<EVP_PKEY> key = NewKey();
  if (key == nullptr) return OpenSslError("EVP_EC_gen");
  Ptr<X509> cert = NewCert(key.get(), options.common_name, options.valid_for);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get()));

  std::vector<std::string> sans;
  for (const auto& dns : options.dns_names) sans.push_back(absl::StrCat("DNS:", dns));
  for (const auto& ip : options.ip_addresses) sans.push_back(absl::StrCat("IP:", ip));
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
      {NID_ext_key_usage, options.client ? "clientAuth" : "serverAuth"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  if (!sans.empty()) extensions.push_back({NID_subject_alt_name, absl::StrJoin(sans, ",")});
  for (const auto& [nid, value] : extensions) {
    absl::Status s = AddExtension(cert.get(), ca_cert->get(), nid, value);
    if (!s.ok()) return s;
  }
  if (X509_sign(cert.get(), ca_key->get(), EVP_sha256()) == 0) return OpenSslError("X509_sign");
  return PemPair{ToPem(cert.get()), ToPem(key.get())};
}

}  // namespace sluice::fake_kube
