// RFC 3339 timestamps in UTC, as Alertmanager's API and the alert API write them.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent {

/// "2026-12-04T12:17:28.123Z" (milliseconds, UTC).
std::string format_rfc3339(std::chrono::system_clock::time_point t);

/// Parses "2026-12-04T12:17:28Z", with optional fraction and a Z or ±hh:mm offset; nullopt for
/// anything else.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace plugmon::agent
