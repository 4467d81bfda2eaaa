// A blocking HTTP/1.1 POST client for the notifiers: plain http:// only, one connection per
// request, a total deadline, and failures reported as values.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plugmon::agent::alert::notify {

/// How an attempt ended when no HTTP status came back.
enum class http_failure : std::uint8_t { none, timeout, network };

struct http_result {
    unsigned status = 0;  ///< the response's status; 0 when failure != none
    http_failure failure = http_failure::none;
    std::string error;  ///< what went wrong (connection refused, timed out, ...), or ""
    /// Retry-After, given either as seconds or as an HTTP-date (then relative to now).
    std::optional<std::chrono::seconds> retry_after;
    std::string body_excerpt;  ///< the response body's first 256 bytes
};

using http_headers = std::vector<std::pair<std::string, std::string>>;

/// Parses a Retry-After value: delta-seconds or an IMF-fixdate (RFC 9110 section 10.2.3), the
/// latter relative to `now`; a date in the past is 0 s. nullopt for anything else.
/// Thread safety: reentrant.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

/// POSTs to one URL. Thread safety: post() is const and may run on several threads at once
/// (each call has its own io_context and connection).
class http_client {
public:
    /// Parses `url` (http://host[:port][/path]). Throws std::invalid_argument naming the
    /// receiver for an https:// URL (TLS is not supported) or a malformed URL.
    http_client(std::string receiver, const std::string& url, std::chrono::nanoseconds timeout);

    /// Sends one POST and reads the response, within the timeout as a whole (name resolution,
    /// connect, write and read). Blocks; never throws for network problems or timeouts (they come
    /// back as http_result::failure). When `abort` becomes true, gives up within about 50 ms and
    /// reports a network failure ("aborted").
    http_result post(const http_headers& headers, const std::string& body,
                     const std::atomic<bool>* abort = nullptr) const;

    const std::string& host() const { return host_; }
    const std::string& port() const { return port_; }
    const std::string& target() const { return target_; }

private:
    std::string receiver_, host_, port_, target_;
    std::chrono::nanoseconds timeout_;
};

}  // namespace plugmon::agent::alert::notify
