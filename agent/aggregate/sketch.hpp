// A mergeable relative-error quantile sketch (DDSketch) over nanosecond durations, with a
// versioned big-endian encoding that a SQL function can decode.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plugmon::agent {

/// A DDSketch with the "log-linear" index mapping: every power of two is split into 64 equal
/// sub-buckets, so a bucket's width is at most 1/64 of its lower bound and the bucket's midpoint is
/// within 1/128 (< 1 %) of every value in it. Values below 128 have a bucket each (exact).
///
///   v < 128:  index = v
///   v >= 128: e = floor(log2 v) (7..63), index = 128 + (e - 7) * 64 + ((v >> (e - 6)) - 64)
///
/// so every uint64 maps to an index below 128 + 57 * 64 = 3776 and the buckets tile [0, 2^64).
/// Sketches merge exactly: the merge of two sketches equals, bin for bin, the sketch of the union.
///
/// Encoding version 2 (the default; what the agent stores). A 6-byte header, then unsigned LEB128
/// varints: 7 bits per byte, least significant group first, the high bit set on every byte but
/// the last; at most 10 bytes and minimal (a multi-byte varint never ends in a 0 byte, and a 10th
/// byte can only be 0x01). A SQL function and the C extension decode the same bytes.
///
///    0      4       5                6
///   +------+-------+----------------+-------+-----+-----+-----+----+---------------------------+
///   | PMDS | ver=2 | sub-bucket bits| count | sum | min | max | n  | n x (index delta, count)  |
///   | 4 B  | u8    | u8 = 6         | var   | var | var | var | var| var, var                  |
///   +------+-------+----------------+-------+-----+-----+-----+----+---------------------------+
///   Bins are the non-empty ones in increasing index order; the first delta is the index itself,
///   each later one the index minus the previous index (>= 1); counts are >= 1. The bytes end
///   exactly after the last bin. The empty sketch is 11 bytes: header and five zero varints.
///   Typical rollup sketches shrink about 5x against version 1 (two bytes per bin instead of 12).
///
/// Encoding version 1 (still decoded, and written by encode(1); all integers big-endian, fixed
/// width):
///
///    0      4        5                6          8       16     24     32     40    44
///   +------+--------+----------------+----------+-------+------+------+------+-----+
///   | PMDS | ver=1  | sub-bucket bits| reserved | count | sum  | min  | max  | n   |
///   | 4 B  | u8     | u8 = 6         | u16 = 0  | u64   | u64  | u64  | u64  | u32 |
///   +------+--------+----------------+----------+-------+------+------+------+-----+
///   then n records of (u32 index, u64 count), 12 bytes each, in strictly increasing index order,
///   non-empty bins only. An empty sketch has count, sum, min, max and n all zero.
///
/// Thread safety: none. One writer at a time; concurrent const calls are safe only while no
/// thread writes. The agent keeps one per series and window, written by the drain thread.
class dd_sketch {
public:
    /// log2 of the sub-buckets per power of two; fixed in encoding versions 1 and 2.
    static constexpr std::uint32_t sub_bucket_bits = 6;
    static constexpr std::uint32_t sub_buckets = 1u << sub_bucket_bits;  // 64
    /// Values (and indices) below this have a bucket of their own.
    static constexpr std::uint32_t exact_limit = 2 * sub_buckets;  // 128
    /// Every index is below this: 128 exact buckets plus 64 for each exponent 7..63.
    static constexpr std::uint32_t index_limit =
        exact_limit + (64 - (sub_bucket_bits + 1)) * sub_buckets;  // 3776
    /// The version encode() writes by default; decode() reads versions 1 and 2.
    static constexpr std::uint8_t encoding_version = 2;
    /// Version 1's fixed sizes: its header, and one bin record.
    static constexpr std::size_t header_bytes = 44;
    static constexpr std::size_t bin_record_bytes = 12;
    /// Version 2's fixed header (magic, version, sub-bucket bits), and its longest varint.
    static constexpr std::size_t v2_header_bytes = 6;
    static constexpr std::size_t max_varint_bytes = 10;

    /// The bucket index of `v`: integer only (count-leading-zeros), no allocation.
    static constexpr std::uint32_t index_of(std::uint64_t v) noexcept {
        if (v < exact_limit) return static_cast<std::uint32_t>(v);
        const auto e = static_cast<std::uint32_t>(63 - std::countl_zero(v));  // 7..63
        const auto sub = static_cast<std::uint32_t>(v >> (e - sub_bucket_bits)) - sub_buckets;
        return exact_limit + (e - (sub_bucket_bits + 1)) * sub_buckets + sub;
    }

    /// The smallest value in bucket `i`. Precondition: i < index_limit.
    static constexpr std::uint64_t lower_bound(std::uint32_t i) noexcept {
        if (i < exact_limit) return i;
        const std::uint32_t e = (i - exact_limit) / sub_buckets + sub_bucket_bits + 1;
        const std::uint64_t sub = (i - exact_limit) % sub_buckets;
        return (sub_buckets + sub) << (e - sub_bucket_bits);
    }

    /// The number of values in bucket `i`. Precondition: i < index_limit.
    static constexpr std::uint64_t width(std::uint32_t i) noexcept {
        if (i < exact_limit) return 1;
        const std::uint32_t e = (i - exact_limit) / sub_buckets + sub_bucket_bits + 1;
        return std::uint64_t{1} << (e - sub_bucket_bits);
    }

    /// The largest value in bucket `i` (UINT64_MAX for the last one).
    /// Precondition: i < index_limit.
    static constexpr std::uint64_t upper_bound(std::uint32_t i) noexcept {
        return lower_bound(i) + (width(i) - 1);
    }

    /// The value that stands for bucket `i`: its midpoint, rounded down.
    static constexpr std::uint64_t value_of(std::uint32_t i) noexcept {
        return lower_bound(i) + (width(i) - 1) / 2;
    }

    dd_sketch() = default;

    /// Records one value. A few ns when the bucket lies in the current window; otherwise the
    /// window grows by at least a quarter (allocates; may throw std::bad_alloc). Not thread-safe.
    void add(std::uint64_t v) { add_at(index_of(v), v); }

    /// add(v) for a value whose index the caller computed (index_of(v)), to share it.
    void add_at(std::uint32_t i, std::uint64_t v) {
        const std::uint32_t off = i - lo_index_;  // wraps to a huge value below the window
        if (off < bins_.size()) [[likely]]
            ++bins_[off];
        else
            add_outside(i, 1);
        ++count_;
        const std::uint64_t s = sum_ + v;
        sum_ = s < v ? max_u64 : s;
        min_ = std::min(min_, v);
        max_ = std::max(max_, v);
    }

    /// Records `v` `n` times (n == 0 does nothing). Same cost and rules as add(v).
    void add(std::uint64_t v, std::uint64_t n);

    /// Adds every bin, the count and the sum of `other` (which may be *this) into this sketch;
    /// afterwards it equals the sketch of the union of both inputs. May allocate.
    void merge(const dd_sketch& other);

    /// Empties the sketch but keeps its bin window and capacity, for reuse by the next window.
    /// Costs O(bins between min and max). Does not allocate or throw.
    void clear() noexcept;

    /// The value at 0-based rank floor(q * (count - 1)) of the recorded values, to within 1/128
    /// relative error: the midpoint of the bucket holding that rank, clamped to [min, max].
    /// q <= 0 (or NaN) returns min() and q >= 1 returns max(), exactly. An empty sketch returns 0.
    /// Returns an integer (ns), not a double: exact for every uint64 including min and max.
    /// O(bins between min and max); no allocation, no throw.
    std::uint64_t quantile(double q) const noexcept;

    bool empty() const noexcept { return count_ == 0; }
    /// Number of recorded values (exact; wraps only past 2^64 - 1 values).
    std::uint64_t count() const noexcept { return count_; }
    /// Sum of recorded values in ns, saturating at UINT64_MAX (about 584 years).
    std::uint64_t sum() const noexcept { return sum_; }
    /// Smallest recorded value, exactly; 0 when empty.
    std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
    /// Largest recorded value, exactly; 0 when empty.
    std::uint64_t max() const noexcept { return max_; }
    /// Count in bucket `i` (0 outside the window). Precondition: i < index_limit.
    std::uint64_t bin(std::uint32_t i) const noexcept {
        const std::uint32_t off = i - lo_index_;
        return off < bins_.size() ? bins_[off] : 0;
    }
    /// Bytes held: the object plus its bin capacity.
    std::size_t memory_bytes() const noexcept {
        return sizeof(*this) + bins_.capacity() * sizeof(std::uint64_t);
    }

    /// Same count, sum, min, max and bins; the window and capacity do not matter.
    friend bool operator==(const dd_sketch& a, const dd_sketch& b) noexcept;

    /// The encoding of `version` (2 by default, or 1: see the class comment); exactly the bytes
    /// decode() accepts, allocated once at their final size. Throws std::invalid_argument for
    /// another version.
    std::string encode(std::uint8_t version = encoding_version) const;

    /// Decodes and validates an encoding of version 1 or 2: magic, version, sub-bucket bits,
    /// reserved bytes (v1), exact length for n, canonical varints that do not run past the end
    /// (v2), indices strictly increasing and in range (a zero delta after the first bin, in v2),
    /// non-zero bin counts summing to count, min <= max in the first and last bins, sum within
    /// what the bins allow, and an empty sketch all zero. Throws std::invalid_argument whose
    /// message names the offending field ("dd_sketch: <field>: <problem>").
    static dd_sketch decode(std::string_view bytes);

    /// As decode(), but returns nullopt and (if `why` is not null) the message instead of
    /// throwing std::invalid_argument. May still throw std::bad_alloc.
    static std::optional<dd_sketch> try_decode(std::string_view bytes, std::string* why = nullptr);

private:
    static constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

    /// One decoded bin: (index, count), as either version lists them.
    using bin_record = std::pair<std::uint32_t, std::uint64_t>;
    std::string encode_v1() const;
    std::string encode_v2() const;
    /// Each version's parsing after the shared header checks; then from_fields.
    static std::optional<dd_sketch> decode_v1(std::string_view bytes, std::string* why);
    static std::optional<dd_sketch> decode_v2(std::string_view bytes, std::string* why);
    /// The checks both versions share (bins already parsed: indices increasing and in range),
    /// then the sketch; nullopt and `why` on a refusal.
    static std::optional<dd_sketch> from_fields(std::uint64_t count, std::uint64_t sum,
                                                std::uint64_t min, std::uint64_t max,
                                                const std::vector<bin_record>& bins,
                                                std::string* why);

    /// Slow path of add: grows the window to hold `i`, then adds `n` there.
    void add_outside(std::uint32_t i, std::uint64_t n);
    /// Grows the window (by at least a quarter: amortised O(1)) so that it covers [lo, hi].
    void cover(std::uint32_t lo, std::uint32_t hi);
    /// Calls f(index, count) for every non-empty bin, in index order (the encoders' walk).
    template <typename F>
    void for_each_bin(F&& f) const {
        if (count_ == 0) return;
        const std::uint32_t lo = index_of(min_), hi = index_of(max_);
        for (std::uint32_t i = lo; i <= hi; ++i)
            if (const std::uint64_t c = bins_[i - lo_index_]; c != 0) f(i, c);
    }

    std::uint64_t count_ = 0;
    std::uint64_t sum_ = 0;
    std::uint64_t min_ = max_u64;  // so that add needs no "first value" branch
    std::uint64_t max_ = 0;
    std::uint32_t lo_index_ = 0;       // index of bins_[0]
    std::vector<std::uint64_t> bins_;  // counts of [lo_index_, lo_index_ + size); zero outside
                                       // [index_of(min_), index_of(max_)]
};

}  // namespace plugmon::agent
