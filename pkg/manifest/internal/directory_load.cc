// LoadDirectories reads and parses files on a few threads and merges their migrations and errors
// in file order, so that its result is the same as reading the files one after another.
#include "pkg/manifest/internal/directory_load.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "pkg/manifest/internal/diagnostics.h"
#include "pkg/manifest/internal/manifest_schema.h"

namespace sluice::manifest::internal {
namespace {

namespace fs = std::filesystem;

// A build for bench/manifest_reader_bench.sh only (no product build defines the macro) reads the
// files one after another, to measure what the threads save.
#ifdef SLUICE_MANIFEST_BENCH_NO_LOAD_THREADS
constexpr bool kUseLoadThreads = false;
#else
constexpr bool kUseLoadThreads = true;
#endif

// Returns the text of an errno value. strerror is not thread-safe; strerror_r comes in two
// flavours, GNU's returning the text and XSI's writing it to the buffer.
[[maybe_unused]] const char* StrerrorText(const char* text, const char* /*buffer*/) { return text; }
[[maybe_unused]] const char* StrerrorText(int /*status*/, const char* buffer) { return buffer; }
std::string ErrnoText(int error) {
  char buffer[256] = "";
  return StrerrorText(strerror_r(error, buffer, sizeof(buffer)), buffer);
}

// A file descriptor, closed with its owner.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { Reset(-1); }

  // Opens `path` for reading; returns whether that worked (errno says why not).
  bool Open(const std::string& path) {
    Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    return fd_ >= 0;
  }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// Reads a whole file into `buffer` (which keeps its storage from file to file), setting `*size`;
// opens it unless `file` already is. Returns false (and reports) on failure.
bool ReadFile(const std::string& path, FileDescriptor* file, std::vector<char>* buffer,
              size_t* size, Errors* errors) {
  if (file->get() < 0 && !file->Open(path)) {
    errors->Add(path, Position{},
                absl::StrCat("cannot open the file: ", ErrnoText(errno),
                             "; check that it exists and is readable by this user"));
    return false;
  }
  *size = 0;
  while (true) {
    if (buffer->size() - *size < 4096) {
      buffer->resize(std::max<size_t>(64 * 1024, 2 * buffer->size()));
    }
    const ssize_t n = ::read(file->get(), buffer->data() + *size, buffer->size() - *size);
    if (n > 0) {
      *size += static_cast<size_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      errors->Add(path, Position{},
                  absl::StrCat("cannot read the file: ", ErrnoText(errno),
                               "; check that it is a readable regular file"));
      return false;
    }
  }
  file->Reset(-1);
  return true;
}

bool HasManifestExtension(absl::string_view name) {
  return absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml");
}

// A manifest file's name in its directory.
struct ListedName {
  std::string name;
  // Whether the directory entry says the name is a regular file (not a link), so that its status
  // need not be asked. False when it does not know.
  bool regular = false;

  bool operator<(const ListedName& other) const { return name < other.name; }
};

// Returns a std::filesystem error's message for `error`, as std::filesystem words it.
std::string FilesystemErrorText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

// Lists the manifest files of one directory, in name order, reporting what cannot be listed (as
// std::filesystem::directory_iterator would). Each is then checked by CheckManifestFile.
std::vector<ListedName> ListManifestNames(const std::string& directory, Errors* errors) {
  std::error_code ec;
  const fs::file_status status = fs::status(directory, ec);
  if (ec || !fs::exists(status)) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot open the migrations directory: ",
                             ec ? ec.message() : "it does not exist",
                             "; check the path (and, in a pod, the ConfigMap volume mount)"));
    return {};
  }
  if (!fs::is_directory(status)) {
    errors->Add(directory, Position{},
                "is not a directory; give the directory that holds the manifests, not a file");
    return {};
  }
  const auto cannot_list = [&](int error) {
    errors->Add(directory, Position{},
                absl::StrCat("cannot list the migrations directory: ", FilesystemErrorText(error),
                             "; check its permissions"));
  };
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(directory.c_str()), ::closedir);
  if (dir == nullptr) {
    cannot_list(errno);
    return {};
  }
  std::vector<ListedName> names;
  while (true) {
    errno = 0;
    const dirent* const entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno == 0) break;
      cannot_list(errno);
      return {};
    }
    const absl::string_view name = entry->d_name;
    // Dotfiles include `.` and `..`, and a mounted ConfigMap's `..data` and `..2026_...` entries,
    // which would otherwise be read a second time through the `..data` link.
    if (name.empty() || name[0] == '.' || !HasManifestExtension(name)) continue;
    names.push_back(ListedName{std::string(name), entry->d_type == DT_REG});
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Returns `directory`/`name` as std::filesystem's operator/ spells it (on POSIX, for a plain
// name), without its parsing of both: a separator is added unless `directory` is empty or ends
// with one.
std::string JoinPath(const std::string& directory, const std::string& name) {
  if (directory.empty()) return name;
  return absl::StrCat(directory, directory.back() == '/' ? "" : "/", name);
}

// Returns whether the listed `path` is a file to read, reporting what makes it unreadable.
bool CheckManifestFile(const std::string& path, Errors* errors) {
  // status() follows symbolic links: a ConfigMap key is a link to `..data/<key>`.
  std::error_code ec;
  const fs::file_status entry = fs::status(path, ec);
  if (ec || !fs::exists(entry)) {
    errors->Add(path, Position{},
                absl::StrCat("cannot open the file: ", ec ? ec.message() : "it does not exist",
                             "; fix or remove the broken symbolic link"));
    return false;
  }
  if (fs::is_directory(entry)) return false;  // a directory named `x.yaml`: no recursion
  if (!fs::is_regular_file(entry)) {
    // Reading a FIFO or a device could block forever.
    errors->Add(path, Position{},
                "is not a regular file (a pipe, socket or device); remove it from the "
                "migrations directory");
    return false;
  }
  return true;
}

// Most threads LoadDirectories reads files on; past a few, the merging and the disk limit it.
constexpr unsigned kMaxLoadThreads = 8;

// A part of a load's output, which must appear in the order of the parts: a directory's listing
// problems, then each listed file's problems as a directory entry (a broken link, a pipe), then
// each file's migrations and problems.
struct LoadPart {
  Errors errors;
  std::vector<Migration> migrations;
  std::exception_ptr exception;  // what making the part threw
};

// Takes the parts of a load as they are made, in any order, and appends them to the load's output
// in order, as soon as every earlier part is made (so made parts do not pile up).
class InOrderMerger {
 public:
  InOrderMerger(std::vector<LoadPart>* parts, std::vector<Migration>* migrations, Errors* errors)
      : parts_(*parts), done_(parts->size(), false), migrations_(*migrations), errors_(*errors) {}

  // Records that parts_[index] is made; merges what can be.
  void Finish(size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_[index] = true;
    try {
      for (; next_ < parts_.size() && done_[next_]; ++next_) {
        LoadPart& part = parts_[next_];
        if (part.exception && !exception_) exception_ = part.exception;
        errors_.Append(std::move(part.errors));
        for (Migration& migration : part.migrations) migrations_.push_back(std::move(migration));
        part = LoadPart();
      }
    } catch (...) {
      // Out of memory: the load fails with it, whatever else is merged.
      if (!failure_) failure_ = std::current_exception();
    }
    if (errors_.full()) full_.store(true, std::memory_order_relaxed);
  }

  // Whether the load's error list is full: every later error would only be counted.
  bool full() const { return full_.load(std::memory_order_relaxed); }

  // Returns, once every part is merged, the first exception of a part in order, else one the
  // merge threw, else null.
  std::exception_ptr exception() const { return exception_ ? exception_ : failure_; }

 private:
  std::mutex mutex_;
  std::vector<LoadPart>& parts_;
  std::vector<bool> done_;
  size_t next_ = 0;
  std::vector<Migration>& migrations_;
  Errors& errors_;
  std::exception_ptr exception_;
  std::exception_ptr failure_;
  std::atomic<bool> full_{false};
};

}  // namespace

absl::StatusOr<std::vector<Migration>> LoadDirectoriesOrThrow(
    const std::vector<std::string>& directories) {
  // A listed file: its path, and its two parts of the output.
  struct Entry {
    std::string path;
    bool regular;  // as ListedName
    size_t check_part;
    size_t file_part;
  };
  std::vector<LoadPart> parts;
  std::vector<size_t> listing_parts;
  std::vector<Entry> entries;
  for (const std::string& directory : directories) {
    listing_parts.push_back(parts.size());
    parts.emplace_back();
    const std::vector<ListedName> names = ListManifestNames(directory, &parts.back().errors);
    const size_t check_parts = parts.size();
    parts.resize(parts.size() + 2 * names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      entries.push_back(Entry{JoinPath(directory, names[i].name), names[i].regular, check_parts + i,
                              check_parts + names.size() + i});
    }
  }

  Errors errors;
  std::vector<Migration> migrations;
  InOrderMerger merger(&parts, &migrations, &errors);
  for (const size_t part : listing_parts) merger.Finish(part);

  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const size_t worker_count =
      kUseLoadThreads
          ? std::max<size_t>(1, std::min<size_t>({hardware, kMaxLoadThreads, entries.size()}))
          : 1;
  std::atomic<size_t> next_entry{0};
  // What escaped a worker's loop (only a mutex could throw there), by worker.
  std::vector<std::exception_ptr> worker_failures(worker_count);
  // Takes files until none is left. Never throws: an exception is kept for the merge to rethrow in
  // order.
  const auto work = [&](size_t worker) {
    try {
      std::vector<char> buffer;
      for (size_t k = next_entry.fetch_add(1); k < entries.size(); k = next_entry.fetch_add(1)) {
        const Entry& entry = entries[k];
        LoadPart& check = parts[entry.check_part];
        LoadPart& file = parts[entry.file_part];
        FileDescriptor descriptor;
        bool read = false;
        try {
          // Once the load's list is full, this file's problems can only be counted.
          if (merger.full()) check.errors = Errors(/*capacity=*/0);
          // A regular file needs no check once it is open. Otherwise (a link, an entry of unknown
          // type, a file that does not open) the check reports what the trouble is.
          read = (entry.regular && descriptor.Open(entry.path)) ||
                 CheckManifestFile(entry.path, &check.errors);
        } catch (...) {
          check.exception = std::current_exception();
        }
        merger.Finish(entry.check_part);
        try {
          if (merger.full()) file.errors = Errors(/*capacity=*/0);
          size_t size = 0;
          if (read && ReadFile(entry.path, &descriptor, &buffer, &size, &file.errors)) {
            ParseFile(absl::string_view(buffer.data(), size), entry.path, &file.migrations,
                      &file.errors);
          }
        } catch (...) {
          file.exception = std::current_exception();
        }
        merger.Finish(entry.file_part);
      }
    } catch (...) {
      worker_failures[worker] = std::current_exception();
      next_entry.store(entries.size());  // the others stop too
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(worker_count);
  for (size_t worker = 1; worker < worker_count; ++worker) {
    try {
      threads.emplace_back(work, worker);
    } catch (...) {
      break;  // no more threads to be had: the ones running, and this one, do the work
    }
  }
  work(0);
  for (std::thread& thread : threads) thread.join();

  for (const std::exception_ptr& failure : worker_failures) {
    if (failure) std::rethrow_exception(failure);
  }
  if (merger.exception()) std::rethrow_exception(merger.exception());
  CheckDuplicates(migrations, &errors);
  if (!errors.empty()) return errors.ToStatus();
  return migrations;
}

absl::StatusOr<std::vector<ManifestFile>> ListManifestFilesOrThrow(
    const std::vector<std::string>& directories) {
  Errors errors;
  std::vector<ManifestFile> files;
  for (const std::string& directory : directories) {
    for (const ListedName& listed : ListManifestNames(directory, &errors)) {
      std::string path = JoinPath(directory, listed.name);
      // A directory named `x.yaml` is skipped, as the load skips it.
      if (CheckManifestFile(path, &errors))
        files.push_back(ManifestFile{std::move(path), listed.name});
    }
  }
  if (!errors.empty()) return errors.ToStatus();
  return files;
}

}  // namespace sluice::manifest::internal
