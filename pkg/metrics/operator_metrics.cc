// OperatorMetrics on prometheus-cpp's core: a private registry (no process-wide default, so two
// operators in one test process do not share counters) and its text serializer.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <memory>
#include <sstream>
#include <string>

#include "absl/time/time.h"
#include "pkg/metrics/metrics.h"

namespace sluice::metrics {
namespace {

// A run is a few statements or an hour-long backfill: 50 ms up to 1 h, roughly doubling.
prometheus::Histogram::BucketBoundaries RunDurationBuckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600};
}

// Lock waits are usually immediate; a long one means another runner holds the migration lock
// (bounded by lock_timeout, minutes at most).
prometheus::Histogram::BucketBoundaries LockWaitBuckets() {
  return {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300};
}

}  // namespace

struct OperatorMetrics::Impl {
  // The registry owns the families and series that the references below point at; declared first,
  // it is built before them.
  prometheus::Registry registry;

  prometheus::Family<prometheus::Counter>& runs =
      prometheus::BuildCounter()
          .Name("sluice_operator_runs_total")
          .Help("Migration runs finished by the operator, by outcome.")
          .Register(registry);
  prometheus::Counter& applied_revisions = prometheus::BuildCounter()
                                               .Name("sluice_operator_applied_revisions_total")
                                               .Help("Revisions applied by the operator's runs.")
                                               .Register(registry)
                                               .Add({});
  prometheus::Family<prometheus::Counter>& failures =
      prometheus::BuildCounter()
          .Name("sluice_operator_failures_total")
          .Help("Failures seen by the operator, by failure kind or configuration problem.")
          .Register(registry);
  prometheus::Histogram& run_duration =
      prometheus::BuildHistogram()
          .Name("sluice_operator_run_duration_seconds")
          .Help("Wall-clock duration of the operator's migration runs.")
          .Register(registry)
          .Add({}, RunDurationBuckets());
  prometheus::Histogram& lock_wait =
      prometheus::BuildHistogram()
          .Name("sluice_operator_lock_wait_seconds")
          .Help("Time runs waited for the database's migration lock.")
          .Register(registry)
          .Add({}, LockWaitBuckets());
  prometheus::Gauge& leader = prometheus::BuildGauge()
                                  .Name("sluice_operator_leader")
                                  .Help("1 while this operator replica holds the leader lease.")
                                  .Register(registry)
                                  .Add({});
  prometheus::Gauge& queue_depth = prometheus::BuildGauge()
                                       .Name("sluice_operator_queue_depth")
                                       .Help("MigrationJobs waiting to be reconciled.")
                                       .Register(registry)
                                       .Add({});
  prometheus::Gauge& running = prometheus::BuildGauge()
                                   .Name("sluice_operator_running_runs")
                                   .Help("Migration runs in progress.")
                                   .Register(registry)
                                   .Add({});
};

OperatorMetrics::OperatorMetrics() : impl_(std::make_unique<Impl>()) {}
OperatorMetrics::~OperatorMetrics() = default;

void OperatorMetrics::RecordRun(const std::string& outcome, absl::Duration duration) {
  // Family::Add returns the existing series for labels already seen, under the family's lock.
  impl_->runs.Add({{"outcome", outcome}}).Increment();
  impl_->run_duration.Observe(absl::ToDoubleSeconds(duration));
}

void OperatorMetrics::AddAppliedRevisions(int64_t count) {
  // Counters only go up; a negative count is a caller's bug and is dropped.
  if (count > 0) impl_->applied_revisions.Increment(static_cast<double>(count));
}

void OperatorMetrics::RecordFailure(const std::string& kind) {
  impl_->failures.Add({{"kind", kind}}).Increment();
}

void OperatorMetrics::ObserveLockWait(absl::Duration wait) {
  impl_->lock_wait.Observe(absl::ToDoubleSeconds(wait));
}

void OperatorMetrics::SetLeader(bool leader) { impl_->leader.Set(leader ? 1 : 0); }

void OperatorMetrics::SetQueueDepth(int64_t depth) {
  impl_->queue_depth.Set(static_cast<double>(depth));
}

void OperatorMetrics::SetRunning(int64_t running) {
  impl_->running.Set(static_cast<double>(running));
}

std::string OperatorMetrics::RenderText() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry.Collect());
  return out.str();
}

}  // namespace sluice::metrics
