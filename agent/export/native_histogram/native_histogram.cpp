// Native histograms from the agent's sketches: exact bucket indices, re-bucketing, spans/deltas.
#include "export/native_histogram/native_histogram.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace plugmon::agent::native {
namespace {

constexpr std::int32_t max_schema = 8;
constexpr std::int32_t min_schema = -4;
constexpr std::size_t fractions = std::size_t{1} << max_schema;  // 256

/// fraction_table()[i] = 2^(i/256 - 1), in [0.5, 1): the significands of every bucket bound at
/// schema 8; schema s uses every 2^(8-s)-th entry (the schemas nest). Computed in long double
/// (64-bit significand) and rounded once: each entry equals the correctly rounded double (the
/// literals of Prometheus' nativeHistogramBounds); checked offline with exact integer arithmetic.
const std::array<double, fractions>& fraction_table() {
    static const std::array<double, fractions> table = [] {
        std::array<double, fractions> t{};
        for (std::size_t i = 0; i < fractions; ++i)
            t[i] = static_cast<double>(
                std::exp2l(static_cast<long double>(i) / static_cast<long double>(fractions) - 1));
        return t;
    }();
    return table;
}

void check_schema(std::int32_t schema) {
    if (schema < min_schema || schema > max_schema)
        throw std::invalid_argument("native histogram schema must be in [-4, 8]");
}

/// Floor division of `k` by 2^shift for any sign (an arithmetic shift).
constexpr std::int32_t floor_shift(std::int32_t k, std::int32_t shift) { return k >> shift; }

}  // namespace

std::int32_t bucket_index(double v, std::int32_t schema) {
    check_schema(schema);
    if (std::isinf(v)) v = std::numeric_limits<double>::max();
    int exp = 0;
    const double frac = std::frexp(v, &exp);  // v = frac * 2^exp, frac in [0.5, 1)
    if (schema > 0) {
        // The first bound of this schema at or above frac: the bucket is (bound[i-1], bound[i]].
        const auto& t = fraction_table();
        const std::size_t stride = fractions >> schema;
        const std::size_t n = std::size_t{1} << schema;
        std::size_t lo = 0, hi = n;  // answer in [lo, hi]; hi == n means "the next octave's 0.5"
        while (lo < hi) {
            const std::size_t mid = (lo + hi) / 2;
            if (t[mid * stride] >= frac)
                hi = mid;
            else
                lo = mid + 1;
        }
        return static_cast<std::int32_t>(lo) + (exp - 1) * static_cast<std::int32_t>(n);
    }
    std::int32_t key = exp;
    if (frac == 0.5) --key;  // a power of two is the upper bound of its bucket
    const std::int32_t shift = -schema;
    // Ceil division by 2^shift: bucket k of schema s < 0 holds 2^shift buckets of schema 0.
    return floor_shift(key + ((std::int32_t{1} << shift) - 1), shift);
}

double bucket_upper_bound(std::int32_t k, std::int32_t schema) {
    check_schema(schema);
    if (schema <= 0) return std::ldexp(1.0, k * (std::int32_t{1} << -schema));
    const std::int32_t n = std::int32_t{1} << schema;
    const std::int32_t frac_idx = k & (n - 1);
    const std::int32_t exp = floor_shift(k, schema) + 1;
    const std::size_t stride = fractions >> schema;
    return std::ldexp(fraction_table()[static_cast<std::size_t>(frac_idx) * stride], exp);
}

cumulative::cumulative(std::int32_t schema, double ns_per_unit)
    : schema_(schema), ns_per_unit_(ns_per_unit) {
    check_schema(schema);
    if (!(ns_per_unit > 0) || !std::isfinite(ns_per_unit))
        throw std::invalid_argument("native histogram ns_per_unit must be positive and finite");
}

namespace {

/// native_index_table(s)[i] = the native bucket of sketch bin i's representative value in seconds
/// at schema s (0 for the zero bin): one table per schema, shared by every series (15 KB each).
const std::vector<std::int32_t>& native_index_table(std::int32_t schema) {
    static const auto tables = [] {
        std::array<std::vector<std::int32_t>, max_schema - min_schema + 1> t;
        for (std::int32_t s = min_schema; s <= max_schema; ++s) {
            auto& v = t[static_cast<std::size_t>(s - min_schema)];
            v.resize(dd_sketch::index_limit);
            for (std::uint32_t i = 1; i < dd_sketch::index_limit; ++i)
                v[i] = bucket_index(static_cast<double>(dd_sketch::value_of(i)) / 1e9, s);
        }
        return t;
    }();
    return tables[static_cast<std::size_t>(schema - min_schema)];
}

/// One window's buckets, reused by every add on this thread (not kept per series).
thread_local std::vector<std::pair<std::int32_t, std::uint64_t>> window_buckets;

}  // namespace

void cumulative::add(const dd_sketch& window) {
    if (window.empty()) return;
    const std::vector<std::int32_t>* table =
        ns_per_unit_ == 1e9 ? &native_index_table(schema_) : nullptr;
    // The window's native buckets, in ascending order: value_of and bucket_index are both
    // monotonic, so consecutive sketch bins land in the same or a later native bucket.
    auto& scratch = window_buckets;
    scratch.clear();
    const std::uint32_t first = dd_sketch::index_of(window.min());
    const std::uint32_t last = dd_sketch::index_of(window.max());
    for (std::uint32_t i = first; i <= last; ++i) {
        const std::uint64_t n = window.bin(i);
        if (n == 0) continue;
        const std::uint64_t ns = dd_sketch::value_of(i);
        if (ns == 0) {
            zero_count_ += n;
            continue;
        }
        const std::int32_t k =
            table ? (*table)[i] : bucket_index(static_cast<double>(ns) / ns_per_unit_, schema_);
        if (!scratch.empty() && scratch.back().first == k)
            scratch.back().second += n;
        else
            scratch.emplace_back(k, n);
    }
    merge(scratch);
    count_ += window.count();
    sum_ += static_cast<double>(window.sum()) / ns_per_unit_;
}

void cumulative::merge(const std::vector<std::pair<std::int32_t, std::uint64_t>>& scratch) {
    if (scratch.empty()) return;
    const auto key_less = [](const auto& b, std::int32_t key) { return b.first < key; };
    // Steady state: every bucket of the window is already held; add in place, no allocation.
    std::size_t missing = 0;
    auto it = buckets_.begin();
    for (const auto& e : scratch) {
        it = std::lower_bound(it, buckets_.end(), e.first, key_less);
        if (it == buckets_.end() || it->first != e.first) ++missing;
    }
    if (missing == 0) {
        it = buckets_.begin();
        for (const auto& [k, n] : scratch) {
            it = std::lower_bound(it, buckets_.end(), k, key_less);
            it->second += n;
        }
        return;
    }
    std::vector<std::pair<std::int32_t, std::uint64_t>> merged;
    merged.reserve(buckets_.size() + missing);  // exactly: no slack kept per series
    auto b = buckets_.begin();
    auto s = scratch.begin();
    while (b != buckets_.end() || s != scratch.end()) {
        if (s == scratch.end() || (b != buckets_.end() && b->first < s->first)) {
            merged.push_back(*b++);
        } else if (b == buckets_.end() || s->first < b->first) {
            merged.push_back(*s++);
        } else {
            merged.emplace_back(b->first, b->second + s->second);
            ++b;
            ++s;
        }
    }
    buckets_.swap(merged);
}

histogram cumulative::snapshot() const {
    histogram h;
    h.schema = schema_;
    h.zero_threshold = 0;
    h.zero_count = zero_count_;
    h.count = count_;
    h.sum = sum_;
    h.positive_spans.reserve(4);
    h.positive_deltas.reserve(buckets_.size());
    std::int64_t prev_count = 0;
    std::int32_t prev_index = 0;
    for (const auto& [k, n] : buckets_) {
        if (h.positive_spans.empty()) {
            h.positive_spans.push_back({k, 0});
        } else {
            const std::int32_t gap = k - prev_index - 1;
            if (gap <= 2) {
                // Fill a short gap with empty buckets: cheaper than a new span.
                for (std::int32_t g = 0; g < gap; ++g) {
                    h.positive_deltas.push_back(-prev_count);
                    prev_count = 0;
                    ++h.positive_spans.back().length;
                }
            } else {
                h.positive_spans.push_back({gap, 0});
            }
        }
        const auto c = static_cast<std::int64_t>(n);
        h.positive_deltas.push_back(c - prev_count);
        prev_count = c;
        prev_index = k;
        ++h.positive_spans.back().length;
    }
    return h;
}

std::vector<std::uint64_t> cumulative::classic_counts(const std::vector<double>& le) const {
    std::vector<std::uint64_t> out(le.size(), 0);
    // Per classic bucket first, then the running sum.
    auto slot_of = [&](double upper) {
        return static_cast<std::size_t>(std::lower_bound(le.begin(), le.end(), upper) - le.begin());
    };
    if (zero_count_ > 0) {
        const std::size_t j = slot_of(0.0);
        if (j < out.size()) out[j] += zero_count_;
    }
    for (const auto& [k, n] : buckets_) {
        const std::size_t j = slot_of(bucket_upper_bound(k, schema_));
        if (j < out.size()) out[j] += n;
    }
    for (std::size_t j = 1; j < out.size(); ++j) out[j] += out[j - 1];
    return out;
}

void cumulative::assign(std::vector<std::pair<std::int32_t, std::uint64_t>> buckets,
                        std::uint64_t zero_count, std::uint64_t count, double sum) {
    buckets_ = std::move(buckets);
    zero_count_ = zero_count;
    count_ = count;
    sum_ = sum;
}

std::size_t cumulative::memory_bytes() const noexcept {
    return sizeof(*this) + buckets_.capacity() * sizeof(buckets_[0]);
}

namespace {

/// The positive buckets of `h` as (index, count), empty ones included, in ascending order.
std::vector<std::pair<std::int32_t, std::int64_t>> expand(const histogram& h) {
    std::vector<std::pair<std::int32_t, std::int64_t>> out;
    out.reserve(h.positive_deltas.size());
    std::int32_t index = 0;
    std::int64_t running = 0;
    std::size_t d = 0;
    for (std::size_t s = 0; s < h.positive_spans.size(); ++s) {
        index += h.positive_spans[s].offset;
        for (std::uint32_t j = 0; j < h.positive_spans[s].length && d < h.positive_deltas.size();
             ++j) {
            running += h.positive_deltas[d++];
            out.emplace_back(index++, running);
        }
    }
    return out;
}

}  // namespace

double promql_quantile(double q, const histogram& h) {
    if (q < 0) return -std::numeric_limits<double>::infinity();
    if (q > 1) return std::numeric_limits<double>::infinity();
    const auto total = static_cast<double>(h.count);
    if (h.count == 0 || std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
    const auto buckets = expand(h);
    const double rank = q * total;
    double count = 0, lower = 0, upper = 0, in_bucket = 0;
    bool found = false;
    if (h.zero_count > 0) {
        in_bucket = static_cast<double>(h.zero_count);
        count = in_bucket;
        // [-zero_threshold, zero_threshold]; 0 is the lower bound when only positive buckets exist.
        lower = buckets.empty() ? -h.zero_threshold : 0.0;
        upper = h.zero_threshold;
        found = count >= rank;
    }
    for (std::size_t i = 0; !found && i < buckets.size(); ++i) {
        in_bucket = static_cast<double>(buckets[i].second);
        count += in_bucket;
        lower = bucket_upper_bound(buckets[i].first - 1, h.schema);
        upper = bucket_upper_bound(buckets[i].first, h.schema);
        found = count >= rank;
    }
    count = std::min(count, total);
    if (count < rank) return upper;
    const double r = rank - (count - in_bucket);
    return lower + (upper - lower) * (r / in_bucket);
}

std::vector<std::uint64_t> classic_counts(const histogram& h, const std::vector<double>& le) {
    std::vector<std::uint64_t> out(le.size(), 0);
    const auto slot_of = [&](double upper) {
        return static_cast<std::size_t>(std::lower_bound(le.begin(), le.end(), upper) - le.begin());
    };
    if (h.zero_count > 0) {
        const std::size_t j = slot_of(0.0);
        if (j < out.size()) out[j] += h.zero_count;
    }
    // Walk spans and deltas in place (no copy): a scrape does this for every series.
    std::int32_t index = 0;
    std::int64_t running = 0;
    std::size_t d = 0, j = 0;
    for (const bucket_span& span : h.positive_spans) {
        index += span.offset;
        for (std::uint32_t b = 0; b < span.length && d < h.positive_deltas.size(); ++b, ++index) {
            running += h.positive_deltas[d++];
            if (running <= 0) continue;
            const double upper = bucket_upper_bound(index, h.schema);
            while (j < le.size() && le[j] < upper) ++j;  // buckets ascend: the slot only moves up
            if (j < out.size()) out[j] += static_cast<std::uint64_t>(running);
        }
    }
    for (std::size_t k = 1; k < out.size(); ++k) out[k] += out[k - 1];
    return out;
}

histogram add(const histogram& a, const histogram& b) {
    if (a.schema != b.schema) throw std::invalid_argument("native histograms of different schemas");
    cumulative c(a.schema);
    std::vector<std::pair<std::int32_t, std::uint64_t>> sum;
    const auto ea = expand(a), eb = expand(b);
    std::size_t i = 0, j = 0;
    while (i < ea.size() || j < eb.size()) {
        if (j == eb.size() || (i < ea.size() && ea[i].first < eb[j].first)) {
            sum.emplace_back(ea[i].first, static_cast<std::uint64_t>(ea[i].second));
            ++i;
        } else if (i == ea.size() || eb[j].first < ea[i].first) {
            sum.emplace_back(eb[j].first, static_cast<std::uint64_t>(eb[j].second));
            ++j;
        } else {
            sum.emplace_back(ea[i].first, static_cast<std::uint64_t>(ea[i].second + eb[j].second));
            ++i;
            ++j;
        }
    }
    std::erase_if(sum, [](const auto& e) { return e.second == 0; });
    c.assign(std::move(sum), a.zero_count + b.zero_count, a.count + b.count, a.sum + b.sum);
    histogram out = c.snapshot();
    out.zero_threshold = std::max(a.zero_threshold, b.zero_threshold);
    return out;
}

}  // namespace plugmon::agent::native
