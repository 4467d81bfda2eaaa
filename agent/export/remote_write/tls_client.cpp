// HTTPS for remote write: Beast over an SSL stream on a private io_context, driven in short
// slices so that the deadline or the abort flag ends any stage (resolve, connect, handshake,
// write, read).
#include "export/remote_write/tls_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>

#include <charconv>
#include <stdexcept>

namespace plugmon::agent::remote_write {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using alert::notify::http_failure;
using alert::notify::http_result;

namespace {

struct exchange {
    explicit exchange(ssl::context& ctx) : stream(io, ctx) {}
    asio::io_context io;
    tcp::resolver resolver{io};
    beast::ssl_stream<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response_parser<http::string_body> parser;
    bool done = false;
    beast::error_code ec;

    void finish(beast::error_code e) {
        ec = e;
        done = true;
    }
    void start(const std::string& host, const std::string& port,
               std::chrono::steady_clock::time_point deadline) {
        parser.body_limit(1 << 20);
        resolver.async_resolve(host, port, [this, deadline](beast::error_code e, auto results) {
            if (e) return finish(e);
            beast::get_lowest_layer(stream).expires_at(deadline);
            beast::get_lowest_layer(stream).async_connect(results, [this](beast::error_code e2,
                                                                          const auto&) {
                if (e2) return finish(e2);
                stream.async_handshake(ssl::stream_base::client, [this](beast::error_code e3) {
                    if (e3) return finish(e3);
                    http::async_write(stream, req, [this](beast::error_code e4, std::size_t) {
                        if (e4) return finish(e4);
                        http::async_read(stream, buffer, parser,
                                         [this](beast::error_code e5, std::size_t) { finish(e5); });
                    });
                });
            });
        });
    }
};

}  // namespace

tls_client::tls_client(const std::string& url, std::chrono::nanoseconds timeout,
                       std::string ca_file)
    : ca_file_(std::move(ca_file)), timeout_(timeout) {
    std::string_view u = url;
    if (u.substr(0, 8) != "https://")
        throw std::invalid_argument("url \"" + url + "\": must start with https://");
    u.remove_prefix(8);
    const auto slash = u.find('/');
    const std::string_view authority = u.substr(0, slash);
    target_ = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        authority.front() == '[')
        throw std::invalid_argument("url \"" + url + "\": needs a host name (no user info)");
    const auto colon = authority.rfind(':');
    host_ = std::string(authority.substr(0, colon));
    port_ = colon == std::string_view::npos ? "443" : std::string(authority.substr(colon + 1));
    unsigned n = 0;
    const auto [p, ec] = std::from_chars(port_.data(), port_.data() + port_.size(), n);
    if (ec != std::errc() || p != port_.data() + port_.size() || n == 0 || n > 65535)
        throw std::invalid_argument("url \"" + url + "\": bad port");
}

http_result tls_client::post(const alert::notify::http_headers& headers, const std::string& body,
                             const std::atomic<bool>* abort) const {
    http_result r;
    ssl::context ctx(ssl::context::tls_client);
    beast::error_code ec;
    if (ca_file_.empty())
        ctx.set_default_verify_paths(ec);
    else
        ctx.load_verify_file(ca_file_, ec);
    if (ec) {
        r.failure = http_failure::network;
        r.error = "CA certificates: " + ec.message();
        return r;
    }
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.set_verify_callback(ssl::host_name_verification(host_));
    exchange x(ctx);
    if (!SSL_set_tlsext_host_name(x.stream.native_handle(), host_.c_str())) {  // SNI
        r.failure = http_failure::network;
        r.error = "cannot set the TLS server name";
        return r;
    }
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    x.req = {http::verb::post, target_, 11};
    x.req.set(http::field::host, host_ + ":" + port_);
    x.req.set(http::field::connection, "close");
    for (const auto& [name, value] : headers) x.req.set(name, value);
    x.req.body() = body;
    x.req.prepare_payload();
    x.start(host_, port_, deadline);
    bool aborted = false;
    while (!x.done) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        if (abort != nullptr && abort->load(std::memory_order_acquire)) {
            aborted = true;
            break;
        }
        x.io.run_one_for(std::min<std::chrono::steady_clock::duration>(
            deadline - now, std::chrono::milliseconds(50)));
    }
    if (!x.done) {
        beast::error_code ignored;
        x.resolver.cancel();
        beast::get_lowest_layer(x.stream).socket().close(ignored);
        x.io.restart();
        x.io.run_for(std::chrono::milliseconds(200));
        r.failure = aborted ? http_failure::network : http_failure::timeout;
        r.error = aborted ? "aborted (shutting down)" : "timed out";
        return r;
    }
    if (x.ec) {
        r.failure = x.ec == beast::error::timeout ? http_failure::timeout : http_failure::network;
        r.error = x.ec.message();
        return r;
    }
    const auto& res = x.parser.get();
    r.status = res.result_int();
    const auto it = res.find(http::field::retry_after);
    if (it != res.end())
        r.retry_after = alert::notify::parse_retry_after(
            std::string_view(it->value().data(), it->value().size()),
            std::chrono::system_clock::now());
    r.body_excerpt = res.body().substr(0, 256);
    return r;
}

}  // namespace plugmon::agent::remote_write
