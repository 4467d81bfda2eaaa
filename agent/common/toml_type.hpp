// What a TOML value is, in words, for error messages of every file the agent reads (the
// configuration, rules files, pricing files). Header-only: its users link toml++ themselves.
#pragma once

#include <toml++/toml.h>

#include <string>

namespace plugmon::agent {

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
