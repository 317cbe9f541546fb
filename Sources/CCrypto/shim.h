#ifndef SANDBOXVCR_CCRYPTO_SHIM_H
#define SANDBOXVCR_CCRYPTO_SHIM_H

#include <stddef.h>
#include <openssl/evp.h>

/// SHA-256 of `count` bytes into `digest` (32 bytes), through OpenSSL's EVP interface
/// (https://www.openssl.org/docs/man3.0/man3/EVP_Digest.html). Returns 1 on success.
static inline int csvcr_sha256(const void *bytes, size_t count, unsigned char *digest) {
    unsigned int length = 0;
    return EVP_Digest(bytes, count, digest, &length, EVP_sha256(), NULL) == 1 && length == 32;
}

#endif
