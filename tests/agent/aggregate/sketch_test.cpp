// Specifies the DDSketch: its index mapping, quantile accuracy, exact merge, and the version 1
// and 2 encodings with every way decode refuses bad bytes.
#include "aggregate/sketch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plugmon::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();
constexpr std::uint32_t limit = dd_sketch::index_limit;
/// The guarantee: half a bucket over its lower bound, and a bucket is at most 1/64 of it.
constexpr double max_relative_error = 1.0 / 128;
static_assert(max_relative_error < 0.01);

// The mapping is constexpr: these hold at compile time.
static_assert(dd_sketch::index_limit == 3776);
static_assert(dd_sketch::index_of(127) == 127);
static_assert(dd_sketch::index_of(128) == 128);
static_assert(dd_sketch::index_of(200) == 164);
static_assert(dd_sketch::index_of(max_u64) == 3775);
static_assert(dd_sketch::lower_bound(164) == 200 && dd_sketch::upper_bound(164) == 201);

// ---- data -------------------------------------------------------------------------------------

constexpr std::size_t sample_size = 200'000;

/// Seconds as nanoseconds, kept within 1 µs .. 100 s.
std::uint64_t to_ns(double seconds) {
    return static_cast<std::uint64_t>(std::llround(std::clamp(seconds * 1e9, 1e3, 1e11)));
}

std::vector<std::uint64_t> lognormal(std::size_t n, double median_s, double sigma,
                                     std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> d(std::log(median_s), sigma);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = to_ns(d(rng));
    return v;
}

/// Fast queries around 200 µs and a tenth as many slow ones around 2 s.
std::vector<std::uint64_t> bimodal(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> fast(std::log(200e-6), 0.4), slow(std::log(2.0), 0.6);
    std::bernoulli_distribution is_slow(0.1);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = to_ns(is_slow(rng) ? slow(rng) : fast(rng));
    return v;
}

/// Pareto with scale `scale_s` and shape `alpha` (heavy tail), by inverting the CDF.
std::vector<std::uint64_t> pareto(std::size_t n, double scale_s, double alpha, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::uint64_t> v(n);
    for (auto& x : v) x = to_ns(scale_s * std::pow(1.0 - u(rng), -1.0 / alpha));
    return v;
}

dd_sketch sketch_of(const std::vector<std::uint64_t>& values) {
    dd_sketch s;
    for (std::uint64_t v : values) s.add(v);
    return s;
}

/// The value at rank floor(q * (n - 1)) of the sorted data.
std::uint64_t exact_quantile(const std::vector<std::uint64_t>& sorted, double q) {
    return sorted[static_cast<std::size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)))];
}

double relative_error(std::uint64_t got, std::uint64_t want) {
    const double w = static_cast<double>(want);
    return std::abs(static_cast<double>(got) - w) / w;
}

void expect_quantiles_within_one_percent(std::vector<std::uint64_t> values) {
    const dd_sketch s = sketch_of(values);
    std::sort(values.begin(), values.end());
    for (double q : {0.5, 0.95, 0.99, 0.999}) {
        const std::uint64_t want = exact_quantile(values, q), got = s.quantile(q);
        EXPECT_LE(relative_error(got, want), max_relative_error)
            << "q=" << q << " exact " << want << " sketch " << got;
    }
    EXPECT_EQ(s.quantile(1.0), values.back());
    EXPECT_EQ(s.quantile(0.0), values.front());
    EXPECT_EQ(s.count(), values.size());
}

// ---- encoding helpers --------------------------------------------------------------------------

std::string bytes_of(std::initializer_list<int> bytes) {
    std::string s;
    for (int b : bytes) s.push_back(static_cast<char>(b));
    return s;
}

void set_u32(std::string& s, std::size_t at, std::uint32_t v) {
    for (int k = 3; k >= 0; --k, v >>= 8) s[at + std::size_t(k)] = static_cast<char>(v & 0xff);
}

void set_u64(std::string& s, std::size_t at, std::uint64_t v) {
    for (int k = 7; k >= 0; --k, v >>= 8) s[at + std::size_t(k)] = static_cast<char>(v & 0xff);
}

constexpr std::size_t at_count = 8, at_sum = 16, at_min = 24, at_max = 32, at_n = 40;
constexpr std::size_t bin_index(std::size_t k) { return 44 + 12 * k; }
constexpr std::size_t bin_count(std::size_t k) { return 44 + 12 * k + 4; }

/// 3, 3 and 200: bins 3 (count 2) and 164 (count 1, values 200..201).
dd_sketch tiny() {
    dd_sketch s;
    s.add(3);
    s.add(3);
    s.add(200);
    return s;
}

/// The message decode throws; fails the test if it accepts the bytes. try_decode must agree.
std::string decode_error(const std::string& bytes) {
    std::string why;
    EXPECT_FALSE(dd_sketch::try_decode(bytes, &why).has_value());
    try {
        dd_sketch::decode(bytes);
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(why, e.what());
        return e.what();
    }
    ADD_FAILURE() << "decode accepted the bytes";
    return "";
}

// ---- index mapping -----------------------------------------------------------------------------

TEST(dd_sketch_mapping, values_below_128_have_a_bucket_each) {
    for (std::uint64_t v = 0; v < 128; ++v) {
        const std::uint32_t i = dd_sketch::index_of(v);
        EXPECT_EQ(i, v);
        EXPECT_EQ(dd_sketch::lower_bound(i), v);
        EXPECT_EQ(dd_sketch::upper_bound(i), v);
        EXPECT_EQ(dd_sketch::value_of(i), v);
    }
}

TEST(dd_sketch_mapping, buckets_tile_the_whole_uint64_range_in_order) {
    EXPECT_EQ(dd_sketch::lower_bound(0), 0u);
    EXPECT_EQ(dd_sketch::upper_bound(limit - 1), max_u64);
    for (std::uint32_t i = 0; i < limit; ++i) {
        ASSERT_LE(dd_sketch::lower_bound(i), dd_sketch::upper_bound(i)) << i;
        ASSERT_EQ(dd_sketch::index_of(dd_sketch::lower_bound(i)), i);
        ASSERT_EQ(dd_sketch::index_of(dd_sketch::upper_bound(i)), i);
        if (i + 1 < limit) {
            ASSERT_EQ(dd_sketch::upper_bound(i) + 1, dd_sketch::lower_bound(i + 1)) << i;
        }
    }
}

TEST(dd_sketch_mapping, every_value_lies_within_the_bounds_of_its_index) {
    std::vector<std::uint64_t> values{0, 1, 127, 128, 129, 255, 256, 1000, max_u64 - 1, max_u64};
    for (int k = 1; k < 64; ++k) {
        const std::uint64_t p = std::uint64_t{1} << k;
        values.insert(values.end(), {p - 1, p, p + 1});
    }
    std::mt19937_64 rng(7);
    for (int k = 0; k < 100'000; ++k) values.push_back(rng() >> (rng() % 64));
    for (std::uint64_t v : values) {
        const std::uint32_t i = dd_sketch::index_of(v);
        ASSERT_LT(i, limit) << v;
        ASSERT_LE(dd_sketch::lower_bound(i), v) << v;
        ASSERT_LE(v, dd_sketch::upper_bound(i)) << v;
    }
}

TEST(dd_sketch_mapping, representative_is_within_1_in_128_of_every_value_of_its_bucket) {
    for (std::uint32_t i = 0; i < limit; ++i) {
        const std::uint64_t lo = dd_sketch::lower_bound(i), hi = dd_sketch::upper_bound(i),
                            rep = dd_sketch::value_of(i);
        ASSERT_LE(lo, rep);
        ASSERT_LE(rep, hi);
        // The worst values are the bucket's ends: (rep - lo) / lo and (hi - rep) / hi.
        ASSERT_LE((rep - lo) * 128, lo) << i;
        ASSERT_LE((hi - rep) * 128, hi) << i;
    }
}

TEST(dd_sketch_mapping, each_power_of_two_from_128_has_64_buckets) {
    for (int e = 7; e < 64; ++e) {
        const std::uint64_t p = std::uint64_t{1} << e;
        const std::uint64_t last = e == 63 ? max_u64 : 2 * p - 1;
        EXPECT_EQ(dd_sketch::index_of(last) - dd_sketch::index_of(p), 63u) << e;
        EXPECT_EQ(dd_sketch::width(dd_sketch::index_of(p)), p / 64) << e;
    }
}

// ---- recording and quantiles -------------------------------------------------------------------

TEST(dd_sketch, empty_sketch_reports_zero_everywhere) {
    const dd_sketch s;
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s.count(), 0u);
    EXPECT_EQ(s.sum(), 0u);
    EXPECT_EQ(s.min(), 0u);
    EXPECT_EQ(s.max(), 0u);
    for (double q : {0.0, 0.5, 1.0}) EXPECT_EQ(s.quantile(q), 0u);
}

TEST(dd_sketch, one_value_is_every_quantile_exactly) {
    dd_sketch s;
    s.add(1'234'567);
    EXPECT_FALSE(s.empty());
    for (double q : {0.0, 0.01, 0.5, 0.99, 1.0}) EXPECT_EQ(s.quantile(q), 1'234'567u) << q;
    EXPECT_EQ(s.sum(), 1'234'567u);
}

TEST(dd_sketch, p50_to_max_within_one_percent_for_lognormal) {
    expect_quantiles_within_one_percent(lognormal(sample_size, 1e-3, 1.5, 1));
}

TEST(dd_sketch, p50_to_max_within_one_percent_for_bimodal) {
    expect_quantiles_within_one_percent(bimodal(sample_size, 2));
}

TEST(dd_sketch, p50_to_max_within_one_percent_for_pareto_tail) {
    expect_quantiles_within_one_percent(pareto(sample_size, 10e-6, 1.2, 3));
}

TEST(dd_sketch, quantile_uses_rank_floor_q_times_count_minus_one) {
    dd_sketch s;
    for (std::uint64_t v : {10, 20, 30, 40, 50}) s.add(v);  // below 128: exact buckets
    EXPECT_EQ(s.quantile(0.24), 10u);
    EXPECT_EQ(s.quantile(0.25), 20u);
    EXPECT_EQ(s.quantile(0.74), 30u);
    EXPECT_EQ(s.quantile(0.75), 40u);
    EXPECT_EQ(s.quantile(0.999), 40u);
}

TEST(dd_sketch, quantile_0_and_1_are_min_and_max_exactly_and_out_of_range_q_clamps) {
    dd_sketch s;
    for (std::uint64_t v : {1'000'001, 5'000'000, 99'999'999}) s.add(v);
    EXPECT_EQ(s.quantile(0.0), 1'000'001u);
    EXPECT_EQ(s.quantile(1.0), 99'999'999u);
    EXPECT_EQ(s.quantile(-3.0), 1'000'001u);
    EXPECT_EQ(s.quantile(7.0), 99'999'999u);
    EXPECT_EQ(s.quantile(std::nan("")), 1'000'001u);
    EXPECT_EQ(s.min(), 1'000'001u);
    EXPECT_EQ(s.max(), 99'999'999u);
}

TEST(dd_sketch, quantile_never_leaves_min_to_max) {
    dd_sketch s;
    s.add(201);  // bucket 200..201: its representative 200 lies below the value
    s.add(201);
    EXPECT_EQ(s.quantile(0.5), 201u);
    dd_sketch t;
    t.add(1'000'000'000'000);  // representative of its bucket lies above the value
    t.add(1'000'000'000'000);
    EXPECT_EQ(t.quantile(0.5), 1'000'000'000'000u);
}

TEST(dd_sketch, add_with_a_count_equals_repeated_adds) {
    dd_sketch once, repeated;
    once.add(777'777, 5);
    once.add(3, 2);
    for (int k = 0; k < 5; ++k) repeated.add(777'777);
    repeated.add(3);
    repeated.add(3);
    EXPECT_EQ(once, repeated);
    EXPECT_EQ(once.count(), 7u);
    EXPECT_EQ(once.sum(), 5u * 777'777 + 6);
}

TEST(dd_sketch, add_with_count_zero_changes_nothing) {
    dd_sketch s;
    s.add(42, 0);
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s, dd_sketch{});
}

TEST(dd_sketch, sum_saturates_at_uint64_max) {
    dd_sketch s;
    s.add(max_u64 - 10);
    s.add(100);
    EXPECT_EQ(s.sum(), max_u64);
    EXPECT_EQ(s.count(), 2u);
    dd_sketch t;
    t.add(std::uint64_t{1} << 40, std::uint64_t{1} << 30);  // the product overflows
    EXPECT_EQ(t.sum(), max_u64);
}

TEST(dd_sketch, keeps_0_and_uint64_max_exactly) {
    dd_sketch s;
    s.add(0);
    s.add(max_u64);
    EXPECT_EQ(s.quantile(0.0), 0u);
    EXPECT_EQ(s.quantile(1.0), max_u64);
    EXPECT_EQ(s.quantile(0.5), 0u);
    EXPECT_EQ(s.bin(0), 1u);
    EXPECT_EQ(s.bin(limit - 1), 1u);
    EXPECT_EQ(s.sum(), max_u64);
    EXPECT_EQ(dd_sketch::decode(s.encode()), s);
}

TEST(dd_sketch, insertion_order_does_not_matter) {
    std::vector<std::uint64_t> values = lognormal(20'000, 1e-3, 2.0, 4);
    const dd_sketch shuffled = sketch_of(values);
    std::sort(values.begin(), values.end());
    const dd_sketch ascending = sketch_of(values);  // the window grows upwards only
    std::reverse(values.begin(), values.end());
    const dd_sketch descending = sketch_of(values);  // and downwards only
    EXPECT_EQ(shuffled, ascending);
    EXPECT_EQ(shuffled, descending);
}

TEST(dd_sketch, memory_is_bounded_by_the_index_range) {
    dd_sketch s;
    for (std::uint64_t v = 1; v != 0; v <<= 1) s.add(v);
    s.add(0);
    s.add(max_u64);
    EXPECT_LE(s.memory_bytes(), sizeof(dd_sketch) + limit * sizeof(std::uint64_t));
    dd_sketch narrow;
    for (std::uint64_t v = 1'000'000; v < 1'100'000; ++v) narrow.add(v);
    EXPECT_LE(narrow.memory_bytes(), sizeof(dd_sketch) + 128 * sizeof(std::uint64_t));
}

TEST(dd_sketch, clear_empties_but_keeps_capacity) {
    dd_sketch s = sketch_of(lognormal(10'000, 1e-3, 1.0, 5));
    const std::size_t bytes = s.memory_bytes();
    s.clear();
    EXPECT_TRUE(s.empty());
    EXPECT_EQ(s, dd_sketch{});
    EXPECT_EQ(s.memory_bytes(), bytes);
    for (std::uint32_t i = 0; i < limit; ++i) ASSERT_EQ(s.bin(i), 0u) << i;
    const std::vector<std::uint64_t> next = lognormal(10'000, 2e-3, 1.0, 6);
    for (std::uint64_t v : next) s.add(v);
    EXPECT_EQ(s, sketch_of(next));
}

// ---- merge -------------------------------------------------------------------------------------

TEST(dd_sketch, merge_of_random_halves_equals_sketch_of_the_whole) {
    const std::vector<std::uint64_t> all = bimodal(sample_size, 8);
    std::mt19937_64 rng(9);
    std::bernoulli_distribution left(0.5);
    dd_sketch a, b;
    for (std::uint64_t v : all) (left(rng) ? a : b).add(v);
    ASSERT_FALSE(a.empty());
    ASSERT_FALSE(b.empty());
    const dd_sketch whole = sketch_of(all);
    a.merge(b);
    EXPECT_EQ(a, whole);
    std::size_t differing_bins = 0;
    for (std::uint32_t i = 0; i < limit; ++i) differing_bins += a.bin(i) != whole.bin(i);
    EXPECT_EQ(differing_bins, 0u);
    EXPECT_EQ(a.count(), whole.count());
    EXPECT_EQ(a.sum(), whole.sum());
    EXPECT_EQ(a.min(), whole.min());
    EXPECT_EQ(a.max(), whole.max());
    for (double q : {0.0, 0.5, 0.95, 0.99, 0.999, 1.0}) EXPECT_EQ(a.quantile(q), whole.quantile(q));
}

TEST(dd_sketch, merge_with_empty_changes_nothing) {
    dd_sketch s = tiny();
    s.merge(dd_sketch{});
    EXPECT_EQ(s, tiny());
}

TEST(dd_sketch, merge_into_empty_gives_a_copy) {
    dd_sketch s;
    s.merge(tiny());
    EXPECT_EQ(s, tiny());
    EXPECT_EQ(s.encode(), tiny().encode());
}

TEST(dd_sketch, merge_with_itself_doubles_every_bin) {
    dd_sketch s = tiny();
    s.merge(s);
    dd_sketch twice;
    twice.add(3, 4);
    twice.add(200, 2);
    EXPECT_EQ(s, twice);
}

TEST(dd_sketch, merge_grows_the_window_both_ways) {
    dd_sketch mid, wide;
    mid.add(1'000'000);
    wide.add(5);
    wide.add(50'000'000'000);
    mid.merge(wide);
    dd_sketch want;
    for (std::uint64_t v : {5ull, 1'000'000ull, 50'000'000'000ull}) want.add(v);
    EXPECT_EQ(mid, want);
}

// ---- encoding ----------------------------------------------------------------------------------

TEST(dd_sketch_encoding, tiny_sketch_has_this_exact_layout) {
    // clang-format off
    const std::string want = bytes_of({
        'P', 'M', 'D', 'S', 1, 6, 0, 0,  // magic, version, sub-bucket bits, reserved
        0, 0, 0, 0, 0, 0, 0, 3,          // count
        0, 0, 0, 0, 0, 0, 0, 206,        // sum
        0, 0, 0, 0, 0, 0, 0, 3,          // min
        0, 0, 0, 0, 0, 0, 0, 200,        // max
        0, 0, 0, 2,                      // n
        0, 0, 0, 3,   0, 0, 0, 0, 0, 0, 0, 2,  // index 3: count 2
        0, 0, 0, 164, 0, 0, 0, 0, 0, 0, 0, 1,  // index 164 (200..201): count 1
    });
    // clang-format on
    EXPECT_EQ(tiny().encode(1), want);
    EXPECT_EQ(dd_sketch::decode(want), tiny());
}

TEST(dd_sketch_encoding, empty_sketch_is_a_header_of_zeros) {
    std::string want = bytes_of({'P', 'M', 'D', 'S', 1, 6, 0, 0});
    want.resize(dd_sketch::header_bytes, '\0');
    EXPECT_EQ(dd_sketch{}.encode(1), want);
    EXPECT_EQ(dd_sketch::decode(want), dd_sketch{});
    EXPECT_TRUE(dd_sketch::decode(want).empty());
}

TEST(dd_sketch_encoding, round_trips_exactly_in_both_versions) {
    const dd_sketch s = sketch_of(pareto(50'000, 10e-6, 1.3, 10));
    for (const std::uint8_t version : {1, 2}) {
        SCOPED_TRACE(int(version));
        const std::string bytes = s.encode(version);
        const dd_sketch back = dd_sketch::decode(bytes);
        EXPECT_EQ(back, s);
        EXPECT_EQ(back.encode(version), bytes);
        EXPECT_EQ(back.quantile(0.99), s.quantile(0.99));
        std::string why = "untouched";
        EXPECT_TRUE(dd_sketch::try_decode(bytes, &why).has_value());
        EXPECT_EQ(why, "untouched");
    }
    // A v1 row read back and written again comes out as v2, and the other way round.
    EXPECT_EQ(dd_sketch::decode(s.encode(1)).encode(), s.encode(2));
    EXPECT_EQ(dd_sketch::decode(s.encode(2)).encode(1), s.encode(1));
}

TEST(dd_sketch_encoding, merged_sketch_still_decodes) {
    dd_sketch a = sketch_of(lognormal(1000, 1e-3, 1.0, 11));
    a.merge(sketch_of(lognormal(1000, 1.0, 1.0, 12)));
    a.add(max_u64, 3);  // saturates the sum
    EXPECT_EQ(dd_sketch::decode(a.encode(1)), a);
    EXPECT_EQ(dd_sketch::decode(a.encode(2)), a);
}

TEST(dd_sketch_encoding, encode_refuses_unknown_versions) {
    EXPECT_THROW(tiny().encode(0), std::invalid_argument);
    EXPECT_THROW(tiny().encode(3), std::invalid_argument);
}

TEST(dd_sketch_encoding, decode_rejects_truncated_bytes) {
    const std::string good = tiny().encode(1);
    EXPECT_THAT(decode_error(good.substr(0, good.size() - 1)), StartsWith("dd_sketch: length:"));
    EXPECT_THAT(decode_error(good.substr(0, 20)), StartsWith("dd_sketch: length:"));
    EXPECT_THAT(decode_error(""), StartsWith("dd_sketch: length:"));
}

TEST(dd_sketch_encoding, decode_rejects_extra_bytes) {
    EXPECT_THAT(decode_error(tiny().encode(1) + '\0'), StartsWith("dd_sketch: length:"));
}

TEST(dd_sketch_encoding, decode_rejects_bad_magic) {
    std::string b = tiny().encode(1);
    b[3] = 'X';
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: magic:"));
}

TEST(dd_sketch_encoding, decode_rejects_other_versions) {
    std::string b = tiny().encode(1);
    b[4] = 3;
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: version:"));
    b[4] = 0;
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: version:"));
}

TEST(dd_sketch_encoding, decode_rejects_other_sub_bucket_bits) {
    std::string b = tiny().encode(1);
    b[5] = 7;
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sub_bucket_bits:"));
}

TEST(dd_sketch_encoding, decode_rejects_non_zero_reserved_bytes) {
    std::string b = tiny().encode(1);
    b[7] = 1;
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: reserved:"));
}

TEST(dd_sketch_encoding, decode_rejects_more_bins_than_indices) {
    std::string b = tiny().encode(1);
    set_u32(b, at_n, limit + 1);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: n:"));
}

TEST(dd_sketch_encoding, decode_rejects_n_that_disagrees_with_the_length) {
    std::string b = tiny().encode(1);
    set_u32(b, at_n, 1);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: length:"));
}

TEST(dd_sketch_encoding, decode_rejects_duplicate_index) {
    std::string b = tiny().encode(1);
    set_u32(b, bin_index(1), 3);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: bins[1].index:"));
}

TEST(dd_sketch_encoding, decode_rejects_decreasing_index) {
    std::string b = tiny().encode(1);
    set_u32(b, bin_index(1), 2);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: bins[1].index:"));
}

TEST(dd_sketch_encoding, decode_rejects_index_out_of_range) {
    std::string b = tiny().encode(1);
    set_u32(b, bin_index(1), limit);
    const std::string why = decode_error(b);
    EXPECT_THAT(why, StartsWith("dd_sketch: bins[1].index:"));
    EXPECT_THAT(why, HasSubstr("out of range"));
}

TEST(dd_sketch_encoding, decode_rejects_zero_count_bin) {
    std::string b = tiny().encode(1);
    set_u64(b, bin_count(1), 0);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: bins[1].count:"));
}

TEST(dd_sketch_encoding, decode_rejects_count_that_is_not_the_sum_of_bins) {
    std::string b = tiny().encode(1);
    set_u64(b, at_count, 4);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: count:"));
}

TEST(dd_sketch_encoding, decode_rejects_bin_counts_that_overflow) {
    std::string b = tiny().encode(1);
    set_u64(b, bin_count(0), max_u64);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: count:"));
}

TEST(dd_sketch_encoding, decode_rejects_min_greater_than_max) {
    std::string b = tiny().encode(1);
    set_u64(b, at_min, 201);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: min:"));
}

TEST(dd_sketch_encoding, decode_rejects_min_outside_the_first_bin) {
    std::string b = tiny().encode(1);
    set_u64(b, at_min, 4);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: min:"));
}

TEST(dd_sketch_encoding, decode_rejects_max_outside_the_last_bin) {
    std::string b = tiny().encode(1);
    set_u64(b, at_max, 202);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: max:"));
}

TEST(dd_sketch_encoding, decode_rejects_sum_the_bins_cannot_make) {
    std::string b = tiny().encode(1);  // 3 + 3 + 200: the only possible sum is 206
    set_u64(b, at_sum, 207);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sum:"));
    set_u64(b, at_sum, 205);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sum:"));
}

TEST(dd_sketch_encoding, decode_rejects_one_value_with_min_not_max) {
    dd_sketch one;
    one.add(200);
    std::string b = one.encode(1);
    set_u64(b, at_max, 201);  // same bucket, but one value cannot be both
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: max:"));
}

TEST(dd_sketch_encoding, decode_rejects_empty_sketch_with_non_zero_fields) {
    const std::string empty = dd_sketch{}.encode(1);
    std::string b = empty;
    set_u64(b, at_sum, 1);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sum:"));
    b = empty;
    set_u64(b, at_min, 1);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: min:"));
    b = empty;
    set_u64(b, at_max, 1);
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: max:"));
}

// ---- encoding version 2 -------------------------------------------------------------------------

/// A version 2 encoding written by hand: the header, then each field as a canonical varint.
std::string v2_of(std::initializer_list<std::uint64_t> fields) {
    std::string s = bytes_of({'P', 'M', 'D', 'S', 2, 6});
    for (std::uint64_t v : fields) {
        for (; v >= 0x80; v >>= 7) s.push_back(static_cast<char>((v & 0x7f) | 0x80));
        s.push_back(static_cast<char>(v));
    }
    return s;
}

TEST(dd_sketch_encoding_v2, is_the_default) {
    EXPECT_EQ(dd_sketch::encoding_version, 2);
    EXPECT_EQ(tiny().encode(), tiny().encode(2));
}

TEST(dd_sketch_encoding_v2, tiny_sketch_has_this_exact_layout) {
    // clang-format off
    const std::string want = bytes_of({
        'P', 'M', 'D', 'S', 2, 6,  // magic, version, sub-bucket bits
        3,                         // count
        0xce, 0x01,                // sum 206 = 0x4e + (1 << 7)
        3,                         // min
        0xc8, 0x01,                // max 200 = 0x48 + (1 << 7)
        2,                         // n
        3, 2,                      // index 3: count 2
        0xa1, 0x01, 1,             // delta 161 (index 164): count 1
    });
    // clang-format on
    EXPECT_EQ(tiny().encode(), want);
    EXPECT_EQ(dd_sketch::decode(want), tiny());
    EXPECT_EQ(want, v2_of({3, 206, 3, 200, 2, 3, 2, 161, 1}));
}

TEST(dd_sketch_encoding_v2, empty_sketch_is_eleven_bytes) {
    const std::string want = bytes_of({'P', 'M', 'D', 'S', 2, 6, 0, 0, 0, 0, 0});
    EXPECT_EQ(dd_sketch{}.encode(), want);
    EXPECT_TRUE(dd_sketch::decode(want).empty());
}

TEST(dd_sketch_encoding_v2, zero_values_have_index_zero_as_first_delta) {
    dd_sketch s;
    s.add(0, 5);
    const std::string want = bytes_of({'P', 'M', 'D', 'S', 2, 6, 5, 0, 0, 0, 1, 0, 5});
    EXPECT_EQ(s.encode(), want);
    EXPECT_EQ(dd_sketch::decode(want), s);
}

TEST(dd_sketch_encoding_v2, largest_value_takes_ten_byte_varints) {
    dd_sketch s;
    s.add(max_u64);
    // clang-format off
    const std::string ten = bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01});
    // clang-format on
    const std::string want = bytes_of({'P', 'M', 'D', 'S', 2, 6, 1}) + ten + ten + ten +
                             bytes_of({1, 0xbf, 0x1d, 1});  // n 1, delta 3775, count 1
    EXPECT_EQ(s.encode(), want);
    EXPECT_EQ(dd_sketch::decode(want), s);
    EXPECT_EQ(want, v2_of({1, max_u64, max_u64, max_u64, 1, 3775, 1}));
}

TEST(dd_sketch_encoding_v2, is_several_times_smaller_than_v1) {
    const dd_sketch s = sketch_of(lognormal(200, 2e-3, 1.0, 21));
    EXPECT_LT(s.encode(2).size() * 3, s.encode(1).size());
}

TEST(dd_sketch_encoding_v2, round_trips_many_shapes) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 200; ++round) {
        dd_sketch s;
        const int values = int(rng() % 300);
        for (int k = 0; k < values; ++k) s.add(rng() >> (rng() % 64), 1 + rng() % 3);
        const std::string bytes = s.encode();
        const dd_sketch back = dd_sketch::decode(bytes);
        ASSERT_EQ(back, s) << "round " << round;
        ASSERT_EQ(back.encode(), bytes) << "round " << round;
    }
}

TEST(dd_sketch_encoding_v2, decode_rejects_every_truncation) {
    const std::string good = tiny().encode();
    // Cut inside each field: the message names the field whose varint ran out.
    // clang-format off
    const std::vector<std::pair<std::size_t, const char*>> cuts = {
        {4, "length:"},         {5, "length:"},         {6, "count:"},
        {7, "sum:"},            {8, "sum:"},            {9, "min:"},
        {10, "max:"},           {11, "max:"},           {12, "n:"},
        {13, "bins[0].delta:"}, {14, "bins[0].count:"}, {15, "bins[1].delta:"},
        {16, "bins[1].delta:"}, {17, "bins[1].count:"}};
    // clang-format on
    for (const auto& [size, field] : cuts) {
        const std::string why = decode_error(good.substr(0, size));
        EXPECT_THAT(why, StartsWith(std::string("dd_sketch: ") + field)) << size << " bytes";
        if (size >= 6) {
            EXPECT_THAT(why, HasSubstr("truncated")) << size << " bytes";
        }
    }
}

TEST(dd_sketch_encoding_v2, decode_rejects_extra_bytes) {
    EXPECT_THAT(decode_error(tiny().encode() + '\0'), StartsWith("dd_sketch: length:"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_non_canonical_varints) {
    // count 3 as 0x83 0x00: the same number with a zero last byte.
    std::string b = bytes_of({'P', 'M', 'D', 'S', 2, 6, 0x83, 0x00}) + v2_of({206}).substr(6);
    const std::string why = decode_error(b);
    EXPECT_THAT(why, StartsWith("dd_sketch: count:"));
    EXPECT_THAT(why, HasSubstr("non-canonical"));
    // The second bin's count 1 as 0x81 0x00.
    b = v2_of({3, 206, 3, 200, 2, 3, 2, 161}) + bytes_of({0x81, 0x00});
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: bins[1].count: non-canonical"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_overlong_varints) {
    const std::string nine = std::string(9, static_cast<char>(0xff));
    // A 10th byte above 0x01 would hold bits past 64.
    std::string b = v2_of({1}) + nine + bytes_of({0x02});
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sum: overlong"));
    // Eleven bytes.
    b = v2_of({1}) + std::string(10, static_cast<char>(0x80)) + bytes_of({0x01});
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sum: overlong"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_zero_delta_after_the_first_bin) {
    const std::string b = v2_of({3, 9, 3, 3, 2, 3, 2, 0, 1});
    const std::string why = decode_error(b);
    EXPECT_THAT(why, StartsWith("dd_sketch: bins[1].delta:"));
    EXPECT_THAT(why, HasSubstr("zero"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_zero_count_bin) {
    EXPECT_THAT(decode_error(v2_of({2, 6, 3, 3, 2, 3, 2, 161, 0})),
                StartsWith("dd_sketch: bins[1].count: zero"));
    EXPECT_THAT(decode_error(v2_of({0, 0, 0, 0, 1, 0, 0})),
                StartsWith("dd_sketch: bins[0].count: zero"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_index_out_of_range) {
    EXPECT_THAT(decode_error(v2_of({1, 0, 0, 0, 1, limit, 1})),
                StartsWith("dd_sketch: bins[0].index:"));
    EXPECT_THAT(decode_error(v2_of({2, 0, 0, 0, 2, 3000, 1, 776, 1})),
                StartsWith("dd_sketch: bins[1].index:"));
    EXPECT_THAT(decode_error(v2_of({2, 0, 0, 0, 2, 1, 1, max_u64, 1})),
                StartsWith("dd_sketch: bins[1].index:"));
}

TEST(dd_sketch_encoding_v2, decode_rejects_more_bins_than_indices) {
    EXPECT_THAT(decode_error(v2_of({3, 206, 3, 200, limit + 1})), StartsWith("dd_sketch: n:"));
}

TEST(dd_sketch_encoding_v2, decode_applies_the_v1_checks) {
    // count, min, max, sum and the empty sketch: the same rules as version 1.
    EXPECT_THAT(decode_error(v2_of({4, 206, 3, 200, 2, 3, 2, 161, 1})),
                StartsWith("dd_sketch: count:"));
    EXPECT_THAT(decode_error(v2_of({3, 206, 4, 200, 2, 3, 2, 161, 1})),
                StartsWith("dd_sketch: min:"));
    EXPECT_THAT(decode_error(v2_of({3, 206, 3, 202, 2, 3, 2, 161, 1})),
                StartsWith("dd_sketch: max:"));
    EXPECT_THAT(decode_error(v2_of({3, 207, 3, 200, 2, 3, 2, 161, 1})),
                StartsWith("dd_sketch: sum:"));
    EXPECT_THAT(decode_error(v2_of({0, 1, 0, 0, 0})), StartsWith("dd_sketch: sum:"));
    EXPECT_THAT(decode_error(v2_of({1, 200, 200, 201, 1, 164, 1})), StartsWith("dd_sketch: max:"));
    std::string b = tiny().encode();
    b[5] = 7;
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: sub_bucket_bits:"));
    b = tiny().encode();
    b[0] = 'X';
    EXPECT_THAT(decode_error(b), StartsWith("dd_sketch: magic:"));
}

}  // namespace
}  // namespace plugmon::agent
