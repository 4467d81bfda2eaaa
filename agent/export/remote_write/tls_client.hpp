// An HTTPS POST client for remote write: TLS through Boost.Asio SSL (OpenSSL), the server's
// certificate verified against the system CAs (or a given CA file) and its host name.
#pragma once

#include "alert/notify/http_client.hpp"

#include <atomic>
#include <chrono>
#include <string>

namespace plugmon::agent::remote_write {

/// POSTs to one https:// URL, one connection per request, with a total deadline.
/// Thread safety: post() is const and may run on several threads (each call has its own
/// io_context, SSL context and connection).
class tls_client {
public:
    /// Parses `url` (https://host[:port][/path]); `ca_file` empty: the system's CAs. Throws
    /// std::invalid_argument for a malformed URL.
    tls_client(const std::string& url, std::chrono::nanoseconds timeout, std::string ca_file);

    /// As alert::notify::http_client::post: failures (including a certificate that does not
    /// verify) come back as values, never as exceptions; `abort` ends the wait within ~50 ms.
    alert::notify::http_result post(const alert::notify::http_headers& headers,
                                    const std::string& body,
                                    const std::atomic<bool>* abort = nullptr) const;

private:
    std::string host_, port_, target_, ca_file_;
    std::chrono::nanoseconds timeout_;
};

}  // namespace plugmon::agent::remote_write
