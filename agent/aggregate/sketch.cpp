// The DDSketch's cold paths: window growth, merge, quantile walk, and the encodings (v1, v2).
#include "aggregate/sketch.hpp"

#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace plugmon::agent {

namespace {

/// Bins allocated by the first add: two octaves, 1 KiB.
constexpr std::uint32_t initial_bins = 2 * dd_sketch::sub_buckets;
/// A window that grows adds at least size / growth_divisor bins, and at least growth_min_bins.
constexpr std::uint32_t growth_divisor = 4;
constexpr std::uint32_t growth_min_bins = dd_sketch::sub_buckets / 2;

constexpr char magic[4] = {'P', 'M', 'D', 'S'};

// Field offsets of the encoding (see the diagram in sketch.hpp).
constexpr std::size_t at_version = 4, at_bits = 5, at_reserved = 6, at_count = 8, at_sum = 16,
                      at_min = 24, at_max = 32, at_n = 40;

std::uint64_t sat_add(std::uint64_t a, std::uint64_t b) {
    const std::uint64_t s = a + b;
    return s < a ? std::numeric_limits<std::uint64_t>::max() : s;
}

std::uint64_t sat_mul(std::uint64_t a, std::uint64_t b) {
    std::uint64_t p = 0;
    return __builtin_mul_overflow(a, b, &p) ? std::numeric_limits<std::uint64_t>::max() : p;
}

void put_u32(char* p, std::uint32_t v) {
    for (int k = 3; k >= 0; --k, v >>= 8) p[k] = static_cast<char>(v & 0xff);
}

void put_u64(char* p, std::uint64_t v) {
    for (int k = 7; k >= 0; --k, v >>= 8) p[k] = static_cast<char>(v & 0xff);
}

std::uint32_t get_u32(const unsigned char* p) {
    std::uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v = v << 8 | p[k];
    return v;
}

std::uint64_t get_u64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v = v << 8 | p[k];
    return v;
}

std::string str(std::uint64_t v) { return std::to_string(v); }

/// Bytes of `v` as an unsigned LEB128 varint (1..10).
std::size_t varint_size(std::uint64_t v) { return v == 0 ? 1 : (64 - std::countl_zero(v) + 6) / 7; }

/// Writes `v` as a varint at `p`; returns the byte after it.
char* put_varint(char* p, std::uint64_t v) {
    while (v >= 0x80) {
        *p++ = static_cast<char>((v & 0x7f) | 0x80);
        v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
}

/// Reads canonical varints from a byte range, refusing what encode() never writes.
class varint_reader {
public:
    varint_reader(std::string_view bytes, std::size_t at)
        : p_(reinterpret_cast<const unsigned char*>(bytes.data()) + at),
          end_(reinterpret_cast<const unsigned char*>(bytes.data()) + bytes.size()) {}

    /// Reads one varint into `v`; nullptr, or what is wrong with it.
    const char* next(std::uint64_t& v) {
        v = 0;
        for (unsigned k = 0; k < dd_sketch::max_varint_bytes; ++k) {
            if (p_ == end_) return "truncated varint (the bytes end inside it)";
            const unsigned char b = *p_++;
            if (k == dd_sketch::max_varint_bytes - 1 && b > 1)
                return "overlong varint (a 10th byte may only be 0x01)";
            v |= std::uint64_t(b & 0x7f) << (7 * k);
            if ((b & 0x80) == 0) {
                if (b == 0 && k > 0) return "non-canonical varint (ends in a zero byte)";
                return nullptr;
            }
        }
        return "overlong varint (more than 10 bytes)";  // unreachable: the 10th byte is <= 1
    }
    std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

private:
    const unsigned char* p_;
    const unsigned char* end_;
};

}  // namespace

void dd_sketch::add(std::uint64_t v, std::uint64_t n) {
    if (n == 0) return;
    const std::uint32_t i = index_of(v);
    const std::uint32_t off = i - lo_index_;
    if (off < bins_.size())
        bins_[off] += n;
    else
        add_outside(i, n);
    count_ += n;
    sum_ = sat_add(sum_, sat_mul(v, n));
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
}

void dd_sketch::add_outside(std::uint32_t i, std::uint64_t n) {
    cover(i, i);
    bins_[i - lo_index_] += n;
}

void dd_sketch::cover(std::uint32_t lo, std::uint32_t hi) {
    const auto size = static_cast<std::uint32_t>(bins_.size());
    const bool fresh = size == 0;
    const std::uint32_t cur_lo = fresh ? lo : lo_index_;
    const std::uint32_t cur_end = fresh ? lo : lo_index_ + size;
    if (!fresh && lo >= cur_lo && hi < cur_end) return;

    std::uint32_t new_lo = std::min(lo, cur_lo);
    std::uint32_t new_end = std::max(hi + 1, cur_end);
    // Grow by at least a quarter (and at least half an octave), so that a window widening one
    // bin at a time still costs amortised O(1) copies per bin (at most 5), while the slack past
    // what the data needed stays under a quarter plus half an octave. Doubling left up to as
    // much slack as data: ~4.9 KB per series at 10k series, most of the agent's memory.
    const std::uint32_t step = std::max(size / growth_divisor, growth_min_bins);
    const std::uint32_t want =
        std::min(index_limit, std::max({new_end - new_lo, size + step, initial_bins}));
    std::uint32_t extra = want - (new_end - new_lo);
    // Spend the slack on the side that needed room (a fresh window: half each side); whatever
    // does not fit below index 0 or above index_limit goes to the other side.
    std::uint32_t below = fresh ? extra / 2 : lo < cur_lo ? extra : 0;
    below = std::min(below, new_lo);
    new_lo -= below;
    extra -= below;
    const std::uint32_t above = std::min(extra, index_limit - new_end);
    new_end += above;
    new_lo -= extra - above;

    std::vector<std::uint64_t> grown(new_end - new_lo, 0);
    if (!fresh) std::copy(bins_.begin(), bins_.end(), grown.begin() + (lo_index_ - new_lo));
    bins_ = std::move(grown);
    lo_index_ = new_lo;
}

void dd_sketch::merge(const dd_sketch& other) {
    if (other.count_ == 0) return;
    if (&other == this) {
        const dd_sketch copy = other;  // growing the window would move the bins being read
        merge(copy);
        return;
    }
    const std::uint32_t lo = index_of(other.min_), hi = index_of(other.max_);
    cover(lo, hi);
    const std::uint64_t* src = other.bins_.data() + (lo - other.lo_index_);
    std::uint64_t* dst = bins_.data() + (lo - lo_index_);
    for (std::uint32_t k = 0; k <= hi - lo; ++k) dst[k] += src[k];
    count_ += other.count_;
    sum_ = sat_add(sum_, other.sum_);
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
}

void dd_sketch::clear() noexcept {
    if (count_ != 0) {
        const auto first = bins_.begin() + (index_of(min_) - lo_index_);
        const auto last = bins_.begin() + (index_of(max_) - lo_index_);
        std::fill(first, last + 1, 0);
    }
    count_ = 0;
    sum_ = 0;
    min_ = max_u64;
    max_ = 0;
}

std::uint64_t dd_sketch::quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    if (!(q > 0.0)) return min_;  // also NaN
    if (!(q < 1.0)) return max_;
    const double r = q * static_cast<double>(count_ - 1);
    // The product rounds in double; never let the rank pass the last value.
    const std::uint64_t rank =
        r >= 0x1p64 ? count_ - 1 : std::min(count_ - 1, static_cast<std::uint64_t>(r));
    const std::uint32_t lo = index_of(min_), hi = index_of(max_);
    std::uint64_t seen = 0;
    for (std::uint32_t i = lo; i <= hi; ++i) {
        seen += bins_[i - lo_index_];
        if (seen > rank) return std::clamp(value_of(i), min_, max_);
    }
    return max_;  // unreachable while the bins sum to count_
}

bool operator==(const dd_sketch& a, const dd_sketch& b) noexcept {
    if (a.count_ != b.count_ || a.sum_ != b.sum_ || a.min_ != b.min_ || a.max_ != b.max_)
        return false;
    if (a.count_ == 0) return true;
    // Outside [index_of(min), index_of(max)] both hold only zeros.
    const std::uint32_t lo = dd_sketch::index_of(a.min_), hi = dd_sketch::index_of(a.max_);
    for (std::uint32_t i = lo; i <= hi; ++i)
        if (a.bins_[i - a.lo_index_] != b.bins_[i - b.lo_index_]) return false;
    return true;
}

std::string dd_sketch::encode(std::uint8_t version) const {
    if (version == 2) return encode_v2();
    if (version == 1) return encode_v1();
    throw std::invalid_argument("dd_sketch: version: cannot encode version " + str(version) +
                                " (1 or 2)");
}

std::string dd_sketch::encode_v1() const {
    std::uint32_t n = 0;
    for_each_bin([&n](std::uint32_t, std::uint64_t) { ++n; });

    std::string out(header_bytes + std::size_t(n) * bin_record_bytes, '\0');
    char* p = out.data();
    std::memcpy(p, magic, sizeof magic);
    p[at_version] = 1;
    p[at_bits] = static_cast<char>(sub_bucket_bits);
    put_u64(p + at_count, count_);
    put_u64(p + at_sum, sum_);
    put_u64(p + at_min, min());
    put_u64(p + at_max, max());
    put_u32(p + at_n, n);
    char* r = p + header_bytes;
    for_each_bin([&r](std::uint32_t i, std::uint64_t c) {
        put_u32(r, i);
        put_u64(r + 4, c);
        r += bin_record_bytes;
    });
    return out;
}

std::string dd_sketch::encode_v2() const {
    const std::uint64_t head[] = {count_, sum_, min(), max()};
    // First pass: the exact size, so that the string is allocated once and never shrunk (a
    // rollup keeps its sketch bytes queued and spooled; slack would be memory held for nothing).
    std::uint64_t n = 0;
    std::size_t size = v2_header_bytes;
    for (const std::uint64_t v : head) size += varint_size(v);
    std::uint32_t prev = 0;
    for_each_bin([&](std::uint32_t i, std::uint64_t c) {
        size += varint_size(i - prev) + varint_size(c);
        prev = i;
        ++n;
    });
    size += varint_size(n);

    std::string out(size, '\0');
    char* p = out.data();
    std::memcpy(p, magic, sizeof magic);
    p[at_version] = 2;
    p[at_bits] = static_cast<char>(sub_bucket_bits);
    p += v2_header_bytes;
    for (const std::uint64_t v : head) p = put_varint(p, v);
    p = put_varint(p, n);
    prev = 0;
    for_each_bin([&](std::uint32_t i, std::uint64_t c) {
        p = put_varint(p, i - prev);
        p = put_varint(p, c);
        prev = i;
    });
    return out;
}

dd_sketch dd_sketch::decode(std::string_view bytes) {
    std::string why;
    auto s = try_decode(bytes, &why);
    if (!s) throw std::invalid_argument(why);
    return std::move(*s);
}

namespace {

/// Sets `why` (when not null) to "dd_sketch: <field>: <problem>"; returns nullopt for the caller.
template <typename T>
std::optional<T> refuse(std::string* why, const std::string& field, const std::string& problem) {
    if (why != nullptr) *why = "dd_sketch: " + field + ": " + problem;
    return std::nullopt;
}

}  // namespace

std::optional<dd_sketch> dd_sketch::try_decode(std::string_view bytes, std::string* why) {
    const auto fail = [why](const std::string& field, const std::string& problem) {
        return refuse<dd_sketch>(why, field, problem);
    };
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.size() < v2_header_bytes)
        return fail("length", str(bytes.size()) + " bytes is shorter than the " +
                                  str(v2_header_bytes) + "-byte header");
    if (std::memcmp(p, magic, sizeof magic) != 0) return fail("magic", "expected \"PMDS\"");
    if (p[at_version] != 1 && p[at_version] != 2)
        return fail("version", str(p[at_version]) + " is not supported (expected 1 or 2)");
    if (p[at_bits] != sub_bucket_bits)
        return fail("sub_bucket_bits",
                    str(p[at_bits]) + " is not supported (expected " + str(sub_bucket_bits) + ")");
    return p[at_version] == 1 ? decode_v1(bytes, why) : decode_v2(bytes, why);
}

std::optional<dd_sketch> dd_sketch::decode_v1(std::string_view bytes, std::string* why) {
    const auto fail = [why](const std::string& field, const std::string& problem) {
        return refuse<dd_sketch>(why, field, problem);
    };
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.size() < header_bytes)
        return fail("length", str(bytes.size()) + " bytes is shorter than the " +
                                  str(header_bytes) + "-byte header");
    if (p[at_reserved] != 0 || p[at_reserved + 1] != 0)
        return fail("reserved", "bytes 6..7 must be zero");

    const std::uint32_t n = get_u32(p + at_n);
    if (n > index_limit)
        return fail("n", str(n) + " bins, but there are only " + str(index_limit) + " indices");
    const std::size_t expected = header_bytes + std::size_t(n) * bin_record_bytes;
    if (bytes.size() != expected)
        return fail("length", str(bytes.size()) + " bytes, expected " + str(expected) +
                                  " for n = " + str(n) + " bins");

    const unsigned char* records = p + header_bytes;
    std::vector<bin_record> bins(n);
    for (std::uint32_t k = 0; k < n; ++k) {
        const std::uint32_t i = get_u32(records + k * bin_record_bytes);
        auto field = [k](const char* part) { return "bins[" + str(k) + "]." + part; };
        if (i >= index_limit)
            return fail(field("index"),
                        str(i) + " is out of range (limit " + str(index_limit) + ")");
        if (k > 0 && i <= bins[k - 1].first)
            return fail(field("index"),
                        str(i) + " does not increase (previous " + str(bins[k - 1].first) + ")");
        bins[k] = {i, get_u64(records + k * bin_record_bytes + 4)};
    }
    return from_fields(get_u64(p + at_count), get_u64(p + at_sum), get_u64(p + at_min),
                       get_u64(p + at_max), bins, why);
}

std::optional<dd_sketch> dd_sketch::decode_v2(std::string_view bytes, std::string* why) {
    const auto fail = [why](const std::string& field, const std::string& problem) {
        return refuse<dd_sketch>(why, field, problem);
    };
    varint_reader in(bytes, v2_header_bytes);
    std::uint64_t head[5] = {};  // count, sum, min, max, n
    static constexpr const char* head_names[5] = {"count", "sum", "min", "max", "n"};
    for (int f = 0; f < 5; ++f)
        if (const char* problem = in.next(head[f])) return fail(head_names[f], problem);
    const std::uint64_t n = head[4];
    if (n > index_limit)
        return fail("n", str(n) + " bins, but there are only " + str(index_limit) + " indices");

    std::vector<bin_record> bins(static_cast<std::size_t>(n));
    std::uint64_t index = 0;
    for (std::size_t k = 0; k < bins.size(); ++k) {
        auto field = [k](const char* part) { return "bins[" + str(k) + "]." + part; };
        std::uint64_t delta = 0, c = 0;
        if (const char* problem = in.next(delta)) return fail(field("delta"), problem);
        if (k > 0 && delta == 0)
            return fail(field("delta"), "zero (indices must increase; only the first may be 0)");
        if (delta >= index_limit || index + delta >= index_limit)
            return fail(field("index"), str(delta) + " past " + str(index) +
                                            " is out of range (limit " + str(index_limit) + ")");
        index += delta;
        if (const char* problem = in.next(c)) return fail(field("count"), problem);
        bins[k] = {static_cast<std::uint32_t>(index), c};
    }
    if (in.left() != 0)
        return fail("length", str(bytes.size()) + " bytes, but the " + str(n) + " bins end at " +
                                  str(bytes.size() - in.left()));
    return from_fields(head[0], head[1], head[2], head[3], bins, why);
}

std::optional<dd_sketch> dd_sketch::from_fields(std::uint64_t count, std::uint64_t sum,
                                                std::uint64_t min, std::uint64_t max,
                                                const std::vector<bin_record>& bins,
                                                std::string* why) {
    const auto fail = [why](const std::string& field, const std::string& problem) {
        return refuse<dd_sketch>(why, field, problem);
    };
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < bins.size(); ++k) {
        const std::uint64_t c = bins[k].second;
        if (c == 0)
            return fail("bins[" + str(k) + "].count", "zero (only non-empty bins are encoded)");
        if (total + c < total) return fail("count", "the bin counts overflow 64 bits");
        total += c;
    }
    if (total != count) return fail("count", str(count) + " but the bins sum to " + str(total));

    dd_sketch s;
    if (count == 0) {
        if (sum != 0) return fail("sum", "must be zero in an empty sketch");
        if (min != 0) return fail("min", "must be zero in an empty sketch");
        if (max != 0) return fail("max", "must be zero in an empty sketch");
        return s;
    }
    const std::size_t n = bins.size();
    const std::uint32_t first = bins.front().first, last = bins.back().first;
    if (min > max) return fail("min", str(min) + " is greater than max " + str(max));
    if (index_of(min) != first)
        return fail("min", str(min) + " is not in the first bin (" + str(lower_bound(first)) +
                               ".." + str(upper_bound(first)) + ")");
    if (index_of(max) != last)
        return fail("max", str(max) + " is not in the last bin (" + str(lower_bound(last)) + ".." +
                               str(upper_bound(last)) + ")");
    if (count == 1 && min != max) return fail("max", "differs from min with count 1");

    // min and max are two of the values (one if count == 1); every other value lies in its bin
    // and within [min, max]. The sum saturates, so compare against saturated bounds.
    std::uint64_t lo_sum = count == 1 ? min : sat_add(min, max);
    std::uint64_t hi_sum = lo_sum;
    for (std::size_t k = 0; k < n; ++k) {
        const std::uint32_t i = bins[k].first;
        std::uint64_t c = bins[k].second;
        if (count == 1) {
            c = 0;  // the one value is min
        } else {
            c -= k == 0;      // min
            c -= k == n - 1;  // max (both from one bin when n == 1, which then holds count >= 2)
        }
        lo_sum = sat_add(lo_sum, sat_mul(std::max(lower_bound(i), min), c));
        hi_sum = sat_add(hi_sum, sat_mul(std::min(upper_bound(i), max), c));
    }
    if (sum < lo_sum || sum > hi_sum)
        return fail("sum", str(sum) + " is outside the " + str(lo_sum) + ".." + str(hi_sum) +
                               " that min, max and the bins allow");

    s.lo_index_ = first;
    s.bins_.assign(last - first + 1, 0);
    for (const auto& [i, c] : bins) s.bins_[i - first] = c;
    s.count_ = count;
    s.sum_ = sum;
    s.min_ = min;
    s.max_ = max;
    return s;
}

}  // namespace plugmon::agent
