#include "pkg/cli/stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "pkg/base/log.h"

namespace sluice::cli {

std::shared_ptr<base::StopRequest> RouteStopSignals() {
  auto stop = std::make_shared<base::StopRequest>();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Detached: it waits for signals until the process exits, which does not wait for it.
  std::thread([stop, signals] {
    for (int received = 0;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      ++received;
      const char* name = signal == SIGTERM ? "SIGTERM" : "SIGINT";
      if (!stop->taken_up() || received >= 3) std::_Exit(128 + signal);
      if (received == 1) {
        log::Warning(absl::StrCat(name, ": stopping before the next revision; a second ", name,
                                  " cancels the statement under way"));
        stop->Stop();
      } else {
        log::Warning(absl::StrCat(name, ": cancelling the statement under way"));
        stop->Cancel();
      }
    }
  }).detach();
  return stop;
}

}  // namespace sluice::cli
