// The `sluice` commands of product.md, wired to the modules that do the work. This is the
// composition root: the only place that picks concrete implementations.
#ifndef SLUICE_PKG_CLI_APP_H_
#define SLUICE_PKG_CLI_APP_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "pkg/base/stop_request.h"
#include "pkg/cli/flags.h"

namespace sluice::cli {

// Runs the command line `args` (without the program name), writing results to `out` and logs to
// stderr. Returns the process exit code (failure::ExitCode). Runs that take the migration lock
// stop cleanly when `stop` asks them to (see RouteStopSignals).
//
// Example:
//   return sluice::cli::Run({argv + 1, argv + argc}, std::cout, ProcessEnvironment(),
//                           RouteStopSignals());
int Run(const std::vector<std::string>& args, std::ostream& out, const EnvLookup& env,
        std::shared_ptr<base::StopRequest> stop = nullptr);

}  // namespace sluice::cli

#endif  // SLUICE_PKG_CLI_APP_H_
