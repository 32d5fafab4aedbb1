// Process-wide allocator tuning for capture-heavy runs. Capturing every activation of a forward
// pass allocates (and later frees) tens to hundreds of MiB per pass; glibc's malloc returns such
// blocks to the kernel, and the next pass pays page faults to get them back — measured at +47%
// over a plain forward (docs/benchmarks.md). Keeping freed memory in the process removes that.
#pragma once

namespace strata {

/// Tells glibc's malloc to keep freed memory for reuse (large mmap threshold, large trim
/// threshold and top pad). Process-wide: the `strata` command calls it at start-up; a host program
/// decides for itself. Returns false where it is not supported (non-glibc) or was refused.
bool retain_freed_memory();

}  // namespace strata
