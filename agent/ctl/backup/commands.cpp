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

/// Runs `fn`; what it throws goes to stderr (the password of `url` scrubbed) as exit status 2 for
/// bad input, 1 for anything else.
template <typename Fn>
int run_guarded(const char* what, const std::string& url, Fn&& fn) {
    try {
        fn();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "plugmonctl: " << what << ": " << scrub(e.what(), url) << "\n";
        return dynamic_cast<const input_error*>(&e) ? 2 : 1;
    }
}

/// run_guarded() of `run` on `o`, its --postgres defaulting to $PLUGMON_POSTGRES.
template <typename Options>
int run_on_postgres(const char* what, Options o,
                    void (*run)(const Options&, std::ostream&, std::ostream&)) {
    if (o.postgres.empty()) {
        const char* env = std::getenv("PLUGMON_POSTGRES");
        o.postgres = env ? env : "";
    }
    return run_guarded(what, o.postgres, [&] { run(o, std::cout, std::cerr); });
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

std::optional<int> commands::run_if_parsed() const {
    if (verify_->parsed())
        return run_guarded("backup verify", "",
                           [this] { run_verify(verify_file_, verify_pg_bin_, std::cout); });
    if (backup_->parsed()) return run_on_postgres("backup", backup_options_, run_backup);
    if (restore_->parsed()) return run_on_postgres("restore", restore_options_, run_restore);
    return std::nullopt;
}

}  // namespace plugmon::ctl::backup
