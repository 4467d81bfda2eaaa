// Remote write over https: a TLS receiver with a self-signed certificate (made by the openssl
// command) is reached when its CA file is given, and refused (retried, nothing sent) when the
// certificate does not verify against the system's CAs.
#include "export/remote_write/sink.hpp"
#include "export/remote_write/tls_client.hpp"

#include "wire_decoder.hpp"

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

using namespace plugmon::agent;
using namespace plugmon::agent::remote_write;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace http = boost::beast::http;

namespace {

struct tls_receiver {
    explicit tls_receiver(const std::string& dir) : ctx(asio::ssl::context::tls_server) {
        const std::string cmd =
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
            "/CN=localhost -addext subjectAltName=DNS:localhost -keyout " +
            dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
        ok = std::system(cmd.c_str()) == 0;
        cert = dir + "/cert.pem";
        if (!ok) return;
        ctx.use_certificate_chain_file(cert);
        ctx.use_private_key_file(dir + "/key.pem", asio::ssl::context::pem);
        thread = std::thread([this] { serve(); });
    }
    ~tls_receiver() {
        stop = true;
        boost::system::error_code ec;
        asio::ip::tcp::socket s(io);
        s.connect(acceptor.local_endpoint(), ec);
        if (thread.joinable()) thread.join();
    }
    void serve() {
        while (!stop) {
            asio::ip::tcp::socket sock(io);
            boost::system::error_code ec;
            acceptor.accept(sock, ec);
            if (ec || stop) continue;
            asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(sock), ctx);
            tls.handshake(asio::ssl::stream_base::server, ec);
            if (ec) continue;  // the client refused our certificate
            boost::beast::flat_buffer buf;
            http::request<http::string_body> req;
            http::read(tls, buf, req, ec);
            if (ec) continue;
            try {
                samples +=
                    plugmon::test::rw::decode_write_request(plugmon::test::rw::unsnappy(req.body()))
                        .size();
            } catch (const std::exception&) {
            }
            ++requests;
            http::response<http::string_body> res{http::status::no_content, 11};
            res.prepare_payload();
            http::write(tls, res, ec);
            tls.shutdown(ec);
        }
    }
    std::string url() const {
        return "https://localhost:" + std::to_string(acceptor.local_endpoint().port()) +
               "/api/v1/write";
    }
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
    asio::ssl::context ctx;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::atomic<int> requests{0};
    std::atomic<std::size_t> samples{0};
    bool ok = false;
    std::string cert;
};

struct remote_write_tls : ::testing::Test {
    std::string dir;
    void SetUp() override {
        std::string t = (std::filesystem::temp_directory_path() / "plugmon-rwtls-XXXXXX").string();
        dir = ::mkdtemp(t.data());
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
};

}  // namespace

TEST_F(remote_write_tls, a_receiver_verified_by_its_ca_file_gets_the_request) {
    tls_receiver rx(dir);
    ASSERT_TRUE(rx.ok) << "openssl req failed";
    tls_client c(rx.url(), 5s, rx.cert);
    const std::string body = snappy_compress("");
    const auto r = c.post({{"Content-Encoding", "snappy"}}, body);
    EXPECT_EQ(r.status, 204u) << r.error;
    EXPECT_EQ(rx.requests.load(), 1);
}

TEST_F(remote_write_tls, a_certificate_the_system_cas_do_not_know_is_refused_and_retried) {
    tls_receiver rx(dir);
    ASSERT_TRUE(rx.ok) << "openssl req failed";
    tls_client c(rx.url(), 5s, "");
    const auto r = c.post({}, snappy_compress(""));
    EXPECT_EQ(r.status, 0u);
    EXPECT_EQ(r.failure, alert::notify::http_failure::network) << r.error;
    EXPECT_EQ(classify(r, false), verdict::retry);
    EXPECT_EQ(rx.requests.load(), 0);
    // A host name other than the certificate's fails too, even with the right CA.
    tls_client wrong("https://127.0.0.1:" + rx.url().substr(rx.url().rfind(':') + 1), 5s, rx.cert);
    EXPECT_EQ(wrong.post({}, snappy_compress("")).failure, alert::notify::http_failure::network);
    EXPECT_EQ(rx.requests.load(), 0);
}

TEST_F(remote_write_tls, the_sink_delivers_over_https) {
    tls_receiver rx(dir);
    ASSERT_TRUE(rx.ok) << "openssl req failed";
    sink_options o;
    o.name = "tls";
    o.url = rx.url();
    o.tls_ca_file = rx.cert;
    o.spool_dir = dir + "/spool";
    o.spool_sync = false;
    o.series.external_labels = {{"host", "h"}};
    sink s(std::move(o));
    s.start();
    auto w = std::make_shared<window_batch>();
    w->bucket_start = std::chrono::system_clock::now() - 1s;
    w->length = 1s;
    execution_rollup e;
    e.plugin = "p";
    e.calls = 2;
    w->executions.push_back(e);
    s.consume(w);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (s.stats().windows_sent.load() == 0 && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(10ms);
    s.stop(1s);
    EXPECT_EQ(s.stats().windows_sent.load(), 1u);
    EXPECT_EQ(rx.requests.load(), 1);
    EXPECT_EQ(rx.samples.load(), 2u);  // executions_total{status="ok"}, plugin_cpu_seconds_total
}
