// Specifies the agent's HTTP listener against real TCP clients on 127.0.0.1.
#include "web/server/http.hpp"

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace plugmon::agent {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;

/// A server on 127.0.0.1:0 whose io_context runs on a background thread.
class running_server {
public:
    explicit running_server(http_handler handler, http_limits limits = {})
        : server_(io_, "127.0.0.1", 0, std::move(handler), limits), thread_([this] {
              io_.run();
              ran_out_.set_value();
          }) {}
    ~running_server() {
        stop();
        thread_.join();
    }
    running_server(const running_server&) = delete;
    running_server& operator=(const running_server&) = delete;

    std::uint16_t port() const { return server_.port(); }
    /// Stops the server on its own thread and waits until that has happened.
    void stop() {
        if (stopped_) return;
        stopped_ = true;
        std::promise<void> done;
        asio::post(io_, [&] {
            server_.stop();
            done.set_value();
        });
        done.get_future().wait();
    }
    /// True once io_context::run() has returned, i.e. no operation is pending any more.
    bool ran_out_of_work_within(std::chrono::seconds limit) {
        return ran_out_future_.wait_for(limit) == std::future_status::ready;
    }
    /// Runs f on the server's thread and returns its result.
    template <typename F>
    auto on_server(F f) {
        std::packaged_task<decltype(f())()> task(std::move(f));
        auto result = task.get_future();
        asio::post(io_, [&] { task(); });
        return result.get();
    }
    http_stats stats() {
        return on_server([this] { return server_.stats(); });
    }

private:
    asio::io_context io_;
    std::promise<void> ran_out_;
    std::future<void> ran_out_future_ = ran_out_.get_future();
    http_server server_;
    std::thread thread_;
    bool stopped_ = false;
};

/// A blocking client on one connection.
class client {
public:
    explicit client(std::uint16_t port) : socket_(io_) {
        socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    }

    http::response<http::string_body> request(http::request<http::string_body> req) {
        req.set(http::field::host, "127.0.0.1");
        req.prepare_payload();
        http::write(socket_, req);
        return read_response(req.method() == http::verb::head);
    }

    http::response<http::string_body> get(const std::string& target) {
        return request({http::verb::get, target, 11});
    }

    http::response<http::string_body> read_response(bool head = false) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(16 << 20);
        parser.skip(head);
        http::read(socket_, buffer_, parser);
        return parser.release();
    }

    void write_raw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

    /// Reads until the server closes; returns how the read ended.
    boost::system::error_code read_until_closed() {
        boost::system::error_code ec;
        std::array<char, 4096> scratch{};
        while (!ec) socket_.read_some(asio::buffer(scratch), ec);
        return ec;
    }

private:
    asio::io_context io_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

http_handler echo_handler() {
    return [](const http_request& r) {
        if (r.target == "/missing")
            return http_response{404, "text/plain; charset=utf-8", "no such page\n"};
        return http_response{200, "text/plain; charset=utf-8",
                             r.method + " " + r.target + " [" + r.authorization + "] " + r.body};
    };
}

TEST(http_server, serves_handler_response_on_an_ephemeral_port) {
    running_server server(echo_handler());
    ASSERT_NE(server.port(), 0);
    client c(server.port());
    const auto res = c.get("/metrics?x=1");
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "GET /metrics?x=1 [] ");
    EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
    EXPECT_EQ(res[http::field::content_length], std::to_string(res.body().size()));
}

TEST(http_server, passes_method_authorization_and_body_to_the_handler) {
    running_server server(echo_handler());
    client c(server.port());
    http::request<http::string_body> req{http::verb::post, "/api/v1/alerts/7/ack", 11};
    req.set(http::field::authorization, "Bearer t0k");
    req.body() = "{\"by\":\"me\"}";
    const auto res = c.request(req);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "POST /api/v1/alerts/7/ack [Bearer t0k] {\"by\":\"me\"}");
}

TEST(http_server, passes_through_status_and_headers_from_the_handler) {
    running_server server([](const http_request& r) {
        if (r.target == "/missing")
            return http_response{404, "text/plain; charset=utf-8", "no such page\n"};
        return http_response{401, "application/json", "{}", {{"WWW-Authenticate", "Bearer"}}};
    });
    client c(server.port());
    const auto missing = c.get("/missing");
    EXPECT_EQ(missing.result_int(), 404u);
    EXPECT_EQ(missing.body(), "no such page\n");
    const auto denied = c.get("/api/v1/alerts");
    EXPECT_EQ(denied.result_int(), 401u);
    EXPECT_EQ(denied[http::field::www_authenticate], "Bearer");
    EXPECT_EQ(denied[http::field::content_type], "application/json");
}

TEST(http_server, answers_head_with_headers_only) {
    running_server server(echo_handler());
    client c(server.port());
    const auto res = c.request({http::verb::head, "/healthz", 11});
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res[http::field::content_length],
              std::to_string(std::string("GET /healthz [] ").size()));
    EXPECT_TRUE(res.body().empty());
    // The connection is still in step: the next answer parses as a response of its own.
    EXPECT_EQ(c.get("/next").body(), "GET /next [] ");
}

TEST(http_server, keeps_the_connection_alive_across_requests) {
    std::atomic<int> calls{0};
    running_server server([&](const http_request& r) {
        ++calls;
        return http_response{200, "text/plain; charset=utf-8", r.target};
    });
    client c(server.port());
    const auto first = c.get("/one");
    EXPECT_EQ(first.body(), "/one");
    EXPECT_TRUE(first.keep_alive());
    const auto second = c.get("/two");
    EXPECT_EQ(second.body(), "/two");
    EXPECT_EQ(calls.load(), 2);
    const auto stats = server.stats();
    EXPECT_EQ(stats.connections, 1u);
    EXPECT_EQ(stats.requests, 2u);
}

TEST(http_server, answers_pipelined_requests_in_order) {
    running_server server(echo_handler());
    client c(server.port());
    c.write_raw("GET /d HTTP/1.1\r\nHost: x\r\n\r\nGET /e HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(c.read_response().body(), "GET /d [] ");
    EXPECT_EQ(c.read_response().body(), "GET /e [] ");
    EXPECT_EQ(server.stats().connections, 1u);
}

TEST(http_server, closes_when_the_client_asks) {
    running_server server(echo_handler());
    client c(server.port());
    http::request<http::string_body> req{http::verb::get, "/bye", 11};
    req.keep_alive(false);
    const auto res = c.request(req);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_EQ(c.read_until_closed(), asio::error::eof);
}

TEST(http_server, rejects_oversize_body_with_413_without_calling_the_handler) {
    std::atomic<int> calls{0};
    running_server server([&](const http_request&) {
        ++calls;
        return http_response{};
    });
    client c(server.port());
    http::request<http::string_body> req{http::verb::post, "/upload", 11};
    // Far more than the server reads before it answers: the rest arrives after the 413.
    req.body() = std::string(512 * 1024, 'x');
    const auto res = c.request(req);
    EXPECT_EQ(res.result_int(), 413u);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_EQ(c.read_until_closed(), asio::error::eof);
    EXPECT_EQ(calls.load(), 0);
}

TEST(http_server, rejects_a_body_one_byte_over_the_limit) {
    running_server server([](const http_request&) { return http_response{}; });
    client c(server.port());
    http::request<http::string_body> req{http::verb::post, "/upload", 11};
    req.body() = std::string(64 * 1024 + 1, 'x');
    EXPECT_EQ(c.request(req).result_int(), 413u);
}

TEST(http_server, accepts_a_body_of_exactly_the_limit) {
    running_server server([](const http_request& r) {
        return http_response{200, "text/plain; charset=utf-8", std::to_string(r.body.size())};
    });
    client c(server.port());
    http::request<http::string_body> req{http::verb::post, "/upload", 11};
    req.body() = std::string(64 * 1024, 'x');
    const auto res = c.request(req);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "65536");
}

TEST(http_server, answers_expect_continue_before_the_body) {
    running_server server([](const http_request& r) {
        return http_response{200, "text/plain; charset=utf-8", r.body};
    });
    client c(server.port());
    c.write_raw("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    const auto interim = c.read_response();
    EXPECT_EQ(interim.result_int(), 100u);
    c.write_raw("hello");
    const auto res = c.read_response();
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "hello");
}

TEST(http_server, answers_malformed_request_with_400) {
    running_server server(echo_handler());
    client c(server.port());
    c.write_raw("GET /x HTTP/1.1\r\nHost x\r\n\r\n");
    const auto res = c.read_response();
    EXPECT_EQ(res.result_int(), 400u);
    EXPECT_EQ(c.read_until_closed(), asio::error::eof);
}

TEST(http_server, turns_handler_exception_into_500_and_keeps_serving) {
    running_server server([](const http_request& r) -> http_response {
        if (r.target == "/boom") throw std::runtime_error("kaboom");
        return http_response{200, "text/plain; charset=utf-8", "fine"};
    });
    client c(server.port());
    const auto failed = c.get("/boom");
    EXPECT_EQ(failed.result_int(), 500u);
    EXPECT_THAT(failed.body(), HasSubstr("internal error"));
    EXPECT_EQ(c.get("/ok").body(), "fine");  // same connection
    client other(server.port());
    EXPECT_EQ(other.get("/ok").body(), "fine");  // and new ones
}

TEST(http_server, turns_unsendable_handler_response_into_500) {
    running_server server([](const http_request& r) {
        if (r.target == "/bad-status") return http_response{42, "text/plain", "?"};
        return http_response{200, "text/plain", "x", {{"X-Evil", "a\r\nInjected: yes"}}};
    });
    client c(server.port());
    EXPECT_EQ(c.get("/bad-status").result_int(), 500u);
    const auto res = c.get("/inject");
    EXPECT_EQ(res.result_int(), 500u);
    EXPECT_EQ(res.count("Injected"), 0u);
}

TEST(http_server, closes_connection_that_sends_no_complete_request_in_time) {
    running_server server(echo_handler(), http_limits{64 * 1024, std::chrono::milliseconds{200}});
    client c(server.port());
    c.write_raw("GET /slow HTTP/1.1\r\n");  // and never the rest
    const auto ended = c.read_until_closed();
    EXPECT_TRUE(ended == asio::error::eof || ended == asio::error::connection_reset)
        << ended.message();
}

TEST(http_server, stop_closes_idle_connections_and_lets_the_io_context_finish) {
    running_server server(echo_handler());
    client c(server.port());
    EXPECT_EQ(c.get("/x").result_int(), 200u);
    server.stop();
    const auto ended = c.read_until_closed();
    EXPECT_TRUE(ended == asio::error::eof || ended == asio::error::connection_reset)
        << ended.message();
    EXPECT_TRUE(server.ran_out_of_work_within(std::chrono::seconds{10}));
}

TEST(http_server, refuses_new_connections_after_stop) {
    running_server server(echo_handler());
    const auto port = server.port();
    server.stop();
    asio::io_context io;
    tcp::socket s(io);
    boost::system::error_code ec;
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    EXPECT_EQ(ec, asio::error::connection_refused);
}

TEST(http_server, bind_error_names_the_address) {
    running_server first(echo_handler());
    asio::io_context io;
    try {
        http_server second(io, "127.0.0.1", first.port(), echo_handler());
        FAIL() << "second bind succeeded";
    } catch (const std::system_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("listen 127.0.0.1:" + std::to_string(first.port()) + ": "));
        EXPECT_EQ(e.code(), std::errc::address_in_use);
    }
}

TEST(http_server, listens_on_ipv6_loopback_when_available) {
    asio::io_context io;
    std::unique_ptr<http_server> server;
    try {
        server = std::make_unique<http_server>(io, "::1", 0, echo_handler());
    } catch (const std::system_error& e) {
        GTEST_SKIP() << "no IPv6 loopback: " << e.what();
    }
    EXPECT_NE(server->port(), 0);
}

TEST(http_server, counts_requests_and_handler_errors) {
    running_server server([](const http_request& r) -> http_response {
        if (r.target == "/boom") throw 7;
        return http_response{};
    });
    client c(server.port());
    EXPECT_EQ(c.get("/a").result_int(), 200u);
    EXPECT_EQ(c.get("/boom").result_int(), 500u);
    EXPECT_EQ(c.get("/b").result_int(), 200u);
    const auto stats = server.stats();
    EXPECT_EQ(stats.requests, 3u);
    EXPECT_EQ(stats.handler_errors, 1u);
    EXPECT_EQ(stats.rejected, 0u);
}

}  // namespace
}  // namespace plugmon::agent
