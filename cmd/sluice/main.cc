// The `sluice` binary: everything lives in pkg/cli; main only prepares the process.
#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pkg/cli/app.h"
#include "pkg/cli/stop_signals.h"

int main(int argc, char** argv) {
  // A write to a connection the server closed must fail with an error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  std::ios::sync_with_stdio(false);
  // Before any thread starts: threads inherit the signal mask it sets.
  std::shared_ptr<sluice::base::StopRequest> stop = sluice::cli::RouteStopSignals();
  const std::vector<std::string> args(argv + 1, argv + argc);
  const int exit_code =
      sluice::cli::Run(args, std::cout, sluice::cli::ProcessEnvironment(), std::move(stop));
  std::cout.flush();
  return exit_code;
}
