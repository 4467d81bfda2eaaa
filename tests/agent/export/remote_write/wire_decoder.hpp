// A small protobuf decoder of prompb.WriteRequest for the tests, written from the spec's field
// numbers independently of the encoder, plus a stub remote-write receiver.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <snappy.h>

namespace plugmon::test::rw {

struct decoded_histogram {
    std::uint64_t count = 0, zero_count = 0;
    double sum = 0, zero_threshold = 0;
    std::int64_t schema = 0, timestamp = 0, reset_hint = 0;
    std::vector<std::pair<std::int64_t, std::uint64_t>> spans;  // offset, length
    std::vector<std::int64_t> deltas;
};

struct decoded_series {
    std::vector<std::pair<std::string, std::string>> labels;
    std::vector<std::pair<double, std::int64_t>> samples;  // value, timestamp
    std::vector<decoded_histogram> histograms;
    std::string label(const std::string& name) const {
        for (const auto& [n, v] : labels)
            if (n == name) return v;
        return {};
    }
};

class reader {
public:
    explicit reader(std::string_view b) : b_(b) {}
    bool done() const { return p_ >= b_.size(); }
    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p_ >= b_.size()) throw std::runtime_error("truncated varint");
            const auto c = static_cast<unsigned char>(b_[p_++]);
            v |= std::uint64_t(c & 0x7f) << shift;
            if ((c & 0x80) == 0) return v;
        }
        throw std::runtime_error("varint too long");
    }
    double fixed64() {
        if (p_ + 8 > b_.size()) throw std::runtime_error("truncated fixed64");
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b_[p_ + i]);
        p_ += 8;
        double d;
        std::memcpy(&d, &v, 8);
        return d;
    }
    std::string_view bytes() {
        const auto n = varint();
        if (p_ + n > b_.size()) throw std::runtime_error("truncated bytes");
        auto s = b_.substr(p_, n);
        p_ += n;
        return s;
    }
    void skip(unsigned wire) {
        if (wire == 0)
            varint();
        else if (wire == 1)
            fixed64();
        else if (wire == 2)
            bytes();
        else
            throw std::runtime_error("unexpected wire type");
    }

private:
    std::string_view b_;
    std::size_t p_ = 0;
};

inline std::int64_t unzigzag(std::uint64_t v) {
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

inline decoded_histogram decode_histogram(std::string_view b) {
    decoded_histogram h;
    reader r(b);
    while (!r.done()) {
        const auto tag = r.varint();
        const auto field = tag >> 3;
        const unsigned wire = tag & 7;
        if (field == 1 && wire == 0)
            h.count = r.varint();
        else if (field == 3 && wire == 1)
            h.sum = r.fixed64();
        else if (field == 4 && wire == 0)
            h.schema = unzigzag(r.varint());
        else if (field == 5 && wire == 1)
            h.zero_threshold = r.fixed64();
        else if (field == 6 && wire == 0)
            h.zero_count = r.varint();
        else if (field == 11 && wire == 2) {
            reader s(r.bytes());
            std::pair<std::int64_t, std::uint64_t> span{0, 0};
            while (!s.done()) {
                const auto t = s.varint();
                if ((t >> 3) == 1)
                    span.first = unzigzag(s.varint());
                else if ((t >> 3) == 2)
                    span.second = s.varint();
                else
                    s.skip(t & 7);
            }
            h.spans.push_back(span);
        } else if (field == 12 && wire == 2) {
            reader d(r.bytes());
            while (!d.done()) h.deltas.push_back(unzigzag(d.varint()));
        } else if (field == 14 && wire == 0)
            h.reset_hint = std::int64_t(r.varint());
        else if (field == 15 && wire == 0)
            h.timestamp = std::int64_t(r.varint());
        else
            r.skip(wire);
    }
    return h;
}

inline decoded_series decode_series(std::string_view b) {
    decoded_series ts;
    reader r(b);
    while (!r.done()) {
        const auto tag = r.varint();
        if (tag == 0x0A) {
            reader l(r.bytes());
            std::pair<std::string, std::string> lab;
            while (!l.done()) {
                const auto t = l.varint();
                if (t == 0x0A)
                    lab.first = std::string(l.bytes());
                else if (t == 0x12)
                    lab.second = std::string(l.bytes());
                else
                    l.skip(t & 7);
            }
            ts.labels.push_back(lab);
        } else if (tag == 0x12) {
            reader s(r.bytes());
            std::pair<double, std::int64_t> smp{0, 0};
            while (!s.done()) {
                const auto t = s.varint();
                if (t == 0x09)
                    smp.first = s.fixed64();
                else if (t == 0x10)
                    smp.second = std::int64_t(s.varint());
                else
                    s.skip(t & 7);
            }
            ts.samples.push_back(smp);
        } else if (tag == 0x22) {
            ts.histograms.push_back(decode_histogram(r.bytes()));
        } else {
            r.skip(tag & 7);
        }
    }
    return ts;
}

/// Decodes a WriteRequest (uncompressed protobuf).
inline std::vector<decoded_series> decode_write_request(std::string_view b) {
    std::vector<decoded_series> out;
    reader r(b);
    while (!r.done()) {
        const auto tag = r.varint();
        if (tag == 0x0A)
            out.push_back(decode_series(r.bytes()));
        else
            r.skip(tag & 7);
    }
    return out;
}

inline std::string unsnappy(std::string_view b) {
    std::string out;
    if (!snappy::Uncompress(b.data(), b.size(), &out)) throw std::runtime_error("bad snappy");
    return out;
}

}  // namespace plugmon::test::rw
