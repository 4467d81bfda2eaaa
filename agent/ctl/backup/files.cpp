// Backup file names, sha256 of a mapped file, atomic writes, pruning of old backups.
#include "ctl/backup/files.hpp"

#include "common/rfc3339.hpp"
#include "common/sha256.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace fs = std::filesystem;

namespace plugmon::ctl::backup {

std::string backup_file_name(std::chrono::system_clock::time_point at, bool schema_only) {
    // RFC 3339 without its separators: 2026-12-04T12:17:28.123Z -> 20261204T121728.123Z.
    std::string stamp = agent::format_rfc3339(at);
    std::erase_if(stamp, [](char c) { return c == '-' || c == ':'; });
    return "plugmon-" + stamp + (schema_only ? "-schema-only" : "") + ".dump";
}

bool is_backup_file_name(const std::string& name) {
    static const std::regex re(R"(plugmon-\d{8}T\d{6}\.\d{3}Z(-schema-only)?\.dump)");
    return std::regex_match(name, re);
}

std::string file_sha256_hex(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw file_error("cannot open " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw file_error("cannot stat " + path + ": " + std::strerror(errno));
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        return agent::to_hex(agent::sha256({}));
    }
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw file_error("cannot map " + path + ": " + std::strerror(errno));
    const std::string hex = agent::to_hex(agent::sha256({static_cast<const char*>(p), size}));
    ::munmap(p, size);
    return hex;
}

void write_file_atomic(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".partial";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        out.flush();
        if (!out) throw file_error("cannot write " + tmp);
    }
    std::error_code ec;
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, ec);
    if (!ec) fs::rename(tmp, path, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw file_error("cannot rename " + tmp + " to " + path + ": " + ec.message());
    }
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw file_error(path + " is missing or unreadable");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> prune_backups(const std::string& dir, int keep) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && is_backup_file_name(e.path().filename().string()))
            names.push_back(e.path().filename().string());
    if (ec) throw file_error("cannot list " + dir + ": " + ec.message());
    // The timestamp is the name's first difference; "-schema-only" sorts after "." at equal times.
    std::sort(names.begin(), names.end());
    std::vector<std::string> removed;
    const std::size_t n = names.size() > static_cast<std::size_t>(keep) ? names.size() - keep : 0;
    for (std::size_t i = 0; i < n; ++i) {
        const std::string path = (fs::path(dir) / names[i]).string();
        for (const char* suffix : {".sha256", ".manifest.json", ""}) {
            fs::remove(path + suffix, ec);
            if (ec) throw file_error("cannot remove " + path + suffix + ": " + ec.message());
        }
        removed.push_back(path);
    }
    return removed;
}

}  // namespace plugmon::ctl::backup
