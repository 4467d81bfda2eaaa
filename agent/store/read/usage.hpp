// The store's read side for billing: plugmon.usage() per (tenant, plugin) over a period.
#pragma once

#include "store/read/usage_row.hpp"

#include <stdexcept>
#include <string>
#include <vector>

namespace plugmon::agent::store {

/// The store could not be read. what() is the whole message for the user, naming the database
/// by its connection string with the password masked.
class read_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// plugmon.usage(from, to) over [from, to), only `tenant`'s rows unless it is "", ordered by
/// tenant and then plugin; NULL tenants and plugins read as "", negative or NULL totals as 0.
/// `from` and `to` are timestamptz text ("2026-11-01T00:00:00Z"). Opens a connection to `url`
/// for this one read-only transaction and closes it: blocks on the network; call it from any
/// thread (no shared state). Throws read_error (cannot connect, no plugmon.usage() function,
/// the query failed, the connection was lost) and std::bad_alloc.
std::vector<usage_row> read_usage(const std::string& url, const std::string& from,
                                  const std::string& to, const std::string& tenant);

}  // namespace plugmon::agent::store
