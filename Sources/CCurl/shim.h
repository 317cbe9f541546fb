#ifndef SANDBOXVCR_CCURL_SHIM_H
#define SANDBOXVCR_CCURL_SHIM_H
#include <curl/curl.h>

/* Typed wrappers for libcurl's variadic functions, which Swift cannot call.
   https://curl.se/libcurl/c/curl_easy_setopt.html  https://curl.se/libcurl/c/curl_easy_getinfo.html */

static inline CURLcode ccurl_easy_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_easy_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_easy_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_easy_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_easy_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
typedef size_t (*ccurl_io_callback)(char *, size_t, size_t, void *);
static inline CURLcode ccurl_easy_setopt_io_callback(CURL *h, CURLoption o, ccurl_io_callback v) { return curl_easy_setopt(h, o, v); }
typedef int (*ccurl_trailer_callback)(struct curl_slist **, void *);
static inline CURLcode ccurl_easy_setopt_trailer_callback(CURL *h, ccurl_trailer_callback v) { return curl_easy_setopt(h, CURLOPT_TRAILERFUNCTION, v); }

typedef curl_socket_t (*ccurl_opensocket_callback)(void *, curlsocktype, struct curl_sockaddr *);
static inline CURLcode ccurl_easy_setopt_opensocket_callback(CURL *h, ccurl_opensocket_callback v) { return curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, v); }
typedef int (*ccurl_seek_callback)(void *, curl_off_t, int);
static inline CURLcode ccurl_easy_setopt_seek_callback(CURL *h, ccurl_seek_callback v) { return curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, v); }
static inline CURLcode ccurl_easy_setopt_error_buffer(CURL *h, char *v) { return curl_easy_setopt(h, CURLOPT_ERRORBUFFER, v); }

static inline CURLcode ccurl_easy_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_easy_getinfo_off(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_easy_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_easy_getinfo_pointer(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }

static inline CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

/* Macros and enum values Swift cannot import cleanly. */
static inline unsigned int ccurl_version_now(void) { return CURLVERSION_NOW; }
static inline long ccurl_http_version_1_1(void) { return CURL_HTTP_VERSION_1_1; }
static inline long ccurl_http_version_2_0(void) { return CURL_HTTP_VERSION_2_0; }
static inline long ccurl_http_version_2_tls(void) { return CURL_HTTP_VERSION_2TLS; }
static inline long ccurl_http_version_2_prior_knowledge(void) { return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE; }
static inline long ccurl_global_all(void) { return CURL_GLOBAL_ALL; }
static inline long ccurl_pipe_multiplex(void) { return CURLPIPE_MULTIPLEX; }
static inline size_t ccurl_write_func_pause(void) { return CURL_WRITEFUNC_PAUSE; }
static inline size_t ccurl_read_func_abort(void) { return CURL_READFUNC_ABORT; }
static inline int ccurl_trailerfunc_ok(void) { return CURL_TRAILERFUNC_OK; }
static inline int ccurl_seekfunc_ok(void) { return CURL_SEEKFUNC_OK; }
static inline int ccurl_seekfunc_cantseek(void) { return CURL_SEEKFUNC_CANTSEEK; }
static inline curl_socket_t ccurl_socket_bad(void) { return CURL_SOCKET_BAD; }
static inline int ccurl_error_size(void) { return CURL_ERROR_SIZE; }

/* The result code of a finished transfer (CURLMsg.data is a union Swift imports awkwardly). */
static inline CURLcode ccurl_msg_result(const CURLMsg *m) { return m->data.result; }
static inline int ccurl_msg_is_done(const CURLMsg *m) { return m->msg == CURLMSG_DONE; }

#endif
