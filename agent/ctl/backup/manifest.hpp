// The manifest written beside each backup (FILE.manifest.json): what the dump holds, so that
// verify and restore can check it and a restore can be checked against it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace plugmon::ctl::backup {

/// A manifest is missing, unreadable or malformed; the message names the file and the field.
class manifest_error : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// One table of schema plugmon (partitions counted in their parent).
struct table_rows {
    std::string name;  ///< without the schema
    std::int64_t rows = 0;
    std::string first;  ///< RFC 3339 UTC of the oldest row's time (partition key); "" for none
    std::string last;   ///< ... of the newest row's; "" for none
};

/// FILE.manifest.json. Plain data; thread-compatible.
struct manifest {
    std::string file;            ///< the dump's file name (no directory)
    std::string sha256;          ///< of the dump, 64 hex digits
    std::uint64_t size = 0;      ///< of the dump, bytes
    std::string kind;            ///< "full" or "schema-only"
    int schema_version = 0;      ///< highest plugmon.schema_migrations version in the dump
    std::string sketch_backend;  ///< "c", "plpgsql" or "" (before schema version 6)
    std::string server_version;  ///< of the server backed up (SHOW server_version)
    std::string created_at;      ///< RFC 3339 UTC
    std::string source;          ///< the connection string, password masked
    std::vector<table_rows> tables;
};

/// The time range of all data in a manifest's tables; "" when there is none.
struct time_range {
    std::string first, last;
};

nlohmann::json to_json(const manifest& m);

/// Parses a manifest; throws manifest_error naming `where` and the missing or bad field.
manifest manifest_from_json(const nlohmann::json& j, const std::string& where);

/// Reads and parses `path`; throws manifest_error ("FILE.manifest.json is missing ...").
manifest read_manifest(const std::string& path);

/// The top-level tables of `schema` (not partitions), by name, with row counts and the time range
/// of partitioned tables' key column when `with_rows` (else rows 0 and no range). Read-only.
std::vector<table_rows> count_tables(pqxx::transaction_base& tx, const std::string& schema,
                                     bool with_rows);

/// The oldest `first` and the newest `last` of m.tables.
time_range data_time_range(const manifest& m);

/// The rows of all of m.tables.
std::int64_t total_rows(const manifest& m);

}  // namespace plugmon::ctl::backup
