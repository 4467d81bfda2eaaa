// Wall-clock time points as integer nanoseconds since the Unix epoch (how state files, the
// outbox and the store's batches write them).
#pragma once

#include <chrono>
#include <cstdint>

namespace plugmon::agent {

inline std::int64_t to_unix_ns(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

inline std::chrono::system_clock::time_point from_unix_ns(std::int64_t ns) {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(ns)));
}

}  // namespace plugmon::agent
