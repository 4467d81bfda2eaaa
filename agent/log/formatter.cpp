// Text and JSON line formatters for spdlog, with redaction and field rendering.
#include "log/formatter.hpp"

#include <array>
#include <ctime>

#include <fmt/format.h>
#include <spdlog/details/log_msg.h>
#include <nlohmann/json.hpp>

#include "common/rfc3339.hpp"
#include "log/redact.hpp"

namespace plugmon::agent::log {

namespace {

thread_local const line_context* current = nullptr;

/// The context of the line being formatted, or the one of a plain spdlog call.
line_context context_of(const spdlog::details::log_msg& msg) {
    if (current != nullptr) return *current;
    line_context plain;
    if (msg.logger_name.size() != 0)
        plain.component = std::string_view(msg.logger_name.data(), msg.logger_name.size());
    return plain;
}

/// The value a field may show: `***` for a secret by its key's name, a string redacted.
field::value_type shown_value(const field& f) {
    if (sensitive_key(f.key)) return std::string("***");
    if (const auto* s = std::get_if<std::string>(&f.value)) return redact(*s);
    return f.value;
}

std::string field_text(const field& f) {
    return std::visit(
        [](auto&& v) -> std::string {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::string>)
                return std::move(v);
            else if constexpr (std::is_same_v<V, bool>)
                return v ? "true" : "false";
            else
                return fmt::format("{}", v);
        },
        shown_value(f));
}

/// Appends `s` to `out` as one line of valid UTF-8: control characters escaped (\n, \t, \xNN),
/// invalid bytes as U+FFFD; with `quote`, also `"` and `\` escaped.
void append_clean(std::string& out, std::string_view s, bool quote) {
    while (!s.empty()) {
        const char c = s[0];
        const std::size_t n = utf8_length(s);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            s.remove_prefix(1);
            continue;
        }
        if (c == '\n')
            out += "\\n";
        else if (c == '\t')
            out += "\\t";
        else if (c == '\r')
            out += "\\r";
        else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else if (quote && (c == '"' || c == '\\')) {
            out += '\\';
            out += c;
        } else
            out.append(s.substr(0, n));
        s.remove_prefix(n);
    }
}

/// A text field value: bare when it is one plain word, else quoted.
void append_value(std::string& out, std::string_view v) {
    const bool bare = !v.empty() && v.find_first_of(" \"=\\") == std::string_view::npos &&
                      std::none_of(v.begin(), v.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (bare) return append_clean(out, v, false);
    out += '"';
    append_clean(out, v, true);
    out += '"';
}

nlohmann::ordered_json json_value(const field& f) {
    return std::visit([](auto&& v) -> nlohmann::ordered_json { return std::move(v); },
                      shown_value(f));
}

std::string_view payload(const spdlog::details::log_msg& msg) {
    return {msg.payload.data(), msg.payload.size()};
}

}  // namespace

std::size_t utf8_length(std::string_view s) noexcept {
    if (s.empty()) return 0;
    const auto b = static_cast<unsigned char>(s[0]);
    std::size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || n > s.size() || (n == 2 && b < 0xc2) || (n == 4 && b > 0xf4)) return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((static_cast<unsigned char>(s[i]) >> 6) != 2) return 0;
    const auto b1 = static_cast<unsigned char>(s.size() > 1 ? s[1] : 0);
    if ((n == 3 && b == 0xe0 && b1 < 0xa0) || (n == 3 && b == 0xed && b1 >= 0xa0) ||
        (n == 4 && b == 0xf0 && b1 < 0x90) || (n == 4 && b == 0xf4 && b1 >= 0x90))
        return 0;  // overlong, surrogate, beyond U+10FFFF
    return n;
}

std::string_view level_name(spdlog::level::level_enum level) noexcept {
    constexpr std::array<std::string_view, 7> names{"trace", "debug",    "info", "warn",
                                                    "error", "critical", "off"};
    const auto i = static_cast<std::size_t>(level);
    return i < names.size() ? names[i] : "info";
}

void write_with(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view msg,
                const line_context& ctx) {
    if (!logger.should_log(level)) return;
    const line_context* previous = current;
    current = &ctx;
    try {
        logger.log(level, spdlog::string_view_t(msg.data(), msg.size()));
    } catch (...) {
        current = previous;
        throw;
    }
    current = previous;
}

void json_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const line_context ctx = context_of(msg);
    nlohmann::ordered_json line;
    line["ts"] = format_rfc3339(msg.time);
    line["level"] = level_name(msg.level);
    line["component"] = ctx.component;
    line["msg"] = redact(payload(msg));
    for (const field* f = ctx.begin; f != ctx.end; ++f) {
        // A field never replaces the line's own keys.
        const bool reserved = f->key == "ts" || f->key == "level" || f->key == "component" ||
                              f->key == "msg" || f->key == "suppressed";
        line[reserved ? "field_" + f->key : f->key] = json_value(*f);
    }
    if (ctx.suppressed != 0) line["suppressed"] = ctx.suppressed;
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> json_formatter::clone() const {
    return std::make_unique<json_formatter>();
}

void text_formatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
    const line_context ctx = context_of(msg);
    const std::time_t secs = std::chrono::system_clock::to_time_t(msg.time);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    std::array<char, 32> stamp{};
    const std::size_t n = std::strftime(stamp.data(), stamp.size(), "%Y-%m-%dT%H:%M:%S", &tm);
    std::string line = fmt::format("{}.{:03} ", std::string_view(stamp.data(), n), ms);
    msg.color_range_start = line.size();
    line += level_name(msg.level);
    msg.color_range_end = line.size();
    line += ' ';
    if (ctx.component != default_component) {
        append_clean(line, ctx.component, false);
        line += ": ";
    }
    append_clean(line, redact(payload(msg)), false);
    if (ctx.suppressed != 0) line += fmt::format(" ({} similar lines suppressed)", ctx.suppressed);
    for (const field* f = ctx.begin; f != ctx.end; ++f) {
        line += ' ';
        append_clean(line, f->key, false);
        line += '=';
        append_value(line, field_text(*f));
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> text_formatter::clone() const {
    return std::make_unique<text_formatter>();
}

std::unique_ptr<spdlog::formatter> make_formatter(format f) {
    if (f == format::json) return std::make_unique<json_formatter>();
    return std::make_unique<text_formatter>();
}

}  // namespace plugmon::agent::log
