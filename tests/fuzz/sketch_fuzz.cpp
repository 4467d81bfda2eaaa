// libFuzzer target for the DDSketch encodings (versions 1 and 2): arbitrary bytes through
// try_decode (anything it accepts must re-encode, in its own version, to the same bytes, convert
// to the other version and back, and answer quantiles), and the same bytes read as values through
// add, merge, encode and decode in both versions (whatever is recorded must survive).
#include "aggregate/sketch.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using plugmon::agent::dd_sketch;

/// Aborts with a finding; the sanitizer runtime prints the input.
void require(bool ok) {
    if (!ok) __builtin_trap();
}

/// decode(encode(s, version)) == s for both versions.
void require_round_trips(const dd_sketch& s) {
    for (const std::uint8_t version : {1, 2}) {
        std::string why;
        const auto back = dd_sketch::try_decode(s.encode(version), &why);
        require(back.has_value() && why.empty() && *back == s);
    }
}

void check_decoded(const dd_sketch& s, std::string_view input) {
    const auto version = static_cast<std::uint8_t>(input[4]);  // decode accepted: 1 or 2
    require(s.encode(version) == input);
    require_round_trips(s);
    const std::uint64_t q50 = s.quantile(0.5), q99 = s.quantile(0.99);
    require(s.min() <= q50 && q50 <= q99 && q99 <= s.max());
    // Merging a valid sketch with itself must give a sketch that decode accepts again (bounded
    // so that the count cannot wrap).
    if (s.count() <= (std::uint64_t{1} << 62)) {
        dd_sketch twice = s;
        twice.merge(s);
        require_round_trips(twice);
    }
}

/// Reads the input as 9-byte records (shift, u64 value) so that every magnitude is reachable.
void check_recorded(const std::uint8_t* data, std::size_t size) {
    dd_sketch whole, first, second;
    for (std::size_t at = 0; at + 9 <= size; at += 9) {
        std::uint64_t v = 0;
        std::memcpy(&v, data + at + 1, sizeof v);
        v >>= data[at] % 64;
        whole.add(v);
        (data[at] & 64 ? first : second).add(v);
    }
    first.merge(second);
    require(first == whole);
    require_round_trips(whole);
    // The default encoding is version 2, and a decoded v2 writes the very same bytes again.
    const std::string bytes = whole.encode();
    require(bytes.size() > 4 && bytes[4] == 2);
    require(dd_sketch::decode(bytes).encode() == bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string why;
    if (const auto s = dd_sketch::try_decode(input, &why))
        check_decoded(*s, input);
    else
        require(why.rfind("dd_sketch: ", 0) == 0);  // every refusal explains itself
    check_recorded(data, size);
    return 0;
}
