// libFuzzer target for the store's untrusted bytes: arbitrary input through decode_batch (anything
// it accepts must re-encode to the same bytes) and through the spool's record-frame parser.
#include "store/write/batch.hpp"
#include "store/write/spool.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace plugmon::agent::store;

/// Aborts with a finding; the sanitizer runtime prints the input.
void require(bool ok) {
    if (!ok) __builtin_trap();
}

/// Every refusal is a spool_error whose message names where it comes from.
void require_named(const spool_error& e, std::string_view prefix) {
    require(std::string_view(e.what()).substr(0, prefix.size()) == prefix);
}

void check_batch(std::string_view input) {
    try {
        const batch b = decode_batch(input);
        const std::string again = encode_batch(b);
        // One encoding per batch. An older payload (a previous release's spool) comes back as
        // version 3: the version word changed and the sections it lacks appended empty (version
        // 1: alerts and audit, version 2: audit).
        std::string expected(input);
        if (expected[4] == 1 || expected[4] == 2) {
            expected.append(expected[4] == 1 ? 8 : 4, '\0');
            expected[4] = 3;
        }
        require(again == expected);
        // A frame around it must parse back to the same payload.
        const std::string rec = encode_record(b.seq, b.rows(), again);
        const record_header h = parse_record_header(rec);
        require(h.id == b.seq && h.rows == b.rows() && record_payload(h, rec) == again);
    } catch (const spool_error& e) {
        require_named(e, "batch: ");
    }
}

void check_record(std::string_view input) {
    try {
        const record_header h = parse_record_header(input);
        const std::string_view payload = record_payload(h, input);
        require(payload.size() == h.payload_bytes);
        require(encode_record(h.id, h.rows, payload) == input);
        check_batch(payload);
    } catch (const spool_error& e) {
        require_named(e, "spool: record ");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_batch(input);
    check_record(input);
    // The same bytes as a payload behind a valid frame, so the fuzzer reaches the batch decoder
    // through the whole record path without having to forge CRCs.
    const std::string framed = encode_record(1, 0, input);
    const record_header h = parse_record_header(framed);
    require(record_payload(h, framed) == input);
    check_batch(record_payload(h, framed));
    return 0;
}
