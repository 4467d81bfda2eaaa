// The safety net against secrets in log lines: passwords in URLs and key=value strings,
// Authorization headers and bearer tokens are masked before a line reaches the sink.
#pragma once

#include <string>
#include <string_view>

namespace plugmon::agent::log {

/// `text` with every secret it recognises replaced by `***`:
/// - the password of a URL's user info (`postgresql://user:***@host`);
/// - the value after `password`, `passwd`, `secret` or `access_token` and `=` or `:`, bare or
///   quoted (`password=***`, `"password": "***"`, `password='***'`);
/// - the credentials after `Authorization` (`Authorization: Bearer ***`) and after `Bearer`.
/// Over-masks rather than under-masks. Thread-safe (pure); allocates, may throw std::bad_alloc.
std::string redact(std::string_view text);

/// True for a field key whose value is a secret by its name (password, token, secret,
/// authorization and the like, in any case): such a field's value is logged as `***`.
bool sensitive_key(std::string_view key) noexcept;

}  // namespace plugmon::agent::log
