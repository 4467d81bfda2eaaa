// Native histograms: exact bucket boundaries, spans and deltas against a brute-force reference,
// counter monotonicity, the zero bucket, huge values, classic counts and the PromQL replica.
#include "export/native_histogram/native_histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>

namespace plugmon::agent::native {
namespace {

using dense = std::map<std::int32_t, std::int64_t>;

/// The reference index: ceil(log2(v) * 2^s) in long double, for values not near a boundary.
std::int32_t reference_index(double v, std::int32_t schema) {
    return static_cast<std::int32_t>(
        std::ceil(std::log2l(static_cast<long double>(v)) * std::exp2l(schema)));
}

/// Expands spans and deltas to index -> count, checking the layout rules as it goes.
dense expand(const histogram& h) {
    dense out;
    std::int32_t index = 0;
    std::int64_t running = 0;
    std::size_t d = 0;
    for (std::size_t s = 0; s < h.positive_spans.size(); ++s) {
        const auto& span = h.positive_spans[s];
        EXPECT_GT(span.length, 0u);
        if (s > 0) {
            EXPECT_GT(span.offset, 2) << "a gap of at most 2 must be filled, span " << s;
        }
        index += span.offset;
        for (std::uint32_t j = 0; j < span.length; ++j) {
            EXPECT_LT(d, h.positive_deltas.size());
            running += h.positive_deltas.at(d++);
            EXPECT_GE(running, 0);
            if (j == 0 || j + 1 == span.length) {
                EXPECT_GT(running, 0) << "span edges are non-empty";
            }
            if (running > 0) out[index] = running;
            ++index;
        }
    }
    EXPECT_EQ(d, h.positive_deltas.size());
    return out;
}

TEST(native_bucket_index, exact_at_and_around_every_boundary) {
    for (std::int32_t s = -4; s <= 8; ++s) {
        const std::int32_t per_octave = s >= 0 ? (1 << s) : 1;
        const std::int32_t range = s >= 0 ? 70 * per_octave : 70 >> -s;
        double prev = 0;
        for (std::int32_t k = -range; k <= range; ++k) {
            const double ub = bucket_upper_bound(k, s);
            ASSERT_GT(ub, prev) << "bounds ascend, s=" << s << " k=" << k;
            prev = ub;
            const long double exact = std::exp2l(static_cast<long double>(k) / std::exp2l(s));
            ASSERT_LE(std::fabs(static_cast<long double>(ub) - exact) / exact, 1.2e-16L)
                << "s=" << s << " k=" << k;
            ASSERT_EQ(bucket_index(ub, s), k) << "upper bound is in its bucket, s=" << s;
            ASSERT_EQ(bucket_index(std::nextafter(ub, 0.0), s), k) << "s=" << s << " k=" << k;
            ASSERT_EQ(bucket_index(std::nextafter(ub, 1e300), s), k + 1) << "s=" << s << " k=" << k;
        }
    }
}

TEST(native_bucket_index, schemas_nest) {
    for (std::int32_t s = -4; s < 8; ++s)
        for (std::int32_t k = -200; k <= 200; ++k)
            ASSERT_EQ(bucket_upper_bound(k, s), bucket_upper_bound(2 * k, s + 1))
                << "s=" << s << " k=" << k;
}

TEST(native_bucket_index, matches_ceil_log2_away_from_boundaries) {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> exponent(-40, 40);
    int checked = 0;
    for (int i = 0; i < 200000; ++i) {
        const double v = std::exp2(exponent(rng));
        const std::int32_t s = static_cast<std::int32_t>(i % 13) - 4;
        const long double x = std::log2l(v) * std::exp2l(s);
        if (std::fabs(x - std::roundl(x)) < 1e-9L) continue;
        ASSERT_EQ(bucket_index(v, s), reference_index(v, s)) << "v=" << v << " s=" << s;
        ++checked;
    }
    EXPECT_GT(checked, 190000);
}

TEST(native_bucket_index, huge_and_tiny_values) {
    const double max = std::numeric_limits<double>::max();
    EXPECT_EQ(bucket_index(max, 8), 1024 * 256);
    EXPECT_EQ(bucket_index(max, 0), 1024);
    EXPECT_EQ(bucket_index(std::numeric_limits<double>::infinity(), 8), bucket_index(max, 8));
    EXPECT_EQ(bucket_index(std::numeric_limits<double>::denorm_min(), 0), -1074);
    EXPECT_EQ(bucket_index(std::numeric_limits<double>::denorm_min(), -4), -67);
    EXPECT_THROW(bucket_index(1.0, 9), std::invalid_argument);
    EXPECT_THROW(bucket_index(1.0, -5), std::invalid_argument);
}

/// A window sketch of `n` values drawn log-uniformly in [lo, hi] ns, plus some zeros.
dd_sketch random_window(std::mt19937_64& rng, double lo, double hi, int n, int zeros) {
    dd_sketch s;
    std::uniform_real_distribution<double> e(std::log(lo), std::log(hi));
    for (int i = 0; i < n; ++i) s.add(static_cast<std::uint64_t>(std::exp(e(rng))));
    for (int i = 0; i < zeros; ++i) s.add(0);
    return s;
}

/// Brute force: every sketch bin's count into the bucket of its representative value.
void reference_add(dense& ref, std::uint64_t& zeros, const dd_sketch& w, std::int32_t schema) {
    for (std::uint32_t i = 0; i < dd_sketch::index_limit; ++i) {
        if (w.bin(i) == 0) continue;
        const std::uint64_t ns = dd_sketch::value_of(i);
        if (ns == 0) {
            zeros += w.bin(i);
            continue;
        }
        // Exact: walk the bounds rather than trusting a logarithm near a boundary.
        const double v = static_cast<double>(ns) / 1e9;
        std::int32_t k = reference_index(v, schema);
        while (bucket_upper_bound(k - 1, schema) >= v) --k;
        while (bucket_upper_bound(k, schema) < v) ++k;
        ref[k] += static_cast<std::int64_t>(w.bin(i));
    }
}

TEST(native_cumulative, spans_and_deltas_match_brute_force) {
    for (std::int32_t s : {8, 7, 6, 3, 0, -2, -4}) {
        std::mt19937_64 rng(static_cast<std::uint64_t>(s + 100));
        cumulative c(s);
        dense ref;
        std::uint64_t zeros = 0, count = 0;
        for (int w = 0; w < 20; ++w) {
            // Sparse windows (few values over a wide range) make gaps of every size.
            const dd_sketch win = random_window(rng, 50, 5e10, w % 2 ? 30 : 2000, w % 3);
            c.add(win);
            reference_add(ref, zeros, win, s);
            count += win.count();
            const histogram h = c.snapshot();
            ASSERT_EQ(expand(h), ref) << "schema " << s << " window " << w;
            EXPECT_EQ(h.zero_count, zeros);
            EXPECT_EQ(h.count, count);
            EXPECT_EQ(h.schema, s);
        }
    }
}

TEST(native_cumulative, counts_only_grow_across_windows) {
    std::mt19937_64 rng(11);
    cumulative c(8);
    dense before;
    double sum_before = 0;
    std::uint64_t sketch_sum = 0;
    for (int w = 0; w < 50; ++w) {
        const dd_sketch win = random_window(rng, 1e3, 1e10, 500, 0);
        sketch_sum += win.sum();
        c.add(win);
        const histogram h = c.snapshot();
        const dense now = expand(h);
        for (const auto& [k, n] : before) EXPECT_GE(now.count(k) ? now.at(k) : 0, n) << k;
        std::int64_t total = 0;
        for (const auto& [k, n] : now) total += n;
        EXPECT_EQ(static_cast<std::uint64_t>(total) + h.zero_count, h.count);
        EXPECT_GT(h.sum, sum_before);
        sum_before = h.sum;
        before = now;
    }
    EXPECT_NEAR(c.sum(), static_cast<double>(sketch_sum) / 1e9, 1e-9 * c.sum());
}

TEST(native_cumulative, zero_bucket_and_empty_windows) {
    cumulative c(8);
    c.add(dd_sketch{});
    EXPECT_EQ(c.snapshot().count, 0u);
    EXPECT_TRUE(c.snapshot().positive_spans.empty());
    dd_sketch w;
    w.add(0, 5);
    w.add(1);
    c.add(w);
    const histogram h = c.snapshot();
    EXPECT_EQ(h.zero_count, 5u);
    EXPECT_EQ(h.count, 6u);
    ASSERT_EQ(h.positive_spans.size(), 1u);
    EXPECT_EQ(h.positive_spans[0].offset, bucket_index(1e-9, 8));
    EXPECT_EQ(h.positive_deltas, std::vector<std::int64_t>{1});
    // PromQL's zero bucket is [0, zero_threshold] when only positive buckets exist.
    EXPECT_EQ(promql_quantile(0.5, h), 0.0);
    EXPECT_GT(promql_quantile(0.99, h), 0.0);
}

TEST(native_cumulative, huge_values) {
    cumulative c(8);
    dd_sketch w;
    w.add(std::numeric_limits<std::uint64_t>::max());
    w.add(std::uint64_t{1} << 63);
    c.add(w);
    const dense d = expand(c.snapshot());
    ASSERT_EQ(d.size(), 2u);
    for (const auto& [k, n] : d) {
        EXPECT_EQ(n, 1);
        EXPECT_GT(bucket_upper_bound(k, 8), 9.2e9);  // seconds
        EXPECT_LT(bucket_upper_bound(k - 1, 8), 1.85e10);
    }
}

TEST(native_cumulative, classic_counts_follow_upper_edges) {
    std::mt19937_64 rng(5);
    cumulative c(6);
    c.add(random_window(rng, 1e3, 1e10, 5000, 3));
    const std::vector<double> le{0, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10};
    const auto got = c.classic_counts(le);
    ASSERT_EQ(got.size(), le.size());
    std::vector<std::uint64_t> want(le.size(), 0);
    for (std::size_t j = 0; j < le.size(); ++j) {
        want[j] = le[j] >= 0 ? c.zero_count() : 0;
        for (const auto& [k, n] : c.buckets())
            if (bucket_upper_bound(k, 6) <= le[j]) want[j] += n;
    }
    EXPECT_EQ(got, want);
    EXPECT_EQ(got.front(), 3u);
    EXPECT_LT(got.back(), c.count());  // values above 10 s fall only in +Inf
}

TEST(native_promql, replica_interpolates_within_the_bucket) {
    // Two buckets at schema 0: (0.5, 1] with 3 and (2, 4] with 1 (a gap of one empty bucket).
    histogram h;
    h.schema = 0;
    h.count = 4;
    h.positive_spans = {{0, 3}};
    h.positive_deltas = {3, -3, 1};
    EXPECT_DOUBLE_EQ(promql_quantile(0.5, h), 0.5 + 0.5 * (2.0 / 3.0));
    EXPECT_DOUBLE_EQ(promql_quantile(0.75, h), 1.0);
    EXPECT_DOUBLE_EQ(promql_quantile(0.875, h), 3.0);
    EXPECT_DOUBLE_EQ(promql_quantile(1.0, h), 4.0);
    EXPECT_TRUE(std::isinf(promql_quantile(1.5, h)));
    EXPECT_TRUE(std::isnan(promql_quantile(0.5, histogram{})));
    const histogram twice = add(h, h);
    EXPECT_EQ(twice.count, 8u);
    EXPECT_DOUBLE_EQ(promql_quantile(0.5, twice), promql_quantile(0.5, h));
}

TEST(native_promql, rebucketed_quantile_within_bound) {
    // Worst case: sketch midpoint error (1/128) compounded with interpolation over one bucket.
    std::mt19937_64 rng(3);
    std::lognormal_distribution<double> d(std::log(1e6), 1.0);
    std::vector<std::uint64_t> raw;
    for (std::int32_t s : {8, 6}) {
        cumulative c(s);
        dd_sketch w;
        raw.clear();
        for (int i = 0; i < 100000; ++i) {
            raw.push_back(static_cast<std::uint64_t>(d(rng)));
            w.add(raw.back());
        }
        c.add(w);
        std::sort(raw.begin(), raw.end());
        const double bound = (1 + 1.0 / 128) * std::exp2(std::exp2(-s)) - 1;
        for (double q : {0.5, 0.9, 0.99}) {
            const auto rank = static_cast<std::size_t>(std::ceil(q * raw.size())) - 1;
            const double exact = static_cast<double>(raw[rank]) / 1e9;
            const double got = promql_quantile(q, c.snapshot());
            EXPECT_LE(std::fabs(got - exact) / exact, bound) << "s=" << s << " q=" << q;
        }
    }
}

}  // namespace
}  // namespace plugmon::agent::native
