// Reads plugmon.usage() from PostgreSQL for plugmonctl usage (the billing read path).
#include "store/read/usage.hpp"

#include "common/conninfo.hpp"

#include <pqxx/pqxx>

#include <optional>

namespace plugmon::agent::store {

namespace {

std::uint64_t non_negative(const pqxx::field& f) {
    const long long v = f.is_null() ? 0 : f.as<long long>();
    return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

/// An error text without the trailing newlines and spaces libpq leaves.
std::string trimmed(const char* what) {
    std::string why = what;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return why;
}

usage_row row_of(const pqxx::row& row) {
    usage_row u;
    u.tenant = row[0].as<std::string>();
    u.plugin = row[1].as<std::string>();
    u.queries = non_negative(row[2]);
    u.query_errors = non_negative(row[3]);
    u.query_ns = non_negative(row[4]);
    u.rows = non_negative(row[5]);
    u.executions = non_negative(row[6]);
    u.execution_errors = non_negative(row[7]);
    u.cpu_ns = non_negative(row[8]);
    u.wall_ns = non_negative(row[9]);
    return u;
}

}  // namespace

std::vector<usage_row> read_usage(const std::string& url, const std::string& from,
                                  const std::string& to, const std::string& tenant) {
    const std::string shown = mask_password(url);
    std::optional<pqxx::connection> conn;
    try {
        conn.emplace(url);
    } catch (const std::exception& e) {
        throw read_error("cannot connect to PostgreSQL at " + shown + ": " + trimmed(e.what()));
    }
    const std::string query =
        "SELECT coalesce(tenant, ''), coalesce(plugin, ''), queries, query_errors, query_ns, rows, "
        "executions, "
        "execution_errors, cpu_ns, wall_ns FROM plugmon.usage($1::timestamptz, $2::timestamptz)" +
        std::string(tenant.empty() ? " WHERE $3::text = ''"
                                   : " WHERE coalesce(tenant, '') = $3::text") +
        " ORDER BY 1, 2";
    std::vector<usage_row> rows;
    try {
        pqxx::read_transaction tx(*conn);
        const pqxx::result r = tx.exec_params(query, from, to, tenant);
        for (const auto& row : r) rows.push_back(row_of(row));
    } catch (const pqxx::sql_error& e) {
        const std::string why = trimmed(e.what());
        if (e.sqlstate() == "42883" || e.sqlstate() == "3F000")
            throw read_error("the database at " + shown +
                             " has no plugmon.usage() function; plugmon-agent creates it when it "
                             "migrates the schema (" +
                             why + ")");
        throw read_error("querying plugmon.usage() at " + shown + ": " + why);
    } catch (const pqxx::broken_connection& e) {
        throw read_error("lost the connection to PostgreSQL at " + shown + ": " + e.what());
    }
    return rows;
}

}  // namespace plugmon::agent::store
