// SIGTERM and SIGINT as requests to stop a run cleanly: a pod being deleted, or Ctrl-C.
#ifndef SLUICE_PKG_CLI_STOP_SIGNALS_H_
#define SLUICE_PKG_CLI_STOP_SIGNALS_H_

#include <memory>

#include "pkg/base/stop_request.h"

namespace sluice::cli {

// Blocks SIGTERM and SIGINT in the calling thread and takes them on a thread of its own, so call
// it in main before any other thread starts (threads inherit the mask). While a run has taken up
// the returned request (base::StopRequest: the engine, a lint): the first signal stops it at the
// next safe point (before the next revision; a wait for the lock at once), the second also cancels
// the statement under way, a third ends the process at once. With no run under way, a signal ends
// the process at once, as it would without this. The exit code is 128 + the signal's number.
std::shared_ptr<base::StopRequest> RouteStopSignals();

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_STOP_SIGNALS_H_
