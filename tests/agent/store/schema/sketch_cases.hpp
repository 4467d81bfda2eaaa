// Shared by the sketch SQL tests (PL/pgSQL and the C extension): malformed encodings of both versions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "aggregate/sketch.hpp"

namespace plugmon::test {

/// A sketch of 5, 500, 50 000 and 5 000 000: four bins, multi-byte varints.
inline agent::dd_sketch four_value_sketch() {
    agent::dd_sketch s;
    for (std::uint64_t v : {5, 500, 50000, 5000000}) s.add(v);
    return s;
}

/// The canonical unsigned LEB128 bytes of `v`.
inline std::string varint(std::uint64_t v) {
    std::string out;
    for (; v >= 128; v >>= 7) out += static_cast<char>((v & 127) | 128);
    out += static_cast<char>(v);
    return out;
}

/// A version 2 encoding: the prefix, then `fields` as canonical varints (count, sum, min, max, n,
/// then index delta and count per bin), without checking them.
inline std::string v2_bytes(std::initializer_list<std::uint64_t> fields) {
    std::string out = std::string("PMDS") + '\x02' + '\x06';
    for (const std::uint64_t f : fields) out += varint(f);
    return out;
}

/// An input no sketch function may accept, and the field its error message must name.
struct malformed_case {
    std::string what, bytes, field;
};

/// One fault each, in both encodings.
inline std::vector<malformed_case> malformed_sketches() {
    const agent::dd_sketch s = four_value_sketch();
    const std::string v1 = s.encode(1), v2 = s.encode(2);
    std::vector<malformed_case> cases;
    auto add = [&cases](std::string what, std::string bytes, std::string field) {
        cases.push_back({std::move(what), std::move(bytes), std::move(field)});
    };
    add("5 bytes", v2.substr(0, 5), "length");
    add("v1 cut in the header", v1.substr(0, 20), "length");
    add("bad magic", "PMDX" + v1.substr(4), "magic");
    add("version 3", v2.substr(0, 4) + '\x03' + v2.substr(5), "version");
    add("v1 sub-bucket bits 5", v1.substr(0, 5) + '\x05' + v1.substr(6), "sub_bucket_bits");
    add("v2 sub-bucket bits 7", v2.substr(0, 5) + '\x07' + v2.substr(6), "sub_bucket_bits");
    add("v1 reserved", v1.substr(0, 7) + '\x01' + v1.substr(8), "reserved");
    add("v1 one byte short", v1.substr(0, v1.size() - 1), "length");
    add("v1 a record too many", v1 + std::string(12, '\0'), "length");
    std::string huge_n = v1;
    huge_n[40] = '\x7f';
    add("v1 n past 3776", huge_n, "n");
    std::string bad_index = v1;  // the first bin's index: 0x00010000, past 3776
    bad_index[45] = '\x01';
    add("v1 index out of range", bad_index, "bins[0].index");
    std::string bad_count =
        v1;  // the last bin's count grows by 2^8: bins no longer add up to count
    bad_count[v1.size() - 2] = '\x01';
    add("v1 bins do not add up", bad_count, "count");
    std::string same_index = v1;  // the second bin repeats the first one's index
    same_index.replace(56, 4, v1.substr(44, 4));
    add("v1 index does not increase", same_index, "bins[1].index");
    std::string zero_count = v1;
    zero_count.replace(48, 8, std::string(8, '\0'));
    add("v1 zero count", zero_count, "bins[0].count");

    add("v2 a byte short", v2.substr(0, v2.size() - 1), "bins[3].count");
    add("v2 a byte too many", v2 + '\x00', "length");
    add("v2 cut after sum", v2_bytes({1, 5}), "min");
    add("v2 non-canonical count",
        std::string("PMDS\x02\x06\x81\x00", 8) + v2_bytes({5, 5, 5, 1, 5, 1}).substr(7), "count");
    add("v2 varint past 64 bits",
        std::string("PMDS\x02\x06\x01", 7) + std::string(9, '\xff') + '\x02', "sum");
    add("v2 11-byte varint", std::string("PMDS\x02\x06\x01", 7) + std::string(10, '\x80') + '\x00',
        "sum");
    add("v2 n past 3776", v2_bytes({0, 0, 0, 0, 3777}), "n");
    add("v2 zero delta", v2_bytes({2, 10, 5, 5, 2, 5, 1, 0, 1}), "bins[1].index");
    add("v2 zero count", v2_bytes({1, 5, 5, 5, 2, 5, 0, 1, 1}), "bins[0].count");
    add("v2 index past 3776", v2_bytes({1, 5, 5, 5, 1, 3776, 1}), "bins[0].index");
    add("v2 delta past 3776", v2_bytes({2, 5, 5, 5, 2, 5, 1, 3771, 1}), "bins[1].index");
    add("v2 huge delta", v2_bytes({2, 5, 5, 5, 2, 5, 1, ~std::uint64_t{0}, 1}), "bins[1].index");
    add("v2 bins do not add up", v2_bytes({3, 5, 5, 5, 1, 5, 2}), "count");
    add("v2 bin counts overflow", v2_bytes({1, 5, 5, 5, 2, 5, ~std::uint64_t{0}, 1, 2}), "count");
    return cases;
}

}  // namespace plugmon::test
