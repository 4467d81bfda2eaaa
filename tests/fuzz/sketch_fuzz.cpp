// libFuzzer target for the DDSketch encoding: arbitrary bytes through try_decode (anything it
// accepts must re-encode to the same bytes and answer quantiles), and the same bytes read as
// values through add, merge, encode and decode (whatever is recorded must survive a round trip).
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

void check_decoded(const dd_sketch& s, std::string_view input) {
    require(s.encode() == input);
    const std::uint64_t q50 = s.quantile(0.5), q99 = s.quantile(0.99);
    require(s.min() <= q50 && q50 <= q99 && q99 <= s.max());
    // Merging a valid sketch with itself must give a sketch that decode accepts again (bounded
    // so that the count cannot wrap).
    if (s.count() <= (std::uint64_t{1} << 62)) {
        dd_sketch twice = s;
        twice.merge(s);
        const auto back = dd_sketch::try_decode(twice.encode());
        require(back.has_value() && *back == twice);
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
    std::string why;
    const auto back = dd_sketch::try_decode(whole.encode(), &why);
    require(back.has_value() && why.empty() && *back == whole);
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
