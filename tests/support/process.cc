#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sluice::testing {
namespace {

std::string TempPath(absl::string_view what) {
  static std::atomic<int> counter{0};
  return absl::StrCat("/tmp/sluice-test-", getpid(), "-", counter++, "-", what);
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

Process::Process(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& env)
    : out_path_(TempPath("out")), err_path_(TempPath("err")) {
  const int out = open(out_path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  const int err = open(err_path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    for (const auto& [name, value] : env) {
      if (value.empty()) {
        unsetenv(name.c_str());
      } else {
        setenv(name.c_str(), value.c_str(), 1);
      }
    }
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out, 1);
    dup2(err, 2);
    // The child keeps nothing else of the test process: a listening socket it inherited (the
    // fake API server's, which cpprest does not open with CLOEXEC) would keep the port bound
    // after the server closes it, and a restarted server could not listen there again.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 65536; ++fd) close(fd);
    }
    execvp(args[0], args.data());
    dprintf(2, "exec %s failed\n", args[0]);
    _exit(127);
  }
  close(out);
  close(err);
}

Process::Process(Process&& other) noexcept
    : pid_(other.pid_),
      out_path_(std::move(other.out_path_)),
      err_path_(std::move(other.err_path_)),
      reaped_(other.reaped_) {
  other.pid_ = -1;
  other.reaped_ = true;
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!out_path_.empty()) unlink(out_path_.c_str());
  if (!err_path_.empty()) unlink(err_path_.c_str());
}

void Process::Kill(int signal) {
  if (pid_ > 0 && !reaped_) kill(pid_, signal);
}

ProcessResult Process::Wait(absl::Duration timeout) {
  ProcessResult result;
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (!reaped_) {
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      break;
    }
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      reaped_ = true;
      result.timed_out = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (WIFEXITED(status) && !result.timed_out) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.out = ReadFile(out_path_);
  result.err = ReadFile(err_path_);
  return result;
}

std::string Process::OutputSoFar() const { return ReadFile(out_path_); }
std::string Process::ErrorsSoFar() const { return ReadFile(err_path_); }

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env, absl::Duration timeout) {
  return Process(argv, env).Wait(timeout);
}

std::string Describe(const ProcessResult& result) {
  return absl::StrCat("exit ", result.exit_code, " signal ", result.signal, " timed out ",
                      result.timed_out, "\nstdout:\n", result.out, "\nstderr:\n", result.err);
}

}  // namespace sluice::testing
