// Pieces of error messages about the files the agent reads (the configuration, rules files,
// pricing files): a value quoted for display, and what a TOML value is, in words. Header-only:
// its users link toml++ themselves.
#pragma once

#include <toml++/toml.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace plugmon::agent {

/// `text` in double quotes with quotes, backslashes and control characters escaped, shortened to
/// 80 bytes ("...") when longer.
inline std::string quoted(std::string_view text) {
    constexpr std::size_t max_shown = 80;
    std::string out = "\"";
    for (std::size_t i = 0; i < text.size() && i < max_shown; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (text.size() > max_shown) out += "...";
    out += '"';
    return out;
}

/// "a string", "an integer", "a table", ...
inline std::string toml_type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a floating-point number";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::table:
            return "a table";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

}  // namespace plugmon::agent
