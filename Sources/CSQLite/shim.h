#ifndef SANDBOXVCR_CSQLITE_SHIM_H
#define SANDBOXVCR_CSQLITE_SHIM_H
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro Swift cannot import: it tells SQLite to copy the bound bytes.
/// https://www.sqlite.org/c3ref/c_static.html
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
/// SQLITE_STATIC: the bytes outlive the statement step, SQLite need not copy them.
static inline sqlite3_destructor_type csqlite_static(void) { return SQLITE_STATIC; }

#endif
