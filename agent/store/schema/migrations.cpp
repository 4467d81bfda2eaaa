// Applies the embedded SQL migrations to PostgreSQL: bookkeeping table, advisory lock, history checks.
#include "store/schema/migrations.hpp"

#include <zlib.h>

#include <fmt/format.h>

namespace plugmon::agent::store {

namespace {

// pg_advisory_lock(key1, key2): 'pmon' and 1 for migrations (0003_maintenance.sql lists the rest).
constexpr const char* lock_sql = "SELECT pg_advisory_lock(1886219118, 1)";
constexpr const char* unlock_sql = "SELECT pg_advisory_unlock(1886219118, 1)";

constexpr const char* bootstrap_sql = R"sql(
CREATE SCHEMA IF NOT EXISTS plugmon;
CREATE TABLE IF NOT EXISTS plugmon.schema_migrations (
    version       integer     PRIMARY KEY,
    name          text        NOT NULL,
    checksum      bigint      NOT NULL,
    applied_at    timestamptz NOT NULL DEFAULT now(),
    agent_version text        NOT NULL
);
COMMENT ON TABLE plugmon.schema_migrations IS
    'Migrations applied by plugmon-agent (agent/store/schema/sql/NNNN_name.sql); checksum: CRC-32 of the file';
)sql";

struct applied_row {
    int version;
    long long checksum;  // as recorded: a tampered row may hold anything
};

std::string label(const migration& m) { return fmt::format("{:04}_{}", m.version, m.name); }

std::string hex(long long checksum) {
    return checksum < 0 ? fmt::format("{}", checksum) : fmt::format("{:#010x}", checksum);
}

/// Holds the migration advisory lock for the life of the object: a session lock, because every
/// migration commits on its own. If the connection breaks, the server releases it anyway.
class migration_lock {
public:
    explicit migration_lock(pqxx::connection& c) : c_(c) {
        pqxx::nontransaction tx(c_);
        tx.exec(lock_sql);
    }
    ~migration_lock() {
        try {
            pqxx::nontransaction tx(c_);
            tx.exec(unlock_sql);
        } catch (...) {  // a broken connection: the server dropped the lock with the session
        }
    }
    migration_lock(const migration_lock&) = delete;
    migration_lock& operator=(const migration_lock&) = delete;

private:
    pqxx::connection& c_;
};

bool has_history(pqxx::transaction_base& tx) {
    return tx.exec1("SELECT to_regclass('plugmon.schema_migrations') IS NOT NULL")[0].as<bool>();
}

std::vector<applied_row> read_history(pqxx::transaction_base& tx) {
    std::vector<applied_row> rows;
    if (!has_history(tx)) return rows;
    for (const auto& r :
         tx.exec("SELECT version, checksum FROM plugmon.schema_migrations ORDER BY version"))
        rows.push_back({r[0].as<int>(), r[1].as<long long>()});
    return rows;
}

/// Throws schema_error unless `history` is 1..k with k <= the newest embedded version and every
/// recorded checksum equal to the embedded one.
void check_history(const std::vector<applied_row>& history, const std::vector<migration>& known) {
    const int newest = known.empty() ? 0 : known.back().version;
    if (!history.empty() && history.back().version > newest)
        throw schema_error(fmt::format(
            "database schema is at version {}, newer than this agent (knows up to {}): upgrade "
            "plugmon-agent",
            history.back().version, newest));
    for (std::size_t k = 0; k < history.size(); ++k) {
        const int expected = static_cast<int>(k) + 1;
        if (history[k].version != expected)
            throw schema_error(fmt::format(
                "plugmon.schema_migrations has a gap: version {} is recorded but version {} is "
                "not; the schema was changed outside plugmon-agent, repair it by hand",
                history[k].version, expected));
    }
    for (const auto& row : history) {
        const migration& m = known[static_cast<std::size_t>(row.version) - 1];
        if (row.checksum != static_cast<long long>(m.checksum))
            throw schema_error(fmt::format(
                "migration {} ({}) was applied with checksum {} but this agent embeds checksum "
                "{}: a released migration must never change; restore agent/store/schema/sql/{}.sql "
                "as it was",
                m.version, m.name, hex(row.checksum), hex(m.checksum), label(m)));
    }
}

}  // namespace

const std::vector<migration>& embedded_migrations() {
    static const std::vector<migration> all = [] {
        std::vector<migration> v;
        v.reserve(detail::embedded_sql_file_count);
        for (std::size_t k = 0; k < detail::embedded_sql_file_count; ++k) {
            const detail::embedded_sql_file& f = detail::embedded_sql_files[k];
            const auto crc =
                ::crc32(0L, reinterpret_cast<const Bytef*>(f.text), static_cast<uInt>(f.size));
            v.push_back(
                {f.version, f.name, std::string(f.text, f.size), static_cast<std::uint32_t>(crc)});
        }
        return v;
    }();
    return all;
}

migration_report migrate(pqxx::connection& c, bool dry_run, const std::string& agent_version,
                         const std::function<void(const std::string&)>& log) {
    const std::vector<migration>& known = embedded_migrations();
    const migration_lock lock(c);

    std::vector<applied_row> history;
    if (dry_run) {
        pqxx::read_transaction tx(c);
        history = read_history(tx);
    } else {
        pqxx::work tx(c, "plugmon_migrate_bootstrap");
        tx.exec(bootstrap_sql);
        history = read_history(tx);
        tx.commit();
    }
    check_history(history, known);

    migration_report report;
    report.from_version = history.empty() ? 0 : history.back().version;
    report.to_version = report.from_version;
    for (const migration& m : known) {
        if (m.version <= report.from_version) continue;
        if (!dry_run) {
            try {
                pqxx::work tx(c, "plugmon_migrate");
                tx.exec(m.sql);
                tx.exec_params(
                    "INSERT INTO plugmon.schema_migrations (version, name, checksum, "
                    "agent_version) "
                    "VALUES ($1, $2, $3, $4)",
                    m.version, m.name, static_cast<long long>(m.checksum), agent_version);
                tx.commit();
            } catch (const pqxx::sql_error& e) {
                throw schema_error(
                    fmt::format("migration {} failed and was rolled back: {}", label(m), e.what()));
            }
        }
        report.applied.push_back(m.version);
        report.to_version = m.version;
        if (log)
            log(fmt::format("{} migration {} (checksum {})", dry_run ? "pending" : "applied",
                            label(m), hex(m.checksum)));
    }
    return report;
}

int schema_version(pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    if (!has_history(tx)) return 0;
    return tx.exec1("SELECT coalesce(max(version), 0) FROM plugmon.schema_migrations")[0].as<int>();
}

sketch_backend_report prefer_sketch_extension(pqxx::connection& c, int version) {
    if (version < 6) return {};
    pqxx::work tx(c);
    sketch_backend_report r{tx.exec1("SELECT plugmon.sketch_backend()")[0].as<std::string>()};
    const bool offered = tx.exec1(
                               "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = "
                               "'plugmon_sketch')")[0]
                             .as<bool>();
    if (r.backend == "plpgsql" && offered) {
        // 'auto' installs the extension if the role may and falls back to PL/pgSQL (with a
        // NOTICE) otherwise; it redefines the public functions, so it is called only on a change.
        const auto now = tx.exec1("SELECT plugmon.sketch_backend('auto')")[0].as<std::string>();
        r.switched = now != r.backend;
        r.backend = now;
    }
    tx.commit();
    return r;
}

}  // namespace plugmon::agent::store
