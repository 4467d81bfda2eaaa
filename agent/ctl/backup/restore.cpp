// plugmonctl restore: verify, refuse what cannot be restored safely, pg_restore in one
// transaction, optionally rename the schema, then compare the row counts with the manifest.
#include "ctl/backup/backup.hpp"

#include "common/conninfo.hpp"
#include "ctl/backup/pg_tools.hpp"
#include "store/schema/migrations.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <optional>
#include <regex>
#include <vector>

namespace plugmon::ctl::backup {

namespace {

constexpr const char* dumped_schema = "plugmon";

std::string target_schema(const restore_options& o) {
    return o.schema.empty() ? dumped_schema : o.schema;
}

void check_options(const restore_options& o) {
    if (o.postgres.empty())
        throw input_error(
            "--postgres: no connection string (give --postgres URL or set PLUGMON_POSTGRES)");
    if (o.file.empty()) throw input_error("the backup FILE is required");
    static const std::regex name(R"([a-z_][a-z0-9_]{0,62})");
    if (!o.schema.empty() && (!std::regex_match(o.schema, name) || o.schema.rfind("pg_", 0) == 0))
        throw input_error("--schema: \"" + o.schema +
                          "\" is not a plain lower-case schema name ([a-z_][a-z0-9_]*, at most 63 "
                          "characters, not pg_*)");
}

/// The tables of `schema` in the target, or nullopt when the schema does not exist.
std::optional<std::vector<std::string>> schema_tables(pqxx::connection& c,
                                                      const std::string& schema) {
    pqxx::read_transaction tx(c);
    if (!tx.exec_params1("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema)[0]
             .as<bool>())
        return std::nullopt;
    std::vector<std::string> names;
    for (const auto& t : count_tables(tx, schema, false)) names.push_back(schema + "." + t.name);
    return names;
}

/// Throws backup_failure when `schema` exists in the target, naming its tables.
void refuse_existing(pqxx::connection& c, const std::string& schema, const std::string& where,
                     const std::string& advice) {
    const auto tables = schema_tables(c, schema);
    if (!tables) return;
    std::string list;
    for (std::size_t i = 0; i < tables->size() && i < 5; ++i)
        list += (i ? ", " : "") + (*tables)[i];
    if (tables->size() > 5) list += ", ...";
    throw backup_failure(
        "schema " + schema + " already exists in " + where +
        (tables->empty() ? std::string(" (without tables)")
                         : " with " + std::to_string(tables->size()) + " tables (" + list + ")") +
        ": " + advice);
}

void check_target(pqxx::connection& c, const restore_options& o, const std::string& where) {
    if (target_schema(o) == dumped_schema) {
        refuse_existing(c, dumped_schema, where,
                        "restore into an empty database (or drop the schema first)");
        return;
    }
    refuse_existing(c, o.schema, where, "choose another --schema");
    refuse_existing(c, dumped_schema, where,
                    "--schema restores through schema plugmon and renames it afterwards, so the "
                    "target database must not have one: restore into another database");
}

/// Makes sure the sketch extension a "c"-backend dump refers to is there (or says it would be).
void prepare_sketch_extension(pqxx::connection& c, const manifest& m, bool dry_run,
                              std::ostream& log) {
    if (m.sketch_backend != "c") return;
    pqxx::nontransaction tx(c);
    if (tx.exec1("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'plugmon_sketch')")[0]
            .as<bool>())
        return;
    if (!tx.exec1("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = "
                  "'plugmon_sketch')")[0]
             .as<bool>())
        throw backup_failure(
            "the backup's sketch functions use the C extension plugmon_sketch, which the target "
            "server does not offer: install it there first (agent/store/extension)");
    log << "plugmonctl: restore: " << (dry_run ? "would create" : "creating")
        << " the extension plugmon_sketch (the backup's sketch functions use it)\n";
    if (!dry_run) tx.exec0("CREATE EXTENSION IF NOT EXISTS plugmon_sketch");
}

void print_plan(const verified_backup& v, const restore_options& o, const std::string& where,
                std::ostream& out) {
    out << "dry run: would restore " << o.file << " (" << v.m.kind << ", plugmon schema version "
        << v.m.schema_version << ", created " << v.m.created_at << ", " << v.entries
        << " archive entries) into " << where << " as schema " << target_schema(o) << "\n";
    for (const auto& t : v.m.tables) out << "  " << t.name << "  " << t.rows << " rows\n";
    const time_range range = data_time_range(v.m);
    if (!range.first.empty()) out << "  data from " << range.first << " to " << range.last << "\n";
    out << "dry run: nothing was changed\n";
}

/// The restored row counts against the manifest's; throws backup_failure on any difference.
void check_counts(pqxx::connection& c, const manifest& m, const std::string& schema) {
    pqxx::read_transaction tx(c);
    const auto got = count_tables(tx, schema, true);
    std::string diff;
    for (const auto& want : m.tables) {
        const auto it = std::find_if(got.begin(), got.end(),
                                     [&](const table_rows& t) { return t.name == want.name; });
        if (it == got.end())
            diff += "; " + want.name + " is missing";
        else if (it->rows != want.rows)
            diff += "; " + want.name + " has " + std::to_string(it->rows) + " rows, the manifest " +
                    std::to_string(want.rows);
    }
    if (got.size() != m.tables.size() && diff.empty())
        diff = "; " + std::to_string(got.size()) + " tables, the manifest lists " +
               std::to_string(m.tables.size());
    if (!diff.empty())
        throw backup_failure("the restored schema " + schema + " differs from the manifest" + diff);
}

}  // namespace

void run_restore(const restore_options& o, std::ostream& out, std::ostream& log) {
    check_options(o);
    const std::string where = agent::mask_password(o.postgres);
    const std::string pg_restore = find_pg_program("pg_restore", o.pg_bin);
    const child_connection cc = split_connection(o.postgres);
    const verified_backup v = verify_backup(o.file, o.pg_bin);
    log << "plugmonctl: restore: " << o.file << " verified (sha256 " << v.m.sha256 << ")\n";
    const int known = agent::store::embedded_migrations().back().version;
    if (v.m.schema_version > known)
        throw backup_failure(o.file + " holds plugmon schema version " +
                             std::to_string(v.m.schema_version) +
                             ", newer than this plugmonctl knows (up to " + std::to_string(known) +
                             "): restore it with a newer plugmonctl");
    pqxx::connection c(o.postgres);
    check_target(c, o, where);
    prepare_sketch_extension(c, v.m, o.dry_run, log);
    if (o.dry_run) {
        print_plan(v, o, where, out);
        return;
    }
    log << "plugmonctl: restore: restoring into " << where << " with " << pg_restore << "\n";
    const child_result r = run_program(pg_restore,
                                       {"--dbname=" + cc.conninfo, "--single-transaction",
                                        "--exit-on-error", "--no-owner", "--no-privileges", o.file},
                                       cc.password);
    if (r.status != 0)
        throw backup_failure(
            "pg_restore failed (exit status " + std::to_string(r.status) +
            "; it ran as one transaction, so nothing was restored): " + tail_lines(r.err));
    const std::string schema = target_schema(o);
    if (schema != dumped_schema) {
        pqxx::work tx(c);
        tx.exec0("ALTER SCHEMA plugmon RENAME TO " + tx.quote_name(schema));
        tx.commit();
        log << "plugmonctl: restore: renamed schema plugmon to " << schema
            << "; its PL/pgSQL functions (maintenance) still name schema plugmon: never run "
               "them on it (see the README)\n";
    }
    check_counts(c, v.m, schema);
    out << "restored " << o.file << " into " << where << " as schema " << schema << ": "
        << v.m.tables.size() << " tables, " << total_rows(v.m) << " rows (as the manifest says)\n";
}

}  // namespace plugmon::ctl::backup
