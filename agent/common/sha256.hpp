// SHA-256 (FIPS 180-4) for API token digests, and a constant-time comparison of digests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent {

using sha256_digest = std::array<std::uint8_t, 32>;

/// The SHA-256 digest of `data`.
sha256_digest sha256(std::string_view data);

/// The digest as 64 lowercase hex digits (what `sha256sum` prints).
std::string to_hex(const sha256_digest& d);

/// Parses 64 hex digits (either case); nullopt for anything else.
std::optional<sha256_digest> digest_from_hex(std::string_view hex);

/// True when a == b. Looks at every byte whatever the contents, so the time taken says nothing
/// about where two digests differ.
bool equal_digests(const sha256_digest& a, const sha256_digest& b) noexcept;

}  // namespace plugmon::agent
