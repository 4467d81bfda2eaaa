// The notifiers' HTTP client: URL parsing and Retry-After here; the request itself is an
// http_exchange over plain TCP (http_exchange.hpp).
#include "alert/notify/http_client.hpp"

#include "alert/notify/http_exchange.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <stdexcept>

namespace plugmon::agent::alert::notify {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return out;
}

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
    http_exchange<boost::beast::tcp_stream> x;
    return x.post(host_, port_, target_, headers, body, timeout_, abort);
}

}  // namespace plugmon::agent::alert::notify
