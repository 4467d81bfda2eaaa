// Private to rules/: one file's TOML to declarations plus problems, before names are merged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "alert/model.hpp"

namespace plugmon::agent::alert::detail {

/// One problem; `message` is the whole "FILE:LINE: key '...': problem" text.
struct diag {
    std::string file;
    int line = 0;
    std::string message;
};

/// A name that must resolve once every file is read: a receiver or an escalation policy.
struct reference {
    std::string file;
    int line = 0;
    std::string key;  ///< e.g. "rule.receivers"
    std::string name;
    bool policy = false;  ///< an escalation policy, else a receiver
};

struct parsed_file {
    rule_set set;  ///< files and digest are left empty
    std::vector<diag> errors;
    std::vector<reference> refs;
};

/// Parses one file's text: syntax, keys, types, values and everything checkable within a
/// declaration. Names are neither deduplicated nor resolved here (see load.cpp).
parsed_file parse_file(std::string_view text, const std::string& file);

/// "FILE:LINE: key 'KEY': PROBLEM".
std::string format_diag(const std::string& file, int line, std::string_view key,
                        std::string_view problem);

}  // namespace plugmon::agent::alert::detail
