// plugmonctl backup: pg_dump of schema plugmon under an exported snapshot, so the manifest's row
// counts are those of the dump; then the sha256, the manifest, and pruning of older backups.
#include "ctl/backup/backup.hpp"

#include "common/conninfo.hpp"
#include "common/rfc3339.hpp"
#include "ctl/backup/files.hpp"
#include "ctl/backup/pg_tools.hpp"
#include "store/schema/migrations.hpp"

#include <pqxx/pqxx>

#include <chrono>
#include <filesystem>

namespace fs = std::filesystem;

namespace plugmon::ctl::backup {

namespace {

/// The one table whose rows a schema-only backup keeps: the migration ledger.
constexpr const char* kept_in_schema_only = "schema_migrations";

void check_options(const backup_options& o) {
    if (o.postgres.empty())
        throw input_error(
            "--postgres: no connection string (give --postgres URL or set PLUGMON_POSTGRES)");
    if (o.dir.empty()) throw input_error("--dir: required (the directory for the backups)");
    if (o.keep < 1) throw input_error("--keep: must be at least 1, got " + std::to_string(o.keep));
}

/// Reads what the manifest says about the database inside `tx` (the dump's snapshot).
void describe_source(pqxx::transaction_base& tx, manifest& m) {
    m.server_version = tx.exec1("SHOW server_version")[0].as<std::string>();
    const bool has_backend =
        tx.exec1("SELECT to_regprocedure('plugmon.sketch_backend(text)') IS NOT NULL")[0]
            .as<bool>();
    if (has_backend)
        m.sketch_backend = tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>();
    // A schema-only dump keeps no rows but the ledger's: count only those, not every table.
    const bool full = m.kind == "full";
    m.tables = count_tables(tx, "plugmon", full);
    if (!full)
        for (auto& t : m.tables)
            if (t.name == kept_in_schema_only)
                t.rows =
                    tx.exec1(std::string("SELECT count(*) FROM plugmon.") + kept_in_schema_only)[0]
                        .as<std::int64_t>();
}

/// For a schema-only backup: pg_dump options leaving out the rows of every table (partitions
/// one by one: PostgreSQL 15's pg_dump does not follow a parent's exclusion into its partitions)
/// but schema_migrations, so that a restored schema knows its version.
std::vector<std::string> exclude_rows(pqxx::transaction_base& tx) {
    std::vector<std::string> args;
    for (const auto& r : tx.exec_params(
             "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = 'plugmon' AND c.relkind = 'r' AND c.relname <> $1 ORDER BY 1",
             kept_in_schema_only))
        args.push_back("--exclude-table-data=plugmon.\"" + r[0].as<std::string>() + "\"");
    return args;
}

/// Runs pg_dump into `partial` inside the snapshot of an open transaction on `c`; fills `m`.
void dump(pqxx::connection& c, const backup_options& o, const std::string& partial, manifest& m,
          std::ostream& log) {
    const std::string pg_dump = find_pg_program("pg_dump", o.pg_bin);
    const child_connection cc = split_connection(o.postgres);
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    const std::string snapshot = tx.exec1("SELECT pg_export_snapshot()")[0].as<std::string>();
    describe_source(tx, m);
    log << "plugmonctl: backup: dumping schema plugmon (version " << m.schema_version << ", "
        << m.tables.size() << " tables, " << total_rows(m) << " rows, " << m.kind << ") from "
        << m.source << " with " << pg_dump << "\n";
    std::vector<std::string> args{"--format=custom", "--schema=plugmon", "--snapshot=" + snapshot,
                                  "--file=" + partial, "--dbname=" + cc.conninfo};
    if (o.schema_only)
        for (auto& a : exclude_rows(tx)) args.push_back(std::move(a));
    const child_result r = run_program(pg_dump, args, cc.password);
    if (r.status != 0) {
        std::error_code ec;
        fs::remove(partial, ec);
        throw backup_failure("pg_dump failed (exit status " + std::to_string(r.status) +
                             "): " + tail_lines(r.err));
    }
    tx.commit();
}

}  // namespace

void run_backup(const backup_options& o, std::ostream& out, std::ostream& log) {
    check_options(o);
    std::error_code ec;
    fs::create_directories(o.dir, ec);
    if (ec || !fs::is_directory(o.dir))
        throw backup_failure("--dir " + o.dir + ": cannot create the directory" +
                             (ec ? ": " + ec.message() : std::string()));
    manifest m;
    m.kind = o.schema_only ? "schema-only" : "full";
    m.source = agent::mask_password(o.postgres);
    const auto now = std::chrono::system_clock::now();
    m.created_at = agent::format_rfc3339(now);
    m.file = backup_file_name(now, o.schema_only);
    const std::string path = (fs::path(o.dir) / m.file).string();
    if (fs::exists(path)) throw backup_failure(path + " already exists; not overwriting it");
    const std::string partial = path + ".partial";

    pqxx::connection c(o.postgres);
    m.schema_version = agent::store::schema_version(c);
    if (m.schema_version == 0)
        throw backup_failure("no plugmon schema in " + m.source +
                             ": nothing to back up (has an agent with --postgres migrated it?)");
    dump(c, o, partial, m, log);

    // A backup holds the store's data: readable by its owner only, whatever the umask.
    fs::permissions(partial, fs::perms::owner_read | fs::perms::owner_write);
    m.size = fs::file_size(partial);
    m.sha256 = file_sha256_hex(partial);
    write_file_atomic(path + ".sha256", m.sha256 + "  " + m.file + "\n");
    write_file_atomic(path + ".manifest.json", to_json(m).dump(2) + "\n");
    fs::rename(partial, path, ec);
    if (ec) throw backup_failure("cannot rename " + partial + " to " + path + ": " + ec.message());
    log << "plugmonctl: backup: wrote " << path << " (" << m.size << " bytes, sha256 " << m.sha256
        << ")\n";
    for (const auto& removed : prune_backups(o.dir, o.keep))
        log << "plugmonctl: backup: removed " << removed << " (keeping the newest " << o.keep
            << ")\n";
    out << path << "\n";
}

}  // namespace plugmon::ctl::backup
