// Backup files on disk: their names, the sha256 file beside each, atomic writes and pruning.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace plugmon::ctl::backup {

/// A file could not be read, written, renamed or removed; the message names it.
class file_error : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// plugmon-YYYYMMDDTHHMMSS.mmmZ.dump (full) or plugmon-YYYYMMDDTHHMMSS.mmmZ-schema-only.dump, in
/// UTC: names sort by time.
std::string backup_file_name(std::chrono::system_clock::time_point at, bool schema_only);

/// True for names backup_file_name() makes (and nothing else).
bool is_backup_file_name(const std::string& name);

/// The SHA-256 of the file's bytes as 64 lowercase hex digits (the file is mapped, not copied
/// into memory). Throws file_error.
std::string file_sha256_hex(const std::string& path);

/// Writes `text` to `path` (mode 0600) through a temporary file in the same directory and a rename.
/// Throws file_error.
void write_file_atomic(const std::string& path, const std::string& text);

/// The contents of `path`; throws file_error when it cannot be read.
std::string read_text_file(const std::string& path);

/// Removes all but the newest `keep` backups in `dir` (by name), each with its .sha256 and
/// .manifest.json; files of other names are never touched. Returns the removed dumps' paths.
std::vector<std::string> prune_backups(const std::string& dir, int keep);

}  // namespace plugmon::ctl::backup
