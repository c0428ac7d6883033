#include "pkg/kube/token_source.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice::kube {

TokenSource::TokenSource(std::string token, std::string path, absl::Duration max_age, Clock clock)
    : path_(std::move(path)),
      max_age_(max_age),
      clock_(std::move(clock)),
      token_(std::move(token)) {}

std::unique_ptr<TokenSource> TokenSource::Fixed(std::string token) {
  return std::unique_ptr<TokenSource>(
      new TokenSource(std::move(token), "", absl::InfiniteDuration(), &absl::Now));
}

std::unique_ptr<TokenSource> TokenSource::FromFile(std::string path, absl::Duration max_age,
                                                   Clock clock) {
  return std::unique_ptr<TokenSource>(
      new TokenSource("", std::move(path), max_age, std::move(clock)));
}

absl::StatusOr<std::string> TokenSource::Token() {
  absl::MutexLock lock(&mu_);
  if (path_.empty()) return token_;
  const absl::Time now = clock_();
  if (!token_.empty() && now - read_at_ < max_age_) return token_;
  // Re-open by path each time: the kubelet swaps a symlink to rotate the token.
  std::ifstream in(path_, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (!in || token.empty()) {
    // A token read before is better than none: the file may be mid-rotation.
    if (!token_.empty()) return token_;
    return absl::UnauthenticatedError(
        absl::StrCat("cannot read the bearer token file ", path_, " (missing or empty)"));
  }
  token_ = std::move(token);
  read_at_ = now;
  return token_;
}

void TokenSource::Invalidate() {
  absl::MutexLock lock(&mu_);
  if (path_.empty()) return;
  read_at_ = absl::InfinitePast();
}

}  // namespace sluice::kube
