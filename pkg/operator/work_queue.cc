#include "pkg/operator/work_queue.h"

#include <algorithm>
#include <cmath>

#include "absl/time/clock.h"

namespace sluice::operator_ {

WorkQueue::WorkQueue(absl::Duration initial_retry, absl::Duration max_retry)
    : initial_retry_(initial_retry), max_retry_(max_retry) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shut_down_ || !dirty_.insert(key).second) return;
  delayed_.erase(key);
  if (processing_.count(key) == 0) queue_.push_back(key);
}

void WorkQueue::Add(const std::string& key) {
  absl::MutexLock lock(&mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  if (delay <= absl::ZeroDuration()) {
    AddLocked(key);
    return;
  }
  if (dirty_.count(key) != 0) return;  // queued already: sooner than asked
  const absl::Time due = absl::Now() + delay;
  auto [it, inserted] = delayed_.emplace(key, due);
  if (!inserted) it->second = std::min(it->second, due);
  ++delayed_version_;
}

absl::Duration WorkQueue::AddRateLimited(const std::string& key) {
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    const int failures = failures_[key]++;
    // initial * 2^failures, without overflowing for many failures.
    delay = failures >= 30 ? max_retry_
                           : std::min(max_retry_, initial_retry_ * std::ldexp(1.0, failures));
  }
  AddAfter(key, delay);
  return delay;
}

void WorkQueue::Forget(const std::string& key) {
  absl::MutexLock lock(&mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

absl::Time WorkQueue::PromoteDueLocked(absl::Time now) {
  absl::Time earliest = absl::InfiniteFuture();
  for (auto it = delayed_.begin(); it != delayed_.end();) {
    if (it->second <= now) {
      const std::string key = it->first;
      it = delayed_.erase(it);
      AddLocked(key);
    } else {
      earliest = std::min(earliest, it->second);
      ++it;
    }
  }
  return earliest;
}

std::optional<std::string> WorkQueue::Get() {
  absl::MutexLock lock(&mu_);
  while (true) {
    if (shut_down_) return std::nullopt;
    const absl::Time next_due = PromoteDueLocked(absl::Now());
    if (!queue_.empty()) {
      std::string key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    const int version = delayed_version_;
    auto changed = [this, version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shut_down_ || !queue_.empty() || delayed_version_ != version;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), next_due);
  }
}

void WorkQueue::Done(const std::string& key) {
  absl::MutexLock lock(&mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shut_down_) queue_.push_back(key);
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  queue_.clear();
  delayed_.clear();
}

int WorkQueue::Len() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int WorkQueue::Delayed() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(delayed_.size());
}

int WorkQueue::Processing() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(processing_.size());
}

}  // namespace sluice::operator_
