// A scripted remote-write receiver on a loopback port for the tests: records each request
// (headers and decoded body) and answers with the next scripted reply.
#pragma once

#include "wire_decoder.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace plugmon::test::rw {

struct reply {
    reply(unsigned s = 204, std::string b = {}, std::string ra = {},
          std::chrono::milliseconds d = std::chrono::milliseconds{0})
        : status(s), body(std::move(b)), retry_after(std::move(ra)), delay(d) {}
    unsigned status = 204;
    std::string body;
    std::string retry_after;             // header, when not empty
    std::chrono::milliseconds delay{0};  // before answering (longer than the timeout: a hang)
};

struct received {
    std::map<std::string, std::string> headers;
    std::vector<decoded_series> series;
    std::size_t samples() const {
        std::size_t n = 0;
        for (const auto& s : series) n += s.samples.size() + s.histograms.size();
        return n;
    }
    bool has_histograms() const {
        for (const auto& s : series)
            if (!s.histograms.empty()) return true;
        return false;
    }
};

class stub_receiver {
public:
    stub_receiver() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        thread_ = std::thread([this] { serve(); });
    }
    ~stub_receiver() {
        stop_ = true;
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket s(io_);
        s.connect(acceptor_.local_endpoint(), ec);  // wakes accept()
        thread_.join();
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) +
               "/api/v1/write";
    }
    /// Replies used in order; when they run out, `otherwise`.
    void script(std::deque<reply> r, reply otherwise = {}) {
        std::lock_guard l(mu_);
        script_ = std::move(r);
        otherwise_ = std::move(otherwise);
    }
    std::vector<received> requests() const {
        std::lock_guard l(mu_);
        return got_;
    }
    std::size_t count() const {
        std::lock_guard l(mu_);
        return got_.size();
    }

private:
    void serve() {
        namespace http = boost::beast::http;
        while (!stop_) {
            boost::asio::ip::tcp::socket sock(io_);
            boost::system::error_code ec;
            acceptor_.accept(sock, ec);
            if (ec || stop_) continue;
            boost::beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(sock, buf, req, ec);
            if (ec) continue;
            received r;
            for (const auto& f : req)
                r.headers[std::string(f.name_string())] = std::string(f.value());
            try {
                r.series = decode_write_request(unsnappy(req.body()));
            } catch (const std::exception&) {
                r.headers["x-decode-error"] = "1";
            }
            reply rep;
            {
                std::lock_guard l(mu_);
                got_.push_back(std::move(r));
                if (!script_.empty()) {
                    rep = script_.front();
                    script_.pop_front();
                } else {
                    rep = otherwise_;
                }
            }
            if (rep.delay.count() > 0) std::this_thread::sleep_for(rep.delay);
            http::response<http::string_body> res{static_cast<http::status>(rep.status), 11};
            res.body() = rep.body;
            if (!rep.retry_after.empty()) res.set(http::field::retry_after, rep.retry_after);
            res.prepare_payload();
            http::write(sock, res, ec);
            sock.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        }
    }

    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::deque<reply> script_;
    reply otherwise_;
    std::vector<received> got_;
};

}  // namespace plugmon::test::rw
