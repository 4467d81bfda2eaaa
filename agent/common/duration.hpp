// Durations and byte sizes as people write them: "10s", "1m30s", "256MiB".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plugmon::agent {

/// Parses a byte size: "268435456", "256MiB", "1GiB", "512KiB" (also KB/MB/GB as powers of 1000).
std::optional<std::uint64_t> parse_size(std::string_view text);

/// Parses "10s", "500ms", "250us", "2m", "1h", "30d", "1.5s", "1m30s" (units ns, us, µs, ms, s, m,
/// h, d).
/// A bare number has no unit and is refused. Returns nullopt when the text is not a duration.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// The shortest exact form of a duration in one unit: "10s", "1ms", "1500ms", "90s".
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace plugmon::agent
