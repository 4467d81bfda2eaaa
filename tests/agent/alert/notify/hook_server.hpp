// A receiving end for the notifier tests: an HTTP server on 127.0.0.1 (any port, or a given one)
// that records every request with all its headers and answers what the test's handler says.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace plugmon::agent::testing {

struct captured_request {
    std::string target;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    std::chrono::steady_clock::time_point at;
};

struct hook_reply {
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> headers = {};
    std::string body = {};
};

class hook_server {
public:
    /// `handler(request, index)` runs on the server's thread; index counts requests from 0.
    using handler = std::function<hook_reply(const captured_request&, std::size_t)>;

    explicit hook_server(handler h = {}, std::uint16_t port = 0)
        : handler_(std::move(h)), acceptor_(io_) {
        namespace asio = boost::asio;
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        acceptor_.open(ep.protocol());
        acceptor_.set_option(asio::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        accept();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~hook_server() {
        boost::asio::post(io_, [this] {
            boost::system::error_code ignored;
            acceptor_.close(ignored);
        });
        thread_.join();
    }
    hook_server(const hook_server&) = delete;
    hook_server& operator=(const hook_server&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url(const std::string& path = "/hook") const {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }

    std::vector<captured_request> requests() const {
        std::lock_guard lock(mu_);
        return requests_;
    }

    /// Waits until at least `n` requests arrived; false on timeout.
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
    }

private:
    void accept() {
        acceptor_.async_accept(
            [this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
                if (ec) return;
                serve(std::move(s));
                accept();
            });
    }

    void serve(boost::asio::ip::tcp::socket socket) {
        namespace http = boost::beast::http;
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> req;
        boost::system::error_code ec;
        http::read(socket, buffer, req, ec);
        if (ec) return;
        captured_request c{
            std::string(req.target()), {}, req.body(), std::chrono::steady_clock::now()};
        for (const auto& f : req) {
            std::string name(f.name_string());
            for (auto& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
            c.headers[name] = std::string(f.value());
        }
        std::size_t index;
        {
            std::lock_guard lock(mu_);
            index = requests_.size();
        }
        hook_reply r = handler_ ? handler_(c, index) : hook_reply{};
        {
            std::lock_guard lock(mu_);
            requests_.push_back(std::move(c));
        }
        cv_.notify_all();
        http::response<http::string_body> res{http::status(r.status), 11};
        for (const auto& [k, v] : r.headers) res.set(k, v);
        res.body() = r.body;
        res.prepare_payload();
        http::write(socket, res, ec);
        socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }

    handler handler_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::uint16_t port_ = 0;
    std::thread thread_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<captured_request> requests_;
};

}  // namespace plugmon::agent::testing
