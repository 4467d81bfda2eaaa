// plugmonctl backup | backup verify | restore: options, defaults and exit statuses.
#include "ctl/backup/commands.hpp"

#include "ctl/backup/pg_tools.hpp"

#include <cstdlib>
#include <iostream>

namespace plugmon::ctl::backup {

namespace {

/// `text` with every occurrence of the password in `url` replaced by ***: libpq's and the
/// server's messages should never contain it, and this makes sure.
std::string scrub(std::string text, const std::string& url) {
    std::string password;
    try {
        password = split_connection(url).password;
    } catch (const std::exception&) {
        return text;
    }
    if (password.empty()) return text;
    for (auto at = text.find(password); at != std::string::npos; at = text.find(password, at + 3))
        text.replace(at, password.size(), "***");
    return text;
}

std::string postgres_or_env(const std::string& given) {
    if (!given.empty()) return given;
    const char* env = std::getenv("PLUGMON_POSTGRES");
    return env ? env : "";
}

}  // namespace

commands::commands(CLI::App& app) {
    backup_ = app.add_subcommand(
        "backup", "Back up schema plugmon (pg_dump, custom format) with a sha256 and a manifest");
    backup_->add_option("--postgres", backup_options_.postgres,
                        "PostgreSQL connection string (default: $PLUGMON_POSTGRES)");
    backup_->add_option("--dir", backup_options_.dir, "Directory for the backups (created)");
    backup_->add_flag("--schema-only", backup_options_.schema_only,
                      "Only the schema (tables, functions) and its migration ledger, no rows");
    backup_
        ->add_option("--keep", backup_options_.keep,
                     "Keep the newest N backups in --dir, this one included")
        ->capture_default_str();
    backup_->add_option("--pg-bin", backup_options_.pg_bin,
                        "Directory of pg_dump (default: PATH, then /usr/lib/postgresql/15/bin)");
    backup_->require_subcommand(0, 1);
    verify_ = backup_->add_subcommand(
        "verify", "Check a backup: its sha256, its manifest, and pg_restore --list");
    verify_->add_option("FILE", verify_file_, "The backup (.dump)")->required();
    verify_->add_option("--pg-bin", verify_pg_bin_, "Directory of pg_restore");

    restore_ = app.add_subcommand(
        "restore", "Restore a backup into an empty database, or under a new schema name");
    restore_->add_option("--postgres", restore_options_.postgres,
                         "Target connection string (default: $PLUGMON_POSTGRES)");
    restore_->add_option("FILE", restore_options_.file, "The backup (.dump)")->required();
    restore_->add_flag("--dry-run", restore_options_.dry_run,
                       "Verify and print what would be restored; change nothing");
    restore_->add_option("--schema", restore_options_.schema,
                         "Restore as this schema instead of plugmon (the database must have no "
                         "plugmon schema)");
    restore_->add_option("--pg-bin", restore_options_.pg_bin, "Directory of pg_restore");
}

int commands::run_guarded(const char* what, const std::string& url,
                          int (*fn)(const commands&)) const {
    try {
        return fn(*this);
    } catch (const input_error& e) {
        std::cerr << "plugmonctl: " << what << ": " << scrub(e.what(), url) << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "plugmonctl: " << what << ": " << scrub(e.what(), url) << "\n";
        return 1;
    }
}

std::optional<int> commands::run_if_parsed() const {
    if (verify_->parsed())
        return run_guarded("backup verify", "", [](const commands& c) {
            run_verify(c.verify_file_, c.verify_pg_bin_, std::cout);
            return 0;
        });
    if (backup_->parsed())
        return run_guarded("backup", postgres_or_env(backup_options_.postgres),
                           [](const commands& c) {
                               backup_options o = c.backup_options_;
                               o.postgres = postgres_or_env(o.postgres);
                               run_backup(o, std::cout, std::cerr);
                               return 0;
                           });
    if (restore_->parsed()) {
        return run_guarded("restore", postgres_or_env(restore_options_.postgres),
                           [](const commands& c) {
                               restore_options o = c.restore_options_;
                               o.postgres = postgres_or_env(o.postgres);
                               run_restore(o, std::cout, std::cerr);
                               return 0;
                           });
    }
    return std::nullopt;
}

}  // namespace plugmon::ctl::backup
