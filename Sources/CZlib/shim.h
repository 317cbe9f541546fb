#ifndef SANDBOXVCR_CZLIB_SHIM_H
#define SANDBOXVCR_CZLIB_SHIM_H
// zlib compresses cassette blobs: https://zlib.net/manual.html (compress2, uncompress, compressBound).
#include <zlib.h>
#endif
