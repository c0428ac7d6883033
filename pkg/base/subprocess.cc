#include "pkg/base/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sluice::base {
namespace {

// What the child reports through the exec-error pipe when it cannot become the program.
struct ChildFailure {
  int32_t stage;  // kStageChdir or kStageExec
  int32_t error;  // errno
};
constexpr int32_t kStageChdir = 1;
constexpr int32_t kStageExec = 2;

// Closes a file descriptor once, on every path.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return true;
}

// Waits for `pid` until `deadline`, killing it then; returns its wait status.
int Reap(pid_t pid, absl::Time deadline, bool* timed_out) {
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) return status;
    if (absl::Now() >= deadline) {
      *timed_out = true;
      kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

}  // namespace

absl::StatusOr<SubprocessResult> RunSubprocess(const SubprocessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("no program to run");
  }
  const std::string& program = options.argv[0];
  // Everything the child needs is made before fork: after it, a child of a threaded process may
  // only make async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const char* directory =
      options.working_directory.empty() ? nullptr : options.working_directory.c_str();

  Fd out_read, out_write, err_read, err_write, failure_read, failure_write;
  Fd null_input(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!MakePipe(&out_read, &out_write) || !MakePipe(&err_read, &err_write) ||
      !MakePipe(&failure_read, &failure_write) || null_input.get() < 0) {
    return absl::InternalError(
        absl::StrCat("cannot make pipes for ", program, ": ", strerror(errno)));
  }
  const absl::Time deadline = absl::Now() + options.timeout;
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("cannot start ", program, ": ", strerror(errno)));
  }
  if (pid == 0) {
    // sluice ignores SIGPIPE, and blocks SIGTERM and SIGINT in every thread to take them on one
    // of its own (cli::RouteStopSignals); ignored and blocked signals stay so across exec, so
    // restore both.
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ChildFailure failure{kStageChdir, 0};
    if (directory != nullptr && chdir(directory) != 0) {
      failure.error = errno;
    } else if (dup2(null_input.get(), 0) < 0 || dup2(out_write.get(), 1) < 0 ||
               dup2(err_write.get(), 2) < 0) {
      failure = {kStageExec, errno};
    } else {
      execvp(argv[0], argv.data());
      failure = {kStageExec, errno};
    }
    // The pipe holds far more than these 8 bytes: the write does not block.
    const ssize_t written = write(failure_write.get(), &failure, sizeof(failure));
    _exit(written == static_cast<ssize_t>(sizeof(failure)) ? 127 : 126);
  }
  out_write.Close();
  err_write.Close();
  failure_write.Close();
  null_input.Close();

  // The failure pipe closes on a successful exec (O_CLOEXEC) or carries why there was none.
  ChildFailure failure{0, 0};
  ssize_t got = 0;
  do {
    got = read(failure_read.get(), &failure, sizeof(failure));
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof(failure))) {
    bool timed_out = false;
    Reap(pid, deadline, &timed_out);
    if (failure.stage == kStageChdir) {
      return absl::InvalidArgumentError(absl::StrCat("cannot run ", program, " in ",
                                                     options.working_directory, ": ",
                                                     strerror(failure.error)));
    }
    return absl::NotFoundError(absl::StrCat("cannot run ", program, ": ", strerror(failure.error)));
  }

  SubprocessResult result;
  pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  bool too_much = false;
  bool timed_out = false;
  char buffer[65536];
  while ((fds[0].fd >= 0 || fds[1].fd >= 0) && !too_much) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    const int ready =
        poll(fds, 2,
             static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60 * 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      kill(pid, SIGKILL);
      bool unused = false;
      Reap(pid, deadline, &unused);
      return absl::InternalError(
          absl::StrCat("reading the output of ", program, ": ", strerror(errno)));
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;  // end of file (or an error: nothing more will come)
        continue;
      }
      sinks[i]->append(buffer, static_cast<size_t>(n));
      if (sinks[i]->size() > options.max_output_bytes) too_much = true;
    }
  }
  if (timed_out || too_much) kill(pid, SIGKILL);
  const int status = Reap(pid, deadline, &timed_out);
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        program, " did not finish within ", absl::FormatDuration(options.timeout), "; stopped it"));
  }
  if (too_much) {
    return absl::ResourceExhaustedError(absl::StrCat(
        program, " wrote more than ", options.max_output_bytes, " bytes of output; stopped it"));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace sluice::base
