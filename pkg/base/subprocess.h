// Runs a child process to completion and captures what it writes: for commands that hand work to
// another program (`sluice import alembic` runs Python). The program and its arguments are passed
// to execvp as they are, never through a shell. Thread-compatible; the child inherits the
// environment.
#ifndef SLUICE_PKG_BASE_SUBPROCESS_H_
#define SLUICE_PKG_BASE_SUBPROCESS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sluice::base {

struct SubprocessOptions {
  // argv[0] is the program: a path, or a name looked up on PATH.
  std::vector<std::string> argv;
  // Where the child runs; empty: the current directory.
  std::string working_directory;
  // The child is killed (SIGKILL) when it runs longer.
  absl::Duration timeout = absl::Minutes(10);
  // Output past this many bytes (stdout and stderr each) fails the run; bounds memory.
  size_t max_output_bytes = size_t{256} << 20;
};

struct SubprocessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended the child, else 0
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr

  bool ok() const { return exit_code == 0; }
};

// Runs `options.argv` with stdin from /dev/null and returns how it ended and what it wrote.
// Returns kNotFound when the program does not exist or cannot be executed (naming it),
// kInvalidArgument when the working directory cannot be entered, kDeadlineExceeded when it ran past
// the timeout, kResourceExhausted when it wrote too much, kInternal when the process could not be
// made. A child that exits non-zero is not an error here: the result says so.
//
// Example:
//   SubprocessOptions options;
//   options.argv = {"python3", "-c", "print(1)"};
//   SLUICE_ASSIGN_OR_RETURN(SubprocessResult result, RunSubprocess(options));
absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options);

}  // namespace sluice::base

#endif  // SLUICE_PKG_BASE_SUBPROCESS_H_
