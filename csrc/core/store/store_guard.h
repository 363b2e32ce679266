// SIGBUS guard for copying records out of a read-only file mapping (see store_io.h).
//
// A load from a MAP_SHARED mapping raises SIGBUS when the kernel cannot supply the page (a
// sparse hole on a full tmpfs, a file truncated by another process, an I/O error). The guard
// turns that into a return value: guarded_gather() arms a per-thread sigjmp_buf, copies, and
// disarms; a SIGBUS handler (installed once, on first use, with SA_NODEFER so no signal mask
// needs restoring) jumps back when the faulting thread is inside an armed copy, and otherwise
// hands the signal to the handler that was installed before it (default action: the process
// dies exactly as without the guard). Cost per batch: one sigsetjmp without mask save.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tinyvit {
namespace store {

// Copies B records of R bytes, record samples[b] of `base` to out + b * R. Returns false when
// a SIGBUS interrupted the copy (out is then partly written and must be refilled another way).
bool guarded_gather(const uint8_t* base, size_t R, const int64_t* samples, size_t B,
                    uint8_t* out);

}  // namespace store
}  // namespace tinyvit
