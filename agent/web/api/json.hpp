// Helpers the API handlers share: JSON answers, query parameters, units.
#pragma once

#include "aggregate/series.hpp"
#include "web/server/http.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent::api {

/// `j` pretty-printed (two spaces) with a final newline, as application/json.
http_response json_response(const nlohmann::json& j, unsigned status = 200);

/// `{"error": message}`.
http_response error_response(unsigned status, const std::string& message);

/// The value of `name` in a target's query string ("a=1&b=2"), percent-decoding %XX and '+'.
std::optional<std::string> query_param(const std::string& target, const std::string& name);

/// Reads the `limit` query parameter into `limit` (left as is when absent). Returns the 400
/// answer when it is not an integer from 1 to `max`.
std::optional<http_response> read_limit(const std::string& target, std::size_t max,
                                        std::size_t& limit);

/// True when `match` accepts an item of a comma-separated header list (items trimmed of spaces).
bool any_list_item(std::string_view header,
                   const std::function<bool(std::string_view item)>& match);

/// True when an Accept-Encoding header lists gzip with a non-zero quality.
bool accepts_gzip(std::string_view header);

/// A statement fingerprint as 16 lower-case hex digits.
std::string fingerprint_hex(std::uint64_t v);

inline double seconds(std::uint64_t ns) { return double(ns) / 1e9; }

inline double unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

/// A leak watch's verdict: suspected, slope and fit.
nlohmann::json leak_json(const leak_watch& w);

/// Quantiles of a sketch in seconds; nulls when it is empty (no figure beats a made-up zero).
nlohmann::json quantiles_json(std::uint64_t count, std::uint64_t p50, std::uint64_t p95,
                              std::uint64_t p99, std::uint64_t max);

}  // namespace plugmon::agent::api
