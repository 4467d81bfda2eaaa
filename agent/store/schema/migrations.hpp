// The PostgreSQL schema as numbered, checksummed migrations embedded in the agent, and the code that applies them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace plugmon::agent::store {

/// One migration: agent/store/schema/sql/NNNN_name.sql as the build embedded it.
struct migration {
    int version;             ///< NNNN: 1, 2, 3... without gaps
    std::string name;        ///< the file name between "NNNN_" and ".sql"
    std::string sql;         ///< the file's bytes, run as one multi-statement string
    std::uint32_t checksum;  ///< CRC-32 (zlib crc32) of `sql`; recorded when applied
};

/// Every embedded migration in ascending version order (1..N, checked at build time). Built on
/// first call (thread-safe, allocates), then the same object for the life of the process.
const std::vector<migration>& embedded_migrations();

/// The database cannot be brought to this agent's schema: it is newer than the agent knows, an
/// applied migration differs from the embedded one, the recorded versions have gaps, or a
/// migration failed. The message says which and what to do.
class schema_error : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// What migrate() did (or, for a dry run, would do).
struct migration_report {
    int from_version = 0;      ///< the database's version before the call (0: no plugmon schema)
    int to_version = 0;        ///< its version afterwards; for a dry run the version it would reach
    std::vector<int> applied;  ///< versions applied, ascending; for a dry run the pending ones
};

/// Brings the database to the newest embedded version: each pending migration in its own
/// transaction, recorded in plugmon.schema_migrations (version, name, checksum, applied_at,
/// agent_version), which it creates (with the schema `plugmon`) when missing. Serialised across
/// agents by a session advisory lock (key 0x706d6f6e, 1), so concurrent agents apply each
/// migration once. Re-running is a no-op.
///
/// Throws schema_error, before applying anything, when the database records a version newer than
/// the agent knows ("database schema is at version 7, newer than this agent (knows up to 3):
/// upgrade plugmon-agent"), when an applied migration's recorded checksum differs from the
/// embedded one (the message names the version and both checksums), or when the recorded versions
/// have gaps; and when a migration fails (that migration is rolled back, earlier ones stay).
/// pqxx::broken_connection and other libpqxx errors outside a migration's SQL pass through.
///
/// dry_run: changes nothing (creates not even the bookkeeping table) and reports the pending
/// migrations in `applied`. `log`, if not empty, gets one line per applied (or pending) migration.
/// Blocks while another agent migrates. `c` must have no transaction open. Not thread-safe per
/// connection; distinct connections may migrate concurrently.
migration_report migrate(pqxx::connection& c, bool dry_run, const std::string& agent_version,
                         const std::function<void(const std::string&)>& log = {});

/// The highest version recorded in plugmon.schema_migrations; 0 when there is no plugmon schema
/// (or no migration recorded). Read-only. `c` must have no transaction open.
int schema_version(pqxx::connection& c);

/// Takes the C sketch functions (the plugmon_sketch extension) when the schema (at `version`, as
/// migrate() or schema_version() reported it) is at version 6 or later, PL/pgSQL is in use and the server offers the extension: an extension installed after
/// the schema was migrated is picked up at the agent's next start. Returns the backend in use
/// afterwards ("c" or "plpgsql"; "" before version 6) and whether it changed. Never switches
/// away from C. Raises what the server raises. `c` must have no transaction open.
struct sketch_backend_report {
    std::string backend;
    bool switched = false;
};
sketch_backend_report prefer_sketch_extension(pqxx::connection& c, int version);

namespace detail {

/// One agent/store/schema/sql file as the build step (store/schema/embed_sql.cmake) wrote it into the generated source.
struct embedded_sql_file {
    int version;
    const char* name;
    const char* text;
    std::size_t size;
};

/// Defined in the generated embedded_sql.cpp, ascending by version.
extern const embedded_sql_file embedded_sql_files[];
extern const std::size_t embedded_sql_file_count;

}  // namespace detail

}  // namespace plugmon::agent::store
