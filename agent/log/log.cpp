// The logging setup and the structured entry points over spdlog's default logger.
#include "log/log.hpp"

#include <string>

#include <spdlog/spdlog.h>

#include "log/formatter.hpp"
#include "log/rate_limit.hpp"

namespace plugmon::agent::log {

namespace {

line_context context(std::string_view component, fields f, std::uint64_t suppressed) {
    return line_context{component, f.begin(), f.end(), suppressed};
}

rate_limiter& repeated_lines() {
    static rate_limiter limiter(std::chrono::seconds{10});
    return limiter;
}

}  // namespace

void setup(format f, spdlog::level::level_enum level) {
    spdlog::set_formatter(make_formatter(f));
    spdlog::set_level(level);
}

void write(spdlog::level::level_enum level, std::string_view component, std::string_view msg,
           fields f) noexcept {
    try {
        write_with(*spdlog::default_logger_raw(), level, msg, context(component, f, 0));
    } catch (...) {
        // A log call never throws; spdlog reports sink failures through its error handler.
    }
}

void limited(spdlog::level::level_enum level, std::string_view component, std::string_view msg,
             fields f, std::string_view key) noexcept {
    try {
        auto& logger = *spdlog::default_logger_raw();
        if (!logger.should_log(level)) return;
        std::string k(component);
        k += '\0';
        k += key.empty() ? msg : key;
        const auto held = repeated_lines().admit(k);
        if (held) write_with(logger, level, msg, context(component, f, *held));
    } catch (...) {
        // As write().
    }
}

}  // namespace plugmon::agent::log
