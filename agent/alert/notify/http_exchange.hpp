// One HTTP/1.1 POST on a private io_context, over plain TCP or TLS: the asynchronous chain
// (resolve, connect, the TLS handshake, write, read) driven in 50 ms slices, so that the deadline
// or an abort flag ends any stage. Shared by alert::notify::http_client (http://) and
// remote_write::tls_client (https://), which only set up the stream.
#pragma once

#include "alert/notify/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

namespace plugmon::agent::alert::notify {

/// The state of one request over `Stream` (beast::tcp_stream, or beast::ssl_stream of one); every
/// handler runs on the caller's thread inside post(). Not thread-safe; one per request.
template <class Stream>
class http_exchange {
public:
    /// Extra arguments go to the stream after the io_context (an SSL context, for TLS).
    template <class... Args>
    explicit http_exchange(Args&... args) : stream_(io_, args...) {}

    Stream& stream() { return stream_; }

    /// POSTs `body` to host:port/target with `headers` (which may replace the default
    /// User-Agent), within `timeout` as a whole. Never throws for network problems or timeouts:
    /// they come back as http_result::failure; when `abort` becomes true, gives up within ~50 ms.
    http_result post(const std::string& host, const std::string& port, const std::string& target,
                     const http_headers& headers, const std::string& body,
                     std::chrono::nanoseconds timeout, const std::atomic<bool>* abort) {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(timeout);
        req_ = {boost::beast::http::verb::post, target, 11};
        req_.set(boost::beast::http::field::host, host + ":" + port);
        req_.set(boost::beast::http::field::user_agent, "plugmon-agent");
        req_.set(boost::beast::http::field::connection, "close");
        for (const auto& [name, value] : headers) req_.set(name, value);
        req_.body() = body;
        req_.prepare_payload();
        start(host, port, deadline);
        bool aborted = false;
        while (!done_) {
            const auto now = clock::now();
            if (now >= deadline) break;
            if (abort != nullptr && abort->load(std::memory_order_acquire)) {
                aborted = true;
                break;
            }
            const auto slice =
                std::min<clock::duration>(deadline - now, std::chrono::milliseconds(50));
            if (io_.run_one_for(slice) == 0 && io_.stopped()) break;
        }
        http_result r;
        if (!done_) {
            // Cancel what is pending; its handlers run (with operation_aborted) before the
            // io_context is destroyed, so nothing refers to freed state.
            boost::beast::error_code ignored;
            resolver_.cancel();
            boost::beast::get_lowest_layer(stream_).socket().close(ignored);
            io_.restart();
            io_.run_for(std::chrono::milliseconds(200));
            r.failure = aborted ? http_failure::network : http_failure::timeout;
            r.error = aborted ? "aborted (shutting down)" : "timed out";
            return r;
        }
        if (ec_) {
            r.failure =
                ec_ == boost::beast::error::timeout ? http_failure::timeout : http_failure::network;
            r.error = ec_.message();
            return r;
        }
        const auto& res = parser_.get();
        r.status = res.result_int();
        const auto it = res.find(boost::beast::http::field::retry_after);
        if (it != res.end())
            r.retry_after =
                parse_retry_after(std::string_view(it->value().data(), it->value().size()),
                                  std::chrono::system_clock::now());
        r.body_excerpt = res.body().substr(0, excerpt_bytes);
        return r;
    }

private:
    static constexpr bool tls = !std::is_same_v<Stream, boost::beast::tcp_stream>;
    static constexpr std::size_t excerpt_bytes = 256;
    static constexpr std::size_t response_body_limit = 1 << 20;

    void finish(boost::beast::error_code e) {
        ec_ = e;
        done_ = true;
    }

    void start(const std::string& host, const std::string& port,
               std::chrono::steady_clock::time_point deadline) {
        parser_.body_limit(response_body_limit);
        resolver_.async_resolve(
            host, port, [this, deadline](boost::beast::error_code e, auto results) {
                if (e) return finish(e);
                auto& lowest = boost::beast::get_lowest_layer(stream_);
                lowest.expires_at(deadline);
                lowest.async_connect(results, [this](boost::beast::error_code e2, const auto&) {
                    if (e2) return finish(e2);
                    if constexpr (tls)
                        stream_.async_handshake(Stream::client,
                                                [this](boost::beast::error_code e3) {
                                                    if (e3) return finish(e3);
                                                    send();
                                                });
                    else
                        send();
                });
            });
    }

    void send() {
        boost::beast::http::async_write(
            stream_, req_, [this](boost::beast::error_code e, std::size_t) {
                if (e) return finish(e);
                boost::beast::http::async_read(
                    stream_, buffer_, parser_,
                    [this](boost::beast::error_code e2, std::size_t) { finish(e2); });
            });
    }

    boost::asio::io_context io_;
    boost::asio::ip::tcp::resolver resolver_{io_};
    Stream stream_;
    boost::beast::flat_buffer buffer_;
    boost::beast::http::request<boost::beast::http::string_body> req_;
    boost::beast::http::response_parser<boost::beast::http::string_body> parser_;
    bool done_ = false;
    boost::beast::error_code ec_;
};

}  // namespace plugmon::agent::alert::notify
