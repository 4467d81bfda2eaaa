// PostgreSQL connection strings: masking the password for logs and messages.
#pragma once

#include <string>
#include <string_view>

namespace plugmon::agent {

/// A PostgreSQL connection string with any password replaced by `***`, for logs.
/// Handles the URL form (user:secret@host, ?password=secret) and the key=value form.
std::string mask_password(std::string_view conninfo);

}  // namespace plugmon::agent
