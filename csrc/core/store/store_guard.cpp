// SIGBUS guard (see store_guard.h).
#include "core/store/store_guard.h"

#include <setjmp.h>
#include <signal.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace tinyvit {
namespace store {

namespace {

struct Guard {
  sigjmp_buf jump;
  volatile sig_atomic_t armed = 0;
};
// Touched by the owning thread before arming, so the handler's TLS access never allocates.
thread_local Guard tl_guard;

struct sigaction g_previous;
// Threads inside an armed copy. When 0 the handler chains at once, without touching TLS (a
// thread that never used the guard may not have its TLS block yet; allocating it inside a
// signal handler is not safe).
std::atomic<int> g_armed_threads{0};

void on_sigbus(int sig, siginfo_t* info, void* ctx) {
  if (g_armed_threads.load(std::memory_order_relaxed) > 0) {
    Guard& g = tl_guard;
    if (g.armed) {
      g.armed = 0;
      siglongjmp(g.jump, 1);
    }
  }
  // Not a fault of a guarded copy: behave as if this handler did not exist.
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) g_previous.sa_sigaction(sig, info, ctx);
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) return;
  if (g_previous.sa_handler == SIG_DFL) {
    // Restore the default and let the fault recur (a hardware fault re-executes the load; a
    // signal sent with kill() is raised again) so the process ends with the usual status.
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    if (info == nullptr || info->si_code <= 0) raise(sig);
    return;
  }
  g_previous.sa_handler(sig);
}

void install_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

bool guarded_gather(const uint8_t* base, size_t R, const int64_t* samples, size_t B,
                    uint8_t* out) {
  install_once();
  Guard& g = tl_guard;
  g_armed_threads.fetch_add(1, std::memory_order_relaxed);
  if (sigsetjmp(g.jump, 0) != 0) {  // a SIGBUS jumped back (armed already 0)
    g_armed_threads.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  g.armed = 1;
  for (size_t b = 0; b < B; ++b)
    std::memcpy(out + b * R, base + static_cast<size_t>(samples[b]) * R, R);
  g.armed = 0;
  g_armed_threads.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

}  // namespace store
}  // namespace tinyvit
