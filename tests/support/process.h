// Runs child processes for tests: the `sluice` binary, psql, scripts. Output is captured through
// temporary files so that many children can run at once without pipes filling up.
#ifndef SLUICE_TESTS_SUPPORT_PROCESS_H_
#define SLUICE_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace sluice::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Returns how the child ended and what it wrote, for failure messages.
std::string Describe(const ProcessResult& result);

// A started child process.
class Process {
 public:
  // Starts `argv` with the current environment plus `env` (a value of "" unsets the variable).
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  Process(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // kills and reaps a child still running

  pid_t pid() const { return pid_; }
  // Sends `signal` to the child.
  void Kill(int signal);
  // Waits up to `timeout` (then kills the child with SIGKILL) and returns what it did.
  ProcessResult Wait(absl::Duration timeout = absl::Seconds(120));
  // Returns what the child has written to stdout so far.
  std::string OutputSoFar() const;
  std::string ErrorsSoFar() const;

 private:
  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
  bool reaped_ = false;
};

// Runs `argv` to completion.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         absl::Duration timeout = absl::Seconds(120));

}  // namespace sluice::testing

#endif  // SLUICE_TESTS_SUPPORT_PROCESS_H_
