#include <strata/core/memory.h>

#include <cstddef>  // defines __GLIBC__ (via features.h) before the test below

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace strata {

bool retain_freed_memory() {
#if defined(__GLIBC__)
  // Setting only the trim threshold is harmful (a plain forward became ~7x slower in the
  // benchmark): large blocks must also stay on the heap rather than in their own mappings.
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 &&
         mallopt(M_TOP_PAD, 256 << 20) == 1;
#else
  return false;
#endif
}

}  // namespace strata
