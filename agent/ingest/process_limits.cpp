// Soft resource limits of a producer process, for the fd and thread alerts.
#include "ingest/process_limits.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace plugmon::agent {

namespace {

/// The soft limit of the row that starts with `name`, or 0 ("unlimited", absent, malformed).
std::uint64_t soft_limit(std::string_view text, std::string_view name) {
    std::size_t at = 0;
    while (at < text.size()) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        const std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (line.substr(0, name.size()) != name) continue;
        std::size_t p = name.size();
        while (p < line.size() && line[p] == ' ') ++p;
        const std::string field(line.substr(p, line.find(' ', p) - p));
        if (field.empty() || field == "unlimited") return 0;
        char* stop = nullptr;
        const unsigned long long v = std::strtoull(field.c_str(), &stop, 10);
        return *stop == '\0' ? v : 0;
    }
    return 0;
}

}  // namespace

process_limits parse_process_limits(std::string_view text) {
    return {soft_limit(text, "Max open files"), soft_limit(text, "Max processes")};
}

process_limits read_process_limits(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
    if (!in) return {};
    std::ostringstream text;
    text << in.rdbuf();
    return parse_process_limits(text.str());
}

}  // namespace plugmon::agent
