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
    /// The Accept-Encoding and If-None-Match headers, empty when absent.
    std::string accept_encoding;
    std::string if_none_match;
    std::string accept;  ///< the Accept header (content negotiation of /metrics), empty when absent
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

/// Why a live response ended.
enum class stream_end {
    finished,       ///< the feed ended it (stream_writer::end)
    write_timeout,  ///< the client did not take a piece within the write timeout
    peer_closed,    ///< the client went away (reset, broken pipe)
    server_stopped  ///< the listener was stopped
};

/// "finished", "write_timeout", "peer_closed", "server_stopped".
const char* to_string(stream_end e);

/// The sending side of a live response, held by its feed. Every member is thread-safe.
class stream_writer {
public:
    virtual ~stream_writer() = default;
    /// Queues `piece` to be sent as one chunk. One piece waits at most: a newer one replaces a
    /// waiting one (latest wins; live_stream::replaced is called), so a slow client never
    /// makes the agent hold more than two pieces for it.
    virtual void send(std::shared_ptr<const std::string> piece) = 0;
    /// Sends what is queued, then the last chunk, and closes the connection.
    virtual void end() = 0;
};

/// A response that stays open after its headers (Server-Sent Events): the server writes the
/// pieces its feed sends, each as one chunk, until the feed ends it or the client goes. The
/// session calls these on the I/O thread.
class live_stream {
public:
    virtual ~live_stream() = default;
    /// The headers are sent; `out` stays valid (and thread-safe) until closed() is called.
    virtual void open(std::shared_ptr<stream_writer> out) = 0;
    /// A waiting piece was replaced by a newer one before the client took it.
    virtual void replaced() {}
    /// The response is over; nothing is sent any more.
    virtual void closed(stream_end why) = 0;
};

struct http_response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    /// Further headers, e.g. {"WWW-Authenticate", "Bearer"}. Content-Length is set by the server.
    std::vector<std::pair<std::string, std::string>> headers = {};
    /// Set (with status 200 and an empty body): a live response, sent chunked, after the
    /// headers. The connection then serves nothing else.
    std::shared_ptr<live_stream> stream = nullptr;
};

/// Called on the io_context's thread for every request. May throw: the client then gets a 500.
using http_handler = std::function<http_response(const http_request&)>;

/// Limits applied to every connection.
struct http_limits {
    /// Larger request bodies are answered with 413 and the connection is closed.
    std::size_t body_limit = 64 * 1024;
    /// Time allowed to receive one whole request, and to send one response.
    std::chrono::milliseconds timeout = std::chrono::seconds{30};
    /// Time a live response's client has to take one piece; then it is disconnected.
    std::chrono::milliseconds stream_write_timeout = std::chrono::seconds{5};
    /// SO_SNDBUF of a live response's socket, so that a client that stops reading shows within
    /// the write timeout rather than after the kernel has buffered megabytes (0: the default).
    int stream_send_buffer = 64 * 1024;
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
