// The HTTP/1.1 listener on Boost.Beast: accept loop, keep-alive sessions, limits, error mapping.
#include "web/server/http.hpp"

#include "log/log.hpp"

#include <array>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace plugmon::agent {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

/// After an error response on a connection whose request was not read whole, keep reading (and
/// discarding) this long or this much before closing: closing with unread input sends a reset,
/// which can destroy the response before the client reads it.
constexpr auto linger_time = std::chrono::seconds{2};
constexpr std::size_t linger_bytes = 1 << 20;

/// Handler failures and network errors repeat: each kind (the rate limiter's key) gets at most one
/// line per 10 s, and the next line says how many it held back.
constexpr std::string_view handler_failures = "handler";
constexpr std::string_view network_errors = "network";

bool is_parse_error(const error_code& ec) {
    return ec.category() == make_error_code(http::error::bad_method).category();
}

/// Throws when a handler's response cannot be sent as it is.
void check_response(const http_response& r) {
    if (r.status < 200 || r.status > 599)
        throw std::invalid_argument("status " + std::to_string(r.status) +
                                    " is not a final status");
    const auto clean = [](const std::string& s) {
        return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
    };
    if (!clean(r.content_type)) throw std::invalid_argument("content type holds a line break");
    for (const auto& [name, value] : r.headers) {
        if (name.empty() || !clean(name) || !clean(value) || name.find(':') != std::string::npos)
            throw std::invalid_argument("malformed header " + name);
        if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
            beast::iequals(name, "connection"))
            throw std::invalid_argument("header " + name + " is set by the server");
    }
    if ((r.status == 204 || r.status == 304) && !r.body.empty())
        throw std::invalid_argument("status " + std::to_string(r.status) + " must have no body");
}

/// The headers every response carries; Cache-Control: no-store where answers must not be kept.
template <typename Message>
void set_security_headers(Message& m, bool no_store) {
    m.set(http::field::server, "plugmon-agent");
    m.set("X-Content-Type-Options", "nosniff");
    m.set("Referrer-Policy", "no-referrer");
    m.set("X-Frame-Options", "DENY");
    if (no_store && m.find(http::field::cache_control) == m.end())
        m.set(http::field::cache_control, "no-store");
}

/// True for the paths of the JSON API and of the admin endpoints.
bool is_private_path(std::string_view target) {
    return target.starts_with("/api/") || target.starts_with("/-/");
}

/// The address as text, IPv4-mapped IPv6 addresses shown as IPv4.
std::string address_text(const asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
    return a.to_string();
}

std::error_code to_std(const error_code& ec) {
    if (ec.category() == boost::system::system_category())
        return {ec.value(), std::system_category()};
    if (ec.category() == boost::system::generic_category())
        return {ec.value(), std::generic_category()};
    return ec;
}

}  // namespace

const char* to_string(stream_end e) {
    switch (e) {
        case stream_end::finished:
            return "finished";
        case stream_end::write_timeout:
            return "write_timeout";
        case stream_end::peer_closed:
            return "peer_closed";
        case stream_end::server_stopped:
            return "server_stopped";
    }
    return "unknown";
}

namespace detail {

class http_session;

/// What the server object, its accept loop and its sessions share. Pending operations hold it,
/// so it outlives the http_server until they have completed.
struct http_server_state : std::enable_shared_from_this<http_server_state> {
    http_server_state(asio::io_context& io, http_handler handler, http_limits limits)
        : acceptor_(io), retry_timer_(io), handler_(std::move(handler)), limits_(limits) {}

    void accept();
    void on_accept(const error_code& ec, tcp::socket socket);
    void stop() noexcept;

    tcp::acceptor acceptor_;
    asio::steady_timer retry_timer_;  // re-arms accept after an error such as EMFILE
    http_handler handler_;
    http_limits limits_;
    std::shared_ptr<http_counters> stats_ = std::make_shared<http_counters>();
    std::uint16_t port_ = 0;
    bool stopped_ = false;
    std::unordered_map<http_session*, std::weak_ptr<http_session>> sessions_;
};

/// One connection: read a request, answer it, repeat while the client keeps the connection.
class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(tcp::socket socket, std::shared_ptr<http_server_state> server)
        : stream_(std::move(socket)), server_(std::move(server)) {}
    ~http_session() { server_->sessions_.erase(this); }
    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    void start() { read_header(); }

    void close() noexcept {
        finish_stream(server_->stopped_ ? stream_end::server_stopped : stream_end::peer_closed);
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.close();
    }

    /// stream_writer's calls, posted to the I/O thread.
    void deliver(std::shared_ptr<const std::string> piece) noexcept {
        guarded([&] {
            if (!live_ || ending_) return;
            if (!writing_) return write_piece(std::move(piece));
            if (waiting_) live_->replaced();
            waiting_ = std::move(piece);
        });
    }
    void end_stream() noexcept {
        guarded([&] {
            if (!live_ || ending_) return;
            ending_ = true;
            if (!writing_ && !waiting_) write_last_chunk();
        });
    }
    boost::asio::any_io_executor executor() { return stream_.get_executor(); }

private:
    void read_header() {
        parser_.emplace();
        parser_->body_limit(server_->limits_.body_limit);
        stream_.expires_after(server_->limits_.timeout);
        http::async_read_header(stream_, buffer_, *parser_,
                                [self = shared_from_this()](error_code ec, std::size_t) {
                                    self->guarded([&] { self->on_header(ec); });
                                });
    }

    void on_header(const error_code& ec) {
        if (ec) return on_error(ec);
        const auto expect = parser_->get()[http::field::expect];
        if (!expect.empty()) {
            if (!beast::iequals(expect, "100-continue"))
                return send_error(http::status::expectation_failed, "unsupported Expect header\n");
            // The client waits for this before it sends the body.
            continue_.emplace(http::status::continue_, 11);
            http::async_write(stream_, *continue_,
                              [self = shared_from_this()](error_code wec, std::size_t) {
                                  self->guarded([&] {
                                      if (wec) return self->on_error(wec);
                                      self->read_body();
                                  });
                              });
            return;
        }
        read_body();
    }

    void read_body() {
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](error_code ec, std::size_t) {
                             self->guarded([&] {
                                 if (ec) return self->on_error(ec);
                                 self->respond();
                             });
                         });
    }

    void on_error(const error_code& ec) {
        if (ec == asio::error::operation_aborted || server_->stopped_) return;
        if (ec == http::error::end_of_stream) {
            error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        if (ec == beast::error::timeout) {
            // basic_stream has closed the socket already. An idle keep-alive connection that
            // times out before a new request begins is a normal end, not a rejection.
            if (parser_ && parser_->got_some()) ++server_->stats_->rejected;
            return;
        }
        if (ec == http::error::body_limit) {
            ++server_->stats_->rejected;
            return send_error(
                http::status::payload_too_large,
                "request body exceeds " + std::to_string(server_->limits_.body_limit) + " bytes\n");
        }
        if (ec == http::error::header_limit) {
            ++server_->stats_->rejected;
            return send_error(http::status::request_header_fields_too_large,
                              "request header too large\n");
        }
        if (is_parse_error(ec)) {
            ++server_->stats_->rejected;
            return send_error(http::status::bad_request,
                              "malformed request: " + ec.message() + "\n");
        }
        // The peer went away (reset, broken pipe): nothing to answer.
        spdlog::debug("http: connection error: {}", ec.message());
    }

    void respond() {
        if (server_->stopped_) return;
        auto& req = parser_->get();
        const bool head = req.method() == http::verb::head;
        http_request in;
        in.method = head ? std::string("GET") : std::string(req.method_string());
        in.target = std::string(req.target());
        in.authorization = std::string(req[http::field::authorization]);
        in.accept_encoding = std::string(req[http::field::accept_encoding]);
        in.if_none_match = std::string(req[http::field::if_none_match]);
        in.accept = std::string(req[http::field::accept]);
        in.body = std::move(req.body());
        fill_connection(in, req);
        ++server_->stats_->requests;

        http_response out;
        try {
            out = server_->handler_(in);
            check_response(out);
        } catch (const std::exception& e) {
            out = handler_failed(in, e.what());
        } catch (...) {
            out = handler_failed(in, "unknown exception");
        }

        if (out.stream) {
            if (!head && out.status == 200) return start_stream(out, req.version());
            out.stream = nullptr;  // HEAD: the headers of a stream, then nothing
        }
        response_.emplace();
        response_->version(req.version());
        response_->result(out.status);
        const bool no_content = out.status == 204 || out.status == 304;
        if (!no_content) response_->set(http::field::content_type, out.content_type);
        for (const auto& [name, value] : out.headers) response_->insert(name, value);
        set_security_headers(*response_, is_private_path(in.target));
        response_->body() = std::move(out.body);
        response_->keep_alive(req.keep_alive());
        if (!no_content) response_->prepare_payload();
        // HEAD: the Content-Length of the GET answer, and no body.
        if (head) response_->body().clear();
        send(!response_->keep_alive(), false);
    }

    /// The peer and local addresses and the headers the security layer looks at.
    void fill_connection(http_request& in, const http::request<http::string_body>& req) {
        error_code ec;
        const auto peer = stream_.socket().remote_endpoint(ec);
        if (!ec) in.remote = address_text(peer.address());
        const auto self = stream_.socket().local_endpoint(ec);
        if (!ec) in.local = address_text(self.address());
        if (const auto it = req.find(http::field::host); it != req.end()) {
            in.has_host = true;
            in.host = std::string(it->value());
        }
        if (const auto it = req.find(http::field::origin); it != req.end()) {
            in.has_origin = true;
            in.origin = std::string(it->value());
        }
        in.sec_fetch_site = std::string(req["Sec-Fetch-Site"]);
        in.content_type = std::string(req[http::field::content_type]);
    }

    /// A live response: its headers (chunked, Connection: close), then the feed's pieces.
    void start_stream(http_response& out, unsigned version) {
        live_ = std::move(out.stream);
        live_head_.emplace(http::status::ok, version);
        live_head_->set(http::field::content_type, out.content_type);
        for (const auto& [name, value] : out.headers) live_head_->insert(name, value);
        set_security_headers(*live_head_, true);
        live_head_->keep_alive(false);
        live_head_->chunked(true);
        if (const int bytes = server_->limits_.stream_send_buffer; bytes > 0) {
            error_code ignored;
            stream_.socket().set_option(asio::socket_base::send_buffer_size(bytes), ignored);
        }
        live_serializer_.emplace(*live_head_);
        stream_.expires_after(server_->limits_.stream_write_timeout);
        http::async_write_header(stream_, *live_serializer_,
                                 [self = shared_from_this()](error_code ec, std::size_t) {
                                     self->guarded([&] { self->on_stream_header(ec); });
                                 });
    }

    void on_stream_header(const error_code& ec);

    void write_piece(std::shared_ptr<const std::string> piece) {
        writing_ = true;
        stream_.expires_after(server_->limits_.stream_write_timeout);
        const auto chunk = http::make_chunk(asio::buffer(piece->data(), piece->size()));
        asio::async_write(stream_, chunk,
                          [self = shared_from_this(), piece](error_code ec, std::size_t) {
                              self->guarded([&] { self->on_piece_written(ec); });
                          });
    }

    void on_piece_written(const error_code& ec) {
        writing_ = false;
        if (ec) return end_with_error(ec);
        if (waiting_) return write_piece(std::exchange(waiting_, nullptr));
        if (ending_) write_last_chunk();
    }

    void write_last_chunk() {
        writing_ = true;
        stream_.expires_after(server_->limits_.stream_write_timeout);
        asio::async_write(stream_, http::make_chunk_last(),
                          [self = shared_from_this()](error_code ec, std::size_t) {
                              self->guarded([&] {
                                  self->writing_ = false;
                                  if (ec) return self->end_with_error(ec);
                                  self->finish_stream(stream_end::finished);
                                  error_code ignored;
                                  self->stream_.socket().shutdown(tcp::socket::shutdown_send,
                                                                  ignored);
                              });
                          });
    }

    void end_with_error(const error_code& ec) {
        if (server_->stopped_ || ec == asio::error::operation_aborted)
            finish_stream(stream_end::server_stopped);
        else
            finish_stream(ec == beast::error::timeout ? stream_end::write_timeout
                                                      : stream_end::peer_closed);
        close();
    }

    /// Tells the feed, once, that the live response is over.
    void finish_stream(stream_end why) noexcept {
        if (!live_) return;
        const auto live = std::move(live_);
        live_ = nullptr;
        waiting_ = nullptr;
        try {
            live->closed(why);
        } catch (...) {
            // The feed's bookkeeping must not take the connection's teardown with it.
        }
    }

    http_response handler_failed(const http_request& in, const char* what) {
        ++server_->stats_->handler_errors;
        log::limited(spdlog::level::err, "web",
                     "http: handler failed on " + in.method + " " + in.target + ": " + what, {},
                     handler_failures);
        return http_response{500, "text/plain; charset=utf-8", "internal error\n"};
    }

    /// Answers a request that was not read whole, then closes the connection.
    void send_error(http::status status, std::string text) {
        response_.emplace(status, 11);
        set_security_headers(*response_, true);
        response_->set(http::field::content_type, "text/plain; charset=utf-8");
        response_->body() = std::move(text);
        response_->keep_alive(false);
        response_->prepare_payload();
        send(true, true);
    }

    void send(bool close_after, bool linger_after) {
        stream_.expires_after(server_->limits_.timeout);
        http::async_write(
            stream_, *response_,
            [self = shared_from_this(), close_after, linger_after](error_code ec, std::size_t) {
                self->guarded([&] { self->on_write(ec, close_after, linger_after); });
            });
    }

    void on_write(const error_code& ec, bool close_after, bool linger_after) {
        if (ec) return on_error(ec);
        if (server_->stopped_) return;
        if (linger_after) return linger();
        if (close_after) {
            error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        read_header();
    }

    void linger() {
        error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return;
        stream_.expires_after(linger_time);
        discard_more();
    }

    void discard_more() {
        stream_.async_read_some(
            asio::buffer(discard_), [self = shared_from_this()](error_code ec, std::size_t n) {
                self->guarded([&] {
                    self->discarded_ += n;
                    if (ec || self->server_->stopped_ || self->discarded_ > linger_bytes)
                        return self->close();
                    self->discard_more();
                });
            });
    }

    /// Runs a completion step; anything it throws is logged and ends this connection only.
    template <typename Step>
    void guarded(Step&& step) noexcept {
        try {
            step();
        } catch (const std::exception& e) {
            log::limited(spdlog::level::warn, "web",
                         std::string("http: connection dropped: ") + e.what(), {}, network_errors);
            close();
        } catch (...) {
            log::limited(spdlog::level::warn, "web", "http: connection dropped", {},
                         network_errors);
            close();
        }
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    std::optional<http::response<http::string_body>> response_;
    std::shared_ptr<live_stream> live_;  // set while a live response is open
    std::optional<http::response<http::empty_body>> live_head_;
    std::optional<http::response_serializer<http::empty_body>> live_serializer_;
    std::shared_ptr<const std::string> waiting_;  // the one piece waiting for the socket
    bool writing_ = false;
    bool ending_ = false;
    std::array<char, 4096> discard_{};
    std::size_t discarded_ = 0;
    std::shared_ptr<http_server_state> server_;
};

/// The feed's handle on a live response: posts each call to the session's I/O thread, and
/// keeps the session alive while the feed holds it.
class session_writer final : public stream_writer {
public:
    explicit session_writer(std::shared_ptr<http_session> s) : s_(std::move(s)) {}
    /// The feed may drop its last reference on its own thread: the session then goes on the I/O
    /// thread, which owns it (its socket, and the server's list of sessions).
    ~session_writer() override {
        try {
            const auto on = s_->executor();  // before the lambda takes s_
            asio::post(on, [s = std::move(s_)] {});
        } catch (...) {
            // Out of memory: the session goes here instead; nothing better can be done.
        }
    }
    session_writer(const session_writer&) = delete;
    session_writer& operator=(const session_writer&) = delete;
    void send(std::shared_ptr<const std::string> piece) override {
        asio::post(s_->executor(),
                   [s = s_, p = std::move(piece)]() mutable { s->deliver(std::move(p)); });
    }
    void end() override {
        asio::post(s_->executor(), [s = s_] { s->end_stream(); });
    }

private:
    std::shared_ptr<http_session> s_;
};

void http_session::on_stream_header(const error_code& ec) {
    if (ec) return end_with_error(ec);
    if (!live_) return;
    live_->open(std::make_shared<session_writer>(shared_from_this()));
}

}  // namespace detail

void detail::http_server_state::accept() {
    acceptor_.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void detail::http_server_state::on_accept(const error_code& ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    try {
        if (ec) {
            // Typically out of file descriptors: wait a little rather than spin.
            log::limited(spdlog::level::warn, "web", "http: accept failed: " + ec.message(), {},
                         network_errors);
            retry_timer_.expires_after(std::chrono::milliseconds{100});
            retry_timer_.async_wait([self = shared_from_this()](error_code wec) {
                if (!wec && !self->stopped_) self->accept();
            });
            return;
        }
        ++stats_->connections;
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto s = std::make_shared<http_session>(std::move(socket), shared_from_this());
        sessions_.emplace(s.get(), s);
        s->start();
    } catch (const std::exception& e) {
        log::limited(spdlog::level::warn, "web",
                     std::string("http: cannot serve a connection: ") + e.what(), {},
                     network_errors);
    }
    accept();
}

void detail::http_server_state::stop() noexcept {
    if (stopped_) return;
    stopped_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    const auto open = std::move(sessions_);
    sessions_.clear();
    for (const auto& [raw, weak] : open)
        if (const auto s = weak.lock()) s->close();
}

http_server::http_server(asio::io_context& io, const std::string& host, std::uint16_t port,
                         http_handler handler, http_limits limits)
    : state_(std::make_shared<detail::http_server_state>(io, std::move(handler), limits)) {
    const std::string where = "listen " +
                              (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                              ":" + std::to_string(port);
    const auto check = [&](const error_code& ec) {
        if (ec) throw std::system_error(to_std(ec), where);
    };
    error_code ec;
    tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
        endpoint = tcp::endpoint(address, port);
    } else {
        tcp::resolver resolver(io);
        const auto results =
            resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
        check(ec);
        if (results.empty()) check(asio::error::host_not_found);
        endpoint = results.begin()->endpoint();
    }
    auto& acceptor = state_->acceptor_;
    acceptor.open(endpoint.protocol(), ec);
    check(ec);
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    check(ec);
    acceptor.bind(endpoint, ec);
    check(ec);
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    check(ec);
    state_->port_ = acceptor.local_endpoint(ec).port();
    check(ec);
    state_->accept();
}

http_server::~http_server() { stop(); }

std::uint16_t http_server::port() const { return state_->port_; }

void http_server::stop() { state_->stop(); }

http_stats http_server::stats() const { return state_->stats_->snapshot(); }

std::shared_ptr<const http_counters> http_server::counters() const { return state_->stats_; }

}  // namespace plugmon::agent
