// The log line formats an operator can choose with `log_format` (header only: the configuration
// names them without linking the logging library).
#pragma once

#include <array>
#include <optional>
#include <string_view>
#include <utility>

namespace plugmon::agent::log {

/// text: "<local time> <level> [<component>: ]<message> key=value ..."; json: one object a line.
enum class format { text, json };

inline constexpr std::array<std::pair<std::string_view, format>, 2> format_names{{
    {"text", format::text},
    {"json", format::json},
}};

/// The format called `name`, or nullopt. Thread-safe (pure).
constexpr std::optional<format> parse_format(std::string_view name) {
    for (const auto& [n, f] : format_names)
        if (n == name) return f;
    return std::nullopt;
}

/// "text" or "json". Thread-safe (pure).
constexpr std::string_view format_name(format f) { return f == format::json ? "json" : "text"; }

}  // namespace plugmon::agent::log
