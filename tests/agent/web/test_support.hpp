// A real http_server on 127.0.0.1:0 on a background thread, and a blocking client that can send
// any Host header (or none) from any loopback address, for the web layer's tests.
#pragma once

#include "web/server/http.hpp"

#include <array>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace plugmon::agent::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using response = http::response<http::string_body>;

/// A server on 127.0.0.1:0 whose io_context runs on a background thread.
class running_server {
public:
    explicit running_server(http_handler handler)
        : server_(io_, "127.0.0.1", 0, std::move(handler)), thread_([this] { io_.run(); }) {}
    ~running_server() {
        std::promise<void> done;
        asio::post(io_, [&] {
            server_.stop();
            done.set_value();
        });
        done.get_future().wait();
        thread_.join();
    }
    running_server(const running_server&) = delete;
    running_server& operator=(const running_server&) = delete;

    std::uint16_t port() const { return server_.port(); }
    http_server& server() { return server_; }

private:
    asio::io_context io_;
    http_server server_;
    std::thread thread_;
};

/// A blocking client on one connection, from `from` (any 127.0.0.0/8 address on Linux).
class client {
public:
    explicit client(std::uint16_t port, const std::string& from = "127.0.0.1") : socket_(io_), port_(port) {
        socket_.open(tcp::v4());
        socket_.bind(tcp::endpoint(asio::ip::make_address(from), 0));
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    /// Sends `req` with Host 127.0.0.1:PORT unless it has a Host already.
    response request(http::request<http::string_body> req) {
        if (req.find(http::field::host) == req.end()) req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
        req.prepare_payload();
        http::write(socket_, req);
        return read_response(req.method() == http::verb::head);
    }

    response get(const std::string& target, const std::string& token = "") {
        http::request<http::string_body> req{http::verb::get, target, 11};
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
        return request(std::move(req));
    }

    /// A POST with a JSON body (or `content_type` when given; empty: none).
    response post(const std::string& target, const std::string& token = "", const std::string& body = "{}",
                  const std::string& content_type = "application/json") {
        http::request<http::string_body> req{http::verb::post, target, 11};
        if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
        if (!content_type.empty()) req.set(http::field::content_type, content_type);
        req.body() = body;
        return request(std::move(req));
    }

    /// Writes raw bytes and reads one response.
    response raw(const std::string& bytes) {
        asio::write(socket_, asio::buffer(bytes));
        return read_response();
    }

    response read_response(bool head = false) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 << 20);
        parser.skip(head);
        http::read(socket_, buffer_, parser);
        return parser.release();
    }

private:
    asio::io_context io_;
    tcp::socket socket_;
    std::uint16_t port_;
    beast::flat_buffer buffer_;
};

}  // namespace plugmon::agent::testing
