// SHA-256 of a byte string, as lowercase hex: manifest checksums and the advisory-lock key.
#ifndef SLUICE_PKG_BASE_SHA256_H_
#define SLUICE_PKG_BASE_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace sluice::base {

// Returns the lowercase hex SHA-256 digest of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_SHA256_H_
