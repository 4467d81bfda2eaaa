// The agent's HTTP/1.1 listener: accepts connections and hands each request to one handler.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <atomic>

#include <boost/asio/io_context.hpp>

namespace plugmon::agent {

namespace detail {
struct http_server_state;
}

struct http_request {
    /// As sent ("GET", "POST", ...), except that HEAD arrives as "GET": the server drops the body.
    std::string method;
    /// Path and query, as sent ("/metrics", "/api/v1/plugins?limit=10").
    std::string target;
    /// The Authorization header, empty when absent.
    std::string authorization;
    /// The Accept-Encoding header, empty when absent.
    std::string accept_encoding;
    std::string body;
    /// The client's IP address ("127.0.0.1", "::1"; IPv4-mapped IPv6 shown as IPv4), empty when
    /// unknown. Filled by the server.
    std::string remote;
    /// The local IP address the connection arrived on (the listen address, or the interface's
    /// address when listening on a wildcard). Filled by the server.
    std::string local;
    /// Host, Origin, Sec-Fetch-Site and Content-Type headers; has_host tells an empty Host header
    /// from none (HTTP/1.0).
    std::string host;
    bool has_host = false;
    std::string origin;
    bool has_origin = false;
    std::string sec_fetch_site;
    std::string content_type;
    /// Who is asking: the name of the token the security layer accepted, empty when none was
    /// needed or sent. Filled by the security layer, for handlers that record who acted.
    std::string principal;
};

struct http_response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    /// Further headers, e.g. {"WWW-Authenticate", "Bearer"}. Content-Length is set by the server.
    std::vector<std::pair<std::string, std::string>> headers = {};
};

/// Called on the io_context's thread for every request. May throw: the client then gets a 500.
using http_handler = std::function<http_response(const http_request&)>;

/// Limits applied to every connection.
struct http_limits {
    /// Larger request bodies are answered with 413 and the connection is closed.
    std::size_t body_limit = 64 * 1024;
    /// Time allowed to receive one whole request, and to send one response.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
};

/// Counters of one server, for the agent's own metrics.
struct http_stats {
    std::uint64_t connections = 0;     ///< accepted
    std::uint64_t requests = 0;        ///< passed to the handler
    std::uint64_t handler_errors = 0;  ///< handler threw or returned an unusable response
    std::uint64_t rejected = 0;        ///< malformed, oversize or timed-out requests
};

/// The live counters behind http_stats: written on the I/O thread, readable from any thread.
struct http_counters {
    std::atomic<std::uint64_t> connections{0};
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> handler_errors{0};
    std::atomic<std::uint64_t> rejected{0};

    http_stats snapshot() const {
        return {connections.load(std::memory_order_relaxed),
                requests.load(std::memory_order_relaxed),
                handler_errors.load(std::memory_order_relaxed),
                rejected.load(std::memory_order_relaxed)};
    }
};

/// HTTP/1.1 server with keep-alive on a caller-provided io_context.
///
/// Not thread-safe: construct it, call its members and destroy it on the thread that runs the
/// io_context (or while the io_context is not running). The io_context must outlive it.
/// Handler exceptions never escape into the io_context; they are logged, rate-limited.
///
/// Every response, the server's own errors included, carries `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: no-referrer` and `X-Frame-Options: DENY`; responses to /api/ and /-/ paths
/// (and the server's own error answers) also `Cache-Control: no-store`, unless the handler set
/// a Cache-Control of its own.
class http_server {
public:
    /// Binds host:port (host: an IP address or a name to resolve; port 0 picks a free port)
    /// with SO_REUSEADDR and starts accepting. Throws std::system_error naming the address,
    /// e.g. "listen 127.0.0.1:9464: Address already in use".
    http_server(boost::asio::io_context& io, const std::string& host, std::uint16_t port,
                http_handler handler, http_limits limits = {});
    /// Stops, as stop() does.
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    /// The bound port (the chosen one when constructed with port 0).
    std::uint16_t port() const;
    /// Closes the listener and every open connection; the handler is not called again.
    /// Outstanding operations complete (as cancelled) the next time the io_context runs.
    /// Idempotent.
    void stop();
    /// Thread-safe.
    http_stats stats() const;
    /// The live counters, for a metrics source that may outlive the server.
    std::shared_ptr<const http_counters> counters() const;

private:
    std::shared_ptr<detail::http_server_state> state_;
};

}  // namespace plugmon::agent
