// A protobuf wire reader for tests (independent of the encoder under test): decodes any message
// into its fields, and the delimited MetricFamily stream of the protobuf exposition, including
// native histograms.
#pragma once

#include "export/native_histogram/native_histogram.hpp"

#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent::pb_reader {

/// A decoded protobuf message: every field's values in order, varints as integers, fixed64 as
/// doubles, length-delimited as bytes (decoded further on demand).
struct message {
    std::multimap<std::uint32_t, std::uint64_t> varints;
    std::multimap<std::uint32_t, double> doubles;
    std::multimap<std::uint32_t, std::string> bytes;

    static std::uint64_t varint(std::string_view& s) {
        std::uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
            if (s.empty() || shift > 63) throw std::runtime_error("truncated varint");
            const auto b = static_cast<unsigned char>(s.front());
            s.remove_prefix(1);
            v |= std::uint64_t(b & 0x7f) << shift;
            if ((b & 0x80) == 0) return v;
        }
    }
    static message parse(std::string_view s) {
        message m;
        while (!s.empty()) {
            const std::uint64_t key = varint(s);
            const auto field = static_cast<std::uint32_t>(key >> 3);
            switch (key & 7) {
                case 0:
                    m.varints.emplace(field, varint(s));
                    break;
                case 1: {
                    if (s.size() < 8) throw std::runtime_error("truncated fixed64");
                    double d;
                    std::memcpy(&d, s.data(), 8);  // little-endian host
                    s.remove_prefix(8);
                    m.doubles.emplace(field, d);
                    break;
                }
                case 2: {
                    const std::uint64_t n = varint(s);
                    if (s.size() < n) throw std::runtime_error("truncated bytes");
                    m.bytes.emplace(field, std::string(s.substr(0, n)));
                    s.remove_prefix(n);
                    break;
                }
                default:
                    throw std::runtime_error("unexpected wire type");
            }
        }
        return m;
    }
    std::vector<message> all(std::uint32_t f) const {
        std::vector<message> out;
        for (auto [a, b] = bytes.equal_range(f); a != b; ++a) out.push_back(parse(a->second));
        return out;
    }
    message one(std::uint32_t f) const { return parse(bytes.find(f)->second); }
    std::string str(std::uint32_t f) const {
        const auto it = bytes.find(f);
        return it == bytes.end() ? "" : it->second;
    }
    /// A field's first value; 0 when absent (as protobuf reads a missing scalar).
    std::uint64_t u(std::uint32_t f) const {
        const auto it = varints.find(f);
        return it == varints.end() ? 0 : it->second;
    }
    double d(std::uint32_t f) const {
        const auto it = doubles.find(f);
        return it == doubles.end() ? 0 : it->second;
    }
};

inline std::int64_t unzigzag(std::uint64_t v) {
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

/// Splits a delimited body into MetricFamily messages, by name.
inline std::map<std::string, message> families(std::string_view body) {
    std::map<std::string, message> out;
    while (!body.empty()) {
        const std::uint64_t n = message::varint(body);
        if (body.size() < n) throw std::runtime_error("truncated family");
        message m = message::parse(body.substr(0, n));
        body.remove_prefix(n);
        if (out.count(m.str(1))) throw std::runtime_error("family twice: " + m.str(1));
        out[m.str(1)] = m;
    }
    return out;
}

/// The native histogram of a Histogram message (schema, zero bucket, count, sum, spans, deltas).
inline native::histogram native_of(const message& h) {
    native::histogram out;
    out.count = h.u(1);
    out.sum = h.d(2);
    out.schema = static_cast<std::int32_t>(unzigzag(h.u(5)));
    out.zero_threshold = h.d(6);
    out.zero_count = h.u(7);
    for (const message& s : h.all(12))
        out.positive_spans.push_back(
            {static_cast<std::int32_t>(unzigzag(s.u(1))), static_cast<std::uint32_t>(s.u(2))});
    for (auto [a, b] = h.varints.equal_range(13); a != b; ++a)
        out.positive_deltas.push_back(unzigzag(a->second));
    return out;
}

}  // namespace plugmon::agent::pb_reader
