// Converts the probes' invariant-TSC ticks to nanoseconds: the agent measures the tick rate
// itself against CLOCK_MONOTONIC_RAW, so no producer can skew another's durations.
#pragma once

#include <time.h>
#include <chrono>
#include <cstdint>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace plugmon::agent {

inline std::uint64_t raw_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000u + std::uint64_t(ts.tv_nsec);
}

/// Nanoseconds per TSC tick, measured over `window` (1.0 where there is no TSC).
inline double measure_ns_per_tick(
    std::chrono::milliseconds window = std::chrono::milliseconds(50)) {
#if defined(__x86_64__) || defined(__i386__)
    const std::uint64_t n0 = raw_ns();
    const std::uint64_t t0 = __rdtsc();
    std::this_thread::sleep_for(window);
    const std::uint64_t n1 = raw_ns();
    const std::uint64_t t1 = __rdtsc();
    if (t1 <= t0 || n1 <= n0) return 1.0;
    return double(n1 - n0) / double(t1 - t0);
#else
    (void)window;
    return 1.0;
#endif
}

}  // namespace plugmon::agent
