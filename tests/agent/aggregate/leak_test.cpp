// Specifies the leak detector: steady growth is a leak; a step, a sawtooth, noise, shrinking,
// small growth, too little data and growth older than the window are not.
#include "aggregate/leak.hpp"

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

using namespace std::chrono_literals;

constexpr double kib = 1024.0;
constexpr double mib = 1024.0 * kib;
constexpr double gib = 1024.0 * mib;

/// The settings of the brief: growth over a minute of at least 32 KiB, fitting a line well.
const leak_settings minute{60s, 32 * 1024, 0.8};

/// A uniform number in [-1, 1] from the raw mt19937 output, whose sequence the standard fixes
/// (std::uniform_real_distribution's is not).
double uniform_pm1(std::mt19937& rng) {
    return static_cast<double>(rng()) / static_cast<double>(std::mt19937::max()) * 2.0 - 1.0;
}

/// One sample a second for t = start .. start + seconds, inclusive, of base + f(t - start).
template <typename F>
void feed(leak_detector& d, double start, int seconds, double base, F f) {
    for (int i = 0; i <= seconds; ++i) d.add(start + i, base + f(static_cast<double>(i)));
}

TEST(leak_detector, suspects_steady_linear_growth) {
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double i) { return 1024 * i; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_EQ(v.samples, 61u);
    EXPECT_NEAR(v.slope_bytes_per_second, 1024, 1024 * 0.01);
    EXPECT_GT(v.r2, 0.99);
    EXPECT_NEAR(v.growth_bytes, 60 * kib, 60 * kib * 0.01);
    EXPECT_TRUE(v.suspected);
}

TEST(leak_detector, suspects_steady_growth_through_noise_of_a_fifth_of_the_growth) {
    // Uniform noise of ±20 % of the 60 KiB growth: R² ≈ (1/12) / (1/12 + 0.2²/3) ≈ 0.86.
    for (std::uint32_t seed = 1; seed <= 10; ++seed) {
        SCOPED_TRACE(seed);
        std::mt19937 rng(seed);
        leak_detector d;
        feed(d, 1000, 60, 200 * mib,
             [&](double i) { return 1024 * i + 0.2 * 60 * kib * uniform_pm1(rng); });

        const leak_verdict v = d.evaluate(minute);
        EXPECT_NEAR(v.slope_bytes_per_second, 1024, 1024 * 0.2);
        EXPECT_GE(v.r2, minute.min_r2);
        EXPECT_TRUE(v.suspected);
    }
}

TEST(leak_detector, does_not_suspect_a_single_step) {
    // Flat, then +10 MiB from t = 45 (the 3/4 point) on, then flat. The fitted line does rise by
    // far more than min_growth, so only R² can refuse it: with 45 low and 16 high samples it is
    // corr²(t, step) = 18/31 ≈ 0.58 (computed independently; the continuous limit is 9/16).
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double i) { return i >= 45 ? 10 * mib : 0; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_GT(v.slope_bytes_per_second, 0);
    EXPECT_GT(v.growth_bytes, static_cast<double>(minute.min_growth));
    EXPECT_NEAR(v.r2, 18.0 / 31.0, 1e-9);
    EXPECT_LT(v.r2, minute.min_r2);
    EXPECT_FALSE(v.suspected);
}

TEST(leak_detector, does_not_suspect_a_sawtooth_without_net_growth) {
    // Grows 8 MiB over 10 s, then a collection brings it back down; six times. The phase leaves
    // the fitted line a small upward slope whose growth is still above min_growth, but a line
    // explains almost none of the variation.
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double i) { return std::fmod(i, 10.0) / 10 * 8 * mib; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_GT(v.growth_bytes, static_cast<double>(minute.min_growth));
    EXPECT_LT(v.r2, 0.05);
    EXPECT_FALSE(v.suspected);
}

TEST(leak_detector, does_not_suspect_noise_around_a_flat_line) {
    for (std::uint32_t seed = 1; seed <= 10; ++seed) {
        SCOPED_TRACE(seed);
        std::mt19937 rng(seed);
        leak_detector d;
        feed(d, 1000, 60, 200 * mib, [&](double) { return 1 * mib * uniform_pm1(rng); });

        const leak_verdict v = d.evaluate(minute);
        EXPECT_TRUE(v.enough_data);
        EXPECT_LT(v.r2, minute.min_r2);
        EXPECT_FALSE(v.suspected);
    }
}

TEST(leak_detector, gives_a_flat_line_zero_slope_and_zero_r2) {
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double) { return 0.0; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_EQ(v.slope_bytes_per_second, 0);
    EXPECT_EQ(v.r2, 0);
    EXPECT_EQ(v.growth_bytes, 0);
    EXPECT_FALSE(v.suspected);
}

TEST(leak_detector, does_not_suspect_steady_shrinking) {
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double i) { return -1024 * i; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_NEAR(v.slope_bytes_per_second, -1024, 1024 * 0.01);
    EXPECT_GT(v.r2, 0.99);  // a perfect line, but downwards
    EXPECT_LT(v.growth_bytes, 0);
    EXPECT_FALSE(v.suspected);
}

TEST(leak_detector, does_not_suspect_steady_growth_below_min_growth) {
    // 500 B/s over a minute is 30000 B, just under 32 KiB = 32768 B.
    leak_detector d;
    feed(d, 1000, 60, 200 * mib, [](double i) { return 500 * i; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_GT(v.r2, 0.99);
    EXPECT_NEAR(v.growth_bytes, 30000, 1);
    EXPECT_FALSE(v.suspected);

    // The same line passes once the bar is lowered below it.
    EXPECT_TRUE(d.evaluate({60s, 29000, 0.8}).suspected);
}

TEST(leak_detector, lacks_enough_data_when_samples_span_under_80_percent_of_the_window) {
    leak_detector d;
    feed(d, 1000, 18, 200 * mib, [](double i) { return 1 * mib * i; });  // 19 samples over 30 %

    leak_verdict v = d.evaluate(minute);
    EXPECT_EQ(v.samples, 19u);
    EXPECT_FALSE(v.enough_data);
    EXPECT_GT(v.r2, 0.99);  // the fit is still reported
    EXPECT_FALSE(v.suspected);

    // Continue the line to t = 1048, a span of exactly 80 %: now it is enough.
    for (int i = 19; i <= 48; ++i) d.add(1000 + i, 200 * mib + 1 * mib * i);
    v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_TRUE(v.suspected);
}

TEST(leak_detector, lacks_enough_data_with_fewer_than_ten_samples) {
    // Nine samples 6 s apart span 48 s, 80 % of the window, but are too few; a tenth is enough.
    leak_detector d;
    for (int i = 0; i < 9; ++i) d.add(1000 + 6 * i, 200 * mib + 1 * mib * i);
    leak_verdict v = d.evaluate(minute);
    EXPECT_EQ(v.samples, 9u);
    EXPECT_FALSE(v.enough_data);
    EXPECT_FALSE(v.suspected);

    d.add(1000 + 6 * 9, 200 * mib + 1 * mib * 9);
    v = d.evaluate(minute);
    EXPECT_EQ(v.samples, 10u);
    EXPECT_TRUE(v.enough_data);
    EXPECT_TRUE(v.suspected);
}

TEST(leak_detector, ignores_growth_older_than_the_window) {
    // Ten minutes of steady growth, then a full minute flat: only the flat minute counts.
    leak_detector d;
    feed(d, 1000, 600, 0, [](double i) { return 1024 * i; });
    feed(d, 1601, 60, 600 * kib, [](double) { return 0.0; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_EQ(v.samples, 61u);  // t = 1601 .. 1661
    EXPECT_EQ(d.size(), 61u);   // and the older ones are gone
    EXPECT_TRUE(v.enough_data);
    EXPECT_EQ(v.slope_bytes_per_second, 0);
    EXPECT_FALSE(v.suspected);
}

TEST(leak_detector, keeps_precision_with_epoch_times_and_huge_values) {
    // t around 1.8e9 s and values around 64 GiB: summing raw squares would lose the slope
    // entirely (1.8e9² ≈ 3e18 has a unit in the last place of 512). Every input here is exact in
    // a double, so the centred fit must recover 1000.5 B/s almost exactly.
    leak_detector d;
    feed(d, 1.8e9, 60, 64 * gib, [](double i) { return 1000.5 * i; });

    const leak_verdict v = d.evaluate(minute);
    EXPECT_TRUE(v.enough_data);
    EXPECT_NEAR(v.slope_bytes_per_second, 1000.5, 1000.5 * 1e-6);
    EXPECT_GT(v.r2, 0.999999);
    EXPECT_TRUE(v.suspected);
}

TEST(leak_detector, thins_to_max_samples_and_keeps_the_verdict_for_a_steady_line) {
    // Ten minutes at 1 Hz into room for 64: thinned many times, yet the first sample survives
    // (the span stays ten minutes) and the line is the same line.
    leak_detector d(64);
    for (int i = 0; i <= 600; ++i) {
        d.add(1000 + i, 200 * mib + 1024.0 * i);
        ASSERT_LE(d.size(), 64u);
    }
    EXPECT_GT(d.size(), 32u);

    const leak_verdict v = d.evaluate({600s, 32 * 1024, 0.8});
    EXPECT_TRUE(v.enough_data);
    EXPECT_NEAR(v.slope_bytes_per_second, 1024, 1024 * 0.01);
    EXPECT_GT(v.r2, 0.99);
    EXPECT_TRUE(v.suspected);
}

TEST(leak_detector, ignores_samples_at_or_before_the_newest_and_non_finite_ones) {
    leak_detector d;
    d.add(10, 1);
    d.add(10, 2);  // same time
    d.add(9, 3);   // earlier
    d.add(std::numeric_limits<double>::quiet_NaN(), 4);
    d.add(11, std::numeric_limits<double>::infinity());
    EXPECT_EQ(d.size(), 1u);

    // Stale samples with wild values interleaved with a steady line change nothing.
    leak_detector clean;
    leak_detector dirty;
    for (int i = 0; i <= 60; ++i) {
        clean.add(1000 + i, 1024.0 * i);
        dirty.add(1000 + i, 1024.0 * i);
        dirty.add(1000 + i - 0.5, 1e15);
        dirty.add(1000 + i, -1e15);
    }
    EXPECT_EQ(dirty.size(), clean.size());
    const leak_verdict a = clean.evaluate(minute);
    const leak_verdict b = dirty.evaluate(minute);
    EXPECT_EQ(a.slope_bytes_per_second, b.slope_bytes_per_second);
    EXPECT_EQ(a.r2, b.r2);
    EXPECT_TRUE(b.suspected);
}

TEST(leak_detector, clear_forgets_samples_and_the_newest_time) {
    leak_detector d;
    feed(d, 1000, 60, 0, [](double i) { return 1024 * i; });
    d.clear();
    EXPECT_EQ(d.size(), 0u);
    EXPECT_FALSE(d.evaluate(minute).enough_data);

    d.add(5, 1);  // before the forgotten newest, accepted now
    EXPECT_EQ(d.size(), 1u);
}

TEST(leak_detector, refuses_a_non_positive_window_and_too_small_a_capacity) {
    leak_detector d;
    EXPECT_THROW(d.evaluate({0s, 1, 0.8}), std::invalid_argument);
    EXPECT_THROW(leak_detector(2), std::invalid_argument);
    EXPECT_NO_THROW(leak_detector(3));
}

}  // namespace
}  // namespace plugmon::agent
