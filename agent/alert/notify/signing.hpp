// HMAC-SHA256, base64 and the Standard Webhooks signature that signs webhook bodies.
#pragma once

#include "common/sha256.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent::alert::notify {

/// Standard base64 (RFC 4648 section 4) with padding. Thread safety: reentrant.
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64 (padding optional, no whitespace); nullopt for anything else.
/// Thread safety: reentrant.
std::optional<std::string> base64_decode(std::string_view text);

/// HMAC-SHA256 (RFC 2104) of `message` under `key`. Thread safety: reentrant.
sha256_digest hmac_sha256(std::string_view key, std::string_view message);

/// The signing key for a secret as read from a secret file: surrounding whitespace is removed,
/// and a secret that starts with "whsec_" is base64-decoded after the prefix (the Standard
/// Webhooks convention); any other secret is used as its bytes. Throws std::invalid_argument
/// when the text after "whsec_" is not base64. Thread safety: reentrant.
std::string webhook_signing_key(std::string_view secret);

/// The Standard Webhooks signature header value:
/// "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
/// Thread safety: reentrant.
std::string webhook_signature(std::string_view key, std::string_view id, std::string_view timestamp,
                              std::string_view body);

}  // namespace plugmon::agent::alert::notify
