//! libpq (bundled by pq-sys) uses the system's OpenSSL. Left to itself, OpenSSL frees its
//! global state in an `atexit` handler, which runs while pooled connections on other
//! threads may still use it: a SIGSEGV in libcrypto after a clean shutdown (issue 17).

/// Initialises OpenSSL without that exit-time clean-up (`OPENSSL_INIT_NO_ATEXIT`; the
/// kernel reclaims the memory anyway). OpenSSL's first initialisation decides, so call
/// this before the process's first PostgreSQL connection. Calling it again is harmless.
pub fn init() {
    openssl_sys::init();
}
