#ifndef C_HEAP_FIGURES_H
#define C_HEAP_FIGURES_H

#include <stddef.h>

/// Bytes the C allocator has handed out and not had back (all arenas and mmapped chunks), from glibc's
/// `mallinfo2`; 0 where there is none.
size_t heap_figures_bytes_in_use(void);

#endif
