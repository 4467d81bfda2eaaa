// The backup manifest: JSON in and out, and the row counts and time ranges it records.
#include "ctl/backup/manifest.hpp"

#include "ctl/backup/files.hpp"

namespace plugmon::ctl::backup {

namespace {

constexpr int manifest_format = 1;

template <typename T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
    const auto it = j.find(key);
    if (it == j.end()) throw manifest_error(where + ": field \"" + key + "\" is missing");
    try {
        return it->get<T>();
    } catch (const nlohmann::json::exception&) {
        throw manifest_error(where + ": field \"" + key + "\" has the wrong type");
    }
}

}  // namespace

nlohmann::json to_json(const manifest& m) {
    nlohmann::json tables = nlohmann::json::object();
    for (const auto& t : m.tables) {
        nlohmann::json e = {{"rows", t.rows}};
        if (!t.first.empty()) e["first"] = t.first;
        if (!t.last.empty()) e["last"] = t.last;
        tables[t.name] = e;
    }
    const time_range r = data_time_range(m);
    nlohmann::json range = nlohmann::json::object();
    if (!r.first.empty()) range = {{"first", r.first}, {"last", r.last}};
    return {{"format", manifest_format},
            {"file", m.file},
            {"sha256", m.sha256},
            {"size", m.size},
            {"kind", m.kind},
            {"schema", "plugmon"},
            {"schema_version", m.schema_version},
            {"sketch_backend", m.sketch_backend},
            {"server_version", m.server_version},
            {"created_at", m.created_at},
            {"source", m.source},
            {"time_range", range},
            {"tables", tables}};
}

manifest manifest_from_json(const nlohmann::json& j, const std::string& where) {
    if (!j.is_object()) throw manifest_error(where + ": not a JSON object");
    const int format = field<int>(j, "format", where);
    if (format != manifest_format)
        throw manifest_error(where + ": manifest format " + std::to_string(format) +
                             " is not one this plugmonctl reads (" +
                             std::to_string(manifest_format) + ")");
    manifest m;
    m.file = field<std::string>(j, "file", where);
    m.sha256 = field<std::string>(j, "sha256", where);
    m.size = field<std::uint64_t>(j, "size", where);
    m.kind = field<std::string>(j, "kind", where);
    if (m.kind != "full" && m.kind != "schema-only")
        throw manifest_error(where + ": field \"kind\" must be full or schema-only, got \"" +
                             m.kind + "\"");
    m.schema_version = field<int>(j, "schema_version", where);
    m.sketch_backend = j.value("sketch_backend", "");
    m.server_version = j.value("server_version", "");
    m.created_at = j.value("created_at", "");
    m.source = j.value("source", "");
    const auto tables = field<nlohmann::json>(j, "tables", where);
    if (!tables.is_object()) throw manifest_error(where + ": field \"tables\" must be an object");
    for (const auto& [name, t] : tables.items())
        m.tables.push_back({name, field<std::int64_t>(t, "rows", where + ": tables." + name),
                            t.value("first", ""), t.value("last", "")});
    return m;
}

manifest read_manifest(const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(path));
    } catch (const file_error& e) {
        throw manifest_error(e.what());
    } catch (const nlohmann::json::parse_error& e) {
        throw manifest_error(path + ": not valid JSON (" + e.what() + ")");
    }
    return manifest_from_json(j, path);
}

std::vector<table_rows> count_tables(pqxx::transaction_base& tx, const std::string& schema,
                                     bool with_rows) {
    // The partition key column of partitioned tables: their time column.
    const auto list = tx.exec_params(
        "SELECT c.relname, (SELECT a.attname FROM pg_partitioned_table p JOIN pg_attribute a "
        "ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] WHERE p.partrelid = c.oid "
        "AND p.partnatts = 1) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
        schema);
    std::vector<table_rows> out;
    const std::string q = tx.quote_name(schema) + ".";
    for (const auto& r : list) {
        table_rows t;
        t.name = r[0].as<std::string>();
        if (with_rows) {
            const std::string rel = q + tx.quote_name(t.name);
            t.rows = tx.exec1("SELECT count(*) FROM " + rel)[0].as<std::int64_t>();
            if (!r[1].is_null() && t.rows > 0) {
                const std::string col = tx.quote_name(r[1].as<std::string>());
                const std::string fmt = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";
                const auto range = tx.exec1("SELECT to_char(min(" + col + ") AT TIME ZONE 'UTC', " +
                                            fmt + "), to_char(max(" + col +
                                            ") AT TIME ZONE 'UTC', " + fmt + ") FROM " + rel);
                t.first = range[0].is_null() ? "" : range[0].as<std::string>();
                t.last = range[1].is_null() ? "" : range[1].as<std::string>();
            }
        }
        out.push_back(std::move(t));
    }
    return out;
}

time_range data_time_range(const manifest& m) {
    time_range r;
    // Same fixed-width format everywhere, so text order is time order.
    for (const auto& t : m.tables) {
        if (!t.first.empty() && (r.first.empty() || t.first < r.first)) r.first = t.first;
        if (!t.last.empty() && (r.last.empty() || t.last > r.last)) r.last = t.last;
    }
    return r;
}

std::int64_t total_rows(const manifest& m) {
    std::int64_t n = 0;
    for (const auto& t : m.tables) n += t.rows;
    return n;
}

}  // namespace plugmon::ctl::backup
