// plugmonctl backup, backup verify and restore: a pg_dump of schema plugmon with a sha256 and a
// manifest beside it, its check, and its restore into an empty database or under a new name.
#pragma once

#include "ctl/backup/manifest.hpp"
#include "ctl/backup/pg_tools.hpp"

#include <ostream>
#include <stdexcept>
#include <string>

namespace plugmon::ctl::backup {

/// The backup, check or restore failed or was refused: printed, exit status 1.
class backup_failure : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// `plugmonctl backup`.
struct backup_options {
    std::string postgres;  ///< connection string; required
    std::string dir;       ///< where backups go; created when missing
    std::string pg_bin;    ///< where pg_dump is; "" = PATH, then /usr/lib/postgresql/15/bin
    bool schema_only = false;
    int keep = 7;  ///< backups kept in `dir` (this one included); >= 1
};

/// `plugmonctl restore`.
struct restore_options {
    std::string postgres;  ///< connection string of the target database; required
    std::string file;      ///< the backup
    std::string schema;    ///< "" or "plugmon": restore as plugmon; else the new schema's name
    std::string pg_bin;
    bool dry_run = false;
};

/// Dumps schema plugmon into o.dir, writes FILE.sha256 and FILE.manifest.json, prunes to o.keep
/// backups. Progress goes to `log`; the last line on `out` is the backup's path. Blocks; throws
/// input_error, backup_failure, or what libpqxx throws for a database it cannot reach.
void run_backup(const backup_options& o, std::ostream& out, std::ostream& log);

/// A backup that passed verify_backup().
struct verified_backup {
    manifest m;
    int entries = 0;  ///< pg_restore --list entries
};

/// Checks FILE against FILE.sha256, reads FILE.manifest.json (which must name the same sha256) and
/// lists FILE with pg_restore. Throws backup_failure saying what is wrong ("sha256 mismatch: FILE
/// is corrupted or truncated ..."). Blocks.
verified_backup verify_backup(const std::string& file, const std::string& pg_bin);

/// `plugmonctl backup verify FILE`: verify_backup(), then a summary on `out`.
void run_verify(const std::string& file, const std::string& pg_bin, std::ostream& out);

/// Verifies, checks the schema version and the target, then restores (or with dry_run, prints
/// what it would restore and changes nothing). Throws input_error or backup_failure.
void run_restore(const restore_options& o, std::ostream& out, std::ostream& log);

}  // namespace plugmon::ctl::backup
