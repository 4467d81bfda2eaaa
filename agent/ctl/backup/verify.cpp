// plugmonctl backup verify: the dump against its sha256 and manifest, then pg_restore --list.
#include "ctl/backup/backup.hpp"

#include "common/sha256.hpp"
#include "ctl/backup/files.hpp"
#include "ctl/backup/pg_tools.hpp"

#include <filesystem>
#include <sstream>

namespace fs = std::filesystem;

namespace plugmon::ctl::backup {

namespace {

/// The digest of a sha256sum line ("HEX  NAME"); throws backup_failure when it is not one.
std::string expected_digest(const std::string& sha_path, const std::string& file) {
    std::string text;
    try {
        text = read_text_file(sha_path);
    } catch (const file_error&) {
        throw backup_failure(sha_path + " is missing or unreadable: cannot check " + file);
    }
    const auto digest = agent::digest_from_hex(text.substr(0, text.find_first_of(" \t\n")));
    if (!digest)
        throw backup_failure(sha_path + ": not a sha256sum line (64 hex digits, then the name)");
    return agent::to_hex(*digest);
}

int toc_entries(const std::string& listing) {
    int n = 0;
    std::stringstream in(listing);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty() && line[0] != ';') ++n;
    return n;
}

}  // namespace

verified_backup verify_backup(const std::string& file, const std::string& pg_bin) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw backup_failure(file + ": no such backup file");
    const std::string expected = expected_digest(file + ".sha256", file);
    const std::string actual = file_sha256_hex(file);
    if (actual != expected)
        throw backup_failure("sha256 mismatch: " + file + " is corrupted or truncated (" +
                             std::to_string(fs::file_size(file)) + " bytes, sha256 " + actual +
                             ", expected " + expected + ")");
    verified_backup v;
    try {
        v.m = read_manifest(file + ".manifest.json");
    } catch (const manifest_error& e) {
        throw backup_failure(std::string("the manifest: ") + e.what());
    }
    if (v.m.sha256 != expected)
        throw backup_failure(file + ".manifest.json describes another dump (sha256 " + v.m.sha256 +
                             ", this one is " + expected + ")");
    const child_result r = run_program(find_pg_program("pg_restore", pg_bin), {"--list", file}, "");
    if (r.status != 0)
        throw backup_failure("pg_restore cannot read " + file + ": " + tail_lines(r.err));
    v.entries = toc_entries(r.out);
    if (v.entries == 0) throw backup_failure(file + ": pg_restore lists no entries in it");
    return v;
}

void run_verify(const std::string& file, const std::string& pg_bin, std::ostream& out) {
    const verified_backup v = verify_backup(file, pg_bin);
    out << file << ": ok: sha256 " << v.m.sha256 << ", " << v.entries << " archive entries, "
        << v.m.kind << ", plugmon schema version " << v.m.schema_version << ", "
        << v.m.tables.size() << " tables, " << total_rows(v.m) << " rows";
    const time_range range = data_time_range(v.m);
    if (!range.first.empty()) out << ", data from " << range.first << " to " << range.last;
    out << ", created " << v.m.created_at << "\n";
}

}  // namespace plugmon::ctl::backup
