// Leader election against the fake API server, with short timings (lease 1.5 s, renew deadline
// 1 s, retry period 200 ms): acquiring a missing Lease, one leader among two, release and crash
// takeovers, losing the Lease, a prompt Stop(), and the options' validation.
#include "pkg/kube/leader_election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pkg/base/log.h"
#include "pkg/kube/client.h"
#include "pkg/kube/test_client.h"
#include "tests/support/fake_kube/fake_kube_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/stopwatch.h"

namespace sluice::kube {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::sluice::testing::Stopwatch;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Optional;

constexpr absl::Duration kLeaseDuration = absl::Milliseconds(1500);
constexpr absl::Duration kRenewDeadline = absl::Seconds(1);
constexpr absl::Duration kRetryPeriod = absl::Milliseconds(200);
constexpr absl::Duration kWait = absl::Seconds(5);
const ObjectRef kLease{"apps", "sluice-operator"};
// RFC 3339 with 6 fractional digits (gtest's POSIX regex has no \d).
constexpr char kMicroTime[] = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z";

// One replica: its elector and what its callbacks were told.
class Replica {
 public:
  Replica(Client& client, const std::string& identity) : identity_(identity) {
    LeaderElectionOptions options;
    options.lease = kLease;
    options.identity = identity;
    options.lease_duration = kLeaseDuration;
    options.renew_deadline = kRenewDeadline;
    options.retry_period = kRetryPeriod;
    elector_ = std::make_unique<LeaderElector>(
        client, options,
        [this] {
          absl::MutexLock lock(&mu_);
          ++started_;
        },
        [this] {
          absl::MutexLock lock(&mu_);
          ++stopped_;
        });
  }

  LeaderElector& elector() { return *elector_; }
  const std::string& identity() const { return identity_; }

  // Waits up to `timeout` for on_started_leading; returns whether it ran.
  bool WaitStarted(absl::Duration timeout) { return WaitFor(&started_, timeout); }
  bool WaitStopped(absl::Duration timeout) { return WaitFor(&stopped_, timeout); }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  int stopped() {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }

 private:
  bool WaitFor(int* counter, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto positive = [counter]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return *counter > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&positive), timeout);
  }

  const std::string identity_;
  absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  int stopped_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<LeaderElector> elector_;
};

class LeaderElectionTest : public fake_kube::FakeKubeFixture {
 protected:
  void SetUp() override {
    FakeKubeFixture::SetUp();
    if (HasFatalFailure()) return;
    log::SetSinkForTest(&log_);
    client_ = NewTestClient(WriteKubeconfig(), FastClientOptions(absl::Seconds(2)));
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    client_.reset();
    log::SetSinkForTest(nullptr);
    FakeKubeFixture::TearDown();
  }

  Lease GetLease() {
    absl::StatusOr<Lease> lease = client_->GetLease(kLease, absl::Now() + kWait);
    EXPECT_THAT(lease.status(), IsOk());
    return lease.ok() ? *lease : Lease();
  }

  // Starts replica a and waits until it leads.
  void StartLeaderA() {
    a_ = std::make_unique<Replica>(*client_, "replica-a");
    a_->elector().Start();
    ASSERT_TRUE(a_->WaitStarted(kWait));
  }

  // Starts replica b as a standby and lets it observe a's renewals for a while.
  void StartStandbyB() {
    b_ = std::make_unique<Replica>(*client_, "replica-b");
    b_->elector().Start();
    absl::SleepFor(3 * kRetryPeriod);
    ASSERT_FALSE(b_->elector().IsLeader());
  }

  std::unique_ptr<Client> client_;
  std::unique_ptr<Replica> a_;
  std::unique_ptr<Replica> b_;
  std::ostringstream log_;
};

TEST_F(LeaderElectionTest, AcquiresMissingLeaseAndRenewsIt) {
  StartLeaderA();
  EXPECT_TRUE(a_->elector().IsLeader());
  const Lease lease = GetLease();
  EXPECT_EQ(lease.spec.holder_identity, "replica-a");
  EXPECT_EQ(lease.spec.lease_duration_seconds, 2);  // 1.5 s rounded up
  EXPECT_EQ(lease.spec.lease_transitions, 0);
  EXPECT_THAT(lease.spec.acquire_time, Optional(MatchesRegex(kMicroTime)));
  EXPECT_THAT(log_.str(), HasSubstr("acquired the leader election Lease"));

  // Renewals move renewTime, keep acquireTime.
  Stopwatch watch;
  Lease renewed;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    renewed = GetLease();
  } while (renewed.spec.renew_time == lease.spec.renew_time && watch.Elapsed() < kWait);
  EXPECT_NE(renewed.spec.renew_time, lease.spec.renew_time);
  EXPECT_EQ(renewed.spec.acquire_time, lease.spec.acquire_time);
  EXPECT_EQ(renewed.spec.holder_identity, "replica-a");

  // Stop(false), as a crash: the Lease stays ours until it expires.
  a_->elector().Stop(false);
  EXPECT_FALSE(a_->elector().IsLeader());
  EXPECT_EQ(GetLease().spec.holder_identity, "replica-a");
  EXPECT_EQ(a_->started(), 1);
  EXPECT_EQ(a_->stopped(), 0);
}

TEST_F(LeaderElectionTest, ReleaseGivesLeaseUp) {
  StartLeaderA();
  a_->elector().Stop(true);
  a_->elector().Stop(true);  // idempotent
  EXPECT_FALSE(a_->elector().IsLeader());
  const Lease lease = GetLease();
  EXPECT_EQ(lease.spec.holder_identity, "");
  EXPECT_EQ(lease.spec.lease_duration_seconds, 1);
  EXPECT_EQ(lease.spec.lease_transitions, 0);
  EXPECT_EQ(a_->stopped(), 0);  // Stop() calls no callback
  EXPECT_THAT(log_.str(), HasSubstr("released the leader election Lease"));
}

TEST_F(LeaderElectionTest, TwoElectorsExactlyOneLeads) {
  a_ = std::make_unique<Replica>(*client_, "replica-a");
  b_ = std::make_unique<Replica>(*client_, "replica-b");
  a_->elector().Start();
  b_->elector().Start();
  Stopwatch watch;
  while (!a_->elector().IsLeader() && !b_->elector().IsLeader() && watch.Elapsed() < kWait) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Over a lease duration (several renewals), exactly one leads at every sample, always the same.
  watch.Restart();
  const bool a_leads = a_->elector().IsLeader();
  while (watch.Elapsed() < kLeaseDuration) {
    const bool a = a_->elector().IsLeader();
    const bool b = b_->elector().IsLeader();
    ASSERT_NE(a, b) << "at " << watch.Elapsed();
    ASSERT_EQ(a, a_leads);
    absl::SleepFor(absl::Milliseconds(10));
  }
  Replica& leader = a_leads ? *a_ : *b_;
  Replica& standby = a_leads ? *b_ : *a_;
  EXPECT_EQ(GetLease().spec.holder_identity, leader.identity());
  EXPECT_EQ(leader.started(), 1);
  EXPECT_EQ(standby.started(), 0);
  EXPECT_EQ(leader.stopped() + standby.stopped(), 0);
}

TEST_F(LeaderElectionTest, StandbyTakesReleasedLeaseAtOnce) {
  StartLeaderA();
  const Lease before = GetLease();
  StartStandbyB();
  Stopwatch watch;
  a_->elector().Stop(true);
  ASSERT_TRUE(b_->WaitStarted(kWait));
  // A standby tries every retry period, jittered by up to 1.2 more.
  EXPECT_LT(watch.Elapsed(), 2.2 * kRetryPeriod + absl::Milliseconds(400));
  EXPECT_TRUE(b_->elector().IsLeader());
  const Lease lease = GetLease();
  EXPECT_EQ(lease.spec.holder_identity, "replica-b");
  EXPECT_EQ(lease.spec.lease_duration_seconds, 2);
  EXPECT_EQ(lease.spec.lease_transitions, 1);
  EXPECT_NE(lease.spec.acquire_time, before.spec.acquire_time);
}

TEST_F(LeaderElectionTest, StandbyTakesCrashedLeadersLeaseAfterLeaseDuration) {
  StartLeaderA();
  StartStandbyB();
  Stopwatch watch;
  a_->elector().Stop(false);
  ASSERT_TRUE(b_->WaitStarted(kWait));
  // a renewed at most a retry period before it stopped; b waits the record's 2 s from when it
  // saw that renewal, plus up to one jittered retry period.
  EXPECT_GE(watch.Elapsed(), kLeaseDuration);
  EXPECT_LT(watch.Elapsed(), absl::Seconds(2) + 2.2 * kRetryPeriod + absl::Milliseconds(500));
  const Lease lease = GetLease();
  EXPECT_EQ(lease.spec.holder_identity, "replica-b");
  EXPECT_EQ(lease.spec.lease_transitions, 1);
  EXPECT_THAT(log_.str(), HasSubstr("the leader election Lease expired; taking it over"));
}

TEST_F(LeaderElectionTest, LeaderStopsLeadingWhenAnotherOverwritesTheLease) {
  StartLeaderA();
  // Another writer takes the Lease over for a long time (retrying races with a's renewals).
  Stopwatch watch;
  absl::Status written;
  do {
    Lease lease = GetLease();
    lease.spec.holder_identity = "intruder";
    lease.spec.lease_duration_seconds = 30;
    written = client_->UpdateLease(lease, absl::Now() + kWait).status();
  } while (absl::IsAborted(written) && watch.Elapsed() < kWait);
  ASSERT_THAT(written, IsOk());
  watch.Restart();
  ASSERT_TRUE(a_->WaitStopped(kWait));
  EXPECT_LE(watch.Elapsed(), kRenewDeadline + absl::Milliseconds(300));
  EXPECT_FALSE(a_->elector().IsLeader());
  EXPECT_THAT(log_.str(), HasSubstr("lost the leader election Lease"));
  // It does not try again, and left the intruder's record alone.
  absl::SleepFor(2 * kRetryPeriod);
  EXPECT_EQ(a_->started(), 1);
  EXPECT_EQ(GetLease().spec.holder_identity, "intruder");
  a_->elector().Stop(true);  // not the holder: releases nothing
  EXPECT_EQ(GetLease().spec.holder_identity, "intruder");
}

TEST_F(LeaderElectionTest, LeaderStopsLeadingWhenRenewalsFail) {
  StartLeaderA();
  fake_kube::Fault fault;
  fault.method = "PUT";
  fault.path_contains = "/leases/";
  fault.times = 1000;
  fault.http_code = 500;
  server().InjectFault(fault);
  Stopwatch watch;
  ASSERT_TRUE(a_->WaitStopped(kWait));
  // Renewals happened at most a retry period before the fault; the renew deadline bounds each
  // call, so a failing server cannot stretch it.
  EXPECT_LE(watch.Elapsed(), kRenewDeadline + absl::Milliseconds(300));
  EXPECT_FALSE(a_->elector().IsLeader());
  server().ClearFaults();
}

TEST_F(LeaderElectionTest, StopWakesAWaitingStandbyAtOnce) {
  ASSERT_THAT(server()
                  .CreateObject("leases", "apps", R"({
    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
    "metadata": {"name": "sluice-operator", "namespace": "apps"},
    "spec": {"holderIdentity": "other", "leaseDurationSeconds": 3600}})")
                  .status(),
              IsOk());
  LeaderElectionOptions options;
  options.lease = kLease;
  options.identity = "replica-a";  // client-go's defaults: retries every 2 s or more
  LeaderElector elector(*client_, options, nullptr, nullptr);
  elector.Start();
  ASSERT_TRUE(server().WaitUntil(
      [&] {
        for (const auto& r : server().Requests()) {
          if (r.method == "GET" && r.path.find("/leases/") != std::string::npos) return true;
        }
        return false;
      },
      kWait));
  absl::SleepFor(absl::Milliseconds(100));
  Stopwatch watch;
  elector.Stop(true);
  EXPECT_LT(watch.Elapsed(), absl::Milliseconds(300));
  EXPECT_FALSE(elector.IsLeader());
  EXPECT_EQ(GetLease().spec.holder_identity, "other");
}

TEST(LeaderElectionOptionsTest, Validates) {
  LeaderElectionOptions valid;
  valid.lease = kLease;
  valid.identity = "replica-a";
  EXPECT_THAT(ValidateLeaderElectionOptions(valid), IsOk());  // client-go's defaults

  LeaderElectionOptions o = valid;
  o.renew_deadline = absl::Milliseconds(2410);  // just above 1.2 x 2 s
  EXPECT_THAT(ValidateLeaderElectionOptions(o), IsOk());
  o.renew_deadline = absl::Milliseconds(2400);
  EXPECT_THAT(ValidateLeaderElectionOptions(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--leader-election-renew-deadline (2.4s) must be greater than 1.2 x "
                       "--leader-election-retry-period (2s)"));

  o = valid;
  o.lease_duration = o.renew_deadline;
  EXPECT_THAT(ValidateLeaderElectionOptions(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--leader-election-lease-duration (10s) must be greater than "
                       "--leader-election-renew-deadline (10s)"));

  o = valid;
  o.retry_period = absl::ZeroDuration();
  EXPECT_THAT(ValidateLeaderElectionOptions(o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--leader-election-retry-period (0) must be greater than 0"));

  o = valid;
  o.lease = {};
  o.identity.clear();
  const absl::Status unnamed = ValidateLeaderElectionOptions(o);
  EXPECT_THAT(unnamed, StatusIs(absl::StatusCode::kInvalidArgument, "--leader-election-namespace"));
  EXPECT_THAT(unnamed, StatusIs(absl::StatusCode::kInvalidArgument, "--leader-election-id"));
  EXPECT_THAT(unnamed, StatusIs(absl::StatusCode::kInvalidArgument, "identity is empty"));
}

}  // namespace
}  // namespace sluice::kube
