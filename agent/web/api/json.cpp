// JSON answers and query-string parsing shared by the API handlers.
#include "web/api/json.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string_view>

namespace plugmon::agent::api {

http_response json_response(const nlohmann::json& j, unsigned status) {
    http_response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = j.dump(2);
    r.body.push_back('\n');
    return r;
}

http_response error_response(unsigned status, const std::string& message) {
    return json_response(nlohmann::json{{"error", message}}, status);
}

std::optional<std::string> query_param(const std::string& target, const std::string& name) {
    const auto q = target.find('?');
    if (q == std::string::npos) return std::nullopt;
    std::string_view rest(target);
    rest.remove_prefix(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view item = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        const auto eq = item.find('=');
        if (item.substr(0, eq) != name) continue;
        std::string out;
        const std::string_view v =
            eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '+') {
                out.push_back(' ');
            } else if (v[i] == '%' && i + 2 < v.size() &&
                       std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                       std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
                out.push_back(char(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16)));
                i += 2;
            } else {
                out.push_back(v[i]);
            }
        }
        return out;
    }
    return std::nullopt;
}

std::optional<http_response> read_limit(const std::string& target, std::size_t max,
                                        std::size_t& limit) {
    const auto l = query_param(target, "limit");
    if (!l) return std::nullopt;
    char* end = nullptr;
    const unsigned long v = std::strtoul(l->c_str(), &end, 10);
    if (l->empty() || *end != '\0' || v == 0 || v > max)
        return error_response(400, "limit: expected an integer from 1 to " + std::to_string(max) +
                                       ", got \"" + *l + "\"");
    limit = v;
    return std::nullopt;
}

nlohmann::json leak_json(const leak_watch& w) {
    return {{"suspected", w.suspected.load(std::memory_order_relaxed)},
            {"slope_bytes_per_second", w.slope.load(std::memory_order_relaxed)},
            {"r2", w.r2.load(std::memory_order_relaxed)}};
}

nlohmann::json quantiles_json(std::uint64_t count, std::uint64_t p50, std::uint64_t p95,
                              std::uint64_t p99, std::uint64_t max) {
    if (count == 0)
        return {{"p50_seconds", nullptr},
                {"p95_seconds", nullptr},
                {"p99_seconds", nullptr},
                {"max_seconds", nullptr}};
    return {{"p50_seconds", seconds(p50)},
            {"p95_seconds", seconds(p95)},
            {"p99_seconds", seconds(p99)},
            {"max_seconds", seconds(max)}};
}

/// True when an Accept-Encoding header lists gzip with a non-zero quality.
bool any_list_item(std::string_view header,
                   const std::function<bool(std::string_view item)>& match) {
    while (!header.empty()) {
        const auto comma = header.find(',');
        std::string_view item = header.substr(0, comma);
        header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (match(item)) return true;
    }
    return false;
}

bool accepts_gzip(std::string_view header) {
    std::string lower(header);
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    return any_list_item(lower, [](std::string_view item) {
        const auto semi = item.find(';');
        std::string_view coding = item.substr(0, semi);
        while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
        if (coding != "gzip") return false;
        if (semi == std::string_view::npos) return true;
        const auto q = item.find("q=", semi);
        return q == std::string_view::npos ||
               std::strtod(std::string(item.substr(q + 2)).c_str(), nullptr) > 0;
    });
}

std::string fingerprint_hex(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace plugmon::agent::api
