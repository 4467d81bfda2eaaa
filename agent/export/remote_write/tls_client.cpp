// HTTPS for remote write: the SSL context (CAs, peer and host-name verification, SNI) around the
// notifiers' request exchange (alert/notify/http_exchange.hpp) over an SSL stream.
#include "export/remote_write/tls_client.hpp"

#include "alert/notify/http_exchange.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>

#include <charconv>
#include <stdexcept>

namespace plugmon::agent::remote_write {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using alert::notify::http_failure;
using alert::notify::http_result;

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
    alert::notify::http_exchange<beast::ssl_stream<beast::tcp_stream>> x(ctx);
    if (!SSL_set_tlsext_host_name(x.stream().native_handle(), host_.c_str())) {  // SNI
        r.failure = http_failure::network;
        r.error = "cannot set the TLS server name";
        return r;
    }
    return x.post(host_, port_, target_, headers, body, timeout_, abort);
}

}  // namespace plugmon::agent::remote_write
