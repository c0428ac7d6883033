// The child of lsan_suppression_test: leaks an object of sluice's from a continuation on
// cpprestsdk's thread pool, then exits, so that LeakSanitizer (in a sanitizer build) reports it or,
// with a suppression that hides it, does not.
#include <pplx/pplxtasks.h>

#include <atomic>
#include <cstdint>

namespace {

// What the child leaks: an object of sluice's, allocated on a cpprest thread.
struct LeakedReporterState {
  char payload[64];
};

// Keeps the pointer hidden from LeakSanitizer's scan (only a scrambled value is stored).
std::atomic<uintptr_t> scrambled{0};

void __attribute__((noinline)) AllocateOnACpprestThread() {
  auto* leaked = new LeakedReporterState{};
  leaked->payload[0] = 1;
  scrambled.store(reinterpret_cast<uintptr_t>(leaked) ^ 0x5a5a5a5a5a5a5a5aULL);
}

}  // namespace

int main() {
  pplx::create_task([] {}).then([] { AllocateOnACpprestThread(); }).wait();
  return scrambled.load() != 0 ? 0 : 3;
}
