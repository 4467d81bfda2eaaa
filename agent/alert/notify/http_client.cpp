// The notifiers' HTTP client: Beast over a private io_context, driven in short slices so that a
// deadline or an abort flag ends any stage (resolve, connect, write, read).
#include "alert/notify/http_client.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace plugmon::agent::alert::notify {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t excerpt_bytes = 256;
constexpr std::size_t response_body_limit = 1 << 20;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return out;
}

// The state of one request; every handler runs on the caller's thread inside run_one_for.
struct exchange {
    asio::io_context io;
    tcp::resolver resolver{io};
    beast::tcp_stream stream{io};
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
        parser.body_limit(response_body_limit);
        resolver.async_resolve(host, port, [this, deadline](beast::error_code e, auto results) {
            if (e) return finish(e);
            stream.expires_at(deadline);
            stream.async_connect(results, [this](beast::error_code e2, const auto&) {
                if (e2) return finish(e2);
                http::async_write(stream, req, [this](beast::error_code e3, std::size_t) {
                    if (e3) return finish(e3);
                    http::async_read(stream, buffer, parser,
                                     [this](beast::error_code e4, std::size_t) { finish(e4); });
                });
            });
        });
    }
};

}  // namespace

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now) {
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    long long secs = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), secs);
    if (ec == std::errc() && p == value.data() + value.size()) {
        if (secs < 0) return std::nullopt;
        return std::chrono::seconds(secs);
    }
    std::tm tm{};
    std::string text(value);
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0') return std::nullopt;
    auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
    auto delta = std::chrono::duration_cast<std::chrono::seconds>(when - now);
    return std::max(delta, std::chrono::seconds(0));
}

http_client::http_client(std::string receiver, const std::string& url,
                         std::chrono::nanoseconds timeout)
    : receiver_(std::move(receiver)), timeout_(timeout) {
    std::string_view u = url;
    if (lower(u.substr(0, 8)) == "https://")
        throw std::invalid_argument("receiver \"" + receiver_ + "\": url \"" + url +
                                    "\": https is not supported (use http://, e.g. via a local "
                                    "TLS-terminating proxy)");
    if (lower(u.substr(0, 7)) != "http://")
        throw std::invalid_argument("receiver \"" + receiver_ + "\": url \"" + url +
                                    "\": must start with http://");
    u.remove_prefix(7);
    auto slash = u.find('/');
    std::string_view authority = u.substr(0, slash);
    target_ = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
    if (authority.empty() || authority.find('@') != std::string_view::npos)
        throw std::invalid_argument("receiver \"" + receiver_ + "\": url \"" + url +
                                    "\": needs a host (and no user info)");
    auto colon = authority.rfind(':');
    bool bracketed = authority.front() == '[';
    if (colon != std::string_view::npos && (!bracketed || authority[colon - 1] == ']')) {
        host_ = std::string(authority.substr(0, colon));
        port_ = std::string(authority.substr(colon + 1));
    } else {
        host_ = std::string(authority);
        port_ = "80";
    }
    if (bracketed && host_.size() >= 2) host_ = host_.substr(1, host_.size() - 2);
    unsigned port_number = 0;
    auto [p, ec] = std::from_chars(port_.data(), port_.data() + port_.size(), port_number);
    if (ec != std::errc() || p != port_.data() + port_.size() || port_number == 0 ||
        port_number > 65535)
        throw std::invalid_argument("receiver \"" + receiver_ + "\": url \"" + url +
                                    "\": bad port");
}

http_result http_client::post(const http_headers& headers, const std::string& body,
                              const std::atomic<bool>* abort) const {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
    exchange x;
    x.req = {http::verb::post, target_, 11};
    x.req.set(http::field::host, host_ + ":" + port_);
    x.req.set(http::field::user_agent, "plugmon-agent");
    x.req.set(http::field::connection, "close");
    for (const auto& [name, value] : headers) x.req.set(name, value);
    x.req.body() = body;
    x.req.prepare_payload();
    x.start(host_, port_, deadline);
    bool aborted = false;
    while (!x.done) {
        auto now = std::chrono::steady_clock::now();
        if (now >= deadline) break;
        if (abort != nullptr && abort->load(std::memory_order_acquire)) {
            aborted = true;
            break;
        }
        auto slice = std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                                   std::chrono::milliseconds(50));
        if (x.io.run_one_for(slice) == 0 && x.io.stopped()) break;
    }
    http_result r;
    if (!x.done) {
        // Cancel whatever is still pending; the handlers run (with operation_aborted) before the
        // io_context is destroyed, so nothing refers to freed state.
        beast::error_code ignored;
        x.resolver.cancel();
        x.stream.socket().close(ignored);
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
    auto it = res.find(http::field::retry_after);
    if (it != res.end())
        r.retry_after = parse_retry_after(std::string_view(it->value().data(), it->value().size()),
                                          std::chrono::system_clock::now());
    r.body_excerpt = res.body().substr(0, excerpt_bytes);
    return r;
}

}  // namespace plugmon::agent::alert::notify
