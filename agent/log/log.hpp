// Structured logging over spdlog: a component and key=value fields on every line, rendered as text
// or as one JSON object a line (log_format), secrets redacted at the sink, repeated errors
// rate-limited with a count of what was held back.
//
//   log::setup(log::format::json, spdlog::level::info);
//   log::info("store", "batch committed", {{"batch", id}, {"rows", n}});
//   log::limited(spdlog::level::warn, "store", "database unreachable", {{"error", e.what()}});
//
// Plain spdlog calls keep working: they get the component "agent" and no fields.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include <spdlog/common.h>

#include "log/log_format.hpp"

namespace plugmon::agent::log {

/// One structured field. Strings are copied; numbers and booleans keep their JSON type.
struct field {
    using value_type = std::variant<std::string, std::int64_t, std::uint64_t, double, bool>;

    template <typename T>
    field(std::string_view k, T&& v) : key(k), value(to_value(std::forward<T>(v))) {}

    std::string key;
    value_type value;

private:
    template <typename T>
    static value_type to_value(T&& v) {
        using U = std::remove_cvref_t<T>;
        if constexpr (std::is_same_v<U, bool>)
            return v;
        else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>)
            return static_cast<std::int64_t>(v);
        else if constexpr (std::is_integral_v<U>)
            return static_cast<std::uint64_t>(v);
        else if constexpr (std::is_floating_point_v<U>)
            return static_cast<double>(v);
        else
            return std::string(std::string_view(v));
    }
};

using fields = std::initializer_list<field>;

/// The component of lines written through plain spdlog calls.
inline constexpr std::string_view default_component = "agent";

/// Installs the formatter for `f` on every spdlog logger (present and future) and sets the level.
/// Called at start-up and on reload; thread-safe (spdlog locks each sink while it swaps).
void setup(format f, spdlog::level::level_enum level);

/// Writes one line of `component` with `fields`. Never throws (a failure is dropped). Thread-safe.
void write(spdlog::level::level_enum level, std::string_view component, std::string_view msg,
           fields f = {}) noexcept;

/// As write(), at most one line per 10 s for the same `key` (default: component and msg, so msg
/// should be a fixed template with the details in fields). The next line written says how many
/// were held back (`suppressed`). Never throws. Thread-safe.
void limited(spdlog::level::level_enum level, std::string_view component, std::string_view msg,
             fields f = {}, std::string_view key = {}) noexcept;

inline void debug(std::string_view component, std::string_view msg, fields f = {}) noexcept {
    write(spdlog::level::debug, component, msg, f);
}
inline void info(std::string_view component, std::string_view msg, fields f = {}) noexcept {
    write(spdlog::level::info, component, msg, f);
}
inline void warn(std::string_view component, std::string_view msg, fields f = {}) noexcept {
    write(spdlog::level::warn, component, msg, f);
}
inline void error(std::string_view component, std::string_view msg, fields f = {}) noexcept {
    write(spdlog::level::err, component, msg, f);
}
inline void critical(std::string_view component, std::string_view msg, fields f = {}) noexcept {
    write(spdlog::level::critical, component, msg, f);
}

}  // namespace plugmon::agent::log
