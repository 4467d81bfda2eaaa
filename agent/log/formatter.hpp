// The spdlog formatters of the two log formats, and the per-call context that carries a line's
// component, fields and suppression count from log::write() to the formatter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include "log/log.hpp"

namespace plugmon::agent::log {

/// What a structured call adds to the spdlog message being formatted on this thread.
struct line_context {
    std::string_view component = default_component;
    const field* begin = nullptr;
    const field* end = nullptr;
    std::uint64_t suppressed = 0;  ///< lines held back by the rate limiter before this one
};

/// Writes one line through `logger` with `ctx` visible to the formatter for the duration of the
/// call (the loggers are synchronous: sinks format on the calling thread). May throw what the
/// logger's sinks throw.
void write_with(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
                const line_context& ctx);

/// One JSON object a line: ts (RFC 3339 UTC, milliseconds), level, component, msg, then the
/// fields (and `suppressed`). Secrets are redacted; invalid UTF-8 becomes U+FFFD.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;
};

/// "<local time, ms> <level> [<component>: ]<msg>[ (N similar lines suppressed)] key=value ...":
/// the agent's classic line with the fields appended. Secrets are redacted; control characters
/// are escaped so that a line stays one line.
class text_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
    std::unique_ptr<spdlog::formatter> clone() const override;
};

/// The formatter of `f`.
std::unique_ptr<spdlog::formatter> make_formatter(format f);

/// Length of the valid UTF-8 sequence at the start of `s`; 0 when `s` is empty or starts with an
/// invalid, overlong or surrogate sequence. Thread-safe (pure).
std::size_t utf8_length(std::string_view s) noexcept;

/// The level's name as written in lines: trace, debug, info, warn, error, critical.
std::string_view level_name(spdlog::level::level_enum level) noexcept;

}  // namespace plugmon::agent::log
