// Bearer tokens for the API server: a fixed token, or a token file that is re-read so that a
// rotated service-account token keeps working (kube-api.md section 8: client-go re-reads every
// minute and after any 401). Thread-safe.
#ifndef SLUICE_PKG_KUBE_TOKEN_SOURCE_H_
#define SLUICE_PKG_KUBE_TOKEN_SOURCE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sluice::kube {

class TokenSource {
 public:
  using Clock = std::function<absl::Time()>;

  // Returns a source that always gives `token` (empty: no Authorization header).
  static std::unique_ptr<TokenSource> Fixed(std::string token);
  // Returns a source that reads `path`, and reads it again once `max_age` has passed or after
  // Invalidate().
  static std::unique_ptr<TokenSource> FromFile(std::string path,
                                               absl::Duration max_age = absl::Minutes(1),
                                               Clock clock = &absl::Now);

  // Returns the current token. Errors (file unreadable) never include the token.
  absl::StatusOr<std::string> Token();
  // Drops the cached token (after a 401), so that the next Token() re-reads the file.
  void Invalidate();

 private:
  TokenSource(std::string token, std::string path, absl::Duration max_age, Clock clock);

  const std::string path_;  // empty for a fixed token
  const absl::Duration max_age_;
  const Clock clock_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace sluice::kube

#endif  // SLUICE_PKG_KUBE_TOKEN_SOURCE_H_
